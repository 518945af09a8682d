"""Convert a checkpoint once into vidbench's own safetensors checkpoint (`vidbench convert`).

The written file keeps the model's registry name and config, the class names and the
preprocessing the weights are evaluated with, so every command reads it without `--model`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from torch import nn

from ..checkpoint import save_checkpoint
from .loader import load_pretrained
from .source import PathLike, WeightsError

__all__ = ["convert_checkpoint"]


def convert_checkpoint(src: PathLike, dst: PathLike, model: Optional[str] = None, format: Optional[str] = None,
                       overwrite: bool = False, **overrides: Any) -> nn.Module:
    """Load `src` (any format) and write it to `dst` (.safetensors); returns the loaded model."""
    dst = Path(dst)
    if dst.suffix != ".safetensors":
        raise WeightsError(f"{dst}: the converted checkpoint must be a .safetensors file")
    if dst.is_dir():  # checked first: a rename onto a directory fails after the work, leaving a .tmp
        raise WeightsError(f"{dst}: is a directory; the converted checkpoint is a file (give its path)")
    if dst.exists() and not overwrite:
        raise WeightsError(f"{dst}: already exists (pass --overwrite to replace it)")
    net = load_pretrained(src, model=model, format=format, **overrides)
    info = net.pretrained_cfg
    extra = {"method": "published", "weights": info.as_json(), "preprocess": info.preprocess,
             "classes": info.class_names, "converted_from": str(src), "source_format": info.format}
    save_checkpoint(net, dst, extra)
    return net
