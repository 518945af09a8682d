"""Multi-process training throughput: `vidbench bench --nproc N` (or the bench command under
``torchrun --nproc_per_node N``) measures DistributedDataParallel training steps.

Each train row of the grid is measured twice in the same command: on one process first (the
row with nproc 1, measured by rank 0 in a fresh worker process while the others wait, and only
where the results directory lacks it), then on all N processes, each holding the row's batch
(the global batch is N x batch), with gradients all-reduced by DDP (gloo on CPU, NCCL on CUDA,
one GPU per process). A step ends when the slowest process ends it, so the step time is, for
each step, the largest over processes; total clips/s = N x batch / median step, and the scaling
efficiency is total clips/s / (N x the one-process clips/s). Rank 0 writes the rows. Processes
on one CPU share its cores: torchrun gives each one thread unless --threads says otherwise, and
the one-process row uses the same threads per process, so the efficiency compares like with like.

`SweepConfig` refuses more processes than the CPU cores this process may use unless
``oversubscribe`` (``--oversubscribe``) says so, and more than the GPUs on CUDA. The launcher's
torchrun, and torchrun's workers, die with their parent (Linux's PR_SET_PDEATHSIG): a launcher
that is killed, even with SIGKILL, leaves no process behind.
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Any, Dict, List, Optional

import torch
import torch.distributed as dist

from ..checkpoint import json_tuples
from ..distributed import broadcast_json, setup_distributed
from ..errors import ConfigError
from ..results import ResultsStore, run_lock
from .flops import count_flops
from .grid import BENCH_COLUMNS, TABLE, BenchPoint, SweepConfig, expand_grid, row_key
from .measure import measure
from .point import bench_record, error_text, measure_args, measure_point, model_overrides
from .process import die_with_parent, worker_env
from .summary import summary
from .throughput import matmul_peak_flops

__all__ = ["torchrun_argv", "launch_ddp_sweep", "run_ddp_sweep"]


def torchrun_argv(nproc: int, argv: List[str], module: str = "vidbench") -> List[str]:
    """The command that runs `python -m <module> <argv>` on `nproc` local processes."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", module, *argv]


def launch_ddp_sweep(cfg: SweepConfig, out: str, resume: bool, progress: bool) -> List[Dict[str, Any]]:
    """`cfg.nproc` > 1 outside torchrun: run this module under torchrun with the config as JSON
    (what `vidbench bench --nproc N` and a suite's `nproc = N` do), then return the rows of this
    grid that the results directory holds."""
    import json
    import subprocess

    existing = ResultsStore(out).read(TABLE)
    if not existing.empty and not resume:  # said here, in one line, rather than by every process
        raise FileExistsError(f"{ResultsStore(out).path(TABLE)} already has {len(existing)} rows: pass resume=True "
                              "(--resume) to continue it, or choose another output directory")
    job = json.dumps({"sweep": dataclasses.asdict(cfg), "out": str(out), "resume": resume, "progress": progress})
    # torchrun gets SIGTERM when this process ends, however it ends (it then stops its workers,
    # which also die with it): a killed launcher leaves no process behind
    code = subprocess.call(torchrun_argv(cfg.nproc, [job], module="vidbench.bench.ddp"), env=worker_env(),
                           preexec_fn=die_with_parent if sys.platform.startswith("linux") else None)
    if code != 0:
        raise RuntimeError(f"the {cfg.nproc}-process bench (torchrun) exited with code {code}; see its output above")
    keys = {dataclasses.replace(p, nproc=n).key() for p in expand_grid(cfg) if p.mode == "train"
            for n in (1, cfg.nproc)}
    df = ResultsStore(out).read(TABLE)
    return [r for r in df.to_dict("records") if row_key(r) in keys]


def main() -> int:
    """torchrun's entry (`launch_ddp_sweep`): argv[1] is the JSON job."""
    import json
    import signal

    die_with_parent(signal.SIGKILL)  # torchrun gone (killed with its launcher): nothing left to report to
    job = json.loads(sys.argv[1])
    sweep = job["sweep"]
    sweep["model_kwargs"] = json_tuples(sweep.get("model_kwargs") or {})
    rows = run_ddp_sweep(SweepConfig(**sweep), job["out"], job["resume"], job["progress"])
    dist.destroy_process_group()
    if rows:
        print(summary(rows), flush=True)
    return 0


def run_ddp_sweep(cfg: SweepConfig, out: str, resume: bool, progress: bool) -> List[Dict[str, Any]]:
    """The train rows of `cfg` on torchrun's processes (see the module docstring); rank 0's list
    of the rows written (other ranks return [])."""
    env = setup_distributed(cfg.device)
    world, rank = env.world_size, env.rank
    if cfg.nproc not in (None, 1, world):
        raise ConfigError(f"--nproc {cfg.nproc} but torchrun started {world} processes")
    if "train" not in cfg.mode:
        raise ConfigError("multi-process bench measures training steps: give --mode train")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if "max" in cfg.batch_size:
        raise ConfigError("--batch-size max is a one-process search: give the batch per process with --nproc")
    cfg = dataclasses.replace(cfg, mode=["train"], nproc=world)
    grid = expand_grid(cfg)
    written: List[Dict[str, Any]] = []
    lock = run_lock(out, "vidbench bench (torchrun)") if rank == 0 else None
    store = ResultsStore(out) if rank == 0 else None
    try:
        if lock is not None:
            lock.__enter__()
        done: List[str] = []
        if rank == 0:
            existing = store.read(TABLE)
            if not existing.empty and not resume:
                raise FileExistsError(f"{store.path(TABLE)} already has {len(existing)} rows: pass --resume to "
                                      "continue it, or choose another output directory")
            done = ["|".join(row_key(r)) for r in existing.to_dict("records")] if not existing.empty else []
            env_extra = {"sweep": dataclasses.asdict(cfg), "world_size": world, "dist_backend": dist.get_backend(),
                         "matmul_peak_tflops": {}}
            store.write_environment(str(env.device), env_extra)
        done_set = set(broadcast_json(done))
        peaks: Dict[str, Optional[float]] = {}
        for point in grid:
            single = dataclasses.replace(point, nproc=1)
            if broadcast_json("|".join(single.key()) not in done_set):
                if rank == 0:  # the one-process row, in a fresh worker as any bench row
                    result = measure_point(single, dataclasses.replace(cfg, nproc=None), {}, peaks, env_extra,
                                           store, measure)
                    written.append(_append(store, single, result, cfg))
                dist.barrier()
            multi = dataclasses.replace(point, nproc=world)
            if "|".join(multi.key()) in done_set:
                continue
            if multi.precision not in peaks:  # the one-process row may have measured it already
                try:
                    peaks[multi.precision] = matmul_peak_flops(env.device, multi.precision)
                except Exception:  # the row still gets throughput; MFU stays blank
                    peaks[multi.precision] = None
            result = _measure_ddp(multi, cfg, env.device, peaks[multi.precision])
            if rank == 0:
                base = _one_process_row(store, single)
                if result.get("clips_per_s") and base:
                    result["scaling_efficiency"] = result["clips_per_s"] / (world * base)
                written.append(_append(store, multi, result, cfg))
        dist.barrier()  # no process leaves while another still receives (gloo aborts on a closed peer)
        return written
    finally:
        if lock is not None:
            lock.__exit__(None, None, None)


def _measure_ddp(point: BenchPoint, cfg: SweepConfig, device: torch.device, peak: Optional[float]) -> Dict[str, Any]:
    """Every process measures the point with DistributedDataParallel (`measure(distributed=True)`)."""
    try:
        report = count_flops(point.arch, **model_overrides(point, cfg))
        args = {**measure_args(point, cfg, report.gmacs, peak), "device": device}
        result = measure(args.pop("model"), distributed=True, **args)
        ok = torch.tensor([1.0])
    except Exception as exc:  # every rank learns that one failed, then the row says why
        result, ok = {"status": "error", "error": error_text(exc)}, torch.tensor([0.0])
    dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    if ok.item() == 0.0 and result.get("status") != "error":
        result = {"status": "error", "error": "another process failed this configuration"}
    if ok.item() == 1.0:
        result = {"status": "ok", "params": report.params, "gmacs": report.gmacs, **result}
    return result


def _one_process_row(store: ResultsStore, single: BenchPoint) -> Optional[float]:
    df = store.read(TABLE)
    for r in df.to_dict("records")[::-1]:
        if row_key(r) == single.key() and r.get("status") == "ok":
            return float(r["clips_per_s"])
    return None


def _append(store: ResultsStore, point: BenchPoint, result: Dict[str, Any], cfg: SweepConfig) -> Dict[str, Any]:
    record = bench_record(point, {k: v for k, v in result.items() if k in BENCH_COLUMNS},
                          point.nproc == 1 and cfg.isolated)
    store.append(TABLE, {c: record[c] for c in BENCH_COLUMNS})
    return record


if __name__ == "__main__":
    sys.exit(main())
