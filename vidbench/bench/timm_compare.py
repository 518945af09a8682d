"""vidbench's ViT-B/16 against timm's vit_base_patch16_224: `vidbench.bench.compare` for the
`vit_base` family (the same weights through the timm converter, the same clip and threads, timing
interleaved round by round), plus the GMACs and MFU of each, in the one-dict form that
results/timm_compare_cpu/timm_vit.json holds. `vidbench compare vit_base` gives the same
measurement as compare.csv rows (with peak memory and a training step)."""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch

from .compare import FAMILIES, CompareConfig, compare_family
from .flops import count_flops
from .throughput import matmul_peak_flops

__all__ = ["compare_timm_vit"]


def compare_timm_vit(batch_size: int = 8, precision: str = "fp32", device: str = "cpu", warmup: int = 3,
                     iters: int = 10, rounds: int = 3, threads: Optional[int] = None) -> Dict[str, Any]:
    """Inference throughput of vidbench `vit_base` / timm `vit_base_patch16_224` and the MFU of each.

    Args:
        rounds: timing rounds; each round times `iters` steps of one model, then of the other.
        threads: torch threads for both (default: unchanged).

    Returns a dict with clips/s, median and IQR step times, GMACs (fvcore) and MFU of each
    model, their throughput ratio (vidbench / timm), the matmul peak and the largest output
    difference (the two compute the same function; timm's weights are perturbed from its init).
    """
    try:
        import timm
    except ImportError as exc:
        raise ImportError("compare_timm_vit needs timm (pip install timm, or the [test] extra)") from exc
    if threads:
        torch.set_num_threads(threads)
    cfg = CompareConfig(models=["vit_base"], mode=["infer"], batch_size=batch_size, precision=precision,
                        device=device, warmup=warmup, iters=iters, rounds=rounds, isolate_memory=False)
    rows = {r["impl"]: r for r in compare_family(FAMILIES["vit_base"], cfg)}
    if rows["vidbench"]["status"] != "ok":
        raise RuntimeError(f"compare_timm_vit: {rows['vidbench']['error']}")
    with torch.device("meta"):
        timm_meta = timm.create_model("vit_base_patch16_224", pretrained=False)
    gmacs = {"vidbench": count_flops("vit_base").gmacs, "timm": count_flops(timm_meta, (3, 224, 224)).gmacs}
    peak = matmul_peak_flops(torch.device(device), precision)
    out: Dict[str, Any] = {"batch_size": batch_size, "precision": precision, "device": device,
                           "threads": torch.get_num_threads(), "iters_per_model": rounds * iters,
                           "matmul_peak_tflops": peak / 1e12,
                           "max_abs_output_diff": rows["vidbench"]["max_abs_logit_diff"]}
    for name, row in rows.items():
        out[f"{name}_gmacs"] = gmacs[name]
        out[f"{name}_clips_per_s"] = row["clips_per_s"]
        out[f"{name}_step_ms_median"] = row["step_ms_median"]
        out[f"{name}_step_ms_iqr"] = row["step_ms_iqr"]
        out[f"{name}_mfu_pct"] = 100 * 2 * gmacs[name] * 1e9 * row["clips_per_s"] / peak
    out["throughput_ratio_vidbench_over_timm"] = out["vidbench_clips_per_s"] / out["timm_clips_per_s"]
    return out
