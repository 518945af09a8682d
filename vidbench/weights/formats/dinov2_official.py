"""DINOv2's released backbones (facebookresearch/dinov2, torch hub files `dinov2_vits14_pretrain.pth`,
`dinov2_vitb14_pretrain.pth`, `dinov2_vits14_reg4_pretrain.pth`, ...): plain state dicts of
`DinoVisionTransformer` as `dinov2/hub/backbones.py` builds it (patch 14 at 518 px, layer scale,
`block_chunks=0`, no head).

Keys: `cls_token`, `pos_embed` (1, 1 + 37 * 37, C), `mask_token` (1, C), `register_tokens` (1, 4, C)
in the reg4 files, `patch_embed.proj`, `blocks.N.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2,
mlp.fc1, mlp.fc2, ls2.gamma}`, `norm`. Everything but two keys has timm's and vidbench's name:
`register_tokens` becomes `reg_token` (the registers sit after the class token once the position
embedding is added, as in vidbench's ViT: no position row of their own), and `mask_token` is left
out: it replaces masked patch tokens during pretraining only (`prepare_tokens_with_masks` with
masks), so the released model's forward never reads it (timm's conversion drops it too).
What vidbench's ViT lacks is refused by its key: the SwiGLU MLP of ViT-g (`mlp.w12`), chunked
blocks (`blocks.0.0.`), and timm's other features (formats.timm_vit).

At another input size the position embedding is interpolated as the hub models do it at every
forward (`interpolate_pos_encoding`): bicubic with the scale factor (side + 0.1) / 37 and no
antialiasing for the plain models (`interpolate_offset=0.1`), bicubic to the side with
antialiasing for the reg4 ones (`interpolate_antialias=True, interpolate_offset=0.0`);
weights/resize.py does it once at load time. Heads: the hub's `vit_small` / `vit_base` /
`vit_large` / `vit_giant2` (384: 6, 768: 12, 1024: 16, 1536: 24).
"""
from __future__ import annotations

import re
from typing import Any, Dict, Optional

from .._registry import Inferred, WeightsFormat, register_format
from ..source import Source
from ._util import DROP, converting, count_indexed, pick_model, rename_keys
from .timm_vit import default_heads, to_model_layout, unsupported_feature, vit_config

__all__ = ["dinov2_to_vidbench", "DINOV2_HEADS"]

StateDict = Dict[str, Any]
DINOV2_HEADS = {384: 6, 768: 12, 1024: 16, 1536: 24}
_NAMES = {384: "vit_small_dinov2", 768: "vit_base_dinov2"}
_REFUSED = ((r"\.mlp\.w(12|3)\.", "the SwiGLU MLP (ffn_layer='swiglu', ViT-g)"),
            (r"^blocks\.\d+\.\d+\.", "chunked blocks (block_chunks > 0); save the hub model (block_chunks=0)"))


def _rename(key: str) -> Optional[str]:
    if key == "mask_token":
        return DROP  # pretraining only
    if key == "register_tokens":
        return "reg_token"
    for pattern, what in _REFUSED:
        if re.search(pattern, key):
            raise ValueError(f"DINOv2 key {key} shows {what}, which vidbench's ViT does not support")
    what = unsupported_feature(key)
    if what:
        raise ValueError(f"DINOv2 key {key} shows {what}, which vidbench's ViT does not support")
    return key


def dinov2_to_vidbench(state: StateDict) -> StateDict:
    """An official DINOv2 state dict -> vidbench `VisionTransformer` names (same config)."""
    return rename_keys(state, _rename, "DINOv2")


def sniff(source: Source) -> bool:
    """DINOv2's mask token is (1, C) (MAE's decoder one is (1, 1, C_dec), beside `decoder_*` keys)."""
    if not source.has("cls_token", "pos_embed", "patch_embed.proj.weight") or source.has("decoder_embed.weight"):
        return False
    return source.has("register_tokens") or (source.has("mask_token") and len(source.shape("mask_token")) == 2)


def infer(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    with converting(source):
        state = dinov2_to_vidbench(source.state)
    width = int(source.shape("pos_embed")[-1])
    heads = dict(overrides)
    if not heads.get("num_heads") and model is None and width in DINOV2_HEADS:
        heads["num_heads"] = DINOV2_HEADS[width]
    cfg = vit_config(source, width, source.shape("patch_embed.proj.weight")[2:], int(source.shape("pos_embed")[1]),
                     True, count_indexed(state, r"blocks\.(\d+)\."), source.shape("blocks.0.mlp.fc1.weight")[0],
                     source.has("blocks.0.attn.qkv.bias"), 0, source.shape("patch_embed.proj.weight")[1],
                     default_heads(width, model, heads, source), "token")
    regs = int(source.shape("register_tokens")[1]) if source.has("register_tokens") else 0
    cfg.update(init_values=1e-5 if source.has("blocks.0.ls1.gamma") else None, reg_tokens=regs)
    name = _NAMES.get(width, "vit_base_dinov2") + ("_reg4" if regs == 4 else "")
    return pick_model(source, model, "vit", name), cfg


def convert(source: Source, model: Any) -> StateDict:
    with converting(source):
        return to_model_layout(dinov2_to_vidbench(source.state), model)


register_format(WeightsFormat(
    "dinov2-official", "DINOv2 hub backbone state dict (dinov2_vit*14[_reg4]_pretrain.pth)", sniff, infer, convert,
    families=("vit",)))
