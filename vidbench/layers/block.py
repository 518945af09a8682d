"""The pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""
from __future__ import annotations

import functools
from typing import Any, Callable, List, Sequence

import torch
from torch import nn

from .attention import Attention
from .mlp import DropPath, Mlp

__all__ = ["Block", "LayerNorm", "drop_path_rates"]

# ViT / timm / scenic LayerNorm epsilon
LayerNorm = functools.partial(nn.LayerNorm, eps=1e-6)


def drop_path_rates(rate: float, depth: int) -> List[float]:
    """Stochastic depth rising linearly from 0 to `rate` over `depth` blocks (timm, scenic)."""
    return [rate * i / max(depth - 1, 1) for i in range(depth)]


class Block(nn.Module):
    """Pre-norm transformer block. Extra keyword arguments of forward (axis, grid, bias) go to
    the attention, so one block class serves joint, space, time and split-head attention.
    `act_layer` builds the MLP activation (default exact GELU; `mlp.get_act_layer`)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        act_layer: Callable[[], nn.Module] = nn.GELU,
    ):
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop, act_layer=act_layer)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: torch.Tensor, **attn_kwargs: Any) -> torch.Tensor:
        x = x + self.drop_path1(self.attn(self.norm1(x), **attn_kwargs))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


def make_blocks(depth: int, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop: float,
                attn_drop: float, drop_path: float, block: Any = Block, **block_kwargs: Any) -> nn.ModuleList:
    """`depth` blocks with linearly rising stochastic depth; `block_kwargs` (e.g. `act_layer`) go
    to every block."""
    rates: Sequence[float] = drop_path_rates(drop_path, depth)
    return nn.ModuleList(
        block(dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop, attn_drop=attn_drop, drop_path=r,
              **block_kwargs)
        for r in rates
    )
