"""Image backbones on disk: a ViT's weights in safetensors, its config in the metadata, so a
video model can be built and initialised from the file alone.

    save_backbone(vit, "results/run/byol.safetensors", method="byol", extra={"epochs": 100})
    vit = load_backbone("results/run/byol.safetensors")      # a VisionTransformer
    video = create_model("timesformer_tiny").from_image_backbone(vit)

Metadata keys (all strings, as safetensors requires): format ("vidbench.backbone"),
format_version, architecture ("VisionTransformer"), model_name (registry name, or ""), config
(JSON of ViTConfig), method (how it was trained: "byol", "simclr", ..., "supervised",
"random"), extra (JSON: epochs, input mean/std, ...), vidbench_version. Tensors are the ViT's
state dict; tensors under "extra." (e.g. a SimCLR v2 head layer) are not part of the ViT.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from . import __version__
from .models.vit import VisionTransformer, ViTConfig

__all__ = ["FORMAT", "save_backbone", "load_backbone", "read_backbone_meta", "load_extra_tensors"]

FORMAT = "vidbench.backbone"
FORMAT_VERSION = "1"
PathLike = Union[str, os.PathLike]


def save_backbone(vit: VisionTransformer, path: PathLike, method: str, extra: Optional[Mapping[str, Any]] = None,
                  extra_tensors: Optional[Mapping[str, torch.Tensor]] = None) -> Path:
    """Write `vit` (weights + config) to a safetensors file; returns the path."""
    if not isinstance(vit, VisionTransformer):
        raise TypeError(f"save_backbone takes a VisionTransformer, got {type(vit).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in vit.state_dict().items()}
    for k, v in (extra_tensors or {}).items():
        tensors[f"extra.{k}"] = v.detach().cpu().contiguous().clone()
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": "VisionTransformer",
        "model_name": str(getattr(vit, "model_name", "")),
        "config": json.dumps(dataclasses.asdict(vit.config)),
        "method": str(method),
        "extra": json.dumps(dict(extra or {}), default=str),
        "vidbench_version": __version__,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)  # never a half-written file under the final name
    return path


def read_backbone_meta(path: PathLike) -> Dict[str, Any]:
    """The decoded metadata: {'method', 'model_name', 'config' (dict), 'extra' (dict), ...}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except Exception as err:
        raise ValueError(f"{path}: not a safetensors file ({err})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a vidbench backbone (metadata format={meta.get('format')!r}, expected {FORMAT!r}); "
                         "write one with vidbench.checkpoint.save_backbone")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: backbone format version {meta.get('format_version')!r}, this vidbench reads {FORMAT_VERSION!r}")
    out: Dict[str, Any] = dict(meta)
    out["config"] = json.loads(meta["config"])
    out["extra"] = json.loads(meta.get("extra", "{}"))
    return out


def load_backbone(path: PathLike, map_location: str = "cpu") -> VisionTransformer:
    """Build the VisionTransformer described by the file's metadata and load its weights
    (strict). `model.ssl_method` and `model.ssl_extra` carry the metadata."""
    meta = read_backbone_meta(path)
    cfg = dict(meta["config"])
    if isinstance(cfg.get("img_size"), list):
        cfg["img_size"] = tuple(cfg["img_size"])
    known = {f.name for f in dataclasses.fields(ViTConfig)}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"{path}: config has fields this vidbench's ViTConfig lacks: {unknown}")
    vit = VisionTransformer(ViTConfig(**cfg))
    with safe_open(str(path), framework="pt", device=map_location) as f:
        state = {k: f.get_tensor(k) for k in f.keys() if not k.startswith("extra.")}
    missing, unexpected = vit.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit the ViT in its metadata (missing {missing[:5]}, unexpected {unexpected[:5]})")
    vit.model_name = meta.get("model_name") or "vit"
    vit.ssl_method = meta["method"]
    vit.ssl_extra = meta["extra"]
    return vit.to(map_location)


def load_extra_tensors(path: PathLike) -> Dict[str, torch.Tensor]:
    """Tensors stored next to the ViT under 'extra.' (prefix removed)."""
    read_backbone_meta(path)
    with safe_open(str(Path(path)), framework="pt") as f:
        return {k[len("extra."):]: f.get_tensor(k) for k in f.keys() if k.startswith("extra.")}
