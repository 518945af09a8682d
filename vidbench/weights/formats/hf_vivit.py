"""Hugging Face ViViT directories (`VivitForVideoClassification` / `VivitModel`, config.json
model_type "vivit"), e.g. google/vivit-b-16x2-kinetics400.

HF ViViT is ViViT Model 1 (joint space-time attention, cls token): the same tubelet Conv3d and
time-major token order as vidbench's `ViViT`, separate q / k / v projections (fused here into
`qkv`), pre-norm blocks, a final LayerNorm and the classifier on the cls token. Differences
carried by the config, not by the converter:

- the MLP activation: HF's `hidden_act` defaults to "gelu_fast", the tanh approximation of GELU
  (as scenic's flax `nn.gelu`), while vidbench's default is the exact GELU: infer sets
  `act_layer="gelu_tanh"` (exact "gelu" checkpoints get "gelu"; anything else is an error);
- `layer_norm_eps` (1e-6 in every published config) becomes `norm_eps`;
- HF takes pixel_values as (B, T, C, H, W); vidbench's models take (B, C, T, H, W).

Both key layouts are read: the Hub's (`vivit.encoder.layer.N.attention.attention.query`, what
`save_pretrained` still writes) and the modular one transformers 5 uses in memory
(`vivit.layers.N.attention.q_proj`). `VivitModel`'s pooler (dense + tanh on the cls token) has no
vidbench counterpart and is not loaded: such a checkpoint loads with `num_classes=0`, whose
forward returns the normalised cls token (HF's `last_hidden_state[:, 0]`).
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

import torch

from ...models import create_model
from .._registry import Inferred, WeightsFormat, register_format
from ..source import Source
from ._hf import HF_VIT_NORMS, HF_VIT_TOP, hf_class_names, hf_layers_to_vidbench, hf_preprocess
from ._util import fuse_qkv, pick_model, source_errors, unprefixed

# HF hidden_act -> vidbench act_layer (transformers.activations.ACT2CLS): the erf GELU, and the
# tanh-approximation family (gelu_fast, gelu_new, gelu_pytorch_tanh are the same formula)
HF_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_python": "gelu",
    "gelu_fast": "gelu_tanh",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_python_tanh": "gelu_tanh",
    "gelu_accurate": "gelu_tanh",
}

# the Hub layout (old ViT-style names) -> the modular names
_OLD_NAMES = (
    (re.compile(r"^encoder\.layer\.(\d+)\."), r"layers.\1."),
    (re.compile(r"\.attention\.attention\.query\."), ".attention.q_proj."),
    (re.compile(r"\.attention\.attention\.key\."), ".attention.k_proj."),
    (re.compile(r"\.attention\.attention\.value\."), ".attention.v_proj."),
    (re.compile(r"\.attention\.output\.dense\."), ".attention.o_proj."),
    (re.compile(r"\.intermediate\.dense\."), ".mlp.fc1."),
    (re.compile(r"\.output\.dense\."), ".mlp.fc2."),
)
_FIXED = {**HF_VIT_TOP, "embeddings.cls_token": "cls_token", "embeddings.position_embeddings": "pos_embed"}
_LAYER = re.compile(r"^layers\.(\d+)\.(.+)$")
_LAYER_PARTS = {
    **HF_VIT_NORMS,
    "attention.o_proj.": "attn.proj.",
    "mlp.fc1.": "mlp.fc1.",
    "mlp.fc2.": "mlp.fc2.",
}


def _modular(key: str) -> str:
    """A checkpoint key without the `vivit.` prefix, in the modular layout."""
    key = unprefixed(key, "vivit.")
    for pattern, new in _OLD_NAMES:
        key = pattern.sub(new, key)
    return key


def _canonical(key: str) -> Optional[str]:
    """`_modular(key)`, None for VivitModel's pooler (not part of vidbench's ViViT)."""
    key = _modular(key)
    return None if key.startswith("pooler.") else key


def _qkv_piece(rest: str) -> Optional[Tuple[str, str]]:
    m = re.match(r"^attention\.([qkv])_proj\.(weight|bias)$", rest)
    return (m.group(1), m.group(2)) if m else None


def hf_vivit_to_vidbench(state: Dict[str, Any]) -> Dict[str, Any]:
    """HF ViViT state dict (either layout) -> vidbench `ViViT` (Model 1) state dict."""
    out, qkv = hf_layers_to_vidbench(state, "HF ViViT", _canonical, _FIXED, _LAYER, _LAYER_PARTS, _qkv_piece)
    for (i, kind), parts in sorted(qkv.items()):
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"layer {i}: attention {kind} has only {''.join(sorted(parts))} of q, k, v")
        out[f"blocks.{i}.attn.qkv.{kind}"] = fuse_qkv([parts[c] for c in "qkv"])
    return out


def sniff(source: Source) -> bool:
    return source.kind == "hf-dir" and bool(source.config) and source.config.get("model_type") == "vivit"


def act_layer_from_hf(source: Source, hidden_act: Any) -> str:
    if hidden_act not in HF_ACTIVATIONS:
        raise source.error(f"hidden_act {hidden_act!r} is not supported by vidbench's ViViT (supported: "
                           f"{', '.join(HF_ACTIVATIONS)})")
    return HF_ACTIVATIONS[hidden_act]


def _pair(value: Any) -> Tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def infer(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    cfg = source.config or {}
    hidden = int(cfg.get("hidden_size", 768))
    if hidden < 1:  # the ratios below divide by it; the model config checks every other size
        raise source.error(f"config.json: hidden_size must be >= 1, got {hidden}")
    inter = int(cfg.get("intermediate_size", 3072))
    h, w = _pair(cfg.get("image_size", 224))
    tubelet = tuple(int(v) for v in cfg.get("tubelet_size", (2, 16, 16)))
    if len(tubelet) != 3:
        raise source.error(f"config.json: tubelet_size {tubelet} is not (t, h, w)")
    mlp_ratio = inter / hidden
    if int(hidden * mlp_ratio) != inter:
        raise source.error(f"config.json: intermediate_size {inter} is not a ratio vidbench can express of "
                           f"hidden_size {hidden}")
    head = next((k for k in source.state if _canonical(k) == "classifier.weight"), None)
    config: Dict[str, Any] = {
        "attention_type": "joint",
        "classifier": "token",
        "img_size": h if h == w else (h, w),
        "num_frames": int(cfg.get("num_frames", 32)),
        "tubelet_size": tubelet,
        "in_chans": int(cfg.get("num_channels", 3)),
        "embed_dim": hidden,
        "depth": int(cfg.get("num_hidden_layers", 12)),
        "num_heads": int(cfg.get("num_attention_heads", 12)),
        "mlp_ratio": mlp_ratio,
        "qkv_bias": bool(cfg.get("qkv_bias", True)),
        "num_classes": int(source.shape(head)[0]) if head else 0,
        "act_layer": act_layer_from_hf(source, cfg.get("hidden_act", "gelu_fast")),
        "norm_eps": float(cfg.get("layer_norm_eps", 1e-6)),
        "drop_rate": float(cfg.get("hidden_dropout_prob", 0.0)),
        "attn_drop_rate": float(cfg.get("attention_probs_dropout_prob", 0.0)),
    }
    default = "vivit_m1_tiny" if (hidden, config["depth"]) == (192, 4) else "vivit_m1_base"
    name = pick_model(source, model, "vivit", default)
    check_variant(source, name, "joint")
    return name, config


def check_variant(source: Source, name: str, attention_type: str) -> None:
    """A requested ViViT registry model must be the checkpoint's model type (1 vs 2 vs 3 / 4)."""
    with torch.device("meta"):
        want = create_model(name).config.attention_type
    if want != attention_type:
        raise source.error(f"holds a ViViT {attention_type} checkpoint (Model {_MODEL_NUMBER[attention_type]}), "
                           f"but {name} is ViViT {want} (Model {_MODEL_NUMBER[want]})")


_MODEL_NUMBER = {"joint": 1, "factorised_encoder": 2, "factorised_self_attention": 3, "factorised_dot_product": 4}


convert = source_errors(hf_vivit_to_vidbench)


def hf_pixel_normalisation(pre: Dict[str, Any]) -> Tuple[List[float], List[float]]:
    """The mean / std on [0, 1] pixels equivalent to a `VivitImageProcessor` config.

    The processor maps a pixel p in [0, 255] to ((p * r - offset) - m) / s (rescale by
    `rescale_factor` r, subtract 1 if `offset`, then normalise by image_mean m, image_std s if
    `do_normalize`). With u = p / 255 that is (u - (offset + m) / (255 r)) / (s / (255 r)): mean
    (offset + m) / (255 r), std s / (255 r). The defaults (r = 1/127.5, offset, m = s = 0.5) give
    mean 0.75, std 0.25, i.e. inputs in [-3, 1]; rescaling alone to [-1, 1] (scenic's
    zero-centering, what the weights were trained with) is mean 0.5, std 0.5.
    """
    r = float(pre.get("rescale_factor", 1 / 127.5)) if pre.get("do_rescale", True) else 1.0
    offset = 1.0 if pre.get("offset", True) else 0.0
    if pre.get("do_normalize", True):
        m = pre.get("image_mean", [0.5, 0.5, 0.5])
        s = pre.get("image_std", [0.5, 0.5, 0.5])
    else:
        m, s = 0.0, 1.0
    m = [float(v) for v in m] if isinstance(m, (list, tuple)) else [float(m)] * 3
    s = [float(v) for v in s] if isinstance(s, (list, tuple)) else [float(s)] * 3
    mean = [(offset + mi) / (255 * r) for mi in m]
    std = [si / (255 * r) for si in s]
    return mean, std


def preprocess(source: Source) -> Dict[str, Any]:
    """`VivitImageProcessor`: its offset rescale and normalisation as mean / std on [0, 1] pixels."""
    return hf_preprocess(source, normalisation=hf_pixel_normalisation)


register_format(WeightsFormat(
    "hf-vivit", "Hugging Face ViViT directory (VivitForVideoClassification / VivitModel; Model 1)",
    sniff, infer, convert, families=("vivit",), preprocess=preprocess, class_names=hf_class_names))
