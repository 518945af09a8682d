"""What every Hugging Face directory format reads the same way: the class names of config.json's
id2label, the preprocessing of its image / video processor config, and the walk over a ViT-style
state dict (fixed top-level names, numbered layers renamed by prefix, separate q / k / v pieces
collected for fusing)."""
from __future__ import annotations

import re
from typing import Any, Callable, Dict, Hashable, List, Mapping, Optional, Tuple

from ..source import Source
from ._util import renamed

__all__ = ["hf_class_names", "hf_preprocess", "hf_layers_to_vidbench", "HF_VIT_TOP", "HF_VIT_NORMS"]

# the names every HF ViT-style video model shares, and vidbench's
HF_VIT_TOP = {
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
    "classifier.weight": "head.weight",
    "classifier.bias": "head.bias",
}
HF_VIT_NORMS = {"layernorm_before.": "norm1.", "layernorm_after.": "norm2."}  # layer-relative

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


def hf_layers_to_vidbench(state: Mapping[str, Any], what: str, canonical: Callable[[str], Optional[str]],
                          fixed: Mapping[str, str], layer: re.Pattern[str], layer_parts: Mapping[str, str],
                          qkv_piece: Callable[[str], Optional[Tuple[str, str]]]
                          ) -> Tuple[Dict[str, Any], Dict[Tuple[int, str], Dict[str, Any]]]:
    """An HF ViT-style state dict -> (vidbench's names of everything but q / k / v, the q / k / v
    pieces by (layer, "weight" / "bias") and "q" / "k" / "v", for the caller to fuse).

    Args:
        canonical: a checkpoint key in the names `fixed` and `layer` match (prefix stripped, an
            older layout renamed), or None for a key to skip.
        fixed: exact renames outside the layers; `layer`: a regex whose groups are the layer
            index and the layer-relative rest; `layer_parts`: the rest's prefixes -> vidbench's.
        qkv_piece: ("q" / "k" / "v", "weight" / "bias") of a layer-relative q / k / v key, else None.
    Raises ValueError naming the first key it does not know (`what`: the format, for the message).
    """
    out: Dict[str, Any] = {}
    qkv: Dict[Tuple[int, str], Dict[Hashable, Any]] = {}
    for key, value in state.items():
        name = canonical(key)
        if name is None:
            continue
        if name in fixed:
            out[fixed[name]] = value
            continue
        m = layer.match(name)
        piece = qkv_piece(m.group(2)) if m else None
        new = renamed(m.group(2), layer_parts) if m and piece is None else None
        if piece is not None:
            qkv.setdefault((int(m.group(1)), piece[1]), {})[piece[0]] = value
        elif new is not None:
            out[f"blocks.{int(m.group(1))}.{new}"] = value
        else:
            raise ValueError(f"{what} key not known to vidbench's converter: {key}")
    return out, qkv
