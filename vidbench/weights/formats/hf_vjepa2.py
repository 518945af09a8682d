"""Hugging Face V-JEPA 2 directories (config.json model_type "vjepa2"), e.g.
facebook/vjepa2-vitl-fpc64-256 and facebook/vjepa2-vitl-fpc16-256-ssv2, into vidbench's `VJEPA2`.

What each HF class's directory loads as:

- `VJEPA2ForVideoClassification` (the released SSv2 / Diving48 probes): the encoder, the
  attentive pooler and the classifier: ``pooling="attentive"``, ``probe_depth`` =
  ``num_pooler_layers``.
- `VJEPA2Model` (the released encoders): the encoder, with ``pooling="mean"`` and no head
  (``num_classes=0``: `forward_features` is HF's ``last_hidden_state``, the pooled features
  their mean); a classifier for it is a fresh probe or head (`reset_classifier`).

Either way the predictor (``predictor.*``, V-JEPA 2's pre-training head, which both classes hold)
is not loaded (a log line says so).

Key layouts: encoder ``[vjepa2.]encoder.layer.N.attention.{query,key,value}`` are fused into
``blocks.N.attn.qkv``, ``attention.proj`` -> ``attn.proj``, norm1 / norm2 / mlp.fc1 / mlp.fc2
keep their names, ``encoder.layernorm`` -> ``norm``; the pooler's self-attention layers
``pooler.self_attention_layers.N.self_attn.{q,k,v}_proj`` fuse into ``pool_blocks.N.attn.qkv``
(``out_proj`` -> ``attn.proj``, ``layer_norm1/2`` -> ``norm1/2``); its cross-attention layer
``pooler.cross_attention_layer.cross_attn.q_proj`` -> ``pool.attn.q``, ``k_proj`` and ``v_proj``
fuse into ``pool.attn.kv``; ``pooler.query_tokens`` -> ``pool.query_tokens``.

Config: crop_size, frames_per_clip, patch_size, tubelet_size, hidden_size, num_hidden_layers,
num_attention_heads, mlp_ratio, layer_norm_eps (every norm, the pooler's included), qkv_bias,
in_chans, num_pooler_layers; hidden_act must be "gelu" (exact). The pooler's MLPs are 4 x wide
whatever mlp_ratio says (HF's `VJEPA2MLP` default), as `probe_mlp_ratio` is. Rotary positions
are no tensor. HF's models take (B, T, C, H, W), vidbench's (B, C, T, H, W).
"""
from __future__ import annotations

import logging
import re
from typing import Any, Dict, Optional

from .._registry import Inferred, WeightsFormat, register_format
from ..source import Source
from ._hf import hf_class_names, hf_preprocess
from ._util import converting, fuse_qkv, pick_model, renamed, unprefixed

log = logging.getLogger("vidbench.weights")

_FIXED = {
    "encoder.embeddings.patch_embeddings.proj.weight": "patch_embed.proj.weight",
    "encoder.embeddings.patch_embeddings.proj.bias": "patch_embed.proj.bias",
    "encoder.layernorm.weight": "norm.weight",
    "encoder.layernorm.bias": "norm.bias",
    "pooler.query_tokens": "pool.query_tokens",
    "classifier.weight": "head.weight",
    "classifier.bias": "head.bias",
}
# (regex of a numbered layer, vidbench's list, its q / k / v names, its other parts)
_ENCODER = (re.compile(r"^encoder\.layer\.(\d+)\.(.+)$"), "blocks",
            {"attention.query.": "q", "attention.key.": "k", "attention.value.": "v"},
            {"norm1.": "norm1.", "norm2.": "norm2.", "attention.proj.": "attn.proj.", "mlp.fc1.": "mlp.fc1.",
             "mlp.fc2.": "mlp.fc2."})
_POOL_BLOCKS = (re.compile(r"^pooler\.self_attention_layers\.(\d+)\.(.+)$"), "pool_blocks",
                {"self_attn.q_proj.": "q", "self_attn.k_proj.": "k", "self_attn.v_proj.": "v"},
                {"layer_norm1.": "norm1.", "layer_norm2.": "norm2.", "self_attn.out_proj.": "attn.proj.",
                 "mlp.fc1.": "mlp.fc1.", "mlp.fc2.": "mlp.fc2."})
_CROSS = "pooler.cross_attention_layer."
_CROSS_PARTS = {"layer_norm1.": "pool.norm1.", "layer_norm2.": "pool.norm2.", "mlp.fc1.": "pool.mlp.fc1.",
                "mlp.fc2.": "pool.mlp.fc2.", "cross_attn.q_proj.": "pool.attn.q."}
_CROSS_KV = {"cross_attn.k_proj.": "k", "cross_attn.v_proj.": "v"}
# vidbench config field: (config.json key, HF's default, type)
_CONFIG = {"num_frames": ("frames_per_clip", 64, int), "in_chans": ("in_chans", 3, int),
           "embed_dim": ("hidden_size", 1024, int), "depth": ("num_hidden_layers", 24, int),
           "num_heads": ("num_attention_heads", 16, int), "mlp_ratio": ("mlp_ratio", 4.0, float),
           "qkv_bias": ("qkv_bias", True, bool), "norm_eps": ("layer_norm_eps", 1e-6, float),
           "attn_drop_rate": ("attention_probs_dropout_prob", 0.0, float)}
# registry name by (width, depth, crop, attentive probe)
_SIZES = {(1024, 24, 256, False): "vjepa2_vitl", (1280, 32, 256, False): "vjepa2_vith",
          (1408, 40, 256, False): "vjepa2_vitg", (1408, 40, 384, False): "vjepa2_vitg_384",
          (1024, 24, 256, True): "vjepa2_vitl_probe", (1408, 40, 384, True): "vjepa2_vitg_384_probe"}


def _name(key: str) -> str:
    return unprefixed(key, "vjepa2.")


def _piece(rest: str, parts: Dict[str, str]) -> Optional[tuple]:
    """(which, "weight" / "bias") of a q / k / v key's layer-relative rest, else None."""
    for prefix, which in parts.items():
        if rest.startswith(prefix):
            return which, rest[len(prefix):]
    return None


def hf_vjepa2_to_vidbench(state: Dict[str, Any]) -> Dict[str, Any]:
    """HF V-JEPA 2 state dict (`VJEPA2Model` or `VJEPA2ForVideoClassification`) -> vidbench
    `VJEPA2` state dict; the predictor is skipped. ValueError on a key it does not know."""
    out: Dict[str, Any] = {}
    fuse: Dict[tuple, Dict[str, Any]] = {}  # (vidbench prefix, "weight" / "bias") -> {"q": ..}
    for key, value in state.items():
        name = _name(key)
        if name.startswith("predictor."):
            continue
        if name in _FIXED:
            out[_FIXED[name]] = value
            continue
        if name.startswith(_CROSS):
            rest = name[len(_CROSS):]
            piece = _piece(rest, _CROSS_KV)
            if piece is not None:
                fuse.setdefault(("pool.attn.kv", piece[1]), {})[piece[0]] = value
                continue
            new = renamed(rest, _CROSS_PARTS)
            if new is None:
                raise ValueError(f"HF V-JEPA 2 key not known to vidbench's converter: {key}")
            out[new] = value
            continue
        for pattern, target, qkv, parts in (_ENCODER, _POOL_BLOCKS):
            m = pattern.match(name)
            if m is None:
                continue
            prefix, rest = f"{target}.{int(m.group(1))}.", m.group(2)
            piece = _piece(rest, qkv)
            if piece is not None:
                fuse.setdefault((prefix + "attn.qkv", piece[1]), {})[piece[0]] = value
                break
            new = renamed(rest, parts)
            if new is None:
                raise ValueError(f"HF V-JEPA 2 key not known to vidbench's converter: {key}")
            out[prefix + new] = value
            break
        else:
            raise ValueError(f"HF V-JEPA 2 key not known to vidbench's converter: {key}")
    for (target, kind), pieces in sorted(fuse.items()):
        order = "kv" if target.endswith(".kv") else "qkv"
        missing = [c for c in order if c not in pieces]
        if missing:
            raise ValueError(f"{target}.{kind}: the checkpoint lacks the {', '.join(missing)} part")
        out[f"{target}.{kind}"] = fuse_qkv([pieces[c] for c in order])
    return out


def sniff(source: Source) -> bool:
    return source.kind == "hf-dir" and (source.config or {}).get("model_type") == "vjepa2"


def _int(cfg: Dict[str, Any], key: str, default: int, source: Source) -> int:
    value = cfg.get(key, default)
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise source.error(f"config.json {key}={value}: vidbench's V-JEPA 2 takes square patches and crops")
        value = value[0]
    return int(value)


def infer(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    cfg = source.config or {}
    act = cfg.get("hidden_act", "gelu")
    if act != "gelu":
        raise source.error(f"hidden_act={act!r}: vidbench's V-JEPA 2 uses the exact GELU ('gelu') only")
    names = {_name(k) for k in source.state}
    if any(n.startswith("predictor.") for n in names):
        log.info("%s: the V-JEPA 2 predictor (pre-training only) is not loaded", source.path)
    head = next((k for k in source.state if _name(k) == "classifier.weight"), None)
    num_classes = int(source.shape(head)[0]) if head is not None else 0
    labels = cfg.get("id2label") or {}
    if num_classes and labels and len(labels) != num_classes:
        raise source.error(f"config.json has {len(labels)} labels but the classifier {num_classes} outputs")
    attentive = "pooler.query_tokens" in names
    probe_depth = len({n.split(".")[2] for n in names if n.startswith("pooler.self_attention_layers.")})
    if attentive and probe_depth != int(cfg.get("num_pooler_layers", probe_depth)):
        raise source.error(f"config.json num_pooler_layers={cfg.get('num_pooler_layers')} but the weights hold "
                           f"{probe_depth} pooler self-attention layers")
    patch, crop = _int(cfg, "patch_size", 16, source), _int(cfg, "crop_size", 256, source)
    config: Dict[str, Any] = {ours: kind(cfg.get(theirs, default)) for ours, (theirs, default, kind) in _CONFIG.items()}
    config.update(img_size=crop, tubelet_size=(int(cfg.get("tubelet_size", 2)), patch, patch),
                  pooling="attentive" if attentive else "mean", probe_depth=probe_depth if attentive else 3,
                  num_classes=num_classes)
    hidden = config["embed_dim"]
    default = _SIZES.get((hidden, config["depth"], crop, attentive), "vjepa2_tiny" if hidden < 512 else "vjepa2_vitl")
    return pick_model(source, model, "vjepa2", default), config


def convert(source: Source, model: Any) -> Dict[str, Any]:
    with converting(source):
        return hf_vjepa2_to_vidbench(source.state)


register_format(WeightsFormat(
    "hf-vjepa2", "Hugging Face V-JEPA 2 directory (VJEPA2ForVideoClassification; VJEPA2Model: the encoder, "
    "mean-pooled, no head); the predictor is not loaded",
    sniff, infer, convert, families=("vjepa2",), preprocess=hf_preprocess, class_names=hf_class_names))
