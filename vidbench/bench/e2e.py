"""The end-to-end step (`vidbench bench --data TREE`, a suite's [e2e] section): the training or
inference step fed by the real loader, beside the model alone and the loader alone, in the same
configuration, one row per configuration in ``<out>/e2e.csv``.

Each configuration of the grid (models x frames x img_size x batch_size x precision x mode, as
`vidbench bench` expands it) is measured three ways, one after the other, in this process:

- model only: `measure` on random clips of the batch's shape (the bench.csv measurement);
- loader only: the DataLoader iterated with nothing else running: decode, sample, transform,
  collate (`vidbench.data.build_dataset` and `make_loader`, what `vidbench train` and `eval` read
  with);
- end to end: each step takes the next batch from that loader, copies it to the device and
  runs the model's step (forward; for train also loss, backward and AdamW step). The time blocked in
  ``next(loader)`` is measured in every timed step; ``wait_share`` is its sum over the timed
  steps divided by their wall time (0: the model never waited for data; 1: it did nothing else).

Clips per second are clips delivered over the wall time of the timed steps (not the median step:
a loader delivers in bursts). CPU: ``cores_busy`` is the CPU seconds of this process (all its
threads) and of the loader's worker processes over the e2e wall time; ``loader_cpu_s_per_clip`` the
same over the loader-only pass per clip; ``cores_per_device = loader_cpu_s_per_clip x
model_clips_per_s``, the cores a loader needs to keep this device's model fed (the "cores per GPU"
figure, measured rather than estimated).

Split: train for train rows, the evaluation split (test, else val) for infer rows, unless `split`
says. Bad videos: the loader's own handling (``bad_items="skip"``: a bad file is set aside by
`collate_clips`, the batch comes out shorter, the step goes on); the row counts them
(``bad_items``) and the clips it delivered. Workers persist across passes over a small split
(training starts them once per epoch; their start-up is in the warm-up here, amortised there).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import gc
import json
import multiprocessing
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from einops import rearrange
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from ..data import DataSpec, build_dataset, clip_settings, default_backend, make_loader
from ..distributed import ShardSampler
from ..errors import ConfigError, UserError, message
from ..layers import attn_backend as attn_backend_ctx
from ..options import DATA, DECODER, SPLIT, WORKERS, Alias, accepts_aliases
from ..results import MACHINE_COLUMNS, ResultsStore, key_str, machine_columns, run_lock
from ..weights import create_model
from .cpu_time import child_pids, children_cpu_s, new_children, own_cpu_s
from .grid import COUNT, MAX, BenchPoint, SweepConfig, expand_grid
from .measure import measure
from .memory import synchronize
from .point import error_text, measure_args, model_overrides
from .summary import cell
from .throughput import make_step, matmul_peak_flops

__all__ = ["E2E_TABLE", "E2E_COLUMNS", "E2E_KEY_COLUMNS", "E2EConfig", "open_tree", "pick_split", "run_e2e",
           "e2e_summary"]

E2E_TABLE = "e2e"
GROUP = "end-to-end step (--data)"
E2E_KEY_COLUMNS = ("model", "frames", "img_size", "batch_size", "precision", "device", "mode", "compile", "weights",
                   "attn_backend", "grad_checkpointing", "data", "split", "num_workers", "backend")
E2E_COLUMNS = (
    "model", "params", "gmacs", "frames", "img_size", "batch_size", "precision", "device", "mode", "compile",
    "attn_backend", "grad_checkpointing", "data", "split", "num_workers", "backend",
    # clips per second: the step fed by the loader, the model on random clips, the loader alone
    "clips_per_s", "model_clips_per_s", "loader_clips_per_s",
    # the share of the e2e wall time spent blocked in next(loader); the median step and wait
    "wait_share", "step_ms_median", "wait_ms_median", "model_step_ms_median", "model_mfu_pct",
    # CPU: cores busy in the e2e steps (this process + workers; the workers alone), in the loader-only
    # pass, the loader's CPU seconds per clip, and the cores it needs to feed the model-only rate
    "cores_busy", "worker_cores_busy", "loader_cores_busy", "loader_cpu_s_per_clip", "cores_per_device",
    "clips", "loader_clips", "bad_items", "decoder_fallbacks",
    "threads", "warmup", "iters", "status", "error", "timestamp", "weights", "arch", *MACHINE_COLUMNS,
)


@accepts_aliases
@dataclass
class E2EConfig(SweepConfig):
    """A `vidbench bench --data TREE` job: `SweepConfig`'s grid (train / infer rows, one process)
    with the loader's options. The suite's [e2e] section takes the same keys (``data`` defaults
    to its [dataset] path there)."""

    data: Optional[str] = DATA(group=GROUP, help="measure the end-to-end step: clips of this dataset directory "
                                                 "(vidbench make-dataset's, or any vidbench train reads) feed the "
                                                 "model, beside the model-only and loader-only rates; rows go to "
                                                 "<out>/e2e.csv")
    split: Optional[str] = SPLIT(group=GROUP, help="split the loader reads [train for train rows; test, else val, "
                                                   "for infer rows]")
    num_workers: int = WORKERS(2, group=GROUP, help="DataLoader worker processes feeding the step (0: decoding in "
                                                    "this process, between the steps)")
    backend: Optional[str] = DECODER(group=GROUP, aliases=[Alias("video_backend", key=False, deprecated=False)])

    def __post_init__(self) -> None:
        super().__post_init__()
        refused = [(COUNT in self.mode, "mode count runs no model: give train and / or infer"),
                   (MAX in self.batch_size, "--batch-size max searches the model alone: give batch sizes"),
                   (self.world_size > 1, "one process (--nproc / --nnodes are the model-only bench's)"),
                   (self.detail, "--detail times the model alone: drop it"),
                   (self.isolate is True, "it runs in this process (the loader's workers are its children): drop "
                                          "--isolate"),
                   (self.timeout_s is not None, "--timeout-s applies to isolated runs: drop it"),
                   (self.retry_oom > 0, "--retry-oom is the model-only bench's: drop it")]
        for bad, why in refused:
            if bad:
                raise ConfigError(f"the end-to-end step (--data): {why}")


def open_tree(path: Optional[str]) -> DataSpec:
    """The dataset at `path`, or a one-line ConfigError naming it."""
    if not path:
        raise ConfigError("the end-to-end step needs data: a dataset directory (--data TREE)")
    try:
        return DataSpec.load(path)
    except UserError:
        raise
    except (OSError, ValueError) as err:
        raise ConfigError(f"data {path}: {message(err)}") from None


def pick_split(spec: DataSpec, split: Optional[str], mode: str) -> str:
    """The split a `mode` row reads: `split` where given, else train (train) or test / val (infer);
    one that the dataset lacks or that holds no video is a ConfigError naming it."""
    if split is None:
        if mode == "train":
            split = "train"
        else:
            split = next((s for s in ("test", "val") if s in spec.splits), "")
    if split not in spec.splits:
        raise ConfigError(f"data {spec.root}: no split {split or 'test or val'} for the {mode} rows (has "
                          f"{', '.join(sorted(spec.splits))}; --split chooses one)")
    records, _ = spec.records(split)
    if not records:
        raise ConfigError(f"data {spec.root}: split {split} holds no usable video")
    return split


def _key(row: Dict[str, Any]) -> Tuple[str, ...]:
    return tuple(key_str(row.get(c)) for c in E2E_KEY_COLUMNS)


def run_e2e(cfg: E2EConfig, out: Any, resume: bool = False, progress: bool = True) -> List[Dict[str, Any]]:
    """Measure every configuration of `cfg` (see the module docstring), appending each row to
    ``<out>/e2e.csv`` as it finishes; return this run's rows. A configuration that fails is a row
    with its status and error; a missing or unreadable dataset is a ConfigError before anything
    is written."""
    spec = open_tree(cfg.data)
    splits = {mode: pick_split(spec, cfg.split, mode) for mode in cfg.mode}
    backend = cfg.backend or default_backend()
    grid = expand_grid(cfg)
    with run_lock(out, "vidbench bench --data"):
        store = ResultsStore(out)
        done = {_key(r) for r in store.rows_to_resume(E2E_TABLE, resume)}
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        env = Path(out) / "environment.json"
        extra = json.loads(env.read_text()) if env.exists() else {}  # a bench run's and earlier e2e runs', kept
        runs = extra.get("e2e_runs", []) + [dataclasses.asdict(cfg)]
        store.write_environment(cfg.device, {**extra, "e2e_runs": runs})
        peaks: Dict[str, float] = {}
        written: List[Dict[str, Any]] = []
        todo = [(p, _columns(p, cfg, splits[p.mode], backend)) for p in grid]
        todo = [(p, c) for p, c in todo if _key(c) not in done]
        for point, columns in tqdm(todo, disable=not progress, desc="vidbench bench --data", unit="cfg",
                                   file=sys.stderr):
            try:
                result = {"status": "ok", **measure_e2e(point, cfg, spec, columns["split"], peaks)}
            except Exception as exc:  # one configuration's failure is a row, not the end of the run
                result = {"status": "error", "error": error_text(exc)}
            record = {**{c: None for c in E2E_COLUMNS}, **machine_columns(cfg.device), **result, **columns,
                      "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
            store.append(E2E_TABLE, {c: record[c] for c in E2E_COLUMNS})
            written.append(record)
    return written


def _columns(point: BenchPoint, cfg: E2EConfig, split: str, backend: str) -> Dict[str, Any]:
    """A row's configuration columns."""
    return {"model": point.model, "arch": point.arch, "frames": point.frames, "img_size": point.img_size,
            "batch_size": point.batch_size, "precision": point.precision, "device": cfg.device, "mode": point.mode,
            "compile": point.compile, "weights": cfg.weights, "attn_backend": point.attn_backend,
            "grad_checkpointing": point.grad_checkpointing, "data": str(cfg.data), "split": split,
            "num_workers": cfg.num_workers, "backend": backend, "warmup": cfg.warmup, "iters": cfg.iters,
            "threads": torch.get_num_threads()}


class _Feed:
    """The loader of one configuration, cycled over passes: batches, its worker pids, and what
    it set aside."""

    def __init__(self, spec: DataSpec, split: str, point: BenchPoint, cfg: E2EConfig, device: torch.device):
        train = point.mode == "train"
        sampler, size = clip_settings(spec, point.frames, size=point.img_size)
        self.dataset, _ = build_dataset(spec, split, train, sampler=sampler, size=size, backend=cfg.backend)
        # the samplers vidbench train (shuffled) and eval (in order) read with, on one process
        self.sampler = DistributedSampler(self.dataset, 1, 0, shuffle=True, seed=0) if train \
            else ShardSampler(len(self.dataset), 0, 1)
        before = child_pids()
        self.loader = make_loader(self.dataset, point.batch_size, cfg.num_workers, self.sampler,
                                  pin_memory=device.type == "cuda", persistent_workers=True)
        self.bad = self.fallbacks = 0
        self._batches = self._cycle()
        self.first = next(self._batches)  # the workers start here
        self.pids = new_children(before, cfg.num_workers)

    def _cycle(self) -> Iterator[Any]:
        epoch = 0
        while True:
            # persistent workers keep their copy of the dataset: later passes repeat the first one's random
            # clips (the same work); the sampler's order does change (it runs in this process)
            self.dataset.set_epoch(epoch)
            if hasattr(self.sampler, "set_epoch"):
                self.sampler.set_epoch(epoch)
            for batch in self.loader:
                self.bad += len(batch.bad)
                self.fallbacks += len(batch.fallbacks)
                yield batch
            epoch += 1

    def next(self) -> Any:
        if self.first is not None:
            batch, self.first = self.first, None
            return batch
        return next(self._batches)

    def cpu_s(self) -> Tuple[float, Optional[float]]:
        """(this process's CPU seconds, the workers') so far."""
        return own_cpu_s(), children_cpu_s(self.pids)

    def close(self) -> None:
        """Stop the workers (the persistent ones end with the loader's iterator) and wait for them."""
        self._batches.close()
        del self._batches, self.loader
        gc.collect()
        for child in multiprocessing.active_children():
            if child.pid in self.pids:
                child.join(30)


def _clips(batch: Any, device: torch.device) -> torch.Tensor:
    clips = batch.clips.to(device, non_blocking=True)
    if clips.ndim == 6:  # test items: (B, V, C, T, H, W), one view per clip here
        clips = rearrange(clips, "b v c t h w -> (b v) c t h w")
    return clips


def _rate(clips: int, wall: float) -> Optional[float]:
    return clips / wall if wall > 0 and clips > 0 else None


def measure_e2e(point: BenchPoint, cfg: E2EConfig, spec: DataSpec, split: str,
                peaks: Dict[str, float]) -> Dict[str, Any]:
    """The three measurements of one configuration (module docstring); the row's measured columns."""
    device = torch.device(cfg.device)
    if point.frames is None:
        raise ConfigError(f"{point.model} is an image model: the loader yields clips (B, C, T, H, W)")
    if point.precision not in peaks:
        peaks[point.precision] = matmul_peak_flops(device, point.precision)
    # 1. the model alone, on random clips (bench.csv's measurement, without the memory meter; its MFU against
    # the matmul peak, measured once per precision)
    args = measure_args(point, cfg, None, peaks[point.precision])
    model_only = measure(args.pop("model"), memory=False, **args)
    row: Dict[str, Any] = {"params": model_only["params"], "gmacs": model_only["gmacs"],
                           "model_clips_per_s": model_only["clips_per_s"],
                           "model_step_ms_median": model_only["step_ms_median"], "model_mfu_pct": model_only["mfu_pct"]}
    # 2. the loader alone: warm-up batches until every worker has delivered, then `iters` batches
    feed = _Feed(spec, split, point, cfg, device)
    try:
        for _ in range(max(cfg.warmup, cfg.num_workers, 1) - 1):  # the first batch is in already
            feed.next()
        own0, kids0 = feed.cpu_s()
        start, clips = time.perf_counter(), 0
        for _ in range(cfg.iters):
            clips += len(feed.next())
        wall = time.perf_counter() - start
        own, kids = feed.cpu_s()
    finally:
        feed.close()
    cpu = None if kids is None or kids0 is None else own - own0 + kids - kids0
    row.update(loader_clips=clips, loader_clips_per_s=_rate(clips, wall),
               loader_cores_busy=None if cpu is None else cpu / wall,
               loader_cpu_s_per_clip=None if cpu is None or not clips else cpu / clips)
    if row["loader_cpu_s_per_clip"] is not None:
        row["cores_per_device"] = row["loader_cpu_s_per_clip"] * row["model_clips_per_s"]
    # 3. end to end: a fresh loader (its own workers) feeding the model's step
    row.update(_end_to_end(point, cfg, spec, split, device))
    return row


def _end_to_end(point: BenchPoint, cfg: E2EConfig, spec: DataSpec, split: str, device: torch.device) -> Dict[str, Any]:
    model = create_model(point.arch, **model_overrides(point, cfg, with_weights=True)).to(device)
    if point.grad_checkpointing:
        model.set_grad_checkpointing(True)
    runner = torch.compile(model, mode=cfg.compile) if cfg.compile else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4) if point.mode == "train" else None
    x = torch.empty(0, device=device)
    # the bench's own step (`make_step`), built once (one optimizer, one fp16 scaler) on `x`, which each
    # step points at the batch it was given (Tensor.set_: no copy)
    step = make_step(runner, x, point.mode, point.precision, optimizer)
    feed = _Feed(spec, split, point, cfg, device)
    waits: List[float] = []
    times: List[float] = []
    clips = 0
    try:
        with attn_backend_ctx(point.attn_backend):
            for i in range(max(cfg.warmup, 1) + cfg.iters):  # the first step (worker start-up) is warm-up
                if i == max(cfg.warmup, 1):
                    own0, kids0 = feed.cpu_s()
                synchronize(device)
                tic = time.perf_counter()
                batch = feed.next()
                got = time.perf_counter()
                if len(batch):
                    x.set_(_clips(batch, device))
                    step()
                    synchronize(device)
                if i >= max(cfg.warmup, 1):
                    waits.append(got - tic)
                    times.append(time.perf_counter() - tic)
                    clips += len(batch)
        own, kids = feed.cpu_s()
    finally:
        feed.close()
    wall = sum(times)
    if clips == 0:
        raise RuntimeError(f"no clip of split {split} could be decoded in {len(times)} timed steps "
                           f"({feed.bad} bad item(s))")
    workers = None if kids is None or kids0 is None else kids - kids0
    return {"clips": clips, "clips_per_s": clips / wall, "wait_share": sum(waits) / wall,
            "step_ms_median": 1e3 * statistics.median(times), "wait_ms_median": 1e3 * statistics.median(waits),
            "cores_busy": None if workers is None else (own - own0 + workers) / wall,
            "worker_cores_busy": None if workers is None else workers / wall,
            "bad_items": feed.bad, "decoder_fallbacks": feed.fallbacks}


def e2e_summary(rows: List[Dict[str, Any]]) -> str:
    """The rows as a short text table."""
    num = cell  # None and NaN as "-", a whole float under an integer format as an int
    head = (f"{'model':<22} {'mode':<5} {'batch':>5} {'e2e':>8} {'model':>8} {'loader':>8} {'wait':>5} "
            f"{'cores':>5} {'cores/dev':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"{r['model']:<22} {r['mode']:<5} {num(r['batch_size'], 'd'):>5} {r['status']}: {r['error']}")
            continue
        lines.append(f"{r['model']:<22} {r['mode']:<5} {num(r['batch_size'], 'd'):>5} {num(r['clips_per_s'], '.3g'):>8} "
                     f"{num(r['model_clips_per_s'], '.3g'):>8} {num(r['loader_clips_per_s'], '.3g'):>8} "
                     f"{num(r['wait_share'], '.0%'):>5} {num(r['cores_busy'], '.2f'):>5} "
                     f"{num(r['cores_per_device'], '.2f'):>9}")
    return "\n".join(lines)

