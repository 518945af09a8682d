"""The bench grid: `SweepConfig` (a `vidbench bench` job), the bench.csv columns, and the grid of
configurations it expands to, one `BenchPoint` per row (`expand_grid`; `row_key` keys a row).

Measuring one configuration is `vidbench.bench.point`; running the grid, `vidbench.bench.sweep`.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

import torch

from ..errors import ConfigError, UnknownNameError
from ..layers import ATTN_BACKENDS
from ..models import create_model, list_models, model_entry, model_label
from ..options import (
    ATTN_BACKEND,
    BATCH_SIZE,
    DEVICE,
    FRAMES,
    IMG_SIZE,
    NNODES,
    NODE_RANK,
    PRECISION,
    RDZV_ENDPOINT,
    SCALING,
    STRATEGY,
    THREADS,
    WEIGHTS,
    WEIGHTS_FORMAT,
    Alias,
    accepts_aliases,
    check_fields,
    device_check,
    option,
    positive_int,
)
from ..results import MACHINE_COLUMNS, key_str
from .memory import parse_size
from .process import available_cpus
from .throughput import COMPILE_MODES, MODES

__all__ = ["BENCH_COLUMNS", "COUNT", "KEY_COLUMNS", "MAX", "SWEEP_MODES", "TABLE", "BenchPoint", "SweepConfig", "expand_grid", "resolve_models",
           "row_key"]

TABLE = "bench"
COUNT = "count"  # a mode that only counts: params and GMACs on the meta device, one row per model and input
SWEEP_MODES = (*MODES, COUNT)
# a row's key: the model and the SweepConfig fields of the same names (the grid axes, device, compile, weights,
# the process count (the world size, over every machine), the strategy and the machines); a `--batch-size max`
# row keys on "max", not on the batch it found
KEY_COLUMNS = ("model", "frames", "img_size", "batch_size", "precision", "device", "mode", "compile", "weights",
               "attn_backend", "grad_checkpointing", "nproc", "strategy", "nnodes")
BENCH_COLUMNS = (
    "model", "params", "gmacs", "frames", "img_size", "batch_size", "precision", "device", "mode", "compile",
    "attn_backend", "grad_checkpointing", "nproc",
    "clips_per_s", "step_ms_median", "step_ms_iqr", "iqr_pct", "peak_mem_mb", "peak_mem_reserved_mb", "mem_method",
    "achieved_tflops", "matmul_peak_tflops", "mfu_pct", "flop_factor", "uncounted_ops", "attn_kernels",
    "compile_s", "forward_ms", "backward_ms", "optimizer_ms", "forward_peak_mem_mb", "backward_peak_mem_mb",
    "optimizer_peak_mem_mb", "batch_search", "mem_limit_mb", "process_peak_mb", "batch_tries",
    "dist_backend", "clips_per_s_per_process", "scaling_efficiency",
    "threads", "warmup", "iters", "isolated", "retry_of", "status", "error", "timestamp", "weights", "arch",
    # several processes (vidbench.bench.ddp, .fsdp): the strategy, machines, weak / strong scaling and the global
    # batch, what each process holds (MiB), and what the run sees of the interconnect
    "strategy", "nnodes", "scaling", "global_batch", "param_mb", "grad_mb", "optimizer_state_mb", "activation_mb",
    "hosts", "net_env", "nccl_version",
    # where it ran (vidbench.results.machine_columns; GPU fields blank off CUDA; the date is `timestamp`)
    *MACHINE_COLUMNS,
)
MAX = "max"  # --batch-size max: the largest batch that fits

def _batch_item(text: str) -> Any:
    """A --batch-size item: a positive count or "max"."""
    if str(text).strip().lower() == MAX:
        return MAX
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
    frames: List[Optional[int]] = FRAMES.sweep(help="clip frames [each model's]", aliases=())
    img_size: List[Optional[int]] = IMG_SIZE.sweep(help="input side [each model's]",
                                                   aliases=[Alias("img_sizes", flag=False)])
    batch_size: List[Any] = BATCH_SIZE.sweep(aliases=[Alias("batch_sizes", flag=False)], parse=_batch_item,
                                             help="clips per step; 'max': the largest batch that fits (on CPU under "
                                                  "--mem-limit), found by doubling then bisection")
    precision: List[str] = PRECISION.sweep(aliases=[Alias("precisions", flag=False)],
                                           help="autocast dtype: fp32 (none), bf16, fp16")
    mode: List[str] = option(default_factory=lambda: list(MODES), choices=SWEEP_MODES,
                             aliases=[Alias("modes", flag=False)],
                             help="infer (forward under inference_mode), train (forward, backward, AdamW step), count "
                                  "(params and GMACs only, counted on the meta device: nothing runs, no memory)")
    attn_backend: List[str] = ATTN_BACKEND.sweep()
    grad_checkpointing: List[str] = option(default_factory=lambda: ["off"], choices=("off", "on"),
                                           help="activation checkpointing per block in train rows: off, on, or off,on "
                                                "for both side by side")
    device: str = DEVICE("cpu", check=device_check(meta=True), help="cpu, cuda, cuda:N, mps, or auto (cuda where "
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
    nproc: Optional[int] = option(None, help="train rows on N processes per machine (launches torchrun; gloo on "
                                             "CPU, nccl on CUDA), beside the 1-process row; at most the CPU cores "
                                             "(GPUs) this process may use")
    strategy: List[str] = STRATEGY.sweep(help="with --nproc: ddp (DistributedDataParallel, the model replicated), "
                                              "fsdp (FSDP2: parameters, gradients and optimizer state sharded per "
                                              "block), or ddp,fsdp for both side by side")
    scaling: str = SCALING()
    nnodes: int = NNODES()
    node_rank: int = NODE_RANK()
    rdzv_endpoint: Optional[str] = RDZV_ENDPOINT()
    oversubscribe: bool = option(False, help="let --nproc exceed the CPU cores this process may use (the "
                                             "processes then share cores, and the scaling figures say little)")
    warmup: int = option(3, ge=0, help="untimed steps before timing")
    iters: int = option(10, positive=True, help="timed steps")
    isolate: Optional[bool] = option(None, help="each configuration in a fresh process [on CPU yes, where it makes "
                                                "the peak RSS its own; on CUDA no]")
    retry_oom: int = option(0, ge=0, help="after an out-of-memory, retry at half the batch, up to this many times")
    timeout_s: Optional[float] = option(None, gt=0, aliases=[Alias("timeout", key=False)],
                                        help="seconds per configuration, isolated runs only [none]")
    threads: Optional[int] = THREADS()
    # published weights to measure (`vidbench.weights`): the models are built with the checkpoint's
    # config (model_kwargs, from `inspect_weights`) and loaded with its weights
    weights: Optional[str] = WEIGHTS(help="measure the model a checkpoint holds, at its own config, with its weights "
                                          "loaded (any supported format)")
    weights_format: Optional[str] = WEIGHTS_FORMAT()
    model_kwargs: Dict[str, Any] = option(default_factory=dict, flag="model-arg", metavar="KEY=VALUE",
                                          help="model config override, repeatable (depth=4); with --weights, on top "
                                               "of the checkpoint's config")

    def __post_init__(self) -> None:
        if isinstance(self.compile, bool) or self.compile == "off":  # older configs: compile = true / false
            self.compile = "default" if self.compile is True else None
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        for name in ("models", "frames", "img_size", "batch_size", "precision", "mode", "attn_backend",
                     "grad_checkpointing", "strategy"):
            if isinstance(getattr(self, name), (str, int)) or getattr(self, name) is None:
                raise ConfigError(f"{name} is a list (each value one axis of the grid), got {getattr(self, name)!r}")
        if self.compile is not None and self.compile not in COMPILE_MODES:
            raise ConfigError(f"compile must be one of {', '.join(COMPILE_MODES)} (or off), got {self.compile!r}")
        check_fields(self)  # types, bounds, choices, device; the checks between fields follow
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
        self._check_world()

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

    def _check_world(self) -> None:
        """The options of several processes and machines, between themselves."""
        if self.node_rank >= self.nnodes:
            raise ConfigError(f"node_rank {self.node_rank}: the machines are ranked 0 to nnodes - 1 = {self.nnodes - 1}")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ConfigError(f"nnodes {self.nnodes}: give --rdzv-endpoint HOST:PORT, where every machine meets")
        world = self.world_size
        if "fsdp" in self.strategy:
            from .fsdp import fsdp_missing

            if world < 2:
                raise ConfigError("strategy fsdp shards the model over processes: give --nproc N (N >= 2)")
            why = fsdp_missing()
            if why:
                raise ConfigError(f"strategy fsdp: {why}")
        if self.scaling == "strong":
            if MAX in self.batch_size:
                raise ConfigError("--batch-size max finds the batch per process: it is weak scaling, not strong")
            bad = [b for b in self.batch_size if int(b) % world]
            if bad:
                raise ConfigError(f"strong scaling splits the global batch over the {world} processes: batch size(s) "
                                  f"{bad} do not divide by {world}")

    @property
    def world_size(self) -> int:
        """Processes over every machine: --nproc (per machine) x --nnodes."""
        return (self.nproc or 1) * self.nnodes

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
                raise UnknownNameError(f"model pattern {pattern!r} matches no registered model (vidbench list shows them)")
        else:
            model_entry(pattern)  # KeyError naming close matches
            found = [pattern]
        names += [n for n in found if n not in names]
    return names


def row_key(row: Mapping[str, Any]) -> Tuple[str, ...]:
    """A bench.csv row's key (its KEY_COLUMNS as text): what resume and the retries compare. A row
    written before the strategy and machine columns is a DDP row (several processes) on one machine."""
    values = {**row, "batch_size": MAX} if row.get("batch_search") == MAX else dict(row)
    if key_str(values.get("nnodes")) == "":
        values["nnodes"] = 1
    if key_str(values.get("strategy")) == "" and int(float(key_str(values.get("nproc")) or 1)) > 1:
        values["strategy"] = "ddp"
    return tuple(key_str(values.get(k)) for k in KEY_COLUMNS)


def _default_size(name: str, model_kwargs: Dict[str, Any]) -> Tuple[Tuple[int, ...], str]:
    """The model's default input size and what its rows call it (`model_label`: the registry name only
    where `model_kwargs` (--model-arg, a checkpoint's config) keep that model's architecture)."""
    with torch.device("meta"):
        net = create_model(name, **model_kwargs)
    return tuple(net.input_size), model_label(name, net.config)


@dataclass(frozen=True)
class BenchPoint:
    """One configuration of the grid: the key columns of its bench.csv row, typed. `model` is what
    the row calls the model (`model_label`), `arch` the registry name it is built from;
    `batch_search` is "max" for a `--batch-size max` row (its batch is found by the search)."""

    model: str
    arch: str
    frames: Optional[int]  # None for image models
    img_size: int
    batch_size: Optional[int]
    precision: str
    mode: str
    batch_search: Optional[str] = None
    device: str = "cpu"
    compile: str = "off"
    weights: Optional[str] = None
    attn_backend: str = "auto"
    grad_checkpointing: bool = False
    nproc: int = 1  # the world size
    strategy: Optional[str] = None  # ddp / fsdp for several processes
    nnodes: int = 1

    def columns(self) -> Dict[str, Any]:
        """Its bench.csv columns and values."""
        return dataclasses.asdict(self)

    def key(self) -> Tuple[str, ...]:
        return row_key(self.columns())


def expand_grid(cfg: SweepConfig) -> List[BenchPoint]:
    """One point per configuration; defaults resolved to the model's numbers, and the frames
    axis collapsed for image models (frames is blank for them)."""
    rows: List[BenchPoint] = []
    seen: Set[Tuple[str, ...]] = set()
    for name in resolve_models(cfg.models):
        size, label = _default_size(name, cfg.model_kwargs)
        video = len(size) == 4
        for frames, img, batch, precision, mode, backend, ckpt in itertools.product(
                cfg.frames, cfg.img_size, cfg.batch_size, cfg.precision, cfg.mode, cfg.attn_backend,
                cfg.grad_checkpointing):
            if mode == COUNT:  # per-clip figures: one row per model and input, whatever the batch
                batch = 1
            point = BenchPoint(
                model=label, arch=name, frames=(size[1] if frames is None else frames) if video else None,
                img_size=size[-1] if img is None else img, batch_size=None if batch == MAX else int(batch),
                batch_search=MAX if batch == MAX else None, precision=precision, device=cfg.device, mode=mode,
                compile=cfg.compile or "off", weights=cfg.weights, attn_backend=backend,
                grad_checkpointing=ckpt == "on" and mode == "train", nproc=1)
            if point.key() not in seen:
                seen.add(point.key())
                rows.append(point)
    return rows
