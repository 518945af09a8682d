"""Shared building blocks: the one attention kernel (and MViT's pooling attention on it),
patch/tubelet embedding, MLP, block."""
from .attention import (
    AXES,
    Attention,
    from_axis,
    fused_attn,
    scaled_dot_product,
    set_fused_attn,
    to_axis,
    use_fused_attn,
    window_mask,
)
from .block import Block, LayerNorm, drop_path_rates, make_blocks
from .mlp import DropPath, Mlp, init_weights
from .patch_embed import (
    PatchEmbed,
    TubeletEmbed,
    check_video,
    inflate_patch_weight,
    to_2tuple,
    to_3tuple,
)
from .pool_attention import PoolingAttention, TokenPool, pooled_grid, rel_pos_index

__all__ = [
    "AXES", "Attention", "from_axis", "fused_attn", "scaled_dot_product", "set_fused_attn", "to_axis",
    "use_fused_attn", "window_mask", "Block", "LayerNorm", "drop_path_rates", "make_blocks", "DropPath", "Mlp",
    "init_weights", "PatchEmbed", "TubeletEmbed", "check_video", "inflate_patch_weight", "to_2tuple",
    "to_3tuple", "PoolingAttention", "TokenPool", "pooled_grid", "rel_pos_index",
]
