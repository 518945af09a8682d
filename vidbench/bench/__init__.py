"""The measurement harness: FLOPs (fvcore, GMACs), peak memory, throughput and MFU, and the
sweep runner behind `vidbench bench`. Everything the CLI does is a function here."""
from .crosscheck import flop_counter_macs
from .flops import ELEMENTWISE_OPS, SDPA_OPS, FlopReport, count_flops, flop_handles, sdpa_macs

__all__ = ["flop_counter_macs", "ELEMENTWISE_OPS", "SDPA_OPS", "FlopReport", "count_flops", "flop_handles", "sdpa_macs"]
