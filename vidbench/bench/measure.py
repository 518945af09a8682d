"""`measure`: one configuration's params, GMACs, step time, throughput, peak memory and model
FLOP utilisation, as a flat dict (a results row). The sweep runner and users call the same thing."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Union

import torch
from torch import nn

from ..models import create_model
from .flops import count_flops
from .memory import PeakMemory, current_rss_bytes, release_free_heap
from .throughput import MODES, check_precision, make_step, matmul_peak_flops, time_steps

__all__ = ["measure", "TRAIN_FLOP_FACTOR"]

# a training step is counted as 3 forward passes (backward ~ 2x forward), the usual convention
TRAIN_FLOP_FACTOR = 3
WEIGHT_ARGS = ("weights", "weights_format")  # create_model options that load weights


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
    compile: bool = False,
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
        compile: wrap the model in torch.compile (compilation happens in the warm-up).
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
    check_precision(precision)
    device = torch.device(device)
    name = model if isinstance(model, str) else getattr(model, "model_name", type(model).__name__)
    baseline = None
    if isinstance(model, str):
        if gmacs is None:  # counted on the architecture: the weights do not change it
            gmacs = count_flops(model, **{k: v for k, v in overrides.items() if k not in WEIGHT_ARGS}).gmacs
        if device.type == "cpu":
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
    x = torch.randn(shape, device=device)
    runner = torch.compile(model) if compile else model
    step = make_step(runner, x, mode, precision) if mode == "infer" else make_step(
        runner, x, mode, precision, torch.optim.AdamW(model.parameters(), lr=1e-4))
    meter = PeakMemory(device, baseline_rss=baseline, fresh_process=fresh_process)
    if memory:
        with meter:
            timing = time_steps(step, device, warmup, iters)
    else:
        timing = time_steps(step, device, warmup, iters)
    del step, x
    if peak_flops is None:
        peak_flops = matmul_peak_flops(device, precision)
    clips_per_s = shape[0] / timing.median_s
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
        "compile": bool(compile),
        "clips_per_s": clips_per_s,
        "step_ms_median": timing.median_s * 1e3,
        "step_ms_iqr": timing.iqr_s * 1e3,
        "warmup": warmup,
        "iters": iters,
        "threads": torch.get_num_threads(),
        "peak_mem_mb": mem.peak_mb if memory else None,
        "peak_mem_reserved_mb": mem.reserved_mb if memory else None,
        "mem_method": mem.method if memory else "off",
        "flop_factor": factor,
        "achieved_tflops": achieved / 1e12,
        "matmul_peak_tflops": peak_flops / 1e12,
        "mfu_pct": 100 * achieved / peak_flops,
    }
