"""Step functions and timing: inference and training steps under fp32 / bf16 / fp16 autocast,
optional torch.compile, warm-up then repeated timed steps with the device synchronised around
each, and the matmul peak that model FLOP utilisation divides by."""
from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..options import PRECISION_DTYPES, autocast, check_precision
from .memory import synchronize

__all__ = ["PRECISIONS", "MODES", "COMPILE_MODES", "Timing", "make_step", "make_phases", "time_steps", "time_phases",
           "matmul_peak_flops"]

PRECISIONS: Dict[str, Optional[torch.dtype]] = PRECISION_DTYPES  # the vocabulary's (vidbench.options)
MODES = ("infer", "train")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")  # torch.compile's mode argument


def _loss(out: torch.Tensor) -> torch.Tensor:
    out = out.float()
    if out.ndim == 2 and out.shape[1] > 1:  # logits: cross-entropy on fixed labels
        target = torch.arange(out.shape[0], device=out.device) % out.shape[1]
        return F.cross_entropy(out, target)
    return out.pow(2).mean()  # headless model: any scalar that reaches every parameter


def make_step(model: nn.Module, x: torch.Tensor, mode: str, precision: str = "fp32",
              optimizer: Optional[torch.optim.Optimizer] = None) -> Callable[[], None]:
    """A no-argument callable running one step on `x`.

    infer: eval mode, inference_mode, forward. train: train mode, forward, loss, backward and
    optimizer step (AdamW unless given; fp16 uses a GradScaler).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    device = x.device
    if mode == "infer":
        model.eval()

        def infer() -> None:
            with torch.inference_mode(), autocast(device, precision):
                model(x)

        return infer
    model.train()
    opt = optimizer or torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    def train() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = _loss(model(x))
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    return train


def make_phases(model: nn.Module, x: torch.Tensor, mode: str, precision: str = "fp32",
                optimizer: Optional[torch.optim.Optimizer] = None) -> List[Tuple[str, Callable[[], None]]]:
    """The step of `make_step` cut into its phases, to be called in order: infer: forward;
    train: forward (zero_grad, forward and loss), backward, optimizer (the step, with the fp16
    scaler's unscale / update)."""
    if mode == "infer":
        return [("forward", make_step(model, x, mode, precision))]
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    device = x.device
    model.train()
    opt = optimizer or torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    state: Dict[str, torch.Tensor] = {}

    def forward() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(device, precision):
            state["loss"] = _loss(model(x))

    def backward() -> None:
        loss = state.pop("loss")
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def optimizer_step() -> None:
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()

    return [("forward", forward), ("backward", backward), ("optimizer", optimizer_step)]


@dataclass
class Timing:
    times_s: List[float]  # one per timed step

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def iqr_s(self) -> float:
        """Interquartile range (q75 - q25); 0 for fewer than 2 steps."""
        if len(self.times_s) < 2:
            return 0.0
        q = statistics.quantiles(self.times_s, n=4, method="inclusive")
        return q[2] - q[0]


def time_steps(step: Callable[[], None], device: torch.device, warmup: int = 3, iters: int = 10) -> Timing:
    """Run `warmup` untimed steps, then time `iters` steps one by one, synchronising the device
    before starting and before stopping each clock."""
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    for _ in range(max(warmup, 0)):
        step()
    times = []
    for _ in range(iters):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return Timing(times)


def time_phases(phases: List[Tuple[str, Callable[[], None]]], device: torch.device, iters: int = 10,
                memory: bool = True, baseline_rss: Optional[int] = None) -> Dict[str, Dict[str, Optional[float]]]:
    """Time each phase of `iters` steps separately (the device synchronised around each phase),
    after one untimed step; with `memory`, the peak memory of each phase too (the peak since the
    phase began, over all steps; CPU: peak RSS above `baseline_rss`). The peak counters are reset
    outside the clocks. Returns {phase: {"ms": median, "iqr_ms": ..., "peak_mb": ...}}."""
    from .memory import PeakMemory

    for _, fn in phases:
        fn()
    times: Dict[str, List[float]] = {name: [] for name, _ in phases}
    peaks: Dict[str, Optional[float]] = {name: None for name, _ in phases}
    for _ in range(iters):
        for name, fn in phases:
            meter = PeakMemory(device, baseline_rss=baseline_rss) if memory else contextlib.nullcontext()
            with meter:
                synchronize(device)
                start = time.perf_counter()
                fn()
                synchronize(device)
                times[name].append(time.perf_counter() - start)
            if memory and meter.result.peak_mb is not None:
                peaks[name] = max(peaks[name] or 0.0, meter.result.peak_mb)
    return {name: {"ms": Timing(t).median_s * 1e3, "iqr_ms": Timing(t).iqr_s * 1e3, "peak_mb": peaks[name]}
            for name, t in times.items()}


def matmul_peak_flops(device: torch.device, precision: str = "fp32", size: Optional[int] = None,
                      reps: int = 5) -> float:
    """Achievable matmul FLOP/s on `device` in the precision's dtype: the best of `reps` timed
    (n x n) @ (n x n) products (2 n^3 FLOPs each, after one warm-up) over n in `size` or, by
    default, (256, 512, 1024) on CPU and (4096, 8192) on CUDA. Several sizes because on CPUs
    without native bf16 / fp16 matmul the largest product is not the fastest."""
    check_precision(precision)
    device = torch.device(device)
    dtype = PRECISIONS[precision] or torch.float32
    sizes = (size,) if size else ((4096, 8192) if device.type == "cuda" else (256, 512, 1024))
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        torch.matmul(a, b)
        for _ in range(reps):
            synchronize(device)
            start = time.perf_counter()
            torch.matmul(a, b)
            synchronize(device)
            best = max(best, 2 * n**3 / (time.perf_counter() - start))
        del a, b
    return best
