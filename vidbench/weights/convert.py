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

__all__ = ["check_destination", "convert_checkpoint"]


def check_destination(dst: PathLike, overwrite: bool = False) -> Path:
    """`dst` as a Path, or WeightsError where it cannot take the converted checkpoint (checked
    before any work: a rename onto a directory fails after it, leaving a .tmp)."""
    dst = Path(dst)
    if dst.suffix != ".safetensors":
        raise WeightsError(f"{dst}: the converted checkpoint must be a .safetensors file")
    if dst.is_dir():
        raise WeightsError(f"{dst}: is a directory; the converted checkpoint is a file (give its path)")
    if dst.exists() and not overwrite:
        raise WeightsError(f"{dst}: already exists (pass --overwrite to replace it)")
    return dst


def convert_checkpoint(src: PathLike, dst: PathLike, model: Optional[str] = None, format: Optional[str] = None,
                       overwrite: bool = False, converted_from: Optional[str] = None, **overrides: Any) -> nn.Module:
    """Load `src` (any format) and write it to `dst` (.safetensors); returns the loaded model.
    `converted_from`: what the metadata names as the origin where `src` is an intermediate file."""
    dst = check_destination(dst, overwrite)
    net = load_pretrained(src, model=model, format=format, **overrides)
    info = net.pretrained_cfg
    extra = {"method": "published", "weights": info.as_json(), "preprocess": info.preprocess,
             "classes": info.class_names, "converted_from": converted_from or str(src), "source_format": info.format}
    save_checkpoint(net, dst, extra)
    return net
