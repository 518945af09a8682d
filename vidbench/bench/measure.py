"""`measure`: one configuration's params, GMACs, step time, throughput, peak memory and model
FLOP utilisation, as a flat dict (a results row). The sweep runner and users call the same thing."""
from __future__ import annotations

import contextlib
import time
from collections import Counter
from typing import Any, Dict, Optional, Sequence, Union

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from ..distributed import slowest_steps
from ..layers import ATTN_BACKENDS
from ..layers import attn_backend as attn_backend_ctx
from ..options import autocast, check_precision
from ..weights import create_model
from .flops import count_flops
from .fsdp import saved_tensor_bytes, shard_model, state_sizes
from .memory import PeakMemory, current_rss_bytes, release_free_heap, synchronize, warm_runtime
from .throughput import (
    COMPILE_MODES,
    MODES,
    make_phases,
    make_step,
    matmul_peak_flops,
    phase_peaks,
    run_phases,
    time_steps,
)

__all__ = ["measure", "TRAIN_FLOP_FACTOR", "compile_mode", "attention_kernels"]

# a training step is counted as 3 forward passes (backward ~ 2x forward), the usual convention
TRAIN_FLOP_FACTOR = 3
WEIGHT_ARGS = ("weights", "weights_format")  # create_model options that load weights
PHASES = ("forward", "backward", "optimizer")
# the ops F.scaled_dot_product_attention dispatches to, by the backend names of `attn_backend`
_SDPA_OPS = {"_scaled_dot_product_flash_attention_for_cpu": "flash", "_scaled_dot_product_flash_attention": "flash",
             "_scaled_dot_product_efficient_attention": "efficient", "_scaled_dot_product_cudnn_attention": "cudnn",
             "_scaled_dot_product_attention_math": "math", "_scaled_dot_product_fused_attention_overrideable": "other",
             "flex_attention": "flex"}


def compile_mode(value: Union[bool, str, None]) -> Optional[str]:
    """torch.compile's mode from a config value: None / False / "off": no compile; True: "default"."""
    if value is None or value is False or value == "off":
        return None
    if value is True:
        return "default"
    if value not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {value!r}; expected off or one of {', '.join(COMPILE_MODES)}")
    return value


class _KernelCounter(TorchDispatchMode):
    """Counts the attention kernels the dispatcher runs (below F.scaled_dot_product_attention)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 (torch's signature)
        name = func.overloadpacket.__name__
        if name in _SDPA_OPS:
            self.counts[_SDPA_OPS[name]] += 1
        elif name == "_safe_softmax":  # SDPA's math kernel, composed of aten ops
            self.counts["math"] += 1
        elif name == "_softmax":
            self.counts["softmax"] += 1
        return func(*args, **(kwargs or {}))


def _capped_on_flex(model: nn.Module, compiled: bool, train: bool) -> bool:
    """Whether `model` holds soft-capped attention that the kernel runs on flex in the timed steps
    (`softcap_backend`'s rule, asked for those steps: compiled or not, a CPU backward or not)."""
    from ..layers.attention import softcap_backend

    cpu = next(model.parameters()).device.type == "cpu"
    runs_flex = softcap_backend(None, compiling=compiled, cpu_backward=train and cpu) == "flex"
    return runs_flex and any(getattr(m, "softcap", None) is not None for m in model.modules())


def attention_kernels(model: nn.Module, x: torch.Tensor, precision: str = "fp32", compiled: bool = False,
                      train: bool = False) -> str:
    """Which attention kernels one forward of `model` on `x` really runs, as "flash x12" (the
    SDPA kernel names of `attn_backend`; "reference" for the explicit softmax path). Run eagerly
    under no_grad (inference_mode would hide the SDPA dispatch); `compiled`: the timed steps run
    under torch.compile, where soft-capped calls take flex (`softcap_backend`)."""
    from ..layers import get_attn_backend

    if get_attn_backend() == "flex":  # a higher-order op that dispatch modes do not see into; it has no fallback
        return "flex"
    if _capped_on_flex(model, compiled, train):  # not seen by a dispatch mode, nor run eagerly
        return "flex (soft-capped attention, compiled; other calls not inspected)"
    counter = _KernelCounter()
    with torch.no_grad(), autocast(x.device, precision), counter:
        model(x)
    counts = dict(counter.counts)
    softmax = counts.pop("softmax", 0)  # only the kernel's reference path takes a softmax in the zoo
    if softmax:
        counts["reference"] = softmax
    return ", ".join(f"{k} x{n}" for k, n in sorted(counts.items())) or "none"


def measure(
    model: Union[str, nn.Module],
    input_shape: Optional[Sequence[int]] = None,
    mode: str = "infer",
    precision: str = "fp32",
    device: Union[str, torch.device] = "cpu",
    *,
    batch_size: int = 1,
    warmup: int = 3,
    iters: int = 10,
    compile: Union[bool, str, None] = None,
    attn_backend: str = "auto",
    grad_checkpointing: bool = False,
    detail: bool = False,
    distributed: bool = False,
    strategy: str = "ddp",
    gmacs: Optional[float] = None,
    peak_flops: Optional[float] = None,
    memory: bool = True,
    fresh_process: bool = False,
    **overrides: Any,
) -> Dict[str, Any]:
    """Measure one configuration.

    Args:
        model: a registry name (built here with `overrides`, e.g. num_frames, img_size) or a module.
        input_shape: the whole batch, (B, C, T, H, W) or (B, C, H, W); default:
            (batch_size, *model.input_size).
        mode: "infer" (forward under inference_mode) or "train" (forward, backward, AdamW step).
        precision: "fp32", "bf16" or "fp16" (autocast).
        compile: torch.compile mode ("default", "reduce-overhead", "max-autotune"; True:
            "default"); compilation happens in the first warm-up step, whose time minus the
            median step is recorded as compile_s.
        attn_backend: the attention kernel's backend (vidbench.layers.ATTN_BACKENDS); the kernels
            one eager forward really dispatches to are recorded as attn_kernels.
        grad_checkpointing: activation checkpointing per block (train mode).
        detail: time each phase (forward, backward, optimizer step) inside the timed steps, a
            timestamp after each (the device synchronised before it, as timm's --detail): the
            phases reported are those of the median step, and add up to it (in a distributed
            row, to this process's median step, not the slowest process's). The peak memory of
            each phase, and the activations autograd saves (activation_mb, without activation
            checkpointing), are measured in one more step after the timed ones.
        distributed: train in the running process group (every process calls this): each
            step's time is the slowest process's; clips_per_s is the total over processes,
            clips_per_s_per_process one process's.
        strategy: with `distributed`, "ddp" (DistributedDataParallel) or "fsdp" (FSDP2,
            `vidbench.bench.fsdp`: bf16 / fp16 by its mixed-precision policy, without autocast). Train rows record what each process holds of the
            parameters, gradients and optimizer state (param_mb, grad_mb, optimizer_state_mb;
            local shards under FSDP; the largest over processes).
        gmacs: multiply-adds per clip in billions; default: counted with fvcore at batch 1.
        peak_flops: the device's matmul FLOP/s in this precision; default: measured here.
        memory: measure peak memory (CUDA allocator; on CPU peak RSS above the RSS before the
            model was built, or before the steps for a module passed in).
        fresh_process: this call runs in a process of its own (labels the CPU memory method).

    Returns a dict: params, gmacs, batch_size, clips_per_s, step_ms_median, step_ms_iqr,
    peak_mem_mb, peak_mem_reserved_mb, mem_method, achieved_tflops, matmul_peak_tflops, mfu_pct, ...
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    if attn_backend not in ATTN_BACKENDS:
        raise ValueError(f"unknown attention backend {attn_backend!r}; expected one of {', '.join(ATTN_BACKENDS)}")
    check_precision(precision)
    mode_c = compile_mode(compile)
    return _measure(model, input_shape, mode, precision, device, batch_size, warmup, iters, mode_c, attn_backend,
                    grad_checkpointing, detail, distributed, strategy, gmacs, peak_flops, memory, fresh_process,
                    overrides)


def _measure(model: Union[str, nn.Module], input_shape: Optional[Sequence[int]], mode: str, precision: str,
             device: Union[str, torch.device], batch_size: int, warmup: int, iters: int, compile: Optional[str],
             attn_backend: str, grad_checkpointing: bool, detail: bool, distributed: bool, strategy: str,
             gmacs: Optional[float], peak_flops: Optional[float], memory: bool, fresh_process: bool,
             overrides: Dict[str, Any]) -> Dict[str, Any]:
    device = torch.device(device)
    name = model if isinstance(model, str) else getattr(model, "model_name", type(model).__name__)
    baseline = None
    if isinstance(model, str):
        arch = {k: v for k, v in overrides.items() if k not in WEIGHT_ARGS}  # the weights do not change it
        if gmacs is None:
            gmacs = count_flops(model, **arch).gmacs  # built on the meta device: its modules are imported
        elif device.type == "cpu":
            with torch.device("meta"):
                create_model(model, **arch)  # its modules, imported before the baseline below
        if device.type == "cpu":
            warm_runtime()  # libraries a first step loads: in the baseline, not the peak
            release_free_heap()
            baseline = current_rss_bytes()  # before the weights exist
        model = create_model(model, **overrides).to(device)
    elif overrides:
        raise TypeError(f"measure: overrides {sorted(overrides)} only apply to registry names")
    else:
        model = model.to(device)
    shape = tuple(input_shape) if input_shape is not None else (batch_size, *model.input_size)
    if shape[0] < 1:
        raise ValueError(f"batch size must be >= 1, got input shape {shape}")
    if gmacs is None:
        gmacs = count_flops(model, shape[1:]).gmacs
    params = sum(p.numel() for p in model.parameters())
    if grad_checkpointing:
        if not hasattr(model, "set_grad_checkpointing"):
            raise ValueError(f"{name} has no set_grad_checkpointing: activation checkpointing is not available")
        model.set_grad_checkpointing(True)
    x = torch.randn(shape, device=device)
    world, dist_backend, runner, amp = 1, None, model, True
    if distributed:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        if mode != "train":
            raise ValueError("distributed=True measures training steps (mode='train')")
        world, dist_backend = dist.get_world_size(), dist.get_backend()
        if strategy == "fsdp":
            runner = shard_model(model, precision)  # in place: the optimizer below takes the shards
            amp = False  # the policy's parameter dtype is the compute dtype (torchtitan's way)
        elif strategy == "ddp":
            runner = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        else:
            raise ValueError(f"unknown strategy {strategy!r}; expected ddp or fsdp")
    runner = torch.compile(runner, mode=compile) if compile else runner
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4) if mode == "train" else None
    phases = make_phases(runner, x, mode, precision, optimizer, amp) if detail else None
    step = run_phases(phases) if phases else make_step(runner, x, mode, precision, optimizer, amp)
    meter = PeakMemory(device, baseline_rss=baseline, fresh_process=fresh_process)
    with attn_backend_ctx(attn_backend):
        try:
            kernels = attention_kernels(model, x[:1], precision if amp else "fp32", compiled=bool(compile),
                                        train=mode == "train")
        except RuntimeError as exc:
            if attn_backend in ("auto", "reference"):
                raise
            raise RuntimeError(f"attention backend {attn_backend!r} cannot run {name} on {device.type}: "
                               f"{str(exc).splitlines()[0]}") from exc
        with meter if memory else contextlib.nullcontext():
            first_s = _time_one(step, device) if warmup > 0 or compile else None  # compilation happens here
            timing = time_steps(step, device, max(warmup - 1, 0), iters, phases=phases)
        split = _detail_step(phases, model, mode, grad_checkpointing, device, memory,
                             meter.baseline_rss) if phases else {}
    phase_s = timing.median_phases_s()
    sizes = state_sizes(model, optimizer) if mode == "train" else {}
    del step, x, phases
    if distributed:
        timing = type(timing)(slowest_steps(timing.times_s))
        sizes = _largest_over_processes(sizes)
    if peak_flops is None:
        peak_flops = matmul_peak_flops(device, precision)
    clips_per_s = world * shape[0] / timing.median_s
    factor = TRAIN_FLOP_FACTOR if mode == "train" else 1
    achieved = factor * 2 * gmacs * 1e9 * clips_per_s  # FLOP/s, 2 FLOPs per multiply-add
    mem = meter.result
    return {
        "model": name,
        "params": params,
        "gmacs": gmacs,
        "input_shape": "x".join(str(s) for s in shape),
        "batch_size": shape[0],
        "precision": precision,
        "device": str(device),
        "mode": mode,
        "compile": compile or "off",
        "compile_s": (first_s - timing.median_s) if compile and first_s is not None else None,
        "attn_backend": attn_backend,
        "attn_kernels": kernels,
        "grad_checkpointing": bool(grad_checkpointing),
        "clips_per_s": clips_per_s,
        "step_ms_median": timing.median_s * 1e3,
        "step_ms_iqr": timing.iqr_s * 1e3,
        "iqr_pct": 100 * timing.iqr_s / timing.median_s,
        "warmup": warmup,
        "iters": iters,
        "threads": torch.get_num_threads(),
        "peak_mem_mb": mem.peak_mb if memory else None,
        "peak_mem_reserved_mb": mem.reserved_mb if memory else None,
        "mem_method": mem.method if memory else "off",
        "flop_factor": factor,
        "achieved_tflops": achieved / 1e12,
        "matmul_peak_tflops": peak_flops / 1e12,
        "mfu_pct": 100 * achieved / (world * peak_flops),
        "nproc": world,
        "dist_backend": dist_backend,
        "clips_per_s_per_process": shape[0] / timing.median_s,
        "strategy": strategy if distributed else None,
        "param_mb": sizes.get("param_mb"),
        "grad_mb": sizes.get("grad_mb"),
        "optimizer_state_mb": sizes.get("optimizer_state_mb"),
        "activation_mb": split.get("activation_mb"),
        **{f"{p}_ms": phase_s[p] * 1e3 if p in phase_s else None for p in PHASES},
        **{f"{p}_peak_mem_mb": split.get(p) for p in PHASES},
    }


def _detail_step(phases: Any, model: nn.Module, mode: str, grad_checkpointing: bool, device: torch.device,
                 memory: bool, baseline_rss: Optional[int]) -> Dict[str, Optional[float]]:
    """--detail's one more step after the timed ones: the peak memory of each phase, and (train,
    without activation checkpointing, whose recomputation hides what the blocks save) the
    activations the forward saves for backward, in MiB."""
    out: Dict[str, Optional[float]] = {}
    count = mode == "train" and not grad_checkpointing
    saved: Dict[str, int] = {}

    def wrap(name: str, fn: Any) -> Any:
        if not (count and name == "forward"):
            return fn
        return lambda: saved.update(forward=saved_tensor_bytes(fn, model))

    run = [(name, wrap(name, fn)) for name, fn in phases]
    if memory:
        out.update(phase_peaks(run, device, baseline_rss))
    else:
        run_phases(run)()
    if "forward" in saved:
        out["activation_mb"] = saved["forward"] / 2**20
    return out


def _largest_over_processes(sizes: Dict[str, Optional[float]]) -> Dict[str, Optional[float]]:
    """Each size, the largest over processes (FSDP's shards may be uneven)."""
    import torch.distributed as dist

    names = [k for k, v in sizes.items() if v is not None]
    if not names:
        return sizes
    t = torch.tensor([sizes[k] for k in names], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return {**sizes, **dict(zip(names, t.tolist()))}


def _time_one(step: Any, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start
