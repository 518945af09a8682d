"""pytorchvideo MViT checkpoints (`create_multiscale_vision_transformers`; the hub's
`mvit_base_16x4` / `mvit_base_32x3` .pyth files, {"model_state": ...}).

pytorchvideo's blocks are SlowFast's (same names: separate `attn.q/k/v` by default, `attn.pool_q`,
`attn.norm_q`, ...; see `slowfast_mvit`); the modules around them differ:

    patch_embed.patch_model.*                 patch_embed.proj.*
    cls_positional_encoding.cls_token         cls_token
    cls_positional_encoding.pos_embed_{spatial,temporal,class}   pos_embed_{spatial,temporal,class}
    norm_embed.*                              norm.*
    head.proj.*                               head.*

pytorchvideo >= 0.1.5 also saves each pooling conv and norm a second time, as
`attn._attention_pool_{q,k,v}.{pool,norm}.*` (the same tensors): they are read when the plain
names are absent and dropped otherwise. A leading `model.` (SlowFast's `PTVMViT` wrapper,
configs/Kinetics/pytorchvideo) is stripped. pytorchvideo's MViT has no relative positions, so
these are v1 checkpoints. Its `residual_pool` and `pool_first` options leave no trace in the
weights and are read as off, as in the hub models.
"""
from __future__ import annotations

from typing import Any, Dict

from .._registry import register_format
from ..source import Source
from ._mvit import mvit_format, mvit_layout_to_vidbench

__all__ = ["pytorchvideo_mvit_to_vidbench"]

_TOP = {
    "patch_embed.patch_model.weight": "patch_embed.proj.weight",
    "patch_embed.patch_model.bias": "patch_embed.proj.bias",
    "cls_positional_encoding.cls_token": "cls_token",
    "cls_positional_encoding.pos_embed_spatial": "pos_embed_spatial",
    "cls_positional_encoding.pos_embed_temporal": "pos_embed_temporal",
    "cls_positional_encoding.pos_embed_class": "pos_embed_class",
    "norm_embed.weight": "norm.weight",
    "norm_embed.bias": "norm.bias",
    "head.proj.weight": "head.weight",
    "head.proj.bias": "head.bias",
}
_WHAT = "pytorchvideo MViT"


def _unprefixed(state: Dict[str, Any]) -> Dict[str, Any]:
    if state and all(k.startswith("model.") for k in state):
        return {k[len("model."):]: v for k, v in state.items()}
    return state


def pytorchvideo_mvit_to_vidbench(state: Dict[str, Any]) -> Dict[str, Any]:
    """pytorchvideo `MultiscaleVisionTransformers` state dict -> vidbench `MViT` state dict."""
    return mvit_layout_to_vidbench(_unprefixed(state), _TOP, _WHAT)


def sniff(source: Source) -> bool:
    state = _unprefixed(source.state)
    return (source.kind in ("torch", "safetensors") and "patch_embed.patch_model.weight" in state
            and "cls_positional_encoding.cls_token" in state
            and any(k.startswith("blocks.") and (".attn.pool_" in k or "._attention_pool_" in k) for k in state))


register_format(mvit_format("pytorchvideo-mvit",
                            "pytorchvideo MViT .pyth (hub mvit_base_16x4 / mvit_base_32x3; SlowFast PTVMViT)",
                            sniff, _TOP, _WHAT, unwrap=_unprefixed))
