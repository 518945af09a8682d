"""Image backbones on disk: a ViT's weights in safetensors, what rebuilds it in the metadata, so
a video model can be built and initialised from the file alone.

    save_backbone(vit, "results/run/byol.safetensors", method="byol", extra={"epochs": 100})
    vit = load_backbone("results/run/byol.safetensors")      # a VisionTransformer
    video = create_model("timesformer_tiny").from_image_backbone(vit)

The layout is the model checkpoint format of branch data's `vidbench.checkpoint`
(`save_checkpoint` / `load_checkpoint`, read by `vidbench train --init`), so either side reads
the other's files. Metadata (strings, as safetensors requires):
- format: "vidbench-checkpoint/1"
- model: JSON {"name": registry name or null, "class": "VisionTransformer",
  "config_class": "ViTConfig", "config": the ViTConfig as a dict}
- extra: JSON {"method": how the weights were made ("byol", "simclr", ..., "supervised"), ...}
Tensors: the ViT's state dict, nothing else.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

from safetensors import safe_open
from safetensors.torch import save_file

from .models.vit import VisionTransformer, ViTConfig

__all__ = ["FORMAT", "save_backbone", "load_backbone", "read_backbone_meta"]

FORMAT = "vidbench-checkpoint/1"
PathLike = Union[str, os.PathLike]


def save_backbone(vit: VisionTransformer, path: PathLike, method: str, extra: Optional[Mapping[str, Any]] = None) -> Path:
    """Write `vit` (weights + config) with `extra` and the method that trained it; returns the path."""
    if not isinstance(vit, VisionTransformer):
        raise TypeError(f"save_backbone takes a VisionTransformer, got {type(vit).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = {"name": getattr(vit, "model_name", None), "class": "VisionTransformer", "config_class": "ViTConfig",
            "config": dataclasses.asdict(vit.config)}
    meta = {"format": FORMAT, "model": json.dumps(spec), "extra": json.dumps({**dict(extra or {}), "method": str(method)}, default=str)}
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in vit.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)  # never a half-written file under the final name
    return path


def read_backbone_meta(path: PathLike) -> Dict[str, Any]:
    """{'method', 'model_name', 'config' (dict), 'extra' (dict)} without loading weights."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except Exception as err:  # safetensors has its own error types for a file that is not one
        raise ValueError(f"{path}: not a safetensors file ({err})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a vidbench checkpoint (metadata format={meta.get('format')!r}, expected {FORMAT!r}); "
                         "write one with vidbench.checkpoint.save_backbone")
    spec, extra = json.loads(meta["model"]), json.loads(meta.get("extra", "{}"))
    if spec.get("class") != "VisionTransformer":
        raise ValueError(f"{path}: holds a {spec.get('class')}, not an image ViT backbone")
    return {"method": extra.get("method", ""), "model_name": spec.get("name") or "", "config": spec["config"], "extra": extra}


def load_backbone(path: PathLike, map_location: str = "cpu") -> VisionTransformer:
    """Build the VisionTransformer the file describes and load its weights (strictly).
    `model.ssl_method` and `model.ssl_extra` carry the metadata."""
    meta = read_backbone_meta(path)
    cfg = dict(meta["config"])
    if isinstance(cfg.get("img_size"), list):
        cfg["img_size"] = tuple(cfg["img_size"])
    unknown = sorted(set(cfg) - {f.name for f in dataclasses.fields(ViTConfig)})
    if unknown:
        raise ValueError(f"{path}: config has fields this vidbench's ViTConfig lacks: {unknown}")
    vit = VisionTransformer(ViTConfig(**cfg))
    with safe_open(str(path), framework="pt", device=map_location) as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    missing, unexpected = vit.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit the ViT in its metadata (missing {missing[:5]}, unexpected {unexpected[:5]})")
    vit.model_name = meta["model_name"] or "vit"
    vit.ssl_method, vit.ssl_extra = meta["method"], meta["extra"]
    return vit.to(map_location)
