"""Peak memory, measured, never estimated.

- CUDA: `torch.cuda.reset_peak_memory_stats` before, `max_memory_allocated` (and reserved)
  after, with the device synchronised on both sides.
- CPU: the process's peak resident set size above a baseline RSS, in MiB. On Linux the peak
  (VmHWM, which getrusage's ru_maxrss also reads) is reset by writing 5 to /proc/self/clear_refs,
  so a measurement can start from the current RSS; elsewhere only a fresh process gives a
  meaningful peak. Memory freed earlier in the process but kept by malloc would be reused without
  raising the RSS, so before taking the baseline we hand it back to the OS (glibc malloc_trim).
  A fresh process per measurement (`vidbench bench --isolate`) remains the cleaner measurement.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import resource
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ..errors import ConfigError

__all__ = ["parse_size", "PeakMemory", "MemoryResult", "current_rss_bytes", "peak_rss_bytes", "release_free_heap",
           "warm_runtime",
           "reset_peak_rss", "synchronize"]

MIB = 2**20
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "t": 1000**4, "tb": 1000**4, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int:
    """'4GB' -> 4e9 bytes, '512MiB' -> 512 * 2**20, '1.5g' -> 1.5e9 (SI units, IEC with an i)."""
    import re

    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS or float(match.group(1)) <= 0:
        raise ConfigError(f"bad memory size {text!r}: expected a positive number with a unit, e.g. 4GB, 512MiB")
    return int(float(match.group(1)) * _UNITS[unit])


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _status_kib(field: str) -> Optional[int]:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def current_rss_bytes() -> Optional[int]:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def peak_rss_bytes() -> int:
    """Peak RSS of this process since start or the last `reset_peak_rss`."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, KiB elsewhere


def reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def warm_runtime() -> None:
    """Load what a first step loads once, before a CPU baseline is taken, so that the peak above it
    is the model's and not the libraries': the kernels the models use run once on tiny tensors
    (thread pools, kernel libraries), and torch._dynamo is imported (with inductor, sympy and
    triton: about 145 MiB of RSS), which torch imports when an optimizer is built and on the first
    conv under a dispatch mode (`attention_kernels`). Bench rows counted both until 88288b2:
    vit_base inference 440 MiB (519 from f044190), 360 since, its weights being 330."""
    import torch._dynamo  # noqa: F401 (loaded for its memory, see above)

    with torch.no_grad():
        x = torch.randn(1, 3, 4, 8, 8)
        y = torch.nn.functional.conv3d(x, torch.randn(8, 3, 2, 2, 2), stride=2).flatten(2).transpose(1, 2)
        y = torch.nn.functional.gelu(torch.nn.functional.layer_norm(y @ torch.randn(8, 8), (8,)))
        torch.nn.functional.scaled_dot_product_attention(y[None], y[None], y[None]).softmax(-1).sum()
    w = torch.randn(8, 8, requires_grad=True)
    (torch.randn(4, 8) @ w).sum().backward()


def release_free_heap() -> bool:
    """Return free malloc memory to the OS (glibc malloc_trim), so that reusing it shows up in
    the RSS again; False where there is no malloc_trim."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


@dataclass
class MemoryResult:
    peak_mb: Optional[float]  # MiB
    reserved_mb: Optional[float]  # CUDA caching allocator's reserved peak, MiB
    method: str


class PeakMemory:
    """Context manager measuring peak memory of the enclosed steps.

    Args:
        device: the device the steps run on.
        baseline_rss: CPU only: RSS (bytes) to subtract, e.g. taken before the model was built
            in a fresh process; default: the RSS on entering the context.
        fresh_process: CPU only: whether this is a fresh process (goes into the method label).
    """

    def __init__(self, device: torch.device, baseline_rss: Optional[int] = None, fresh_process: bool = False):
        self.device = torch.device(device)
        self.baseline_rss = baseline_rss
        self.fresh_process = fresh_process
        self.result = MemoryResult(None, None, "unavailable")
        self._reset_ok = False

    def __enter__(self) -> PeakMemory:
        synchronize(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.device.type == "cpu":
            if self.baseline_rss is None:
                release_free_heap()
                self.baseline_rss = current_rss_bytes()
            self._reset_ok = reset_peak_rss()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        where = "fresh process" if self.fresh_process else "shared process"
        if self.device.type == "cuda":
            self.result = MemoryResult(
                torch.cuda.max_memory_allocated(self.device) / MIB,
                torch.cuda.max_memory_reserved(self.device) / MIB,
                "cuda_max_memory_allocated",
            )
        elif self.device.type == "cpu" and self.baseline_rss is not None and (self._reset_ok or self.fresh_process):
            method = "cpu_peak_rss_minus_baseline" + ("" if self._reset_ok else "_ru_maxrss")
            self.result = MemoryResult((peak_rss_bytes() - self.baseline_rss) / MIB, None, f"{method} ({where})")
