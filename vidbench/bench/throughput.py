"""Step functions and timing: inference and training steps under fp32 / bf16 / fp16 autocast,
optional torch.compile, warm-up then repeated timed steps with the device synchronised around
each, and the matmul peak that model FLOP utilisation divides by."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..options import PRECISION_DTYPES, autocast, check_precision
from .memory import synchronize

__all__ = ["PRECISIONS", "MODES", "COMPILE_MODES", "Timing", "make_step", "make_phases", "run_phases", "time_steps", "phase_peaks",
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
              optimizer: Optional[torch.optim.Optimizer] = None, amp: bool = True) -> Callable[[], None]:
    """A no-argument callable running one step on `x`.

    infer: eval mode, inference_mode, forward. train: train mode, forward, loss, backward and
    optimizer step (AdamW unless given; fp16 uses a GradScaler). `amp`: the precision's autocast
    (False where the model computes in it already: FSDP's mixed-precision policy).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    device = x.device
    if mode == "infer":
        model.eval()

        def infer() -> None:
            with torch.inference_mode(), autocast(device, precision if amp else "fp32"):
                model(x)

        return infer
    model.train()
    opt = optimizer or torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    def train() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(device, precision if amp else "fp32"):
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
                optimizer: Optional[torch.optim.Optimizer] = None,
                amp: bool = True) -> List[Tuple[str, Callable[[], None]]]:
    """The step of `make_step` cut into its phases, to be called in order: infer: forward;
    train: forward (zero_grad, forward and loss), backward, optimizer (the step, with the fp16
    scaler's unscale / update)."""
    if mode == "infer":
        return [("forward", make_step(model, x, mode, precision, amp=amp))]
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    device = x.device
    model.train()
    opt = optimizer or torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    state: Dict[str, torch.Tensor] = {}

    def forward() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(device, precision if amp else "fp32"):
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
    # with phases (`time_steps(phases=...)`): each phase's time in each timed step, in step order
    phase_times_s: Dict[str, List[float]] = field(default_factory=dict)

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

    def median_phases_s(self) -> Dict[str, float]:
        """Each phase's time in the median step (the mean over the two middle steps for an even
        count, as `median_s` takes): the phases add up to `median_s`."""
        if not self.phase_times_s:
            return {}
        order = sorted(range(len(self.times_s)), key=self.times_s.__getitem__)
        n = len(order)
        middle = order[(n - 1) // 2: n // 2 + 1]
        return {name: sum(t[i] for i in middle) / len(middle) for name, t in self.phase_times_s.items()}


def run_phases(phases: Sequence[Tuple[str, Callable[[], None]]]) -> Callable[[], None]:
    """One step that runs `phases` in order (what `make_step` does, in the pieces of `make_phases`)."""

    def step() -> None:
        for _, fn in phases:
            fn()

    return step


def time_steps(step: Callable[[], None], device: torch.device, warmup: int = 3, iters: int = 10,
               phases: Optional[Sequence[Tuple[str, Callable[[], None]]]] = None) -> Timing:
    """Run `warmup` untimed steps, then time `iters` steps one by one, synchronising the device
    before starting and before stopping each clock.

    `phases` (`make_phases`, timm's --detail): each timed step runs these in order instead of
    `step`, with a timestamp after each phase (the device synchronised before it), so the phases
    of a step add up to the step: `Timing.phase_times_s`."""
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    for _ in range(max(warmup, 0)):
        step()
    times = []
    split: Dict[str, List[float]] = {name: [] for name, _ in phases or ()}
    for _ in range(iters):
        synchronize(device)
        start = time.perf_counter()
        if phases:
            stamp = start
            for name, fn in phases:
                fn()
                synchronize(device)
                now = time.perf_counter()
                split[name].append(now - stamp)
                stamp = now
            times.append(stamp - start)
        else:
            step()
            synchronize(device)
            times.append(time.perf_counter() - start)
    return Timing(times, split)


def phase_peaks(phases: Sequence[Tuple[str, Callable[[], None]]], device: torch.device,
                baseline_rss: Optional[int] = None) -> Dict[str, Optional[float]]:
    """The peak memory (MiB) of each phase in one more, untimed step (resetting the peak counters
    between phases would cost time inside the timed steps): the peak since the phase began
    (CPU: peak RSS above `baseline_rss`)."""
    from .memory import PeakMemory

    peaks: Dict[str, Optional[float]] = {}
    for name, fn in phases:
        with PeakMemory(device, baseline_rss=baseline_rss) as meter:
            fn()
        peaks[name] = meter.result.peak_mb
    return peaks


# how long `matmul_peak_flops` keeps measuring: passes over its sizes repeat until this has gone by
PEAK_WINDOW_S = 2.0


def matmul_peak_flops(device: torch.device, precision: str = "fp32", size: Optional[int] = None,
                      reps: int = 5, window_s: Optional[float] = None) -> float:
    """Achievable matmul FLOP/s on `device` in the precision's dtype: the best of `reps` timed
    (n x n) @ (n x n) products (2 n^3 FLOPs each, after one warm-up) over n in `size` or, by
    default, (256, 512, 1024) on CPU and (4096, 8192) on CUDA. Several sizes because on CPUs
    without native bf16 / fp16 matmul the largest product is not the fastest. The passes over the
    sizes repeat until `window_s` (default `PEAK_WINDOW_S`) has gone by: one pass lasts a
    fraction of a second, and on a shared VM a pass in a moment of stolen CPU time read half the
    peak (0.10-0.14 against 0.20 TFLOP/s on the 2-core VM), which doubled every MFU of that run;
    over 2 s, 4 fresh processes read 0.205-0.207."""
    check_precision(precision)
    device = torch.device(device)
    dtype = PRECISIONS[precision] or torch.float32
    sizes = (size,) if size else ((4096, 8192) if device.type == "cuda" else (256, 512, 1024))
    best = 0.0
    window_s = PEAK_WINDOW_S if window_s is None else window_s
    start_all = time.perf_counter()
    while True:
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
        if time.perf_counter() - start_all >= window_s:
            return best
