"""The measurement harness: FLOPs (fvcore, GMACs), peak memory, throughput and MFU, and the
sweep runner behind `vidbench bench`. Everything the CLI does is a function here."""
from .crosscheck import flop_counter_by_operator, flop_counter_macs
from .flops import ELEMENTWISE_OPS, SDPA_OPS, FlopReport, count_flops, flop_handles, sdpa_macs
from .grid import BENCH_COLUMNS, KEY_COLUMNS, SweepConfig, expand_grid, resolve_models
from .measure import TRAIN_FLOP_FACTOR, measure
from .memory import MemoryResult, PeakMemory
from .sweep import run_sweep
from .throughput import MODES, PRECISIONS, Timing, make_step, matmul_peak_flops, time_steps

__all__ = [
    "flop_counter_by_operator", "flop_counter_macs", "ELEMENTWISE_OPS", "SDPA_OPS", "FlopReport", "count_flops", "flop_handles", "sdpa_macs",
    "TRAIN_FLOP_FACTOR", "measure", "MemoryResult", "PeakMemory", "BENCH_COLUMNS", "KEY_COLUMNS", "SweepConfig",
    "expand_grid", "resolve_models", "run_sweep", "MODES", "PRECISIONS", "Timing", "make_step",
    "matmul_peak_flops", "time_steps",
]
