"""Multi-process training throughput: `vidbench bench --nproc N` (or the bench command under
``torchrun --nproc_per_node N``) measures training steps on N processes per machine, with
DistributedDataParallel (``--strategy ddp``) or FSDP2 (``--strategy fsdp``, `vidbench.bench.fsdp`),
on one machine or several (``--nnodes M --node-rank R --rdzv-endpoint HOST:PORT``: every
machine runs the same command with its own rank; torchrun's c10d rendezvous at the endpoint
joins them; `torchrun_argv`).

Each train row of the grid is measured twice in the same command: on one process first (the
row with nproc 1, measured by rank 0 in a fresh worker process while the others wait, and only
where the results directory lacks it), then on all N x M processes (the row's nproc is the world
size), once per strategy, with gradients all-reduced (DDP) or reduce-scattered (FSDP) over gloo
on CPU, NCCL on CUDA, one GPU per process. ``--scaling weak`` (the default): each process holds
the row's batch (the global batch is world x batch); ``--scaling strong``: the row's batch is the
global batch, split over the processes (the one-process row runs it whole). A step ends when the
slowest process ends it, so the step time is, for each step, the largest over processes; total
clips/s = global batch / median step, and the scaling efficiency is total clips/s / (world x
the one-process clips/s): under strong scaling, the speed-up over one process divided by the
processes. Rank 0 writes the rows, with what the run sees of the interconnect (the hosts of the
processes, the network variables set, NCCL's version: `vidbench.distributed.interconnect`).
Processes on one CPU share its cores: torchrun gives each one thread unless --threads says
otherwise, and the one-process row uses the same threads per process, so the efficiency compares
like with like.

``--batch-size max`` finds the largest batch per process (weak scaling): every process takes
each try (`point.largest_batch`), and a try fits when it fits on every process: on CPU when
each process's peak resident memory stays under --mem-limit (checked after the try: the
processes cannot be killed mid-collective as the one-process search's worker is), on CUDA when
no process runs out of the device's memory (or --mem-limit's cap). On CUDA, a try that runs out
of memory on some processes only can leave the others waiting in a collective until the process
group's timeout.

`SweepConfig` refuses more processes than the CPU cores this process may use unless
``oversubscribe`` (``--oversubscribe``) says so, and more than the GPUs on CUDA. The launcher's
torchrun, and torchrun's workers, die with their parent (Linux's PR_SET_PDEATHSIG): a launcher
that is killed, even with SIGKILL, leaves no process behind.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, Dict, List, Optional, Set, Tuple

import torch
import torch.distributed as dist

from ..checkpoint import json_tuples
from ..distributed import broadcast_json, exit_process, interconnect, launched_nodes, setup_distributed
from ..errors import ConfigError
from ..results import ResultsStore, run_lock
from .flops import count_flops
from .grid import BENCH_COLUMNS, MAX, TABLE, BenchPoint, SweepConfig, expand_grid, row_key
from .measure import measure
from .memory import MIB, peak_rss_bytes, release_free_heap, reset_peak_rss
from .point import (
    bench_record,
    error_text,
    is_oom,
    largest_batch,
    measure_args,
    measure_point,
    memory_cap,
    model_overrides,
)
from .process import die_with_parent, worker_env
from .summary import summary
from .throughput import matmul_peak_flops

__all__ = ["torchrun_argv", "launch_ddp_sweep", "run_ddp_sweep", "scaling_points"]


def torchrun_argv(nproc: int, argv: List[str], module: str = "vidbench", nnodes: int = 1, node_rank: int = 0,
                  rdzv_endpoint: Optional[str] = None) -> List[str]:
    """The command that runs `python -m <module> <argv>` on `nproc` processes of this machine:
    alone (torchrun --standalone), or as machine `node_rank` of `nnodes` meeting at the c10d
    rendezvous `rdzv_endpoint` (its id: SLURM_JOB_ID where set, so that two jobs never meet)."""
    if nnodes > 1 or rdzv_endpoint:
        launch = ["--nnodes", str(nnodes), "--node-rank", str(node_rank), "--rdzv-backend", "c10d",
                  "--rdzv-endpoint", str(rdzv_endpoint), "--rdzv-id", os.environ.get("SLURM_JOB_ID", "vidbench")]
    else:
        launch = ["--standalone"]
    return [sys.executable, "-m", "torch.distributed.run", *launch, f"--nproc_per_node={nproc}", "-m", module, *argv]


def scaling_points(cfg: SweepConfig) -> List[Tuple[BenchPoint, List[BenchPoint]]]:
    """Each train configuration of the grid: its one-process point (the global batch under strong
    scaling) and its points on `cfg.world_size` processes, one per strategy (the batch per
    process)."""
    world = cfg.world_size
    out = []
    for point in expand_grid(dataclasses.replace(cfg, mode=["train"])):
        per = point.batch_size
        if cfg.scaling == "strong" and per is not None:
            per //= world
        out.append((point, [dataclasses.replace(point, nproc=world, strategy=s, nnodes=cfg.nnodes, batch_size=per)
                            for s in cfg.strategy]))
    return out


def launch_ddp_sweep(cfg: SweepConfig, out: str, resume: bool, progress: bool) -> List[Dict[str, Any]]:
    """`cfg.world_size` > 1 outside torchrun: run this module under torchrun with the config as
    JSON (what `vidbench bench --nproc N` and a suite's `nproc = N` do; with --nnodes, this
    machine's part), then return the rows of this grid that the results directory holds (on a
    machine other than rank 0's, those that reach it: a shared file system's)."""
    import json
    import subprocess

    keys = {p.key() for single, multis in scaling_points(cfg) for p in (single, *multis)}
    if cfg.node_rank == 0:  # said here, in one line, not by every process
        done = {row_key(r) for r in ResultsStore(out).rows_to_resume(TABLE, resume)}
        if cfg.nnodes == 1 and keys <= done:  # a resumed run with nothing left: no processes to start
            return _rows_of(out, keys)
    job = json.dumps({"sweep": dataclasses.asdict(cfg), "out": str(out), "resume": resume, "progress": progress})
    # torchrun gets SIGTERM when this process ends, however it ends (it then stops its workers,
    # which also die with it): a killed launcher leaves no process behind
    argv = torchrun_argv(cfg.nproc or 1, [job], module="vidbench.bench.ddp", nnodes=cfg.nnodes,
                         node_rank=cfg.node_rank, rdzv_endpoint=cfg.rdzv_endpoint)
    code = subprocess.call(argv, env=worker_env(), preexec_fn=die_with_parent if sys.platform.startswith("linux") else None)
    if code != 0:
        raise RuntimeError(f"the {cfg.world_size}-process bench (torchrun) exited with code {code}; see its output above")
    return _rows_of(out, keys)


def _rows_of(out: str, keys: Set[Tuple[str, ...]]) -> List[Dict[str, Any]]:
    """The rows of the results directory `out` whose keys are among `keys`."""
    df = ResultsStore(out).read(TABLE)
    return [r for r in df.to_dict("records") if row_key(r) in keys] if not df.empty else []


def main() -> int:
    """torchrun's entry (`launch_ddp_sweep`): argv[1] is the JSON job."""
    import json
    import signal

    die_with_parent(signal.SIGKILL)  # torchrun gone (killed with its launcher): nothing left to report to
    job = json.loads(sys.argv[1])
    sweep = job["sweep"]
    sweep["model_kwargs"] = json_tuples(sweep.get("model_kwargs") or {})
    rows = run_ddp_sweep(SweepConfig(**sweep), job["out"], job["resume"], job["progress"])
    if rows:
        print(summary(rows), flush=True)
    return 0


def _launched_config(cfg: SweepConfig, world: int) -> SweepConfig:
    """`cfg` as torchrun started it: its processes per machine and machines (a command under a
    torchrun of its own may leave them out; one that says otherwise is refused)."""
    local, nodes = int(os.environ.get("LOCAL_WORLD_SIZE", str(world))), launched_nodes()
    if cfg.nproc not in (None, 1, local):
        raise ConfigError(f"--nproc {cfg.nproc} but torchrun started {local} processes on this machine")
    if cfg.nnodes not in (1, nodes):
        raise ConfigError(f"--nnodes {cfg.nnodes} but torchrun's processes span {nodes} machine(s)")
    if "train" not in cfg.mode:
        raise ConfigError("multi-process bench measures training steps: give --mode train")
    endpoint = cfg.rdzv_endpoint
    if nodes > 1 and not endpoint:  # torchrun met without us: its store's address, for the record
        endpoint = f"{os.environ.get('MASTER_ADDR', 'localhost')}:{os.environ.get('MASTER_PORT', '29500')}"
    return dataclasses.replace(cfg, mode=["train"], nproc=local, nnodes=nodes, rdzv_endpoint=endpoint)


def run_ddp_sweep(cfg: SweepConfig, out: str, resume: bool, progress: bool) -> List[Dict[str, Any]]:
    """The train rows of `cfg` on torchrun's processes (see the module docstring); rank 0's list
    of the rows written (other ranks return [])."""
    env = setup_distributed(cfg.device)
    world, rank = env.world_size, env.rank
    cfg = _launched_config(cfg, world)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    pairs = scaling_points(cfg)
    net = interconnect()
    written: List[Dict[str, Any]] = []
    lock = run_lock(out, "vidbench bench (torchrun)") if rank == 0 else None
    store = ResultsStore(out) if rank == 0 else None
    try:
        if lock is not None:
            lock.__enter__()
        done: List[str] = []
        env_extra: Dict[str, Any] = {}
        if rank == 0:
            done = ["|".join(row_key(r)) for r in store.rows_to_resume(TABLE, resume)]
            env_extra = {"sweep": dataclasses.asdict(cfg), "world_size": world, "dist_backend": dist.get_backend(),
                         "nnodes": cfg.nnodes, **net, "matmul_peak_tflops": {}}
            store.write_environment(str(env.device), env_extra)
        done_set = set(broadcast_json(done))
        peaks: Dict[str, Optional[float]] = {}
        for single, multis in pairs:
            if broadcast_json("|".join(single.key()) not in done_set):
                if rank == 0:  # the one-process row, in a fresh worker as any bench row
                    result = measure_point(single, dataclasses.replace(cfg, nproc=None, nnodes=1, node_rank=0,
                                                                       rdzv_endpoint=None, strategy=["ddp"],
                                                                       scaling="weak"),
                                           {}, peaks, env_extra, store, measure)
                    written.append(_append(store, single, result, cfg))
                dist.barrier()
            for multi in multis:
                if "|".join(multi.key()) in done_set:
                    continue
                if multi.precision not in peaks:  # the one-process row may have measured it already
                    try:
                        peaks[multi.precision] = matmul_peak_flops(env.device, multi.precision)
                    except Exception:  # the row still gets throughput; MFU stays blank
                        peaks[multi.precision] = None
                result = _measure_multi(multi, cfg, env.device, peaks[multi.precision])
                if rank == 0:
                    base = _one_process_row(store, single)
                    if result.get("clips_per_s") and base:
                        result["scaling_efficiency"] = result["clips_per_s"] / (world * base)
                    written.append(_append(store, multi, {**result, "scaling": cfg.scaling, **net}, cfg))
        dist.barrier()  # no process leaves while another still receives (gloo aborts on a closed peer)
        return written
    finally:
        if lock is not None:
            lock.__exit__(None, None, None)


def _measure_multi(point: BenchPoint, cfg: SweepConfig, device: torch.device, peak: Optional[float]) -> Dict[str, Any]:
    """One multi-process point: measured at its batch, or (`--batch-size max`) at the largest batch
    per process that fits on every process."""
    try:
        report: Any = count_flops(point.arch, **model_overrides(point, cfg))
    except Exception as exc:
        report = exc
    if point.batch_search != MAX:
        return _measure_ddp(point, cfg, device, peak, report)

    def one_try(p: BenchPoint, c: SweepConfig, gmacs: float, pk: Optional[float], _fn: Any,
                limit: Optional[int]) -> Dict[str, Any]:
        return _measure_ddp(p, c, device, pk, report, limit)

    if isinstance(report, Exception):
        return _measure_ddp(point, cfg, device, peak, report)
    result = largest_batch(point, cfg, report.gmacs, peak, measure, run=one_try)
    return {**result, "found_batch_size": result.get("batch_size")}


_STATUS = {0: "error", 1: "oom", 2: "ok"}  # the worst over processes is the smallest


def _measure_ddp(point: BenchPoint, cfg: SweepConfig, device: torch.device, peak: Optional[float],
                 report: Any, limit: Optional[int] = None) -> Dict[str, Any]:
    """Every process measures the point with its strategy (`measure(distributed=True)`); the row's
    status is the worst over processes. `limit` (bytes, a `--batch-size max` try): each process's
    peak resident memory (CPU) or the allocator's cap (CUDA)."""
    cpu = device.type == "cpu"
    if limit is not None and cpu:
        release_free_heap()
        reset_peak_rss()
    try:
        if isinstance(report, Exception):
            raise RuntimeError("building/counting the model failed: " + error_text(report))
        with memory_cap(device, limit):
            args = {**measure_args(point, cfg, report.gmacs, peak), "device": device}
            result = measure(args.pop("model"), distributed=True, strategy=point.strategy, **args)
        result = {"status": "ok", "params": report.params, "gmacs": report.gmacs, **result}
        if limit is not None and cpu and peak_rss_bytes() > limit:
            result = {"status": "oom", "error": f"peak resident memory {peak_rss_bytes() / MIB:.0f} MiB exceeded the "
                                                f"limit of {limit / MIB:.0f} MiB"}
    except Exception as exc:  # every rank learns that one failed, then the row says why
        result = {"status": "oom" if is_oom(exc) else "error", "error": error_text(exc)}
    code = {v: k for k, v in _STATUS.items()}[result["status"]]
    worst = torch.tensor([float(code)])
    dist.all_reduce(worst, op=dist.ReduceOp.MIN)
    if int(worst.item()) < code:
        status = _STATUS[int(worst.item())]
        result = {"status": status, "error": "another process " + ("ran out of memory" if status == "oom" else
                                                                    "failed this configuration")}
    if limit is not None and cpu:
        result["process_peak_mb"] = peak_rss_bytes() / MIB
    return result


def _one_process_row(store: ResultsStore, single: BenchPoint) -> Optional[float]:
    df = store.read(TABLE)
    for r in df.to_dict("records")[::-1]:
        if row_key(r) == single.key() and r.get("status") == "ok":
            return float(r["clips_per_s"])
    return None


def _append(store: ResultsStore, point: BenchPoint, result: Dict[str, Any], cfg: SweepConfig) -> Dict[str, Any]:
    kept = {k: v for k, v in result.items() if k in BENCH_COLUMNS or k == "found_batch_size"}
    record = bench_record(point, kept, point.nproc == 1 and cfg.isolated)
    store.append(TABLE, {c: record[c] for c in BENCH_COLUMNS})
    return record


if __name__ == "__main__":
    exit_process(main())
