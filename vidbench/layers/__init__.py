"""Shared building blocks: the one attention kernel, patch/tubelet embedding, MLP, block."""
from .attention import (
    ATTN_BACKENDS,
    AXES,
    Attention,
    attn_backend,
    check_grid,
    default_attn_backend,
    from_axis,
    fused_attn,
    get_attn_backend,
    scaled_dot_product,
    set_attn_backend,
    set_fused_attn,
    to_axis,
    use_fused_attn,
)
from .block import Block, BlockConfig, LayerNorm, LayerScale, drop_path_rates, make_blocks
from .mlp import DropPath, Mlp, init_weights
from .patch_embed import (
    TUBELET_INITS,
    PatchEmbed,
    TubeletEmbed,
    check_video,
    inflate_patch_weight,
    to_2tuple,
    to_3tuple,
)

__all__ = [
    "ATTN_BACKENDS", "AXES", "Attention", "attn_backend", "default_attn_backend", "get_attn_backend",
    "set_attn_backend", "check_grid", "from_axis", "fused_attn", "scaled_dot_product", "set_fused_attn", "to_axis",
    "use_fused_attn", "Block", "BlockConfig", "LayerNorm", "LayerScale", "drop_path_rates", "make_blocks", "DropPath", "Mlp",
    "init_weights", "TUBELET_INITS", "PatchEmbed", "TubeletEmbed", "check_video", "inflate_patch_weight", "to_2tuple",
    "to_3tuple",
]
