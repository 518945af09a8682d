"""Hugging Face VideoMAE directories (config.json model_type "videomae"), e.g.
MCG-NJU/videomae-base-finetuned-kinetics, into vidbench's `VideoMAE`.

What each HF class's directory loads as:

- `VideoMAEForVideoClassification`: everything, the head included. `use_mean_pooling` True
  (every fine-tuned Kinetics checkpoint): mean of the tokens, `fc_norm`, classifier; False: the
  encoder's final `layernorm` and the first token.
- `VideoMAEModel` (no head): loads with `num_classes=0`. `forward_features` is HF's
  `last_hidden_state`. With `use_mean_pooling` True HF's model has no norm after the blocks and
  no pooled output, while vidbench's mean pooling needs `fc_norm`: the converter adds it as a
  fresh identity LayerNorm (weight 1, bias 0, what a new fine-tune starts from).
- `VideoMAEForPreTraining` (MCG-NJU/videomae-base, ...): its encoder only, as a `VideoMAEModel`
  directory; the decoder, `encoder_to_decoder` and `mask_token` are not loaded (a warning says
  so). The Hub's pre-training configs have `use_mean_pooling` False, so the encoder ends in its
  final norm, as the official pre-training encoder does.

Key layouts: `save_pretrained` (and the Hub) store the q / v biases as
`attention.attention.q_bias` / `v_bias`, transformers 5 holds them in memory as `query.bias` /
`value.bias`; both are read. `key` has no bias: the k third of the fused `qkv.bias` is written as
zeros (see vidbench/models/videomae.py on why a k bias is inert).

Config: image_size, patch_size, num_frames, tubelet_size, hidden_size, num_hidden_layers,
num_attention_heads, intermediate_size, qv_bias (older configs: qkv_bias), use_mean_pooling,
layer_norm_eps (-> `norm_eps`; HF's default 1e-12, the official code's 1e-6), num_channels,
dropouts. HF builds `fc_norm` with torch's default eps 1e-5 whatever the config says, so
`fc_norm_eps` is 1e-5 here. `hidden_act` must be "gelu" (exact). Decoder sizes and
`norm_pix_loss` are pre-training settings and ignored. The sinusoidal positions are no tensor
in the file: a checkpoint loaded at other `num_frames` / `img_size` gets the table of its new
token count, as the official code builds it. HF's models take (B, T, C, H, W), vidbench's
(B, C, T, H, W).
"""
from __future__ import annotations

import logging
import re
from typing import Any, Dict, Optional, Tuple

import torch

from .._registry import Inferred, WeightsFormat, register_format
from ..source import Source
from ._hf import HF_VIT_NORMS, HF_VIT_TOP, hf_class_names, hf_layers_to_vidbench, hf_preprocess
from ._util import converting, fuse_qkv, pick_model, unprefixed

log = logging.getLogger("vidbench.weights")

HF_FC_NORM_EPS = 1e-5  # VideoMAEForVideoClassification: nn.LayerNorm(hidden_size), torch's default eps
_PRETRAINING = ("decoder.", "encoder_to_decoder.", "mask_token")
_FIXED = {**HF_VIT_TOP, "fc_norm.weight": "fc_norm.weight", "fc_norm.bias": "fc_norm.bias"}
_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
_LAYER_PARTS = {
    **HF_VIT_NORMS,
    "attention.output.dense.": "attn.proj.",
    "intermediate.dense.": "mlp.fc1.",
    "output.dense.": "mlp.fc2.",
}
# q / k / v pieces: (which, weight or bias) for both layouts
_QKV = {
    "attention.attention.query.weight": ("q", "weight"), "attention.attention.key.weight": ("k", "weight"),
    "attention.attention.value.weight": ("v", "weight"), "attention.attention.query.bias": ("q", "bias"),
    "attention.attention.q_bias": ("q", "bias"), "attention.attention.key.bias": ("k", "bias"),
    "attention.attention.value.bias": ("v", "bias"), "attention.attention.v_bias": ("v", "bias"),
}
# registry name by (width, depth)
_SIZES = {(384, 12): "videomae_small", (768, 12): "videomae_base", (1024, 24): "videomae_large",
          (1280, 32): "videomae_huge", (192, 4): "videomae_tiny"}


def _name(key: str) -> str:
    return unprefixed(key, "videomae.")


def is_pretraining(state: Dict[str, Any]) -> bool:
    return any(k.startswith(_PRETRAINING) for k in state)


def hf_videomae_to_vidbench(state: Dict[str, Any], mean_pooling: bool) -> Dict[str, Any]:
    """HF VideoMAE state dict (either bias layout, with or without the `videomae.` prefix) ->
    vidbench `VideoMAE` state dict. A pre-training checkpoint's decoder is skipped; a missing
    fc_norm under mean pooling (headless checkpoints) is added as an identity LayerNorm."""
    out, qkv = hf_layers_to_vidbench(state, "HF VideoMAE", lambda key: None if key.startswith(_PRETRAINING) else
                                     _name(key), _FIXED, _LAYER, _LAYER_PARTS, _QKV.get)
    for i in sorted({i for i, _ in qkv}):
        weights, biases = qkv.get((i, "weight"), {}), qkv.get((i, "bias"), {})
        missing = [c for c in "qkv" if c not in weights]
        if missing:
            raise ValueError(f"layer {i}: attention weights lack {', '.join(missing)}")
        out[f"blocks.{i}.attn.qkv.weight"] = fuse_qkv([weights[c] for c in "qkv"])
        q, v = biases.get("q"), biases.get("v")
        if (q is None) != (v is None):
            raise ValueError(f"layer {i}: a q bias without a v bias or the reverse (VideoMAE has both or neither)")
        if q is not None:
            k = biases.get("k", torch.zeros_like(torch.as_tensor(q)))  # VideoMAE has no k bias
            out[f"blocks.{i}.attn.qkv.bias"] = fuse_qkv([q, k, v])
    if mean_pooling and "fc_norm.weight" not in out and "patch_embed.proj.weight" in out:
        width = out["patch_embed.proj.weight"].shape[0]
        ref = out["patch_embed.proj.weight"]
        out["fc_norm.weight"] = torch.ones(width, dtype=ref.dtype, device=ref.device)
        out["fc_norm.bias"] = torch.zeros(width, dtype=ref.dtype, device=ref.device)
    return out


def sniff(source: Source) -> bool:
    return source.kind == "hf-dir" and (source.config or {}).get("model_type") == "videomae"


def _pair(value: Any, source: Source, what: str) -> Tuple[int, int]:
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise source.error(f"config.json {what}={value}: expected an int or [h, w]")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def infer(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    cfg = source.config or {}
    act = cfg.get("hidden_act", "gelu")
    if act != "gelu":
        raise source.error(f"hidden_act={act!r}: vidbench's VideoMAE uses the exact GELU ('gelu') only")
    hidden = int(cfg.get("hidden_size", 768))
    if hidden < 1:  # the ratios below divide by it; the model config checks every other size
        raise source.error(f"config.json: hidden_size must be >= 1, got {hidden}")
    inter = int(cfg.get("intermediate_size", 3072))
    mlp_ratio = inter / hidden
    if int(hidden * mlp_ratio) != inter:
        raise source.error(f"config.json: intermediate_size {inter} is not a ratio vidbench can express of "
                           f"hidden_size {hidden}")
    h, w = _pair(cfg.get("image_size", 224), source, "image_size")
    ph, pw = _pair(cfg.get("patch_size", 16), source, "patch_size")
    names = {_name(k) for k in source.state if not k.startswith(_PRETRAINING)}
    head = "classifier.weight"
    num_classes = int(source.shape(next(k for k in source.state if _name(k) == head))[0]) if head in names else 0
    labels = cfg.get("id2label") or {}
    if num_classes and labels and len(labels) != num_classes:
        raise source.error(f"config.json has {len(labels)} labels but the classifier {num_classes} outputs")
    mean_pooling = bool(cfg.get("use_mean_pooling", True))
    if (mean_pooling and "layernorm.weight" in names) or (not mean_pooling and "fc_norm.weight" in names):
        raise source.error(f"config.json use_mean_pooling={mean_pooling} does not match the weights "
                           "(a final 'layernorm' belongs to use_mean_pooling=False, 'fc_norm' to True)")
    if is_pretraining(source.state):
        log.warning("%s: VideoMAEForPreTraining checkpoint: loading its encoder only (decoder, "
                    "encoder_to_decoder and mask_token are not loaded)", source.path)
    qv_bias = cfg.get("qv_bias", cfg.get("qkv_bias", True))
    config: Dict[str, Any] = {
        "img_size": h if h == w else (h, w),
        "num_frames": int(cfg.get("num_frames", 16)),
        "tubelet_size": (int(cfg.get("tubelet_size", 2)), ph, pw),
        "in_chans": int(cfg.get("num_channels", 3)),
        "embed_dim": hidden,
        "depth": int(cfg.get("num_hidden_layers", 12)),
        "num_heads": int(cfg.get("num_attention_heads", 12)),
        "mlp_ratio": mlp_ratio,
        "qkv_bias": bool(qv_bias),
        "use_mean_pooling": mean_pooling,
        "norm_eps": float(cfg.get("layer_norm_eps", 1e-12)),
        "fc_norm_eps": HF_FC_NORM_EPS,
        "num_classes": num_classes,
        "drop_rate": float(cfg.get("hidden_dropout_prob", 0.0)),
        "attn_drop_rate": float(cfg.get("attention_probs_dropout_prob", 0.0)),
    }
    default = _SIZES.get((hidden, config["depth"]), "videomae_base")
    return pick_model(source, model, "videomae", default), config


def convert(source: Source, model: Any) -> Dict[str, Any]:
    with converting(source):
        return hf_videomae_to_vidbench(source.state, model.config.use_mean_pooling)


register_format(WeightsFormat(
    "hf-videomae", "Hugging Face VideoMAE directory (VideoMAEForVideoClassification / VideoMAEModel; "
    "VideoMAEForPreTraining: encoder only)",
    sniff, infer, convert, families=("videomae",), preprocess=hf_preprocess, class_names=hf_class_names))
