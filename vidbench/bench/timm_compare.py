"""vidbench's ViT-B/16 against timm's vit_base_patch16_224 in the same process: same weights
(converted), same input, same threads, timing interleaved round by round so that drift in a
shared machine's load hits both alike. timm is only needed here (the `test` extra)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch

from ..models import create_model
from ..weights.formats.timm_vit import timm_vit_to_vidbench
from .flops import count_flops
from .throughput import Timing, make_step, matmul_peak_flops, time_steps

__all__ = ["compare_timm_vit"]


def compare_timm_vit(batch_size: int = 8, precision: str = "fp32", device: str = "cpu", warmup: int = 3,
                     iters: int = 10, rounds: int = 3, threads: Optional[int] = None) -> Dict[str, Any]:
    """Inference throughput of vidbench `vit_base` / timm `vit_base_patch16_224` and the MFU of each.

    Args:
        rounds: timing rounds; each round times `iters` steps of one model, then of the other.
        threads: torch threads for both (default: unchanged).

    Returns a dict with clips/s, median and IQR step times, GMACs (fvcore) and MFU of each
    model, their throughput ratio (vidbench / timm), the matmul peak and the largest output
    difference (the two compute the same function).
    """
    try:
        import timm
    except ImportError as exc:
        raise ImportError("compare_timm_vit needs timm (pip install timm, or the [test] extra)") from exc
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    theirs = timm.create_model("vit_base_patch16_224", pretrained=False).to(dev).eval()
    ours = create_model("vit_base").to(dev).eval()
    ours.load_state_dict(timm_vit_to_vidbench(theirs.state_dict()), strict=True)
    x = torch.randn(batch_size, 3, 224, 224, device=dev)
    with torch.inference_mode():
        max_diff = (ours(x[:1]) - theirs(x[:1])).abs().max().item()
    with torch.device("meta"):
        timm_meta = timm.create_model("vit_base_patch16_224", pretrained=False)
    gmacs = {"vidbench": count_flops("vit_base").gmacs, "timm": count_flops(timm_meta, (3, 224, 224)).gmacs}
    steps = {"vidbench": make_step(ours, x, "infer", precision), "timm": make_step(theirs, x, "infer", precision)}
    times: Dict[str, List[float]] = {"vidbench": [], "timm": []}
    for r in range(rounds):
        for name, step in steps.items():
            times[name] += time_steps(step, dev, warmup if r == 0 else 1, iters).times_s
    peak = matmul_peak_flops(dev, precision)
    out: Dict[str, Any] = {"batch_size": batch_size, "precision": precision, "device": str(dev),
                           "threads": torch.get_num_threads(), "iters_per_model": rounds * iters,
                           "matmul_peak_tflops": peak / 1e12, "max_abs_output_diff": max_diff}
    for name, t in times.items():
        timing = Timing(t)
        clips = batch_size / timing.median_s
        out[f"{name}_gmacs"] = gmacs[name]
        out[f"{name}_clips_per_s"] = clips
        out[f"{name}_step_ms_median"] = timing.median_s * 1e3
        out[f"{name}_step_ms_iqr"] = timing.iqr_s * 1e3
        out[f"{name}_mfu_pct"] = 100 * 2 * gmacs[name] * 1e9 * clips / peak
    out["throughput_ratio_vidbench_over_timm"] = out["vidbench_clips_per_s"] / out["timm_clips_per_s"]
    return out
