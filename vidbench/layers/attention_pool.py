"""Attention pooling: learned query tokens attend to a sequence of tokens through the one kernel,
`scaled_dot_product` (V-JEPA 2's attentive probe; the same shape as CoCa's / SigLIP's attention
pooling head).

- `CrossAttention`: queries from one sequence, keys and values from another. q is its own
  projection (`q`), k and v one fused projection (`kv`, V-JEPA 2's layout); an output
  projection (`proj`) is optional: V-JEPA 2's pooler has none.
- `AttentionPool`: the cross-attention block with its learned queries,

      q = query_tokens (B, Q, C)
      q = q + attn(q, norm1(x))        (the tokens are normalised, the queries are not)
      q = q + mlp(norm2(q))

  V-JEPA 2's `CrossAttentionBlock` / Hugging Face's `VJEPA2PoolerCrossAttentionLayer`: no residual
  scaling, no drop path, the queries never normalised before attending.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from einops import rearrange
from torch import nn

from .attention import _check_backend, default_attn_backend, scaled_dot_product
from .mlp import Mlp

__all__ = ["CrossAttention", "AttentionPool"]


class CrossAttention(nn.Module):
    """Multi-head attention of `queries` (B, Q, dim) over `tokens` (B, N, dim) -> (B, Q, dim).

    Args:
        dim: channels of queries, tokens and output.
        num_heads: heads; `dim` must be divisible by it.
        qkv_bias: biases in the q and kv projections.
        proj: an output projection after the heads are merged (V-JEPA 2: none).
        attn_drop: dropout on the attention weights (training only).
        attn_backend: the kernel's backend, fixed when built (as `Attention`).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, proj: bool = False, attn_drop: float = 0.0,
                 attn_backend: Optional[str] = None) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.attn_drop = num_heads, attn_drop
        self.attn_backend = default_attn_backend() if attn_backend is None else _check_backend(attn_backend)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim) if proj else nn.Identity()

    def forward(self, queries: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        q = rearrange(self.q(queries), "b q (h d) -> b h q d", h=self.num_heads)
        kv = rearrange(self.kv(tokens), "b n (two h d) -> two b h n d", two=2, h=self.num_heads)
        out = scaled_dot_product(q, kv[0], kv[1], dropout_p=self.attn_drop if self.training else 0.0,
                                 backend=self.attn_backend)  # (B, heads, Q, head_dim)
        return self.proj(rearrange(out, "b h q d -> b q (h d)"))


class AttentionPool(nn.Module):
    """Learned queries attending to the tokens, then an MLP on the queries: (B, N, dim) -> (B, Q, dim).

    Args:
        dim, num_heads, qkv_bias: as `CrossAttention`.
        num_queries: learned query tokens (V-JEPA 2: 1).
        mlp_ratio: MLP hidden width / dim.
        norm_eps: LayerNorm epsilon of norm1 (on the tokens) and norm2 (on the queries).
        proj: an output projection in the attention (V-JEPA 2: none).
        act_layer: the MLP activation (exact GELU).
    """

    def __init__(self, dim: int, num_heads: int, num_queries: int = 1, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 norm_eps: float = 1e-6, proj: bool = False, act_layer: Callable[[], nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.query_tokens = nn.Parameter(torch.zeros(1, num_queries, dim))
        nn.init.trunc_normal_(self.query_tokens, std=0.02)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = CrossAttention(dim, num_heads, qkv_bias=qkv_bias, proj=proj)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # a copy, as HF's repeat: an expanded view of the parameter trips torch's module tracker under no_grad
        q = self.query_tokens.repeat(x.shape[0], 1, 1)
        q = q + self.attn(q, self.norm1(x))
        return q + self.mlp(self.norm2(q))
