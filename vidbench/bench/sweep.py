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
import gc
import json
import os
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import torch
from tqdm import tqdm

from ..errors import ConfigError
from ..models import create_model, list_models, model_entry
from ..options import Alias, accepts_aliases, option
from ..results import ResultsStore, key_str, run_lock
from .flops import FlopReport, count_flops
from .measure import measure
from .throughput import MODES, PRECISIONS, matmul_peak_flops

__all__ = ["SweepConfig", "BENCH_COLUMNS", "KEY_COLUMNS", "error_text", "expand_grid", "measure_args", "resolve_models",
           "run_sweep", "row_key", "uncounted_text"]

TABLE = "bench"
# a row's key: the model and the SweepConfig fields of the same names (the grid axes, device, compile, weights)
KEY_COLUMNS = ("model", "frames", "img_size", "batch_size", "precision", "device", "mode", "compile", "weights")
BENCH_COLUMNS = (
    "model", "params", "gmacs", "frames", "img_size", "batch_size", "precision", "device", "mode", "compile",
    "clips_per_s", "step_ms_median", "step_ms_iqr", "peak_mem_mb", "peak_mem_reserved_mb", "mem_method",
    "achieved_tflops", "matmul_peak_tflops", "mfu_pct", "flop_factor", "uncounted_ops", "threads", "warmup",
    "iters", "isolated", "retry_of", "status", "error", "timestamp", "weights",
)
RESULT_PREFIX = "VIDBENCH_RESULT "


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
    batch_size: List[int] = option(default_factory=lambda: [1], aliases=[Alias("batch_sizes", flag=False)],
                                   help="clips per step")
    precision: List[str] = option(default_factory=lambda: ["fp32"], choices=tuple(PRECISIONS),
                                  aliases=[Alias("precisions", flag=False)], help="autocast dtype: fp32 (none), bf16, fp16")
    mode: List[str] = option(default_factory=lambda: list(MODES), choices=MODES, aliases=[Alias("modes", flag=False)],
                             help="infer (forward under inference_mode), train (forward, backward, AdamW step)")
    device: str = option("cpu", help="cpu, cuda, cuda:1, ...")
    compile: bool = option(False, help="torch.compile the model (compiled during the warm-up)")
    warmup: int = option(3, help="untimed steps before timing")
    iters: int = option(10, positive=True, help="timed steps")
    isolate: Optional[bool] = option(None, help="each configuration in a fresh process [on CPU yes, where it makes "
                                                "the peak RSS its own; on CUDA no]")
    retry_oom: int = option(0, help="after an out-of-memory, retry at half the batch, up to this many times")
    timeout_s: Optional[float] = option(None, aliases=[Alias("timeout", key=False)],
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
        for name in ("models", "frames", "img_size", "batch_size", "precision", "mode"):
            if isinstance(getattr(self, name), (str, int)) or getattr(self, name) is None:
                raise ConfigError(f"{name} is a list (each value one axis of the grid), got {getattr(self, name)!r}")
        for p in self.precision:
            if p not in PRECISIONS:
                raise ValueError(f"unknown precision {p!r}; expected one of {', '.join(PRECISIONS)}")
        for m in self.mode:
            if m not in MODES:
                raise ValueError(f"unknown mode {m!r}; expected one of {', '.join(MODES)}")
        _positive_or_default("frames", self.frames)
        _positive_or_default("img_size", self.img_size)
        _positive_or_default("batch_size", self.batch_size)
        if self.iters < 1 or self.warmup < 0:
            raise ValueError(f"need iters >= 1 and warmup >= 0, got iters={self.iters} warmup={self.warmup}")
        if self.retry_oom < 0:
            raise ConfigError(f"retry_oom must be >= 0, got {self.retry_oom}")

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
    return tuple(key_str(row.get(k)) for k in KEY_COLUMNS)


def _default_size(name: str, model_kwargs: Dict[str, Any]) -> Tuple[int, ...]:
    with torch.device("meta"):
        return tuple(create_model(name, **model_kwargs).input_size)


def expand_grid(cfg: SweepConfig) -> List[Dict[str, Any]]:
    """One dict of key columns per configuration; defaults resolved to the model's numbers,
    and the frames axis collapsed for image models (frames is blank for them)."""
    rows: List[Dict[str, Any]] = []
    seen: Set[Tuple[str, ...]] = set()
    for name in resolve_models(cfg.models):
        size = _default_size(name, cfg.model_kwargs)
        video = len(size) == 4
        for frames in cfg.frames:
            for img in cfg.img_size:
                for batch in cfg.batch_size:
                    for precision in cfg.precision:
                        for mode in cfg.mode:
                            row = dict(model=name, frames=(size[1] if frames is None else frames) if video else None,
                                       img_size=size[-1] if img is None else img, batch_size=int(batch), precision=precision,
                                       device=cfg.device, mode=mode, compile=bool(cfg.compile), weights=cfg.weights)
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
    return dict(model=row["model"], mode=row["mode"], precision=row["precision"], device=cfg.device,
                batch_size=row["batch_size"], warmup=cfg.warmup, iters=cfg.iters, compile=cfg.compile, gmacs=gmacs,
                peak_flops=peak, **_overrides(row, cfg, with_weights=True))


def _measure_in_process(row: Dict[str, Any], cfg: SweepConfig, gmacs: float, peak: Optional[float],
                        measure_fn: MeasureFn) -> Dict[str, Any]:
    try:
        args = measure_args(row, cfg, gmacs, peak)
        return {"status": "ok", **measure_fn(args.pop("model"), **args)}
    except Exception as exc:  # one configuration's failure is a row, not the end of the sweep
        return {"status": "oom" if _is_oom(exc) else "error", "error": error_text(exc)}
    finally:
        gc.collect()
        if cfg.device.startswith("cuda"):
            torch.cuda.empty_cache()


def _worker_env() -> Dict[str, str]:
    """The worker imports the same vidbench as this process, wherever it is run from."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _measure_isolated(row: Dict[str, Any], cfg: SweepConfig, gmacs: float, peak: Optional[float]) -> Dict[str, Any]:
    job = {"measure": measure_args(row, cfg, gmacs, peak), "threads": cfg.threads or torch.get_num_threads()}
    try:
        proc = subprocess.run([sys.executable, "-m", "vidbench.bench.worker"], input=json.dumps(job), text=True,
                              capture_output=True, timeout=cfg.timeout_s, env=_worker_env())
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
        measure_fn: the in-process measurement (tests inject failures through it).
    """
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
        record = {**{c: None for c in BENCH_COLUMNS}, **result, **row, "retry_of": retry_of,
                  "isolated": cfg.isolated, "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        store.append(TABLE, {c: record[c] for c in BENCH_COLUMNS})
        done.add(row_key(row))
        written.append(record)
        bar.update(1)
        if record["status"] == "oom" and retries_left > 0 and row["batch_size"] > 1:
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
            flops[fkey] = count_flops(row["model"], **_overrides(row, cfg))
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
    if cfg.isolated:
        result = _measure_isolated(row, cfg, report.gmacs, peak)
    else:
        result = _measure_in_process(row, cfg, report.gmacs, peak, measure_fn)
    result = {k: v for k, v in result.items() if k in BENCH_COLUMNS and k not in KEY_COLUMNS}
    return {**base, **result}
