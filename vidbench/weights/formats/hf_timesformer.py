"""Hugging Face TimeSformer directories (`TimesformerForVideoClassification` / `TimesformerModel`):
`config.json` with model_type "timesformer" beside `model.safetensors` or `pytorch_model.bin`.

The config gives everything, heads included. HF models take (B, T, C, H, W) clips, vidbench
(B, C, T, H, W): permute before comparing. HF's `space_only` forward classifies every frame
(logits of shape (B*T, classes)); vidbench follows the official code, which averages the tokens
over frames before the final norm, so such checkpoints load with the official semantics.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Optional

from .._registry import Inferred, WeightsFormat, register_format
from ..source import Source
from ._hf import hf_class_names, hf_preprocess
from ._util import converting, pick_model
from .timesformer_official import block_key, default_name

_ATTENTION = {"divided_space_time": "divided", "space_only": "space_only", "joint_space_time": "joint"}
_LAYER = re.compile(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")
# HF layer module -> the official Block's module (transformers' convert_timesformer_to_pytorch.py, inverted)
_BLOCK = {
    "layernorm_before": "norm1", "attention.attention.qkv": "attn.qkv", "attention.output.dense": "attn.proj",
    "layernorm_after": "norm2", "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
    "temporal_layernorm": "temporal_norm1", "temporal_attention.attention.qkv": "temporal_attn.qkv",
    "temporal_attention.output.dense": "temporal_attn.proj", "temporal_dense": "temporal_fc",
}
_TOP = {
    "embeddings.cls_token": "cls_token", "embeddings.position_embeddings": "pos_embed",
    "embeddings.time_embeddings": "time_embed", "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias",
    "classifier.weight": "head.weight", "classifier.bias": "head.bias",
}
_PATCH = "embeddings.patch_embeddings.projection.weight"


def _side(value: Any, source: Source, what: str) -> int:
    """An int, or a square [h, w] pair, from config.json."""
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise source.error(f"config.json {what}={value}: vidbench's TimeSformer takes square sizes")
        value = value[0]
    return int(value)


def hf_to_vidbench(state: Dict[str, Any], divided: bool) -> Dict[str, Any]:
    """HF TimeSformer state dict (with or without the `timesformer.` prefix) -> vidbench names."""
    out: Dict[str, Any] = {}
    for key, value in state.items():
        name = key[len("timesformer."):] if key.startswith("timesformer.") else key
        if name == _PATCH:  # Conv2d (D, C, p, p) -> Conv3d (D, C, 1, p, p)
            out["patch_embed.proj.weight"] = value.unsqueeze(2)
        elif name in _TOP:
            out[_TOP[name]] = value
        elif (m := _LAYER.match(name)) and m.group(2) in _BLOCK:
            out[block_key(int(m.group(1)), _BLOCK[m.group(2)], m.group(3), divided)] = value
        else:
            raise ValueError(f"HF TimeSformer key not known to vidbench's converter: {key}")
    return out


def sniff(source: Source) -> bool:
    return source.kind == "hf-dir" and (source.config or {}).get("model_type") == "timesformer"


def infer(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    cfg = source.config or {}
    act, eps = cfg.get("hidden_act", "gelu"), float(cfg.get("layer_norm_eps", 1e-6))
    if act != "gelu":
        raise source.error(f"hidden_act={act!r}: vidbench's TimeSformer uses exact GELU ('gelu') only")
    if abs(eps - 1e-6) > 1e-12:
        raise source.error(f"layer_norm_eps={eps}: vidbench's TimeSformer uses LayerNorm eps 1e-6 only")
    attention = cfg.get("attention_type", "divided_space_time")
    if attention not in _ATTENTION:
        raise source.error(f"unknown attention_type {attention!r}; expected one of {', '.join(_ATTENTION)}")
    dim = int(cfg.get("hidden_size", 768))
    if dim < 1:  # the ratios below divide by it; the model config checks every other size
        raise source.error(f"config.json: hidden_size must be >= 1, got {dim}")
    hidden = int(cfg.get("intermediate_size") or round(dim * float(cfg.get("mlp_ratio", 4.0))))
    if int(dim * (hidden / dim)) != hidden:
        raise source.error(f"intermediate_size {hidden} is not a ratio vidbench's Mlp reproduces for width {dim}")
    img, frames = _side(cfg.get("image_size", 224), source, "image_size"), int(cfg.get("num_frames", 8))
    head = "classifier.weight"
    labels = cfg.get("id2label") or {}
    num_classes = source.shape(head)[0] if source.has(head) else 0
    if num_classes and labels and len(labels) != num_classes:
        raise source.error(f"config.json has {len(labels)} labels but the classifier {num_classes} outputs")
    config: Dict[str, Any] = {
        "attention_type": _ATTENTION[attention], "img_size": img, "num_frames": frames,
        "patch_size": _side(cfg.get("patch_size", 16), source, "patch_size"),
        "in_chans": int(cfg.get("num_channels", 3)),
        "embed_dim": dim, "depth": int(cfg.get("num_hidden_layers", 12)),
        "num_heads": int(cfg.get("num_attention_heads", 12)), "mlp_ratio": hidden / dim,
        "qkv_bias": bool(cfg.get("qkv_bias", True)), "num_classes": num_classes,
    }
    return pick_model(source, model, "timesformer", default_name(frames, img)), config


def convert(source: Source, model: Any) -> Dict[str, Any]:
    with converting(source):
        return hf_to_vidbench(source.state, model.config.attention_type == "divided")


register_format(WeightsFormat(
    "hf-timesformer", "Hugging Face TimeSformer directory (config.json model_type 'timesformer')",
    sniff, infer, convert, families=("timesformer",), preprocess=hf_preprocess, class_names=hf_class_names))
