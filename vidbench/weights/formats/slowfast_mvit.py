"""SlowFast MViT v1 / MViTv2 checkpoints (.pyth: {"model_state": ..., "epoch", "optimizer_state", "cfg"}).

SlowFast's `MViT` (slowfast/models/video_model_builder.py, attention.py) keys, and vidbench's:

    patch_embed.proj.*                        patch_embed.proj.*
    cls_token, pos_embed_{spatial,temporal,class} (1, N, C; v1)   the same names and shapes
    blocks.N.norm1.*, norm2.*, mlp.fc1.*, mlp.fc2.*, proj.*       the same
    blocks.N.attn.qkv.*   (MVIT.SEPARATE_QKV False; MViTv2 and the MODEL_ZOO MViT-B 16x4, whose
                           fused layout SlowFast issue 475 reports)  blocks.N.attn.qkv.*
    blocks.N.attn.{q,k,v}.* (SlowFast from July 2021 to MViTv2, pytorchvideo)  concatenated
                           [q; k; v] along the output rows: the order `qkv(x).reshape(B, N, 3,
                           heads, head_dim)` of both SlowFast and vidbench reads them in
    blocks.N.attn.pool_{q,k,v}.weight         blocks.N.attn.pool_{q,k,v}.conv.weight
    blocks.N.attn.norm_{q,k,v}.*              blocks.N.attn.pool_{q,k,v}.norm.*
    blocks.N.attn.proj.*, attn.rel_pos_{h,w,t} (v2)                the same
    norm.*                                    norm.*
    head.projection.*                         head.*

The math is the same module for module (pooling after the q/k/v projection, MVIT.POOL_FIRST
False as in every released config; v2's residual pooling skips the cls token in both).
SlowFast's test-time head ends in a softmax, vidbench returns logits.

What vidbench's MViT cannot hold is refused by name: a joint `pos_embed` table
(SEP_POS_EMBED False), a 2-D stem, and pooling kernels that differ between blocks (configs
without POOL_KVQ_KERNEL, e.g. SlowFast's MVIT_B_32x3_CONV: 24 blocks, K/V kernels derived from
the strides), or blocks without K/V pooling. The structure a checkpoint shows (block count per
stage, widths, heads, pooling kernel, stem kernel, qkv bias) becomes config overrides where it
differs from the registry model's; strides, which no tensor records, come from the model.
"""
from __future__ import annotations

from typing import Any, Dict

from .._registry import register_format
from ..source import Source
from ._mvit import SLOWFAST_TOP, mvit_format, mvit_layout_to_vidbench

__all__ = ["slowfast_mvit_to_vidbench"]

_WHAT = "SlowFast MViT"


def slowfast_mvit_to_vidbench(state: Dict[str, Any]) -> Dict[str, Any]:
    """SlowFast `MViT` state dict (the .pyth's "model_state") -> vidbench `MViT` state dict."""
    return mvit_layout_to_vidbench(state, SLOWFAST_TOP, _WHAT)


def sniff(source: Source) -> bool:
    return (source.kind in ("torch", "safetensors") and source.has("patch_embed.proj.weight", "cls_token")
            and source.has("head.projection.weight")
            and any(k.startswith("blocks.") and ".attn.pool_" in k for k in source.state))


register_format(mvit_format("slowfast-mvit", "SlowFast MViT v1 / MViTv2 .pyth (model_state; fused qkv or separate q/k/v)",
                            sniff, SLOWFAST_TOP, _WHAT))
