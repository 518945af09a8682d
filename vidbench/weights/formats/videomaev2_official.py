"""The official VideoMAE V2 checkpoints (OpenGVLab/VideoMAEv2, `models/modeling_finetune.py`), the
same layout as the official VideoMAE ones (MCG-NJU/VideoMAE): `torch.save({"model": ...})`, or
DeepSpeed's `{"module": ...}` (what `run_class_finetuning.py --model_key model|module` reads),
e.g. the distilled `vit_s_k710_dl_from_giant.pth` / `vit_b_k710_dl_from_giant.pth`.

Keys, and vidbench's VideoMAE names:

    patch_embed.proj.*  (Conv3d, (D, C, tubelet, p, p))   patch_embed.proj.*
    blocks.N.norm1.*, norm2.*, attn.qkv.weight, attn.proj.*, mlp.fc1.*, mlp.fc2.*   the same
    blocks.N.attn.q_bias, blocks.N.attn.v_bias            blocks.N.attn.qkv.bias = [q; 0; v]
                                                          (the official forward's cat(q_bias, 0, v_bias))
    fc_norm.* (mean pooling) or norm.* (first token)      the same
    head.*                                                head.*

The fixed sinusoid table is a plain tensor attribute there, not in the state dict; vidbench
rebuilds it. What vidbench's VideoMAE cannot hold is refused by name: a learned `pos_embed`
(use_learnable_pos_emb), layer scale (`gamma_1` / `gamma_2`, init_values > 0; the released
models have none) and cosine attention (`attn.scale`, cos_attn=True).

The file records no heads count, frames or image size: `num_heads=` if given, else the registry
model of that width and depth (ViT-S 6, B 12, L 16, H 16, g 16 heads), else `embed_dim // 64`;
frames and size are the official configs' 16 x 224 unless `num_frames=` / `img_size=` say
otherwise. LayerNorm epsilon 1e-6 (`partial(nn.LayerNorm, eps=1e-6)` in every official size).
"""
from __future__ import annotations

import re
from typing import Any, Dict, Optional

import torch

from ...models import create_model
from .._registry import Inferred, WeightsFormat, register_format
from ..source import Source
from ._util import count_indexed, fuse_qkv, pick_model, source_errors

__all__ = ["OFFICIAL_NAMES", "videomaev2_official_to_vidbench", "encoder_config", "size_model", "heads"]

_WHAT = "official VideoMAE V2"
_BLOCK = re.compile(r"blocks\.(\d+)\.(.+)$")
_BLOCK_SAME = {f"{m}.{leaf}" for m in ("norm1", "norm2", "attn.proj", "mlp.fc1", "mlp.fc2") for leaf in ("weight", "bias")}
_BLOCK_SAME.add("attn.qkv.weight")
_TOP = {f"{m}.{leaf}" for m in ("patch_embed.proj", "fc_norm", "norm", "head") for leaf in ("weight", "bias")}
_REFUSED = {"gamma_1": "layer scale (init_values > 0), which vidbench's VideoMAE does not have",
            "gamma_2": "layer scale (init_values > 0), which vidbench's VideoMAE does not have",
            "attn.scale": "cosine attention (cos_attn=True), which vidbench's VideoMAE does not have"}
# (width, depth) -> the registry model of the official sizes (vit_{small,base,large,huge}_patch16_224,
# vit_giant_patch14_224), and vidbench's CPU config
_SIZES = {(384, 12): "videomae_small", (768, 12): "videomae_base", (1024, 24): "videomae_large",
          (1280, 32): "videomae_huge", (1408, 40): "videomae_v2_giant", (192, 4): "videomae_tiny"}


def videomaev2_official_to_vidbench(state: Dict[str, Any]) -> Dict[str, Any]:
    """Official VideoMAE / VideoMAE V2 `VisionTransformer` state dict -> vidbench `VideoMAE`."""
    out: Dict[str, Any] = {}
    biases: Dict[str, Dict[str, Any]] = {}
    for key, value in state.items():
        if key in _TOP:
            out[key] = value
            continue
        if key == "pos_embed":
            raise ValueError("pos_embed: a learned position table (use_learnable_pos_emb=True); vidbench's VideoMAE "
                             "has the fixed sinusoid table only")
        m = _BLOCK.match(key)
        rest = m.group(2) if m else ""
        if rest in _REFUSED:
            raise ValueError(f"{key}: {_REFUSED[rest]}")
        if rest in ("attn.q_bias", "attn.v_bias"):
            biases.setdefault(m.group(1), {})[rest[5]] = value
        elif rest in _BLOCK_SAME:
            out[key] = value
        else:
            raise ValueError(f"{_WHAT} key not known to vidbench's converter: {key}")
    for i, got in biases.items():
        if set(got) != {"q", "v"}:
            raise ValueError(f"blocks.{i}: a q bias without a v bias or the reverse")
        q = torch.as_tensor(got["q"])
        out[f"blocks.{i}.attn.qkv.bias"] = fuse_qkv([q, torch.zeros_like(q), got["v"]])  # no k bias
    return out


def sniff(source: Source) -> bool:
    """A 3-D tubelet stem, plain ViT blocks with q / v biases or an fc_norm, and nothing of the
    other video ViT layouts (cls token, position tables, pooling, relative positions, `model.` /
    `backbone.` prefixes)."""
    if source.kind not in ("torch", "safetensors") or not source.has("patch_embed.proj.weight",
                                                                      "blocks.0.attn.qkv.weight",
                                                                      "blocks.0.mlp.fc1.weight"):
        return False
    if len(source.shape("patch_embed.proj.weight")) != 5:
        return False
    if not (source.has("blocks.0.attn.q_bias") or source.has("fc_norm.weight")):
        return False
    return not any(k in ("cls_token", "pos_embed_spatial") or ".attn.pool_" in k or "rel_pos" in k
                   or re.match(r"blocks\.\d+\.proj\.", k) for k in source.state)


OFFICIAL_NAMES = {"stem": "patch_embed.proj.weight", "blocks": "blocks.", "fc1": "blocks.0.mlp.fc1.weight",
                  "fc_norm": "fc_norm.weight", "norm": "norm.weight", "q_bias": "blocks.0.attn.q_bias"}


def encoder_config(source: Source, names: Dict[str, str]) -> Dict[str, Any]:
    """What the tensors of a VideoMAE encoder say: tubelet, channels, width, depth, MLP ratio,
    pooling, q / v biases. `names`: the keys of OFFICIAL_NAMES in the file's layout (the official
    one, or another holding the same modules: mmaction2's `VisionTransformer`)."""
    proj = source.shape(names["stem"])  # (D, C, t, p, p)
    if len(proj) != 5 or proj[3] != proj[4]:
        raise source.error(f"{names['stem']} {proj}: expected a square (D, C, t, p, p) tubelet")
    dim, hidden = proj[0], source.shape(names["fc1"])[0]
    if int(dim * (hidden / dim)) != hidden:
        raise source.error(f"MLP width {hidden} is not a ratio vidbench's Mlp reproduces for width {dim}")
    mean_pooling = source.has(names["fc_norm"])
    if mean_pooling == source.has(names["norm"]):
        raise source.error(f"expected exactly one of {names['fc_norm']} (mean pooling) and {names['norm']} (first token)")
    return {"tubelet_size": (proj[2], proj[3], proj[3]), "in_chans": proj[1], "embed_dim": dim,
            "depth": count_indexed(source.state, re.escape(names["blocks"]) + r"(\d+)\."), "mlp_ratio": hidden / dim,
            "qkv_bias": source.has(names["q_bias"]), "use_mean_pooling": mean_pooling,
            "norm_eps": 1e-6, "fc_norm_eps": 1e-6}  # partial(nn.LayerNorm, eps=1e-6); mmaction2's LN eps 1e-6


def size_model(source: Source, model: Optional[str], dim: int, depth: int) -> str:
    """The requested model, else the registry model of the official size with that width and depth."""
    return pick_model(source, model, "videomae", _SIZES.get((dim, depth), "videomae_base"))


def heads(model: Optional[str], dim: int, depth: int, overrides: Dict[str, Any]) -> int:
    """Heads are in no tensor shape: `num_heads=`, else the requested model's where its width is
    `dim`, else the registry's of that width and depth, else dim // 64."""
    if overrides.get("num_heads"):
        return int(overrides["num_heads"])
    for name in ([model] if model else []) + [_SIZES.get((dim, depth))]:
        if name:
            with torch.device("meta"):
                cfg = create_model(name).config
            if int(cfg.embed_dim) == dim:
                return int(cfg.num_heads)
    return max(dim // 64, 1)


def infer(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    config = encoder_config(source, OFFICIAL_NAMES)
    name = size_model(source, model, config["embed_dim"], config["depth"])
    config.update(img_size=overrides.get("img_size") or 224, num_frames=overrides.get("num_frames") or 16,
                  num_heads=heads(model, config["embed_dim"], config["depth"], overrides),
                  num_classes=source.shape("head.weight")[0] if source.has("head.weight") else 0)
    return name, config


register_format(WeightsFormat(
    "videomaev2-official", "official VideoMAE V2 / VideoMAE fine-tuned .pth (model or module; patch_embed.proj, "
    "blocks.N.attn.q_bias / v_bias, fc_norm, head)", sniff, infer, source_errors(videomaev2_official_to_vidbench),
    families=("videomae",)))
