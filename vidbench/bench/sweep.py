"""The sweep runner behind `vidbench bench`: a grid of models x frames x image sizes x batch
sizes x precisions x modes, one row per configuration written to `<out>/bench.csv` as soon as
it is measured (vidbench.results.ResultsStore), plus environment.json.

A failing configuration (an error, an out-of-memory, a crashed or timed-out worker) becomes a
row with its status and message and the sweep goes on; out-of-memory rows can be retried at half
the batch. `resume=True` skips configurations already in the CSV, so a killed run loses at most
the row in flight. With `isolate`, each configuration runs in a fresh `python -m
vidbench.bench.worker` process (the default on CPU, where that makes the peak RSS meaningful).
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections import deque
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from tqdm import tqdm

from ..distributed import launched_world
from ..results import ResultsStore, run_lock
from .ddp import launch_ddp_sweep, run_ddp_sweep
from .grid import BENCH_COLUMNS, COUNT, TABLE, SweepConfig, expand_grid, row_key
from .measure import measure
from .point import MeasureFn, bench_record, measure_point

__all__ = ["NOISY_IQR_PCT", "run_sweep"]

NOISY_IQR_PCT = 10.0  # a row whose step-time IQR exceeds this % of the median is flagged in reports


def run_sweep(cfg: SweepConfig, out: os.PathLike, resume: bool = False, progress: bool = True,
              measure_fn: MeasureFn = measure) -> List[Dict[str, Any]]:
    """Run the grid, appending each row to `<out>/bench.csv` as it finishes; return this run's rows.

    With `cfg.nproc` > 1 (or inside torchrun) the train rows are measured on several processes
    (`vidbench.bench.ddp`).

    Args:
        resume: skip configurations already in the CSV (any status). Without it an existing,
            non-empty bench.csv is an error rather than a silent mix of runs.
        measure_fn: the in-process measurement (tests inject failures through it).
    """
    if launched_world() > 1:  # this process is one of torchrun's
        return run_ddp_sweep(cfg, out, resume, progress)
    if cfg.world_size > 1:  # --nproc N, or this machine's part of --nnodes M
        return launch_ddp_sweep(cfg, out, resume, progress)
    with run_lock(out, "vidbench bench"):
        return _run_sweep(cfg, out, resume, progress, measure_fn)


def _run_sweep(cfg: SweepConfig, out: os.PathLike, resume: bool, progress: bool,
               measure_fn: MeasureFn) -> List[Dict[str, Any]]:
    store = ResultsStore(out)
    done = {row_key(r) for r in store.rows_to_resume(TABLE, resume)}
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    grid = expand_grid(cfg)
    queue = deque((point, cfg.retry_oom, None) for point in grid if point.key() not in done)
    peaks: Dict[str, Optional[float]] = {}
    env_extra = {"sweep": dataclasses.asdict(cfg), "isolated": cfg.isolated, "matmul_peak_tflops": {},
                 "skipped_as_done": len(grid) - len(queue)}
    env_path = Path(out) / "environment.json"
    # a count-only run measures nothing of the machine: it records one only where none is
    if any(mode != COUNT for mode in cfg.mode) or not env_path.exists():
        if resume and env_path.exists():  # keep what the earlier run(s) recorded
            earlier = json.loads(env_path.read_text())
            env_extra["earlier_runs"] = earlier.pop("earlier_runs", []) + [earlier]
        store.write_environment(cfg.device, env_extra)
    flops: Dict[Tuple[str, ...], Any] = {}
    written: List[Dict[str, Any]] = []
    bar = tqdm(total=len(queue), disable=not progress, desc="vidbench bench", unit="cfg", file=sys.stderr)
    while queue:
        point, retries_left, retry_of = queue.popleft()
        bar.set_postfix_str(f"{point.model} b{point.batch_size} {point.precision} {point.mode}")
        result = measure_point(point, cfg, flops, peaks, env_extra, store, measure_fn)
        record = bench_record(point, result, cfg.isolated, retry_of)
        store.append(TABLE, {c: record[c] for c in BENCH_COLUMNS})
        done.add(point.key())
        written.append(record)
        bar.update(1)
        if record["status"] == "oom" and retries_left > 0 and (point.batch_size or 0) > 1:
            smaller = dataclasses.replace(point, batch_size=point.batch_size // 2)
            if smaller.key() not in done and all(smaller.key() != q[0].key() for q in queue):
                queue.appendleft((smaller, retries_left - 1, point.batch_size))
                bar.total += 1
    bar.close()
    return written
