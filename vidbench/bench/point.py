"""One configuration of the bench grid measured: its model options (`model_overrides`), the
arguments of `measure` (`measure_args`), in this process or in a fresh worker process
(`python -m vidbench.bench.worker`, through `vidbench.bench.process`), the `--batch-size max`
search, and the bench.csv record it becomes (`bench_record`). A failure is the row's status and
message ("error", "oom", "timeout", "crashed"), never the end of the sweep.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import gc
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch

from ..results import ResultsStore, key_str, machine_columns
from .flops import FlopReport, count_flops
from .grid import BENCH_COLUMNS, COUNT, KEY_COLUMNS, MAX, BenchPoint, SweepConfig
from .memory import parse_size
from .process import run_worker
from .throughput import matmul_peak_flops

__all__ = ["RESULT_PREFIX", "MeasureFn", "bench_record", "error_text", "is_oom", "largest_batch", "measure_args", "memory_cap",
           "measure_in_process", "measure_isolated", "measure_point", "model_overrides", "uncounted_text"]

RESULT_PREFIX = "VIDBENCH_RESULT "  # the worker's result line


def model_overrides(point: BenchPoint, cfg: SweepConfig, with_weights: bool = False) -> Dict[str, Any]:
    """create_model options of a point (the checkpoint's config first, its frames / size on top);
    `with_weights`: also the weights to load (for measuring; counting needs only the config)."""
    out = {**cfg.model_kwargs, "img_size": int(point.img_size)}
    if point.frames is not None:
        out["num_frames"] = int(point.frames)
    if with_weights and cfg.weights:
        out.update(weights=cfg.weights, weights_format=cfg.weights_format)
    return out


def is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


def error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().replace("\n", " ")
    return text[:500]


def uncounted_text(report: FlopReport) -> str:
    return "; ".join(f"{op} x{n}" for op, n in report.uncounted_ops.items())


MeasureFn = Callable[..., Dict[str, Any]]


def measure_args(point: BenchPoint, cfg: SweepConfig, gmacs: float, peak: Optional[float]) -> Dict[str, Any]:
    """`measure`'s keyword arguments for one grid point: the one place they are written (the
    in-process call passes them, the isolated worker gets them as its JSON job)."""
    return dict(model=point.arch, mode=point.mode, precision=point.precision, device=cfg.device,
                batch_size=point.batch_size, warmup=cfg.warmup, iters=cfg.iters, compile=cfg.compile, gmacs=gmacs,
                peak_flops=peak, attn_backend=point.attn_backend, grad_checkpointing=bool(point.grad_checkpointing),
                detail=cfg.detail, **model_overrides(point, cfg, with_weights=True))


def measure_in_process(point: BenchPoint, cfg: SweepConfig, gmacs: float, peak: Optional[float],
                       measure_fn: MeasureFn, mem_limit: Optional[int] = None) -> Dict[str, Any]:
    """In this process; `mem_limit` (bytes, CUDA only: the caching allocator's cap for this process)."""
    try:
        with memory_cap(torch.device(cfg.device), mem_limit):
            args = measure_args(point, cfg, gmacs, peak)
            return {"status": "ok", **measure_fn(args.pop("model"), **args)}
    except Exception as exc:  # one configuration's failure is a row, not the end of the sweep
        return {"status": "oom" if is_oom(exc) else "error", "error": error_text(exc)}


@contextlib.contextmanager
def memory_cap(device: torch.device, limit: Optional[int]) -> Iterator[None]:
    """Around one measurement in this process: on CUDA the caching allocator capped at `limit`
    bytes (where given) and, after it, uncapped and emptied; the garbage collected everywhere."""
    try:
        if limit is not None and device.type == "cuda":
            total = torch.cuda.get_device_properties(device).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total), device)
        yield
    finally:
        gc.collect()
        if device.type == "cuda":
            if limit is not None:
                torch.cuda.set_per_process_memory_fraction(1.0, device)
            torch.cuda.empty_cache()


def measure_isolated(point: BenchPoint, cfg: SweepConfig, gmacs: float, peak: Optional[float],
                     mem_limit: Optional[int] = None) -> Dict[str, Any]:
    """In a fresh worker process; `mem_limit` (bytes): the worker's peak resident memory (CPU) or
    allocator cap (CUDA), enforced there (an "oom" row beyond it)."""
    job = {"measure": measure_args(point, cfg, gmacs, peak), "threads": cfg.threads or torch.get_num_threads(),
           "mem_limit_bytes": mem_limit}
    run = run_worker("vidbench.bench.worker", job, RESULT_PREFIX, timeout=cfg.timeout_s)
    if run.timed_out:
        return {"status": "timeout", "error": f"worker exceeded {cfg.timeout_s} s"}
    if run.result is not None:
        return run.result
    return {"status": "crashed", "error": f"worker exited with code {run.returncode}: {run.stderr_tail(3)}"[:500]}


def measure_point(point: BenchPoint, cfg: SweepConfig, flops: Dict[Tuple[str, ...], Any],
                  peaks: Dict[str, Optional[float]], env_extra: Dict[str, Any], store: ResultsStore,
                  measure_fn: MeasureFn) -> Dict[str, Any]:
    """One grid point measured: its params and GMACs (counted once per model and size, kept in
    `flops`), the matmul peak of its precision (once, kept in `peaks` and written to
    environment.json), then the measurement (a `--batch-size max` search where asked); the
    result's non-key columns, with the batch a search found as ``found_batch_size``."""
    fkey = (point.model, key_str(point.frames), key_str(point.img_size))
    if fkey not in flops:
        try:
            flops[fkey] = count_flops(point.arch, **model_overrides(point, cfg))
        except Exception as exc:
            flops[fkey] = exc
    report = flops[fkey]
    if isinstance(report, Exception):
        return {"status": "error", "error": "building/counting the model failed: " + error_text(report)}
    base = {"params": report.params, "gmacs": report.gmacs, "uncounted_ops": uncounted_text(report)}
    if point.mode == COUNT:  # counted on the meta device: nothing to run
        return {**base, "status": "ok", "gmacs": round(report.gmacs, 4)}
    if point.precision not in peaks:
        try:
            peaks[point.precision] = matmul_peak_flops(torch.device(cfg.device), point.precision)
        except Exception:  # the rows still get throughput; MFU stays blank
            peaks[point.precision] = None
        env_extra["matmul_peak_tflops"][point.precision] = (
            None if peaks[point.precision] is None else peaks[point.precision] / 1e12)
        store.write_environment(cfg.device, env_extra)
    peak = peaks[point.precision]
    if point.batch_search == MAX:
        result = largest_batch(point, cfg, report.gmacs, peak, measure_fn)
    else:
        result = _measure_row(point, cfg, report.gmacs, peak, measure_fn)
    found = result.get("batch_size")
    result = {k: v for k, v in result.items() if k in BENCH_COLUMNS and k not in KEY_COLUMNS}
    return {**base, **result, "found_batch_size": found}


def bench_record(point: BenchPoint, result: Dict[str, Any], isolated: bool,
                 retry_of: Optional[int] = None) -> Dict[str, Any]:
    """A bench.csv row: every column, the measurement's values under the point's keys (a
    `--batch-size max` row gets the batch it found), the global batch (over the processes), where
    it ran (`machine_columns`; a count row ran nowhere), stamped now."""
    where = machine_columns(point.device) if point.mode != COUNT else {}
    record = {**{c: None for c in BENCH_COLUMNS}, **where, **result, **point.columns(), "retry_of": retry_of,
              "isolated": isolated and point.mode != COUNT, "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if point.batch_search == MAX:  # the batch it found
        record["batch_size"] = result.get("found_batch_size")
    if record["batch_size"] is not None and point.mode != COUNT:
        record["global_batch"] = int(record["batch_size"]) * point.nproc
    return record


def _measure_row(point: BenchPoint, cfg: SweepConfig, gmacs: float, peak: Optional[float], measure_fn: MeasureFn,
                 mem_limit: Optional[int] = None) -> Dict[str, Any]:
    if cfg.isolated:
        return measure_isolated(point, cfg, gmacs, peak, mem_limit)
    return measure_in_process(point, cfg, gmacs, peak, measure_fn, mem_limit)


def largest_batch(point: BenchPoint, cfg: SweepConfig, gmacs: float, peak: Optional[float],
                   measure_fn: MeasureFn, run: Optional[Callable[..., Dict[str, Any]]] = None) -> Dict[str, Any]:
    """`--batch-size max`: the largest batch whose step fits the memory limit, and the row measured
    there. Batches 1, 2, 4, ... are tried until one does not fit (or max_batch_cap), then the gap is
    bisected; each try is one warm-up and one timed step, in a fresh process on CPU (the limit is
    that process's peak resident memory) or on CUDA after emptying the cache (the limit is the
    device's memory, or mem_limit). Only "oom" means "does not fit": any other failure ends the
    search as the row's error. `run` measures one try (default `_measure_row`; the multi-process
    bench passes its own, where every process takes each try)."""
    run = run or _measure_row
    limit = parse_size(cfg.mem_limit) if cfg.mem_limit else None
    quick = dataclasses.replace(cfg, warmup=1, iters=1, detail=False)
    tries: List[str] = []

    def fits(batch: int) -> Optional[Dict[str, Any]]:
        """None if it fits; else the failed try's result."""
        result = run(dataclasses.replace(point, batch_size=batch), quick, gmacs, peak, measure_fn, limit)
        tries.append(f"{batch} {result['status']}")
        return None if result["status"] == "ok" else result

    info = {"batch_search": MAX, "mem_limit_mb": None if limit is None else limit / 2**20}
    lo, hi, batch = 0, cfg.max_batch_cap + 1, 1
    while batch <= cfg.max_batch_cap:
        failed = fits(batch)
        if failed is not None:
            if failed["status"] != "oom":
                return {**failed, **info, "batch_tries": ", ".join(tries)}
            hi = batch
            break
        lo, batch = batch, batch * 2
    if lo == 0:
        return {**failed, "error": "batch 1 does not fit: " + str(failed.get("error")), **info,
                "batch_tries": ", ".join(tries)}
    while hi - lo > 1:
        mid = (lo + hi) // 2
        failed = fits(mid)
        if failed is None:
            lo = mid
        elif failed["status"] == "oom":
            hi = mid
        else:
            return {**failed, **info, "batch_tries": ", ".join(tries)}
    while True:  # the full measurement (more steps) can end a little above a quick try: then one batch less
        result = run(dataclasses.replace(point, batch_size=lo), cfg, gmacs, peak, measure_fn, limit)
        tries.append(f"{lo} {result['status']} (measured)")
        if result["status"] != "oom" or lo == 1:
            return {**result, **info, "batch_size": lo, "batch_tries": ", ".join(tries)}
        lo -= 1
