"""The official TimeSformer checkpoints (facebookresearch/TimeSformer `.pyth`): `torch.load` gives
`{"model_state": {...}, ...}` with keys prefixed `model.`, a timm ViT layout (`timesformer/models/vit.py`)
plus `time_embed` and, per divided block, `temporal_norm1`, `temporal_attn.{qkv,proj}`, `temporal_fc`.

The file holds no config: the attention type, frames, image and patch size, width, depth, MLP
ratio and classes are read from the tensor shapes. The number of heads is not in any shape: it
is `num_heads=` if given, else the requested model's (`model=`) where its width matches, else 12
for width 768 (TimeSformer-B, every official checkpoint), else the requested model's, else
`embed_dim // 64`.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Optional

import torch

from ...models import create_model
from .._registry import Inferred, WeightsFormat, register_format
from ..source import Source
from ._util import converting, count_indexed, pick_model, square_side

_BLOCK = re.compile(r"blocks\.(\d+)\.(.+)\.(weight|bias)$")
# the official Block's modules (vit.py); vidbench's DividedBlock keeps the spatial ones in `.block`
BLOCK_MODULES = ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2",
                 "temporal_norm1", "temporal_attn.qkv", "temporal_attn.proj", "temporal_fc")
_TOP = ("cls_token", "pos_embed", "time_embed", "patch_embed.proj.bias", "norm.weight", "norm.bias",
        "head.weight", "head.bias")


def default_name(num_frames: int, img_size: int) -> str:
    """The registry model of the official configs: L is 96x224, HR 16x448, B otherwise."""
    if num_frames == 96:
        return "timesformer_large"
    if num_frames == 16 and img_size == 448:
        return "timesformer_hr"
    return "timesformer_base"


def default_heads(dim: int, model: Optional[str], overrides: Dict[str, Any]) -> int:
    """Heads are in no tensor shape: `num_heads=`, else the requested model's where its width is the
    checkpoint's, else 12 for width 768 (every official checkpoint), else the requested model's,
    else dim // 64."""
    if overrides.get("num_heads"):
        return int(overrides["num_heads"])
    heads, width = None, None
    if model is not None:
        with torch.device("meta"):
            cfg = create_model(model).config
        heads, width = int(cfg.num_heads), int(cfg.embed_dim)
    if heads is not None and width == dim:
        return heads
    if dim == 768:
        return 12
    return heads if heads is not None else max(dim // 64, 1)


def block_key(index: int, module: str, suffix: str, divided: bool) -> str:
    """vidbench's name of an official block tensor (`module` one of BLOCK_MODULES)."""
    inner = "" if not divided or module.startswith("temporal") else "block."
    return f"blocks.{index}.{inner}{module}.{suffix}"


def official_to_vidbench(state: Dict[str, Any], divided: bool) -> Dict[str, Any]:
    """Official `model_state` (keys `model.*`) -> vidbench `TimeSformer` state dict."""
    out: Dict[str, Any] = {}
    for key, value in state.items():
        if not key.startswith("model."):
            raise ValueError(f"key without the official 'model.' prefix: {key}")
        name = key[len("model."):]
        if name == "patch_embed.proj.weight":  # Conv2d (D, C, p, p) -> vidbench's Conv3d (D, C, 1, p, p)
            out[name] = value.unsqueeze(2)
        elif (m := _BLOCK.match(name)) and m.group(2) in BLOCK_MODULES:
            out[block_key(int(m.group(1)), m.group(2), m.group(3), divided)] = value
        elif name in _TOP:
            out[name] = value
        else:
            raise ValueError(f"official TimeSformer key not known to vidbench's converter: {key}")
    return out


def sniff(source: Source) -> bool:
    return (source.kind == "torch" and source.container in ("model_state", None)
            and source.has("model.patch_embed.proj.weight", "model.blocks.0.attn.qkv.weight"))


def infer(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    if source.has("model.blocks.0.temporal_attn.qkv.weight"):
        attention = "divided"
    elif source.has("model.time_embed"):
        attention = "joint"
    else:
        attention = "space_only"
    dim, _, patch, _ = source.shape("model.patch_embed.proj.weight")
    side = square_side(source.shape("model.pos_embed")[1] - 1, source, "model.pos_embed")
    hidden = source.shape("model.blocks.0.mlp.fc1.weight")[0]
    if int(dim * (hidden / dim)) != hidden:
        raise source.error(f"MLP width {hidden} is not a ratio vidbench's Mlp reproduces for width {dim}")
    config: Dict[str, Any] = {
        "attention_type": attention, "img_size": side * patch, "patch_size": patch, "embed_dim": dim,
        "depth": count_indexed(source.state, r"model\.blocks\.(\d+)\."), "mlp_ratio": hidden / dim,
        "qkv_bias": source.has("model.blocks.0.attn.qkv.bias"),
        "num_classes": source.shape("model.head.weight")[0] if source.has("model.head.weight") else 0,
    }
    if source.has("model.time_embed"):
        config["num_frames"] = source.shape("model.time_embed")[1]
    elif overrides.get("num_frames"):  # space-only checkpoints hold nothing per frame
        config["num_frames"] = overrides["num_frames"]
    name = pick_model(source, model, "timesformer", default_name(config.get("num_frames", 8), side * patch))
    config["num_heads"] = default_heads(dim, model, overrides)
    return name, config


def convert(source: Source, model: Any) -> Dict[str, Any]:
    with converting(source):
        return official_to_vidbench(source.state, model.config.attention_type == "divided")


register_format(WeightsFormat(
    "timesformer-official", "official TimeSformer .pyth ({'model_state': ...}, keys 'model.*'; heads from model=)",
    sniff, infer, convert, families=("timesformer",)))
