"""Rotary position embedding (RoPE) for `Attention.forward(..., rope=...)`: q and k rotated
before the one kernel, no attention code of its own.

A rotary table is a pair of (N, head_dim) tensors, cos and a signed sin; `RotaryTables` applies
them to a (B, heads, N, head_dim) tensor as

    x * cos + swap_pairs(x) * sin,   swap_pairs(x) = (x1, x0, x3, x2, ...)

with the sign folded into the table (sin[2j] = -sin(angle), sin[2j + 1] = +sin(angle)), so channel
pair (2j, 2j + 1) turns by its angle: the interleaved-pair rotation of GPT-J, RoFormer and V-JEPA 2
((-x1, x0) * sin). Only multiplies, adds and a flip: fvcore counts none of them (elementwise, as
the papers' FLOPs leave them out) and reports none as uncounted. Channels a table leaves alone
have cos 1 and sin 0 (exactly x).

- `rope_angles(positions, dim, theta)`: the (N, dim // 2) angles p * theta ** (-2i / dim).
- `rope_1d(positions, dim)`: the table of one axis.
- `Rope3D`: V-JEPA 2's time / height / width split. head_dim is cut into three segments of
  ``2 * ((head_dim // 3) // 2)`` channels each (frames, rows, columns, in that order), each rotated
  by its axis position with the frequencies of its own segment width; the
  ``head_dim - 3 * segment`` channels left over are not rotated (ViT-H's head_dim 80: 3 x 26 and
  2 unrotated; head_dim 64: 3 x 20 and 4). Token n of a time-major (t, h, w) grid sits at frame
  n // (H * W), row (n % (H * W)) // W, column n % W.

Frequency layout (`layout`): the angles of a segment are (a_0 .. a_{d/2 - 1}); channel pair
(2j, 2j + 1) is rotated as a pair either way, but by which angle differs:

- ``"interleaved"``: both channels of pair j take a_j (the textbook rotation; each pair a true
  2-D rotation);
- ``"vjepa2"``: channel c takes a_{c mod d/2} (the angle vector concatenated with itself, the
  official code's ``repeat(1, 1, 1, 2)``, which Hugging Face's port keeps). The official source
  notes it as a bug kept for compatibility with the released weights: the two channels of a pair
  turn by different angles. V-JEPA 2's weights need it.

The tables of a model's fixed token grid are computed once (`Rope3D` keeps them as non-persistent
buffers: not in the state dict, moved with the model) and sliced, never recomputed in forward.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import nn

__all__ = ["RotaryTables", "Rope3D", "rope_angles", "rope_1d", "rope_tables", "vjepa2_segment", "ROPE_LAYOUTS"]

ROPE_LAYOUTS = ("interleaved", "vjepa2")


def rope_angles(positions: torch.Tensor, dim: int, theta: float = 10000.0) -> torch.Tensor:
    """(N,) positions -> (N, dim // 2) angles p * theta ** (-i / (dim / 2)), i = 0 .. dim/2 - 1,
    in float64 (the tables are rounded once, to float32, at the end)."""
    if dim % 2:
        raise ValueError(f"a rotary segment needs an even width, got {dim}")
    omega = 1.0 / theta ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    return positions.to(torch.float64)[:, None] * omega[None]


def _channel_angles(angles: torch.Tensor, layout: str) -> torch.Tensor:
    """(N, d/2) angles -> (N, d) per channel, by `layout`."""
    if layout == "interleaved":
        return angles.repeat_interleave(2, dim=-1)
    if layout == "vjepa2":
        return torch.cat([angles, angles], dim=-1)
    raise ValueError(f"unknown rotary layout {layout!r}; expected one of {ROPE_LAYOUTS}")


def rope_tables(segments: Sequence[Tuple[torch.Tensor, int]], head_dim: int, theta: float = 10000.0,
                layout: str = "interleaved") -> Tuple[torch.Tensor, torch.Tensor]:
    """cos and signed sin tables, each (N, head_dim) float32, for consecutive channel segments
    [(positions (N,), width), ...] from channel 0; channels after the last segment unrotated."""
    n = int(segments[0][0].shape[0])
    cos = torch.ones(n, head_dim, dtype=torch.float64)
    sin = torch.zeros(n, head_dim, dtype=torch.float64)
    start = 0
    for positions, width in segments:
        if start + width > head_dim:
            raise ValueError(f"rotary segments of {[w for _, w in segments]} channels exceed head_dim {head_dim}")
        angle = _channel_angles(rope_angles(positions, width, theta), layout)  # (N, width)
        sign = torch.tensor([-1.0, 1.0], dtype=torch.float64).repeat(width // 2)  # -sin on even channels
        cos[:, start:start + width] = angle.cos()
        sin[:, start:start + width] = angle.sin() * sign
        start += width
    return cos.float(), sin.float()


class RotaryTables:
    """A rotary table as the callable `Attention.forward(rope=...)` takes: x (..., N, head_dim)
    -> x * cos + swap_pairs(x) * sin (see the module docstring)."""

    def __init__(self, cos: torch.Tensor, sin: torch.Tensor) -> None:
        if cos.shape != sin.shape or cos.dim() != 2 or cos.shape[-1] % 2:
            raise ValueError(f"rotary tables must be two (N, even head_dim) tensors, got {tuple(cos.shape)} "
                             f"and {tuple(sin.shape)}")
        self.cos, self.sin = cos, sin

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != tuple(self.cos.shape):
            raise ValueError(f"rotary tables for {tuple(self.cos.shape)} (tokens, head_dim) applied to "
                             f"{tuple(x.shape[-2:])}")
        swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # (x1, x0, x3, x2, ...)
        return x * self.cos.to(x.dtype) + swapped * self.sin.to(x.dtype)


def rope_1d(positions: torch.Tensor, dim: int, theta: float = 10000.0, layout: str = "interleaved") -> RotaryTables:
    """The rotary table of one axis over all `dim` channels (a 1-D sequence's RoPE)."""
    return RotaryTables(*rope_tables([(positions, dim)], dim, theta, layout))


def vjepa2_segment(head_dim: int) -> int:
    """Channels per axis of V-JEPA 2's 3-D split: 2 * ((head_dim // 3) // 2)."""
    return 2 * ((head_dim // 3) // 2)


def grid_positions(grid: Tuple[int, int, int]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frame, row and column of each token of a time-major (T, H, W) grid, each (T*H*W,)."""
    t, h, w = grid
    ids = torch.arange(t * h * w)
    return ids // (h * w), (ids % (h * w)) // w, ids % w


class Rope3D(nn.Module):
    """V-JEPA 2's 3-D rotary embedding over a fixed (T, H, W) token grid: call the module for the
    `RotaryTables` to hand to every block's attention (``rope=self.rope()``).

    Args:
        head_dim: channels per head (q and k are rotated per head alike).
        grid: (temporal, height, width) tokens, time-major.
        theta: the frequency base (10000).
        layout: "vjepa2" (the released weights' frequency layout) or "interleaved".
    """

    def __init__(self, head_dim: int, grid: Tuple[int, int, int], theta: float = 10000.0,
                 layout: str = "vjepa2") -> None:
        super().__init__()
        seg = vjepa2_segment(head_dim)
        if seg < 2:
            raise ValueError(f"3-D rotary positions need head_dim >= 6, got {head_dim}")
        self.head_dim, self.grid, self.theta, self.layout = head_dim, tuple(int(g) for g in grid), theta, layout
        frames, rows, cols = grid_positions(self.grid)
        cos, sin = rope_tables([(frames, seg), (rows, seg), (cols, seg)], head_dim, theta, layout)
        self.register_buffer("cos", cos, persistent=False)  # (T*H*W, head_dim)
        self.register_buffer("sin", sin, persistent=False)

    @property
    def segment(self) -> int:
        return vjepa2_segment(self.head_dim)

    def forward(self) -> RotaryTables:
        return RotaryTables(self.cos, self.sin)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, grid={self.grid}, segment={self.segment}, layout={self.layout!r}"
