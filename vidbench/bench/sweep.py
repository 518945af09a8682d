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
import datetime as _dt
import functools
import gc
import itertools
import json
import os
import signal
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import torch
from tqdm import tqdm

from ..errors import ConfigError
from ..layers import ATTN_BACKENDS
from ..models import create_model, list_models, model_entry, model_label
from ..options import Alias, accepts_aliases, check_fields, device_check, option
from ..results import ResultsStore, key_str, run_lock
from .flops import FlopReport, count_flops
from .measure import measure
from .memory import parse_size
from .throughput import COMPILE_MODES, MODES, PRECISIONS, matmul_peak_flops

__all__ = ["SweepConfig", "BENCH_COLUMNS", "KEY_COLUMNS", "error_text", "expand_grid", "measure_args", "resolve_models",
           "run_sweep", "row_arch", "row_key", "uncounted_text"]

TABLE = "bench"
# a row's key: the model and the SweepConfig fields of the same names (the grid axes, device, compile, weights,
# the process count); a `--batch-size max` row keys on "max", not on the batch it found
KEY_COLUMNS = ("model", "frames", "img_size", "batch_size", "precision", "device", "mode", "compile", "weights",
               "attn_backend", "grad_checkpointing", "nproc")
BENCH_COLUMNS = (
    "model", "params", "gmacs", "frames", "img_size", "batch_size", "precision", "device", "mode", "compile",
    "attn_backend", "grad_checkpointing", "nproc",
    "clips_per_s", "step_ms_median", "step_ms_iqr", "iqr_pct", "peak_mem_mb", "peak_mem_reserved_mb", "mem_method",
    "achieved_tflops", "matmul_peak_tflops", "mfu_pct", "flop_factor", "uncounted_ops", "attn_kernels",
    "compile_s", "forward_ms", "backward_ms", "optimizer_ms", "forward_peak_mem_mb", "backward_peak_mem_mb",
    "optimizer_peak_mem_mb", "batch_search", "mem_limit_mb", "process_peak_mb", "batch_tries",
    "dist_backend", "clips_per_s_per_process", "scaling_efficiency",
    "threads", "warmup", "iters", "isolated", "retry_of", "status", "error", "timestamp", "weights", "arch",
)
RESULT_PREFIX = "VIDBENCH_RESULT "
_LINUX = sys.platform.startswith("linux")
NOISY_IQR_PCT = 10.0  # a row whose step-time IQR exceeds this % of the median is flagged in reports
MAX = "max"  # --batch-size max: the largest batch that fits


def _batch_item(text: str) -> Any:
    """A --batch-size item: a positive count or "max"."""
    if str(text).strip().lower() == MAX:
        return MAX
    from ..cli._args import positive_int

    return positive_int(text)


def _positive_or_default(name: str, values: Sequence[Optional[int]]) -> None:
    bad = [v for v in values if v is not None and int(v) < 1]
    if bad:
        raise ConfigError(f"{name} must be >= 1 (None: the model's own), got {bad}")


@accepts_aliases
@dataclass
class SweepConfig:
    """A `vidbench bench` job: every combination of the list fields (frames x img_size x
    batch_size x precision x mode, per model) is one row of bench.csv, named by the results
    columns of the same names. `vidbench bench`'s flags and a suite's [bench] section are these
    fields; `None` in frames / img_size is the model's own."""

    models: List[str] = option(default_factory=list, help="registry names or shell patterns, e.g. "
                                                          "'vivit_*_tiny,vit_tiny' (with --weights: the checkpoint's)")
    frames: List[Optional[int]] = option(default_factory=lambda: [None], help="clip frames [each model's]")
    img_size: List[Optional[int]] = option(default_factory=lambda: [None], aliases=[Alias("img_sizes", flag=False)],
                                           help="input side [each model's]")
    batch_size: List[Any] = option(default_factory=lambda: [1], aliases=[Alias("batch_sizes", flag=False)],
                                   parse=_batch_item, help="clips per step; 'max': the largest batch that fits "
                                                           "(on CPU under --mem-limit), found by doubling then bisection")
    precision: List[str] = option(default_factory=lambda: ["fp32"], choices=tuple(PRECISIONS),
                                  aliases=[Alias("precisions", flag=False)], help="autocast dtype: fp32 (none), bf16, fp16")
    mode: List[str] = option(default_factory=lambda: list(MODES), choices=MODES, aliases=[Alias("modes", flag=False)],
                             help="infer (forward under inference_mode), train (forward, backward, AdamW step)")
    attn_backend: List[str] = option(default_factory=lambda: ["auto"], choices=ATTN_BACKENDS,
                                     help="attention kernel backend: auto (SDPA's choice), flash, efficient, cudnn, "
                                          "math (SDPA restricted to one kernel), reference (explicit softmax), flex "
                                          "(FlexAttention)")
    grad_checkpointing: List[str] = option(default_factory=lambda: ["off"], choices=("off", "on"),
                                           help="activation checkpointing per block in train rows: off, on, or off,on "
                                                "for both side by side")
    device: str = option("cpu", check=device_check(meta=True), help="cpu, cuda, cuda:N, mps, or auto (cuda where "
                                                                    "available, else cpu)")
    compile: Optional[str] = option(None, choices=COMPILE_MODES, const="default", metavar="MODE",
                                    help="torch.compile with this mode (default, reduce-overhead, max-autotune; bare "
                                         "--compile: default); compile time recorded as compile_s")
    detail: bool = option(False, help="also time the forward, backward and optimizer phases, with the peak memory "
                                      "of each")
    mem_limit: Optional[str] = option(None, help="with --batch-size max on CPU: cap on each try's peak resident "
                                                 "memory (e.g. 4GB), enforced by killing the try; on CUDA the limit "
                                                 "is the device's memory unless given")
    max_batch_cap: int = option(4096, positive=True, help="the largest batch --batch-size max tries")
    nproc: Optional[int] = option(None, help="train rows on N processes with DistributedDataParallel (launches "
                                             "torchrun; gloo on CPU, nccl on CUDA), beside the 1-process row; at "
                                             "most the CPU cores (GPUs) this process may use")
    oversubscribe: bool = option(False, help="let --nproc exceed the CPU cores this process may use (the "
                                             "processes then share cores, and the scaling figures say little)")
    warmup: int = option(3, ge=0, help="untimed steps before timing")
    iters: int = option(10, positive=True, help="timed steps")
    isolate: Optional[bool] = option(None, help="each configuration in a fresh process [on CPU yes, where it makes "
                                                "the peak RSS its own; on CUDA no]")
    retry_oom: int = option(0, ge=0, help="after an out-of-memory, retry at half the batch, up to this many times")
    timeout_s: Optional[float] = option(None, gt=0, aliases=[Alias("timeout", key=False)],
                                        help="seconds per configuration, isolated runs only [none]")
    threads: Optional[int] = option(None, help="torch intra-op threads [torch's]")
    # published weights to measure (`vidbench.weights`): the models are built with the checkpoint's
    # config (model_kwargs, from `inspect_weights`) and loaded with its weights
    weights: Optional[str] = option(None, help="measure the model a checkpoint holds, at its own config, with its "
                                               "weights loaded (any supported format)")
    weights_format: Optional[str] = option(None, help="force a weights format instead of detecting it")
    model_kwargs: Dict[str, Any] = option(default_factory=dict, flag="model-arg", metavar="KEY=VALUE",
                                          help="model config override, repeatable (depth=4); with --weights, on top "
                                               "of the checkpoint's config")

    def __post_init__(self) -> None:
        if isinstance(self.compile, bool) or self.compile == "off":  # older configs: compile = true / false
            self.compile = "default" if self.compile is True else None
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        for name in ("models", "frames", "img_size", "batch_size", "precision", "mode", "attn_backend",
                     "grad_checkpointing"):
            if isinstance(getattr(self, name), (str, int)) or getattr(self, name) is None:
                raise ConfigError(f"{name} is a list (each value one axis of the grid), got {getattr(self, name)!r}")
        if self.compile is not None and self.compile not in COMPILE_MODES:
            raise ConfigError(f"compile must be one of {', '.join(COMPILE_MODES)} (or off), got {self.compile!r}")
        check_fields(self)  # types, bounds, choices, device; the checks between fields follow
        for p in self.precision:
            if p not in PRECISIONS:
                raise ValueError(f"unknown precision {p!r}; expected one of {', '.join(PRECISIONS)}")
        for m in self.mode:
            if m not in MODES:
                raise ValueError(f"unknown mode {m!r}; expected one of {', '.join(MODES)}")
        _positive_or_default("frames", self.frames)
        _positive_or_default("img_size", self.img_size)
        self.batch_size = [MAX if str(b).lower() == MAX else b for b in self.batch_size]
        _positive_or_default("batch_size", [b for b in self.batch_size if b != MAX])
        for name, allowed in (("attn_backend", ATTN_BACKENDS), ("grad_checkpointing", ("off", "on"))):
            bad = [v for v in getattr(self, name) if v not in allowed]
            if bad:
                raise ConfigError(f"{name}: unknown {bad}; expected some of {', '.join(allowed)}")
        if self.mem_limit is not None:
            parse_size(self.mem_limit)  # a clear error for a bad size
        if MAX in self.batch_size and self.device.startswith("cpu") and self.mem_limit is None:
            raise ConfigError("--batch-size max on CPU needs --mem-limit SIZE (e.g. 4GB): the largest batch that fits "
                              "is only defined under a memory cap")
        if MAX in self.batch_size and self.device.startswith("cpu") and self.isolate is False:
            raise ConfigError("--batch-size max on CPU runs each try in a fresh process (its peak resident memory is "
                              "what --mem-limit caps): drop --no-isolate")
        if (self.nproc or 1) > 1:
            self._check_nproc()

    def _check_nproc(self) -> None:
        """More processes than the cores this process may use (GPUs on CUDA) only when asked."""
        if self.device.startswith("cuda"):
            have = torch.cuda.device_count()
            if self.nproc > have:
                raise ConfigError(f"nproc {self.nproc}: one GPU per process, and this machine has {have}")
        elif self.device != "meta" and not self.oversubscribe:
            have = available_cpus()
            if self.nproc > have:
                raise ConfigError(f"nproc {self.nproc} is more processes than the {have} CPU core(s) this process may "
                                  "use; give --oversubscribe (oversubscribe = true) to run them anyway")

    @property
    def isolated(self) -> bool:
        return self.device.startswith("cpu") if self.isolate is None else bool(self.isolate)


def resolve_models(patterns: Iterable[str]) -> List[str]:
    """Registry names from names and shell patterns, in the order given, without repeats."""
    names: List[str] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            found = list_models(pattern)
            if not found:
                raise KeyError(f"model pattern {pattern!r} matches no registered model (vidbench list shows them)")
        else:
            model_entry(pattern)  # KeyError naming close matches
            found = [pattern]
        names += [n for n in found if n not in names]
    return names


def row_key(row: Dict[str, Any]) -> Tuple[str, ...]:
    values = {**row, "batch_size": MAX} if row.get("batch_search") == MAX else row
    return tuple(key_str(values.get(k)) for k in KEY_COLUMNS)


def _default_size(name: str, model_kwargs: Dict[str, Any]) -> Tuple[Tuple[int, ...], str]:
    """The model's default input size and what its rows call it (`model_label`: the registry name only
    where `model_kwargs` (--model-arg, a checkpoint's config) keep that model's architecture)."""
    with torch.device("meta"):
        net = create_model(name, **model_kwargs)
    return tuple(net.input_size), model_label(name, net.config)


def row_arch(row: Dict[str, Any]) -> str:
    """The registry name a row's model is built from (`model` is its label, `arch` the name it came from)."""
    return row.get("arch") or row["model"]


def expand_grid(cfg: SweepConfig) -> List[Dict[str, Any]]:
    """One dict of key columns per configuration; defaults resolved to the model's numbers,
    and the frames axis collapsed for image models (frames is blank for them)."""
    rows: List[Dict[str, Any]] = []
    seen: Set[Tuple[str, ...]] = set()
    for name in resolve_models(cfg.models):
        size, label = _default_size(name, cfg.model_kwargs)
        video = len(size) == 4
        for frames, img, batch, precision, mode, backend, ckpt in itertools.product(
                cfg.frames, cfg.img_size, cfg.batch_size, cfg.precision, cfg.mode, cfg.attn_backend,
                cfg.grad_checkpointing):
            row = dict(model=label, arch=name, frames=(size[1] if frames is None else frames) if video else None,
                       img_size=size[-1] if img is None else img, batch_size=None if batch == MAX else int(batch),
                       batch_search=MAX if batch == MAX else None, precision=precision, device=cfg.device, mode=mode,
                       compile=cfg.compile or "off", weights=cfg.weights, attn_backend=backend,
                       grad_checkpointing=ckpt == "on" and mode == "train", nproc=1)
            if row_key(row) not in seen:
                seen.add(row_key(row))
                rows.append(row)
    return rows


def _overrides(row: Dict[str, Any], cfg: SweepConfig, with_weights: bool = False) -> Dict[str, Any]:
    """create_model options of a row (the checkpoint's config first, the row's frames / size on top);
    `with_weights`: also the weights to load (for measuring; counting needs only the config)."""
    out = {**cfg.model_kwargs, "img_size": int(row["img_size"])}
    if row["frames"] is not None:
        out["num_frames"] = int(row["frames"])
    if with_weights and cfg.weights:
        out.update(weights=cfg.weights, weights_format=cfg.weights_format)
    return out


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


def error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().replace("\n", " ")
    return text[:500]


def uncounted_text(report: FlopReport) -> str:
    return "; ".join(f"{op} x{n}" for op, n in report.uncounted_ops.items())


MeasureFn = Callable[..., Dict[str, Any]]


def measure_args(row: Dict[str, Any], cfg: SweepConfig, gmacs: float, peak: Optional[float]) -> Dict[str, Any]:
    """`measure`'s keyword arguments for one grid row: the one place they are written (the
    in-process call passes them, the isolated worker gets them as its JSON job)."""
    return dict(model=row_arch(row), mode=row["mode"], precision=row["precision"], device=cfg.device,
                batch_size=row["batch_size"], warmup=cfg.warmup, iters=cfg.iters, compile=cfg.compile, gmacs=gmacs,
                peak_flops=peak, attn_backend=row.get("attn_backend", "auto"),
                grad_checkpointing=bool(row.get("grad_checkpointing", False)),
                detail=cfg.detail, **_overrides(row, cfg, with_weights=True))


def _measure_in_process(row: Dict[str, Any], cfg: SweepConfig, gmacs: float, peak: Optional[float],
                        measure_fn: MeasureFn, mem_limit: Optional[int] = None) -> Dict[str, Any]:
    """In this process; `mem_limit` (bytes, CUDA only: the caching allocator's cap for this process)."""
    device = torch.device(cfg.device)
    try:
        if mem_limit is not None and device.type == "cuda":
            total = torch.cuda.get_device_properties(device).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, mem_limit / total), device)
        args = measure_args(row, cfg, gmacs, peak)
        return {"status": "ok", **measure_fn(args.pop("model"), **args)}
    except Exception as exc:  # one configuration's failure is a row, not the end of the sweep
        return {"status": "oom" if _is_oom(exc) else "error", "error": error_text(exc)}
    finally:
        gc.collect()
        if device.type == "cuda":
            if mem_limit is not None:
                torch.cuda.set_per_process_memory_fraction(1.0, device)
            torch.cuda.empty_cache()


def available_cpus() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send this process `sig` when its parent ends (Linux's
    PR_SET_PDEATHSIG, kept across exec; elsewhere nothing): a launcher that is killed then takes
    the processes it started with it. Used as ``preexec_fn`` and by torchrun's workers."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _worker_env() -> Dict[str, str]:
    """The worker imports the same vidbench as this process, wherever it is run from."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _measure_isolated(row: Dict[str, Any], cfg: SweepConfig, gmacs: float, peak: Optional[float],
                      mem_limit: Optional[int] = None) -> Dict[str, Any]:
    """In a fresh worker process; `mem_limit` (bytes): the worker's peak resident memory (CPU) or
    allocator cap (CUDA), enforced there (an "oom" row beyond it)."""
    job = {"measure": measure_args(row, cfg, gmacs, peak), "threads": cfg.threads or torch.get_num_threads(),
           "mem_limit_bytes": mem_limit}
    try:
        proc = subprocess.run([sys.executable, "-m", "vidbench.bench.worker"], input=json.dumps(job), text=True,
                              capture_output=True, timeout=cfg.timeout_s, env=_worker_env(),
                              preexec_fn=functools.partial(die_with_parent, signal.SIGKILL) if _LINUX else None)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "error": f"worker exceeded {cfg.timeout_s} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
    return {"status": "crashed", "error": f"worker exited with code {proc.returncode}: {tail}"[:500]}


def run_sweep(cfg: SweepConfig, out: os.PathLike, resume: bool = False, progress: bool = True,
              measure_fn: MeasureFn = measure) -> List[Dict[str, Any]]:
    """Run the grid, appending each row to `<out>/bench.csv` as it finishes; return this run's rows.

    Args:
        resume: skip configurations already in the CSV (any status). Without it an existing,
            non-empty bench.csv is an error rather than a silent mix of runs.
    With `cfg.nproc` > 1 (or inside torchrun) the train rows are measured on several processes
    (`vidbench.bench.ddp`).
        measure_fn: the in-process measurement (tests inject failures through it).
    """
    from .ddp import launch_ddp_sweep, launched_world, run_ddp_sweep

    if launched_world() > 1:  # this process is one of torchrun's
        return run_ddp_sweep(cfg, out, resume, progress)
    if (cfg.nproc or 1) > 1:
        return launch_ddp_sweep(cfg, out, resume, progress)
    with run_lock(out, "vidbench bench"):
        return _run_sweep(cfg, out, resume, progress, measure_fn)


def _run_sweep(cfg: SweepConfig, out: os.PathLike, resume: bool, progress: bool,
               measure_fn: MeasureFn) -> List[Dict[str, Any]]:
    store = ResultsStore(out)
    existing = store.read(TABLE)
    if not existing.empty and not resume:
        raise FileExistsError(f"{store.path(TABLE)} already has {len(existing)} rows: pass resume=True "
                              "(--resume) to continue it, or choose another output directory")
    done = {row_key(r) for r in existing.to_dict("records")} if not existing.empty else set()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    grid = expand_grid(cfg)
    queue = deque((row, cfg.retry_oom, None) for row in grid if row_key(row) not in done)
    peaks: Dict[str, Optional[float]] = {}
    env_extra = {"sweep": dataclasses.asdict(cfg), "isolated": cfg.isolated, "matmul_peak_tflops": {},
                 "skipped_as_done": len(grid) - len(queue)}
    env_path = Path(out) / "environment.json"
    if resume and env_path.exists():  # keep what the earlier run(s) recorded
        earlier = json.loads(env_path.read_text())
        env_extra["earlier_runs"] = earlier.pop("earlier_runs", []) + [earlier]
    store.write_environment(cfg.device, env_extra)
    flops: Dict[Tuple[str, ...], Any] = {}
    written: List[Dict[str, Any]] = []
    bar = tqdm(total=len(queue), disable=not progress, desc="vidbench bench", unit="cfg", file=sys.stderr)
    while queue:
        row, retries_left, retry_of = queue.popleft()
        bar.set_postfix_str(f"{row['model']} b{row['batch_size']} {row['precision']} {row['mode']}")
        result = _run_one(row, cfg, flops, peaks, env_extra, store, measure_fn)
        record = bench_record(row, result, cfg.isolated, retry_of)
        store.append(TABLE, {c: record[c] for c in BENCH_COLUMNS})
        done.add(row_key(row))
        written.append(record)
        bar.update(1)
        if record["status"] == "oom" and retries_left > 0 and (row["batch_size"] or 0) > 1:
            smaller = {**row, "batch_size": row["batch_size"] // 2}
            if row_key(smaller) not in done and all(row_key(smaller) != row_key(q[0]) for q in queue):
                queue.appendleft((smaller, retries_left - 1, row["batch_size"]))
                bar.total += 1
    bar.close()
    return written


def _run_one(row: Dict[str, Any], cfg: SweepConfig, flops: Dict[Tuple[str, ...], Any],
             peaks: Dict[str, Optional[float]], env_extra: Dict[str, Any], store: ResultsStore,
             measure_fn: MeasureFn) -> Dict[str, Any]:
    fkey = (row["model"], key_str(row["frames"]), key_str(row["img_size"]))
    if fkey not in flops:
        try:
            flops[fkey] = count_flops(row_arch(row), **_overrides(row, cfg))
        except Exception as exc:
            flops[fkey] = exc
    report = flops[fkey]
    if isinstance(report, Exception):
        return {"status": "error", "error": "building/counting the model failed: " + error_text(report)}
    if row["precision"] not in peaks:
        try:
            peaks[row["precision"]] = matmul_peak_flops(torch.device(cfg.device), row["precision"])
        except Exception:  # the rows still get throughput; MFU stays blank
            peaks[row["precision"]] = None
        env_extra["matmul_peak_tflops"][row["precision"]] = (
            None if peaks[row["precision"]] is None else peaks[row["precision"]] / 1e12)
        store.write_environment(cfg.device, env_extra)
    base = {"params": report.params, "gmacs": report.gmacs, "uncounted_ops": uncounted_text(report)}
    peak = peaks[row["precision"]]
    if row.get("batch_search") == MAX:
        result = _largest_batch(row, cfg, report.gmacs, peak, measure_fn)
    else:
        result = _measure_row(row, cfg, report.gmacs, peak, measure_fn)
    found = result.get("batch_size")
    result = {k: v for k, v in result.items() if k in BENCH_COLUMNS and k not in KEY_COLUMNS}
    return {**base, **result, "found_batch_size": found}


def bench_record(row: Dict[str, Any], result: Dict[str, Any], isolated: bool,
                 retry_of: Optional[int] = None) -> Dict[str, Any]:
    """A bench.csv row: every column, the measurement's values under the grid row's keys (a
    `--batch-size max` row gets the batch it found), stamped now."""
    record = {**{c: None for c in BENCH_COLUMNS}, **result, **row, "retry_of": retry_of, "isolated": isolated,
              "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if row.get("batch_search") == MAX:  # the batch it found
        record["batch_size"] = result.get("found_batch_size")
    return record


def _measure_row(row: Dict[str, Any], cfg: SweepConfig, gmacs: float, peak: Optional[float], measure_fn: MeasureFn,
                 mem_limit: Optional[int] = None) -> Dict[str, Any]:
    if cfg.isolated:
        return _measure_isolated(row, cfg, gmacs, peak, mem_limit)
    return _measure_in_process(row, cfg, gmacs, peak, measure_fn, mem_limit)


def _largest_batch(row: Dict[str, Any], cfg: SweepConfig, gmacs: float, peak: Optional[float],
                   measure_fn: MeasureFn) -> Dict[str, Any]:
    """`--batch-size max`: the largest batch whose step fits the memory limit, and the row measured
    there. Batches 1, 2, 4, ... are tried until one does not fit (or max_batch_cap), then the gap is
    bisected; each try is one warm-up and one timed step, in a fresh process on CPU (the limit is
    that process's peak resident memory) or on CUDA after emptying the cache (the limit is the
    device's memory, or mem_limit). Only "oom" means "does not fit": any other failure ends the
    search as the row's error."""
    limit = parse_size(cfg.mem_limit) if cfg.mem_limit else None
    quick = dataclasses.replace(cfg, warmup=1, iters=1, detail=False)
    tries: List[str] = []

    def fits(batch: int) -> Optional[Dict[str, Any]]:
        """None if it fits; else the failed try's result."""
        result = _measure_row({**row, "batch_size": batch}, quick, gmacs, peak, measure_fn, limit)
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
        result = _measure_row({**row, "batch_size": lo}, cfg, gmacs, peak, measure_fn, limit)
        tries.append(f"{lo} {result['status']} (measured)")
        if result["status"] != "oom" or lo == 1:
            return {**result, **info, "batch_size": lo, "batch_tries": ", ".join(tries)}
        lo -= 1
