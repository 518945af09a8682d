"""The pre-norm transformer block, x + attn(norm(x)) then x + mlp(norm(x)), built from one
`BlockConfig` (nanoGPT's `Block(config)`): models describe their blocks once and build them with
`make_blocks(cfg, depth, drop_path_rate)`."""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

import torch
from torch import nn

from .attention import Attention
from .mlp import DropPath, Mlp

__all__ = ["Block", "BlockConfig", "LayerNorm", "LayerScale", "drop_path_rates", "make_blocks"]

# ViT / timm / scenic LayerNorm epsilon
LayerNorm = functools.partial(nn.LayerNorm, eps=1e-6)


def drop_path_rates(rate: float, depth: int) -> List[float]:
    """Stochastic depth rising linearly from 0 to `rate` over `depth` blocks (timm, scenic)."""
    return [rate * i / max(depth - 1, 1) for i in range(depth)]


@dataclass(frozen=True)
class BlockConfig:
    """One transformer block. Blocks build their parts from it (`norm`, `attention`, `mlp`), so a
    model's variant blocks (TimeSformer's divided block, ViViT Model 3's) are built like `Block`.

    Args:
        dim: token channels.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / dim.
        qkv_bias: bias in the qkv projection.
        drop: dropout after the attention projection and in the MLP.
        attn_drop: dropout on the attention weights (training only).
        drop_path: stochastic depth of this block (`make_blocks` sets it per block).
        act_layer: builds the MLP activation (default exact GELU; `mlp.get_act_layer`).
        norm_eps: LayerNorm epsilon (ViT / timm / scenic: 1e-6).
        attn_layer: the attention class, called as (dim, num_heads, qkv_bias=, attn_drop=,
            proj_drop=); a paper's own attention (ViViT Model 4's split heads) is injected here.
        init_values: layer scale (CaiT; timm's `LayerScale`, DINOv2's `ls1` / `ls2`): each residual
            branch multiplied by a learned per-channel `gamma` starting at this value; None (the
            default) is no layer scale and no parameter.
    """

    dim: int
    num_heads: int
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop: float = 0.0
    attn_drop: float = 0.0
    drop_path: float = 0.0
    act_layer: Callable[[], nn.Module] = nn.GELU
    norm_eps: float = 1e-6
    attn_layer: Callable[..., nn.Module] = Attention
    init_values: Optional[float] = None

    @classmethod
    def from_model(cls, cfg: Any, **changes: Any) -> BlockConfig:
        """The blocks of a ViT-family model config (fields embed_dim, num_heads, mlp_ratio,
        qkv_bias, drop_rate, attn_drop_rate), with `changes` on top."""
        return cls(dim=cfg.embed_dim, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias,
                   drop=cfg.drop_rate, attn_drop=cfg.attn_drop_rate, **changes)

    def norm(self) -> nn.LayerNorm:
        return nn.LayerNorm(self.dim, eps=self.norm_eps)

    def attention(self) -> nn.Module:
        return self.attn_layer(self.dim, self.num_heads, qkv_bias=self.qkv_bias, attn_drop=self.attn_drop,
                               proj_drop=self.drop)

    def mlp(self) -> Mlp:
        return Mlp(self.dim, int(self.dim * self.mlp_ratio), drop=self.drop, act_layer=self.act_layer)

    def layer_scale(self) -> nn.Module:
        """`LayerScale` at `init_values`, or the identity (no parameter) without layer scale."""
        return nn.Identity() if self.init_values is None else LayerScale(self.dim, self.init_values)


class LayerScale(nn.Module):
    """x * gamma, gamma a learned per-channel scale (timm's `LayerScale`, DINOv2's: parameter `gamma`)."""

    def __init__(self, dim: int, init_values: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block. Extra keyword arguments of forward (axis, grid, bias) go to
    the attention, so one block class serves joint, space and time attention and any injected
    `attn_layer`. The two residual branches are methods of their own for blocks that place them
    differently (TimeSformer's divided block). With layer scale (`init_values`) each branch is
    scaled by `ls1` / `ls2` before its drop path, as in timm and DINOv2; without it they are
    identities and the state dict is unchanged."""

    def __init__(self, cfg: BlockConfig):
        super().__init__()
        self.norm1 = cfg.norm()
        self.attn = cfg.attention()
        self.ls1 = cfg.layer_scale()
        self.drop_path1 = DropPath(cfg.drop_path)
        self.norm2 = cfg.norm()
        self.mlp = cfg.mlp()
        self.ls2 = cfg.layer_scale()
        self.drop_path2 = DropPath(cfg.drop_path)

    def attn_residual(self, x: torch.Tensor, **attn_kwargs: Any) -> torch.Tensor:
        """drop_path(ls1(attn(norm1(x)))): the attention branch, without the skip."""
        return self.drop_path1(self.ls1(self.attn(self.norm1(x), **attn_kwargs)))

    def mlp_residual(self, x: torch.Tensor) -> torch.Tensor:
        """drop_path(ls2(mlp(norm2(x)))): the MLP branch, without the skip."""
        return self.drop_path2(self.ls2(self.mlp(self.norm2(x))))

    def forward(self, x: torch.Tensor, **attn_kwargs: Any) -> torch.Tensor:
        x = x + self.attn_residual(x, **attn_kwargs)
        return x + self.mlp_residual(x)


def make_blocks(cfg: BlockConfig, depth: int, drop_path_rate: float = 0.0,
                block: Callable[[BlockConfig], nn.Module] = Block) -> nn.ModuleList:
    """`depth` blocks of `cfg` with stochastic depth rising linearly to `drop_path_rate`;
    `block` builds one from its config (default `Block`)."""
    return nn.ModuleList(block(dataclasses.replace(cfg, drop_path=r)) for r in drop_path_rates(drop_path_rate, depth))
