"""MoCo v3's released ViT checkpoints (facebookresearch/moco-v3 `main_moco.py`: `vit-s-300ep.pth.tar`,
`vit-b-300ep.pth.tar`): `{'epoch', 'arch', 'state_dict', 'optimizer', 'scaler'}`, the state dict of
the DDP-wrapped `MoCo_ViT` with keys `module.base_encoder.*`, `module.momentum_encoder.*` and
`module.predictor.*`.

The backbone is `base_encoder` without its `head` (the projection MLP that replaced the classifier),
as moco-v3's `main_lincls.py` and `convert_to_deit.py` take it; below that prefix the keys are
timm's `VisionTransformer` names (vits.py `VisionTransformerMoCo`: fixed 2-D sin-cos `pos_embed`,
class token, fused qkv with bias), read by formats.timm_vit. The momentum encoder, the predictor
and the projection head are pretraining parts and are not loaded (checked by name: any other key
is refused). The conv-stem variants (`vit_conv_*`, `patch_embed.proj.N`) are refused.

Heads: MoCo v3's `vit_small` has 12 heads (not DeiT-S's 6), `vit_base` 12; `num_heads=` overrides.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from ..source import Source
from ._util import DROP, rename_keys
from .timm_vit import register_rewrite

__all__ = ["mocov3_to_timm", "MOCOV3_HEADS"]

StateDict = Dict[str, Any]
MOCOV3_HEADS = {384: 12, 768: 12}  # vits.py vit_small / vit_base
_PREFIXES = ("module.base_encoder.", "base_encoder.")
_PRETRAINING = ("module.momentum_encoder.", "momentum_encoder.", "module.predictor.", "predictor.")


def _rename(key: str) -> Optional[str]:
    if key.startswith(_PRETRAINING):
        return DROP
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            rest = key[len(prefix):]
            return DROP if rest.startswith("head.") else rest
    return None


def mocov3_to_timm(state: StateDict) -> StateDict:
    """A MoCo v3 state dict -> its base encoder in timm's names, projection head left out."""
    out = rename_keys(state, _rename, "MoCo v3")
    if any(k.startswith("patch_embed.proj.") and k.count(".") > 2 for k in out):
        raise ValueError("MoCo v3 conv-stem ViT (vit_conv_*: patch_embed.proj is a conv stack), which vidbench's "
                         "ViT does not support")
    return out


def sniff(source: Source) -> bool:
    return source.kind == "torch" and any(source.has(f"{p}blocks.0.attn.qkv.weight") for p in _PREFIXES)


register_rewrite("mocov3-official", "MoCo v3 ViT training checkpoint (vit-*-300ep.pth.tar: module.base_encoder.*)",
                 sniff, mocov3_to_timm, MOCOV3_HEADS)
