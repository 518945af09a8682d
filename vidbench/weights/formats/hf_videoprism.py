"""Hugging Face VideoPrism directories (config.json model_type "videoprism_vision_model" or
"videoprism"), e.g. google/videoprism-base-f16r288, into vidbench's `VideoPrism`.

What each HF class's directory loads as:

- `VideoPrismVisionModel` (the released video encoders, videoprism-{base-f16r288,large-f8r288}):
  the encoder, with ``pool="mean"`` and ``num_classes=0``: nothing in the model is left random,
  `forward_features` is HF's `last_hidden_state` and forward its mean over tokens.
- `VideoPrismForVideoClassification`: everything, with ``pool="attention"`` (HF's pooling head,
  `head_layernorm` as `fc_norm`, `classifier` as `head`).
- `VideoPrismClipModel` (videoprism-lvt-*: model_type "videoprism", the vision settings under
  `vision_config`) and `VideoPrismVideoModel`: the vision encoder only (`video_model.vision_model.`
  / `vision_model.`). The two auxiliary layers, the contrastive pooler and the text tower are not
  loaded (a warning says so): the video-text embedding is not vidbench's.

Key layout: separate q / k / v projections (`attention.{q,k,v}_proj`, fused into `qkv`),
`o_proj`, `layernorm_before` / `layernorm_after`, `mlp.fc1` / `fc2`; spatial_layers ->
blocks, temporal_layers -> temporal_blocks, layernorm1 / layernorm2 -> norm / temporal_norm.
Every HF LayerNorm weight is stored as the offset from 1 (HF computes with ``weight + 1``): the
converter adds 1, since vidbench's LayerNorm holds the scale itself.

Config: image_size, num_frames, tubelet_size (its time must be 1: per-frame patches, square),
hidden_size, num_attention_heads, intermediate_size, num_spatial_layers, num_temporal_layers,
attn_logit_softcapping, layer_norm_eps, qkv_bias, num_channels, hidden_act ("gelu_python" /
"gelu": the exact GELU; the tanh forms: "gelu_tanh"). HF's models take (B, T, C, H, W),
vidbench's (B, C, T, H, W). Preprocessing of the released models (VideoPrismProcessor and the
official README): frames resized to 288 x 288, RGB in [0, 1], no normalisation.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Dict, Optional, Tuple

import torch

from ...layers import to_2tuple
from .._registry import Inferred, WeightsFormat, register_format
from ..source import Source
from ._hf import hf_class_names, hf_layers_to_vidbench
from ._util import converting, fuse_qkv, pick_model

log = logging.getLogger("vidbench.weights")

MODEL_TYPES = ("videoprism_vision_model", "videoprism")
# HF hidden_act -> vidbench act_layer (transformers.activations: the erf GELU, the tanh forms)
_ACTS = {"gelu": "gelu", "gelu_python": "gelu", "gelu_fast": "gelu_tanh", "gelu_new": "gelu_tanh",
         "gelu_pytorch_tanh": "gelu_tanh", "gelu_python_tanh": "gelu_tanh", "gelu_accurate": "gelu_tanh"}
# prefixes of the vision encoder in each class's state dict, longest first
_PREFIXES = ("video_model.vision_model.", "vision_model.")
# what the Clip / Video models hold beyond the encoder (not loaded)
_NOT_LOADED = ("text_model.", "video_model.auxiliary_layers.", "video_model.head.", "video_model.head_layernorm.",
               "auxiliary_layers.")
_FIXED = {
    "spatial_embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "spatial_embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "spatial_embeddings.position_embeddings": "pos_embed",
    "temporal_embeddings.position_embeddings": "temporal_pos_embed",
    "layernorm1.weight": "norm.weight", "layernorm1.bias": "norm.bias",
    "layernorm2.weight": "temporal_norm.weight", "layernorm2.bias": "temporal_norm.bias",
    "head_layernorm.weight": "fc_norm.weight", "head_layernorm.bias": "fc_norm.bias",
    "head.pooling_attention_query": "pool.query", "head.per_dim_scale": "pool.per_dim_scale",
    "head.q_proj.weight": "pool.q.weight", "head.q_proj.bias": "pool.q.bias",
    "head.o_proj.weight": "pool.proj.weight", "head.o_proj.bias": "pool.proj.bias",
    "head.k_proj.weight": "pool.k.weight", "head.k_proj.bias": "pool.k.bias",  # fused below into pool.kv
    "head.v_proj.weight": "pool.v.weight", "head.v_proj.bias": "pool.v.bias",
    "classifier.weight": "head.weight", "classifier.bias": "head.bias",
}
_STAGE = re.compile(r"^(spatial|temporal)_layers\.")
_LAYER = re.compile(r"^layers\.(\d+)\.(.+)$")
_LAYER_PARTS = {"attention.o_proj.": "attn.proj.", "layernorm_before.": "norm1.", "layernorm_after.": "norm2.",
                "mlp.fc1.": "mlp.fc1.", "mlp.fc2.": "mlp.fc2."}
_QKV = re.compile(r"^attention\.([qkv])_proj\.(weight|bias)$")
# registry name by (width, spatial depth, temporal depth)
_SIZES = {(768, 12, 4): "videoprism_base", (1024, 24, 4): "videoprism_large", (1408, 40, 4): "videoprism_giant",
          (96, 2, 2): "videoprism_tiny"}


def _canonical(key: str) -> Optional[str]:
    """`key` without its class's prefix; None for what is not loaded."""
    if key.startswith(_NOT_LOADED):
        return None
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def _is_norm_weight(name: str) -> bool:
    """An HF VideoPrismLayerNorm weight (stored as the offset from 1)."""
    return name.endswith(".weight") and (name.split(".")[-2].startswith(("norm", "temporal_norm", "fc_norm")))


def _qkv_piece(rest: str) -> Optional[Tuple[str, str]]:
    m = _QKV.match(rest)
    return (m.group(1), m.group(2)) if m else None


def _stage_key(key: str, stage: str) -> Optional[str]:
    """`key` for the pass over one stage's layers (`hf_layers_to_vidbench`): its layers as
    ``layers.N.``, the other stage's skipped, the keys outside the layers in the spatial pass only."""
    name = _canonical(key)
    m = _STAGE.match(name) if name is not None else None
    if m is None:
        return name if stage == "spatial" else None
    return "layers." + name[m.end():] if m.group(1) == stage else None


def hf_videoprism_to_vidbench(state: Dict[str, Any]) -> Dict[str, Any]:
    """HF VideoPrism state dict (vision model, classifier, or the vision part of the Clip / Video
    models) -> vidbench `VideoPrism` state dict."""
    out: Dict[str, Any] = {}
    for stage, blocks in (("spatial", "blocks"), ("temporal", "temporal_blocks")):
        part, qkv = hf_layers_to_vidbench(state, "HF VideoPrism", lambda key, s=stage: _stage_key(key, s),
                                          _FIXED if stage == "spatial" else {}, _LAYER, _LAYER_PARTS, _qkv_piece)
        for (i, kind), parts in sorted(qkv.items()):
            if set(parts) != {"q", "k", "v"}:
                raise ValueError(f"{stage} layer {i}: attention {kind} has only {''.join(sorted(parts))} of q, k, v")
            part[f"blocks.{i}.attn.qkv.{kind}"] = fuse_qkv([parts[c] for c in "qkv"])
        out.update({(blocks + k[len("blocks"):] if k.startswith("blocks.") else k): v for k, v in part.items()})
    for kind in ("weight", "bias"):  # the pooler's k and v: vidbench's fused kv
        k, v = out.pop(f"pool.k.{kind}", None), out.pop(f"pool.v.{kind}", None)
        if (k is None) != (v is None):
            raise ValueError(f"the pooling head has a {'k' if v is None else 'v'} {kind} without the other")
        if k is not None:
            out[f"pool.kv.{kind}"] = fuse_qkv([k, v])
    for name in list(out):
        if _is_norm_weight(name):  # HF's LayerNorm computes with weight + 1
            out[name] = torch.as_tensor(out[name]) + 1
    return out


def sniff(source: Source) -> bool:
    return source.kind == "hf-dir" and (source.config or {}).get("model_type") in MODEL_TYPES


def _vision_config(source: Source) -> Dict[str, Any]:
    cfg = source.config or {}
    if cfg.get("model_type") == "videoprism":
        vision = cfg.get("vision_config")
        if not isinstance(vision, dict):
            raise source.error("config.json (model_type videoprism) has no vision_config")
        return vision
    return cfg


def _size(value: Any, source: Source) -> Tuple[int, int]:
    try:
        return to_2tuple(value)
    except ValueError as err:
        raise source.error(f"config.json image_size={value!r}: {err}") from None


def infer(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    cfg = _vision_config(source)
    act = cfg.get("hidden_act", "gelu_python")
    if act not in _ACTS:
        raise source.error(f"hidden_act {act!r} is not supported by vidbench's VideoPrism (supported: "
                           f"{', '.join(_ACTS)})")
    hidden = int(cfg.get("hidden_size", 768))
    if hidden < 1:  # the ratio below divides by it; the model config checks every other size
        raise source.error(f"config.json: hidden_size must be >= 1, got {hidden}")
    inter = int(cfg.get("intermediate_size", 3072))
    if int(hidden * (inter / hidden)) != inter:
        raise source.error(f"config.json: intermediate_size {inter} is not a ratio vidbench can express of "
                           f"hidden_size {hidden}")
    tubelet = tuple(int(v) for v in cfg.get("tubelet_size", (1, 18, 18)))
    if len(tubelet) != 3 or tubelet[0] != 1 or tubelet[1] != tubelet[2]:
        raise source.error(f"config.json: tubelet_size {list(tubelet)}: vidbench's VideoPrism takes per-frame "
                           "square patches (1, p, p)")
    names = {n for n in map(_canonical, source.state) if n is not None}
    classifier = "classifier.weight" in names
    if classifier != ("head.q_proj.weight" in names):
        raise source.error("holds a classifier without the attention-pooling head or the reverse")
    dropped = sorted({k.split(".")[0] if k.startswith("text_model.") else ".".join(k.split(".")[:2])
                      for k in source.state if k.startswith(_NOT_LOADED)})
    if dropped:
        log.warning("%s: VideoPrism video-text checkpoint: loading its vision encoder only (%s not loaded)",
                    source.path, ", ".join(dropped))
    num_classes = int(source.shape(next(k for k in source.state if _canonical(k) == "classifier.weight"))[0]) \
        if classifier else 0
    labels = (source.config or {}).get("id2label") or {}
    if num_classes and labels and len(labels) != num_classes:
        raise source.error(f"config.json has {len(labels)} labels but the classifier {num_classes} outputs")
    h, w = _size(cfg.get("image_size", 288), source)
    cap = cfg.get("attn_logit_softcapping", 50.0)
    config: Dict[str, Any] = {
        "img_size": h if h == w else (h, w),
        "num_frames": int(cfg.get("num_frames", 16)),
        "patch_size": tubelet[1],
        "in_chans": int(cfg.get("num_channels", 3)),
        "embed_dim": hidden,
        "depth": int(cfg.get("num_spatial_layers", 12)),
        "temporal_depth": int(cfg.get("num_temporal_layers", 4)),
        "num_heads": int(cfg.get("num_attention_heads", 12)),
        "mlp_ratio": inter / hidden,
        "qkv_bias": bool(cfg.get("qkv_bias", True)),
        "softcap": None if cap is None else float(cap),
        "norm_eps": float(cfg.get("layer_norm_eps", 1e-6)),
        "act_layer": _ACTS[act],
        "pool": "attention" if classifier else "mean",
        "pool_dim": inter,
        "num_classes": num_classes,
        "drop_rate": float(cfg.get("hidden_dropout_prob", 0.0)),
        "attn_drop_rate": float(cfg.get("attention_probs_dropout_prob", 0.0)),
    }
    default = _SIZES.get((hidden, config["depth"], config["temporal_depth"]), "videoprism_base")
    return pick_model(source, model, "videoprism", default), config


def convert(source: Source, model: Any) -> Dict[str, Any]:
    with converting(source):
        return hf_videoprism_to_vidbench(source.state)


def preprocess(source: Source) -> Dict[str, Any]:
    """The released models' protocol: the whole frame resized to the model's size (no crop) and RGB
    in [0, 1] (mean 0, std 1). A processor config in the directory is not read for the
    normalisation: `VideoPrismProcessor` passes do_normalize=False and size 288 x 288 at call time
    over what its video processor's file says (LlavaOnevision's defaults: CLIP mean / std)."""
    h, _ = _size(_vision_config(source).get("image_size", 288), source)
    return {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "crop_size": h, "resize_size": h}


register_format(WeightsFormat(
    "hf-videoprism", "Hugging Face VideoPrism directory (VideoPrismVisionModel / VideoPrismForVideoClassification; "
    "VideoPrismClipModel / VideoPrismVideoModel: vision encoder only)",
    sniff, infer, convert, families=("videoprism",), preprocess=preprocess, class_names=hf_class_names))
