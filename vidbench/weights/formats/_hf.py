"""What every Hugging Face directory format reads the same way: the class names of config.json's
id2label, and the preprocessing of its image / video processor config."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from ..source import Source

__all__ = ["hf_class_names", "hf_preprocess"]

Normalisation = Callable[[Dict[str, Any]], Optional[Tuple[List[float], List[float]]]]


def hf_class_names(source: Source) -> Optional[List[str]]:
    """config.json id2label in head order; None when absent or only HF's placeholders LABEL_i."""
    labels = (source.config or {}).get("id2label")
    if not isinstance(labels, dict) or not labels:
        return None
    try:
        ordered = [str(labels[k]) for k in sorted(labels, key=int)]
    except (ValueError, TypeError):
        return None
    return None if all(n == f"LABEL_{i}" for i, n in enumerate(ordered)) else ordered


def _mean_std(pre: Dict[str, Any]) -> Optional[Tuple[List[float], List[float]]]:
    """image_mean / image_std on [0, 1] pixels (processors that rescale by 1/255 first)."""
    if not pre.get("do_normalize", True) or pre.get("image_mean") is None or pre.get("image_std") is None:
        return None
    return [float(v) for v in pre["image_mean"]], [float(v) for v in pre["image_std"]]


def hf_preprocess(source: Source, normalisation: Normalisation = _mean_std) -> Dict[str, Any]:
    """mean, std, crop_size, resize_size from the processor config, where present.

    normalisation: how the processor's numbers become mean / std on [0, 1] pixels (ViViT's
        processor rescales with an offset: hf_vivit passes its own)."""
    pre = source.preprocessor or {}
    out: Dict[str, Any] = {}
    if not pre:
        return out
    mean_std = normalisation(pre)
    if mean_std is not None:
        out["mean"], out["std"] = mean_std
    crop = pre.get("crop_size")
    if pre.get("do_center_crop", True) and crop:
        if isinstance(crop, dict) and (crop.get("height") or crop.get("shortest_edge")):
            out["crop_size"] = int(crop.get("height") or crop.get("shortest_edge"))
        elif isinstance(crop, int):
            out["crop_size"] = crop
    size = pre.get("size")
    if pre.get("do_resize", True) and isinstance(size, dict) and size.get("shortest_edge"):
        out["resize_size"] = int(size["shortest_edge"])
    return out
