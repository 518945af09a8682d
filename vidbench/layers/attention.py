"""The one attention kernel every vidbench model uses.

`scaled_dot_product` is the kernel: `F.scaled_dot_product_attention` (fused path) or an explicit
softmax(q k^T * scale + bias) v (reference path that materialises the attention matrix). A global
switch picks the path (`set_fused_attn`, the `fused_attn` context manager, or the environment
variable VIDBENCH_FUSED_ATTN=0), in the spirit of timm's `fused_attn`.

`Attention` is multi-head self-attention with a fused qkv projection (MViT's `PoolingAttention`
in pool_attention.py subclasses it and pools q, k, v before the kernel). Factorised attention is
a reshape around the kernel with the axis given, never another attention class:

- ``axis="joint"``: all tokens attend to all tokens;
- ``axis="space"``: tokens attend within their frame, ``(B, T*S, C) -> (B*T, S, C)``;
- ``axis="time"``: tokens attend within their spatial position, ``(B, T*S, C) -> (B*S, T, C)``;
- ``axis="split"``: ViViT Model 4, the heads split in two groups, the first attending over time
  and the second over space, concatenated and projected once;
- ``axis="window"``: Longformer-style sliding window (each token sees `window // 2` neighbours on
  each side) plus `num_global_tokens` leading global tokens that every token sees; the global
  tokens' own rows attend to all tokens through separate global projections (VTN).

An additive float bias or a boolean mask (True = attend) goes straight to the kernel: MViTv2's
relative positions and VTN's sliding window use it.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = [
    "Attention",
    "scaled_dot_product",
    "use_fused_attn",
    "set_fused_attn",
    "fused_attn",
    "to_axis",
    "from_axis",
    "window_mask",
    "AXES",
]

AXES = ("joint", "space", "time", "split", "window")

_FUSED_ATTN = os.environ.get("VIDBENCH_FUSED_ATTN", "1") not in ("0", "false", "False")


def use_fused_attn() -> bool:
    """Whether the kernel currently runs `F.scaled_dot_product_attention`."""
    return _FUSED_ATTN


def set_fused_attn(enable: bool) -> None:
    """Select the fused (True) or the reference (False) path for every model, globally."""
    global _FUSED_ATTN
    _FUSED_ATTN = bool(enable)


@contextlib.contextmanager
def fused_attn(enable: bool) -> Iterator[None]:
    """Context manager: run the enclosed code with the fused path on or off."""
    previous = use_fused_attn()
    set_fused_attn(enable)
    try:
        yield
    finally:
        set_fused_attn(previous)


def scaled_dot_product(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    dropout_p: float = 0.0,
    scale: Optional[float] = None,
) -> torch.Tensor:
    """softmax(q k^T * scale + bias) v over the last two dimensions.

    Args:
        q, k, v: (..., heads, N, head_dim) with the same leading dimensions (Nq may differ from Nk).
        bias: additive float bias, or boolean mask where True means "may attend"; broadcastable to
            (..., heads, Nq, Nk).
        dropout_p: dropout on the attention weights; callers pass 0 outside training.
        scale: defaults to head_dim ** -0.5.
    """
    if use_fused_attn():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    attn = (q * scale) @ k.transpose(-2, -1)  # (..., heads, Nq, Nk)
    if bias is not None:
        if bias.dtype == torch.bool:
            attn = attn.masked_fill(~bias, float("-inf"))
        else:
            attn = attn + bias
    attn = attn.softmax(dim=-1)
    if dropout_p > 0.0:
        attn = F.dropout(attn, p=dropout_p)
    return attn @ v  # (..., heads, Nq, head_dim)


_AXIS_PATTERNS = {
    "space": ("b (t s) c -> (b t) s c", "(b t) s c -> b (t s) c"),
    "time": ("b (t s) c -> (b s) t c", "(b s) t c -> b (t s) c"),
}


def to_axis(x: torch.Tensor, axis: str, grid: Tuple[int, int]) -> torch.Tensor:
    """(B, T*S, C) tokens in time-major order -> sequences along `axis` ("space" or "time")."""
    t, s = grid
    return rearrange(x, _AXIS_PATTERNS[axis][0], t=t, s=s)


def from_axis(x: torch.Tensor, axis: str, grid: Tuple[int, int]) -> torch.Tensor:
    """Inverse of `to_axis`."""
    t, s = grid
    return rearrange(x, _AXIS_PATTERNS[axis][1], t=t, s=s)


def window_mask(n: int, window: int, num_global: int = 0, device: Optional[torch.device] = None) -> torch.Tensor:
    """(N, N) boolean mask, True where query i may attend key j: |i - j| <= window // 2, or
    either token is one of the `num_global` leading global tokens (Longformer)."""
    idx = torch.arange(n, device=device)
    mask = (idx[:, None] - idx[None, :]).abs() <= window // 2
    if num_global:
        mask[:num_global, :] = True
        mask[:, :num_global] = True
    return mask


def _check_grid(x: torch.Tensor, axis: str, grid: Optional[Tuple[int, int]]) -> Tuple[int, int]:
    if grid is None:
        raise ValueError(f"attention axis {axis!r} needs grid=(frames, tokens_per_frame)")
    t, s = grid
    if x.shape[1] != t * s:
        raise ValueError(
            f"attention axis {axis!r}: got {x.shape[1]} tokens but grid {tuple(grid)} has {t * s} "
            "(prefix tokens such as cls must be split off before factorised attention)"
        )
    return t, s


class Attention(nn.Module):
    """Multi-head self-attention with fused qkv, running on `scaled_dot_product`.

    Args:
        dim: input and output channels.
        num_heads: number of heads; dim must be divisible by it.
        qkv_bias: bias in the qkv projection.
        attn_drop: dropout on attention weights (training mode only).
        proj_drop: dropout after the output projection.
        num_global_tokens: leading tokens with global attention for axis="window"; they get
            their own qkv projection (`qkv_global`), as in Longformer.
        dim_out: channels of q, k, v and of the output (default `dim`); MViTv2 widens the
            channels inside attention this way.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        num_global_tokens: int = 0,
        dim_out: Optional[int] = None,
    ) -> None:
        super().__init__()
        dim_out = dim if dim_out is None else dim_out
        if dim_out % num_heads != 0:
            raise ValueError(f"embed dim {dim_out} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim_out // num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, dim_out * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim_out, dim_out)
        self.proj_drop = nn.Dropout(proj_drop)
        self.num_global_tokens = num_global_tokens
        self.qkv_global = nn.Linear(dim, dim_out * 3, bias=qkv_bias) if num_global_tokens else None

    def forward(
        self,
        x: torch.Tensor,
        axis: str = "joint",
        grid: Optional[Tuple[int, int]] = None,
        bias: Optional[torch.Tensor] = None,
        window: Optional[int] = None,
    ) -> torch.Tensor:
        """x: (B, N, dim) -> (B, N, dim_out). For axis space/time/split, N = T*S tokens in time-major order and
        grid = (T, S); for axis window, `window` is the Longformer attention window."""
        if axis not in AXES:
            raise ValueError(f"unknown attention axis {axis!r}; expected one of {AXES}")
        if axis in ("space", "time"):
            grid = _check_grid(x, axis, grid)
            return from_axis(self._attend(to_axis(x, axis, grid), bias), axis, grid)
        if axis == "split":
            grid = _check_grid(x, axis, grid)
            return self._attend_split(x, grid, bias)
        if axis == "window":
            return self._attend_window(x, window, bias)
        return self._attend(x, bias)

    def _qkv(self, x: torch.Tensor, layer: Optional[nn.Linear] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        qkv = rearrange((layer or self.qkv)(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        return qkv[0], qkv[1], qkv[2]  # each (B, heads, N, head_dim)

    def _project(self, out: torch.Tensor) -> torch.Tensor:
        return self.proj_drop(self.proj(rearrange(out, "b h n d -> b n (h d)")))  # (B, N, C)

    def _attend(self, x: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        q, k, v = self._qkv(x)
        dropout_p = self.attn_drop if self.training else 0.0
        return self._project(scaled_dot_product(q, k, v, bias=bias, dropout_p=dropout_p))

    def _attend_window(self, x: torch.Tensor, window: Optional[int], bias: Optional[torch.Tensor]) -> torch.Tensor:
        if window is None or window < 2:
            raise ValueError(f"axis 'window' needs window >= 2, got {window}")
        mask = window_mask(x.shape[1], window, self.num_global_tokens, x.device)  # (N, N) bool
        if bias is not None:
            mask = bias & mask if bias.dtype == torch.bool else bias.masked_fill(~mask, float("-inf"))
        q, k, v = self._qkv(x)
        dropout_p = self.attn_drop if self.training else 0.0
        out = scaled_dot_product(q, k, v, bias=mask, dropout_p=dropout_p)  # (B, heads, N, head_dim)
        g = self.num_global_tokens
        if g:
            qg, kg, vg = self._qkv(x, self.qkv_global)
            out_g = scaled_dot_product(qg[:, :, :g], kg, vg, dropout_p=dropout_p)  # (B, heads, G, head_dim)
            out = torch.cat([out_g, out[:, :, g:]], dim=2)
        return self._project(out)

    def _attend_split(
        self, x: torch.Tensor, grid: Tuple[int, int], bias: Optional[torch.Tensor]
    ) -> torch.Tensor:
        if self.num_heads % 2 != 0:
            raise ValueError(f"split-head attention needs an even number of heads, got {self.num_heads}")
        if bias is not None:
            raise ValueError("split-head attention takes no bias")
        t, s = grid
        q, k, v = self._qkv(x)  # (B, heads, T*S, head_dim)
        half = self.num_heads // 2
        dropout_p = self.attn_drop if self.training else 0.0
        # first half of the heads attends over time, second half over space (scenic's order)
        time_in = [rearrange(z[:, :half], "b h (t s) d -> (b s) h t d", t=t, s=s) for z in (q, k, v)]
        space_in = [rearrange(z[:, half:], "b h (t s) d -> (b t) h s d", t=t, s=s) for z in (q, k, v)]
        time_out = rearrange(
            scaled_dot_product(*time_in, dropout_p=dropout_p), "(b s) h t d -> b h (t s) d", t=t, s=s
        )
        space_out = rearrange(
            scaled_dot_product(*space_in, dropout_p=dropout_p), "(b t) h s d -> b h (t s) d", t=t, s=s
        )
        return self._project(torch.cat([time_out, space_out], dim=1))  # heads back together
