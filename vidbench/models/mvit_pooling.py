"""Pooling attention (MViT, its only user): queries, keys and values pooled before the one
attention kernel (`vidbench.layers.scaled_dot_product`).

`PoolingAttention` is `Attention` (fused qkv, `dim -> dim_out`) with three poolings between the
projection and `scaled_dot_product`: per head, a depthwise Conv3d over the (T, H, W) token grid
(one filter shared by all heads) followed by LayerNorm; the leading cls token skips the conv and
is re-attached before the norm (Fan et al., ICCV 2021). MViTv2 (Li et al., CVPR 2022) adds

- decomposed relative position: a bias q . R_t + q . R_h + q . R_w on the attention logits, passed
  to the kernel as its additive `bias` (zero on the cls row and column);
- residual pooling: the pooled query added to the kernel's output (cls row excluded).

The relative-position tables may be shorter than the 2 * max(q, k) - 1 offsets a block's grids
span: SlowFast and mmaction2 size them from the grid floored at each stride (78 -> 39 -> 19 at
MViTv2-L's 312 px, where the padded pooling makes 39 -> 20) and stretch them to the offsets by
linear interpolation in the forward pass (`get_rel_pos` / `resize_decomposed_rel_pos`). Here
that interpolation is a fixed (offsets, table) matrix, a non-persistent buffer built once with
`F.interpolate` on the identity: a matmul the FLOP count sees.

The pooling convolves the tokens where the qkv projection left them, as channels-last
(B, heads*head_dim, T, H, W) views with the shared filter repeated per head, and MViTv2's bias is
written in place into the kernel's padded bias tensor: no per-head layout copies (what profiling
MViT against torchvision found; the README's comparison section).

Grids are fixed at construction (the model is built for one clip size), so nothing in the
forward pass depends on the data's shape beyond the batch: it traces with torch.jit.trace.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import Attention, LayerNorm, scaled_dot_product

__all__ = ["PoolingAttention", "TokenPool", "pooled_grid", "rel_pos_index"]

Grid = Tuple[int, int, int]


def pooled_grid(grid: Grid, kernel: Grid, stride: Grid) -> Grid:
    """(T, H, W) after a pooling of `kernel` and `stride` with padding kernel // 2."""
    return tuple((n + 2 * (k // 2) - k) // s + 1 for n, k, s in zip(grid, kernel, stride))  # type: ignore[return-value]


def _prod(v: Tuple[int, ...]) -> int:
    out = 1
    for x in v:
        out *= x
    return out


class TokenPool(nn.Module):
    """Depthwise Conv3d pooling of per-head tokens, then LayerNorm over the head dim.

    Args:
        head_dim: channels per head (the conv's channels and groups).
        grid: (T, H, W) of the incoming tokens (the cls token excluded).
    """

    def __init__(self, head_dim: int, grid: Grid, kernel: Grid, stride: Grid) -> None:
        super().__init__()
        self.grid, self.grid_out = tuple(grid), pooled_grid(grid, kernel, stride)
        self.conv = nn.Conv3d(head_dim, head_dim, kernel, stride=stride, padding=[k // 2 for k in kernel],
                              groups=head_dim, bias=False)
        self.norm = LayerNorm(head_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, heads, 1 + T*H*W, head_dim) -> (B, heads, 1 + T'*H'*W', head_dim).

        The conv runs on the tokens in place, as channels-last (B, heads*head_dim, T, H, W) views
        of the qkv projection's output, with the filter repeated for every head: no per-head
        layout copy, and the channels-last depthwise kernel (~10x the (B*heads, head_dim, T, H, W)
        one on a CPU). The result is the same convolution."""
        t, h, w = self.grid
        x = x.transpose(1, 2)  # (B, 1 + N, heads, head_dim): the projection's own layout
        b, _, heads, d = x.shape
        tokens = x[:, 1:].reshape(b, t, h, w, heads * d).permute(0, 4, 1, 2, 3)  # channels-last (B, C, T, H, W)
        conv = self.conv
        tokens = F.conv3d(tokens, conv.weight.repeat(heads, 1, 1, 1, 1), None, conv.stride, conv.padding,
                          groups=heads * d)
        tokens = tokens.permute(0, 2, 3, 4, 1).reshape(b, -1, heads, d)  # (B, N', heads, head_dim)
        return self.norm(torch.cat([x[:, :1], tokens], dim=1)).transpose(1, 2)


def rel_pos_index(q_size: int, k_size: int, device: Optional[torch.device] = None) -> torch.Tensor:
    """(q_size, k_size) index into a table of 2 * max(q_size, k_size) - 1 relative positions
    along one axis: query i and key j placed on the finer of the two grids, offset to start at 0
    (MViTv2's definition, which works for pooled keys)."""
    q_ratio, k_ratio = max(k_size / q_size, 1.0), max(q_size / k_size, 1.0)
    q_pos = torch.arange(q_size, device=device)[:, None] * q_ratio
    k_pos = (torch.arange(k_size, device=device)[None, :] - (k_size - 1)) * k_ratio
    return (q_pos - k_pos).long()


class PoolingAttention(Attention):
    """Multi-head pooling attention on a cls token plus a (T, H, W) grid of tokens.

    Args:
        dim, dim_out: channels in and out (MViTv2 widens here at a stage's first block).
        grid: (T, H, W) of the incoming tokens.
        kernel_q, stride_q: query pooling (None: no query pooling).
        kernel_kv, stride_kv: key/value pooling (None: none).
        rel_pos: MViTv2 decomposed relative position, as the kernel's additive bias.
        residual_pool: MViTv2 residual pooling (adds the pooled query to the output).
        rel_pos_len: (T, H, W) lengths of the relative-position tables (None: the offsets the
            pooled grids span, 2 * max(q, k) - 1); shorter ones are interpolated to those.
    """

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        grid: Grid,
        kernel_q: Optional[Grid] = None,
        stride_q: Grid = (1, 1, 1),
        kernel_kv: Optional[Grid] = None,
        stride_kv: Grid = (1, 1, 1),
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        rel_pos: bool = False,
        residual_pool: bool = False,
        rel_pos_len: Optional[Grid] = None,
    ) -> None:
        super().__init__(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop, dim_out=dim_out)
        self.grid, self.residual_pool = tuple(grid), residual_pool

        def make_pool(kernel: Optional[Grid], stride: Grid) -> Optional[TokenPool]:
            if kernel is None or (_prod(kernel) == 1 and _prod(stride) == 1):
                return None
            return TokenPool(self.head_dim, self.grid, kernel, stride)

        self.pool_q = make_pool(kernel_q, stride_q)
        self.pool_k = make_pool(kernel_kv, stride_kv)
        self.pool_v = make_pool(kernel_kv, stride_kv)
        self.grid_q = self.pool_q.grid_out if self.pool_q is not None else self.grid
        self.grid_kv = self.pool_k.grid_out if self.pool_k is not None else self.grid
        self.rel_pos_h = self.rel_pos_w = self.rel_pos_t = None
        self.rel_pos_resize = {}  # axis -> name of its (offsets, table) interpolation buffer
        if rel_pos:
            spans = tuple(2 * max(q, k) - 1 for q, k in zip(self.grid_q, self.grid_kv))
            lengths = tuple(rel_pos_len) if rel_pos_len is not None else spans
            for axis, span, n in zip("thw", spans, lengths):
                setattr(self, f"rel_pos_{axis}", nn.Parameter(torch.zeros(n, self.head_dim)))
                nn.init.trunc_normal_(getattr(self, f"rel_pos_{axis}"), std=0.02)
                if n != span:  # SlowFast's get_rel_pos: linear interpolation to the offsets spanned
                    resize = F.interpolate(torch.eye(n)[None], size=span, mode="linear")[0].T  # (span, n)
                    self.register_buffer(f"rel_pos_resize_{axis}", resize, persistent=False)
                    self.rel_pos_resize[axis] = f"rel_pos_resize_{axis}"

    def _table(self, axis: str) -> torch.Tensor:
        """The relative-position table of `axis`, interpolated to the offsets its grids span."""
        table = getattr(self, f"rel_pos_{axis}")
        if axis in self.rel_pos_resize:
            table = getattr(self, self.rel_pos_resize[axis]).to(table.dtype) @ table
        return table

    def rel_pos_bias(self, q: torch.Tensor) -> torch.Tensor:
        """Decomposed relative position bias (B, heads, 1 + Nq, 1 + Nk) from the pooled queries
        q (B, heads, 1 + Nq, head_dim); zero on the cls row and column."""
        (qt, qh, qw), (kt, kh, kw) = self.grid_q, self.grid_kv
        r_t = self._table("t")[rel_pos_index(qt, kt, q.device)]  # (qt, kt, head_dim)
        r_h = self._table("h")[rel_pos_index(qh, kh, q.device)]  # (qh, kh, head_dim)
        r_w = self._table("w")[rel_pos_index(qw, kw, q.device)]  # (qw, kw, head_dim)
        b, n = q.shape[:2]
        q = q[:, :, 1:].unflatten(2, (qt, qh, qw))  # (B, heads, qt, qh, qw, head_dim)
        bias_t = torch.einsum("bnthwd,tkd->bnthwk", q, r_t)  # (B, heads, qt, qh, qw, kt)
        bias_h = torch.einsum("bnthwd,hkd->bnthwk", q, r_h)  # (B, heads, qt, qh, qw, kh)
        bias_w = torch.einsum("bnthwd,wkd->bnthwk", q, r_w)  # (B, heads, qt, qh, qw, kw)
        # written in place into the kernel's (B, heads, 1 + Nq, 1 + Nk) bias: two passes over it
        bias = q.new_empty(b, n, 1 + qt * qh * qw, 1 + kt * kh * kw)
        bias[:, :, 0].zero_()
        bias[:, :, 1:, 0].zero_()  # cls row and column: no relative position
        grid = bias[:, :, 1:, 1:].unflatten(3, (kt, kh, kw)).unflatten(2, (qt, qh, qw))
        grid.copy_((bias_t[..., :, None] + bias_h[..., None, :])[..., None])  # (..., kt, kh, 1) broadcast
        grid.add_(bias_w[..., None, None, :])
        return bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """x: (B, 1 + T*H*W, dim), cls token first, tokens time-major on `grid` ->
        (B, 1 + T'*H'*W', dim_out) on `grid_q`."""
        q, k, v = self._qkv(x)  # each (B, heads, 1 + N, head_dim)
        if self.pool_q is not None:
            q = self.pool_q(q)  # (B, heads, 1 + Nq, head_dim)
        if self.pool_k is not None:
            k, v = self.pool_k(k), self.pool_v(v)  # (B, heads, 1 + Nk, head_dim)
        bias = self.rel_pos_bias(q) if self.rel_pos_h is not None else None
        out = scaled_dot_product(q, k, v, bias=bias, dropout_p=self.dropout_p, backend=self.attn_backend)  # (B, heads, 1 + Nq, head_dim)
        if self.residual_pool:
            pooled = out + q
            pooled[:, :, :1] = out[:, :, :1]  # cls row excluded
            out = pooled
        return self._project(out)  # (B, 1 + Nq, dim_out)
