"""Video Swin Transformer (Liu et al., CVPR 2022): local self-attention in shifted 3-D windows.

- patch embedding: Conv3d of kernel = stride = patch (2x4x4) on the clip zero-padded to whole
  patches, then LayerNorm (`patch_norm`);
- four stages of widths embed_dim * 2**s; stages 2.. start with patch merging (2x2 spatial
  neighbours concatenated in torchvision's order, LayerNorm, Linear 4C -> 2C without bias);
- blocks attend within (Wt, Wh, Ww) windows, every second block with the windows cyclically
  shifted by half a window. On an axis where the token grid is not larger than the window, the
  window shrinks to the grid and that axis is not shifted; the normed tokens are zero-padded to
  whole windows. Attention is fused qkv and the one kernel `scaled_dot_product` with an additive
  bias: the relative position bias (a (2Wt-1)(2Wh-1)(2Ww-1) x heads table, indexed) plus, in
  shifted blocks, -100 between tokens the shift brought together from different regions (that
  per-window bias is made for a few windows of one clip at a time, `WINDOW_BIAS_BYTES`, outside
  training, never for all windows at once);
- final LayerNorm, average over (T, H, W), dropout, linear head.

Grids, windows, shifts and padding are fixed at construction (`Swin3dConfig.stages`, one
`SwinBlockConfig` per block), so the forward pass traces. Module layout, initialisation and
numerics follow torchvision's `swin3d_t/s/b`: their state dicts and the official
Video-Swin-Transformer checkpoints load through renames (`weights.formats.torchvision_swin3d`)
and the logits agree (tested). Kept because the published weights were trained with them: a
shrunk window takes the first N rows and columns of the full window's relative position index
(as both reference codes do), and masked logits get -100, not -inf. LayerNorm eps is 1e-5
(`norm_eps`; vidbench's ViTs use 1e-6). Stochastic depth defaults to 0 like the rest of the zoo
(torchvision's builders: 0.1; the official K400 recipes 0.1 / 0.1 / 0.3 for T / S / B).

There is no `from_image_backbone`: the zoo has no image Swin. The paper inflates an ImageNet
Swin: the 2-D patch filter repeated over the patch's 2 frames and divided by 2
(`model.patch_embed.init_from_2d(weight, bias, "inflation")`), each 2-D relative position table
repeated over the 2Wt - 1 temporal offsets.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from math import prod
from typing import Any, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..layers import (
    Attention,
    DropPath,
    Mlp,
    TubeletEmbed,
    check_video,
    drop_path_rates,
    init_weights,
    scaled_dot_product,
    to_2tuple,
)
from ._base import BlockRunner, Classifier
from ._checks import check_config
from ._registry import ModelMeta, build_config, register_model

Int3 = Tuple[int, int, int]

# added to the logits between tokens of different regions in a shifted window (torchvision and
# the official code use -100, not -inf; exp(-100) is below float32 resolution next to exp(0))
SHIFT_MASK_VALUE = -100.0


def _ceil_to(n: int, m: int) -> int:
    return -(-n // m) * m


@dataclass(frozen=True)
class SwinBlockConfig:
    """One block, derived by `Swin3dConfig`.

    grid: (T, H, W) tokens entering the block; window: the window used on that grid (the
    configured one, shrunk to the grid on axes where the grid is not larger); shift: the cyclic
    shift (half the configured window in odd blocks, 0 on shrunk axes).
    """

    dim: int
    num_heads: int
    grid: Int3
    window: Int3
    shift: Int3
    drop_path: float = 0.0

    @property
    def padded_grid(self) -> Int3:
        return tuple(_ceil_to(n, w) for n, w in zip(self.grid, self.window))  # type: ignore[return-value]

    @property
    def shifted(self) -> bool:
        return any(self.shift)


@dataclass(frozen=True)
class SwinStageConfig:
    """A stage: patch merging from `merge_from` (the previous stage's grid; None for the first
    stage), then its blocks on `grid`."""

    dim: int
    num_heads: int
    grid: Int3
    merge_from: Optional[Int3]
    blocks: Tuple[SwinBlockConfig, ...]


@dataclass
class Swin3dConfig:
    """Stage-level description; `stages` is derived from it. Defaults are Swin-T at 32x224
    (torchvision `swin3d_t`)."""

    img_size: Union[int, tuple] = 224
    num_frames: int = 32
    in_chans: int = 3
    num_classes: int = 400
    patch_size: Int3 = (2, 4, 4)
    embed_dim: int = 96  # stage-1 width; doubles at every stage
    depths: Tuple[int, ...] = (2, 2, 6, 2)
    num_heads: Tuple[int, ...] = (3, 6, 12, 24)
    window_size: Int3 = (8, 7, 7)  # (Wt, Wh, Ww): sizes the relative position table
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    patch_norm: bool = True  # LayerNorm after the patch embedding (torchvision always; official configs)
    norm_eps: float = 1e-5  # nn.LayerNorm's default, as torchvision and the official code
    drop_rate: float = 0.0  # after the patch embedding, attention projection and in the MLP
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0  # as the rest of the zoo; torchvision's builders use 0.1
    head_drop_rate: float = 0.0  # torchvision: none; the official I3D head: 0.5
    stages: Tuple[SwinStageConfig, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_config(self)
        self.img_size = to_2tuple(self.img_size)
        for name in ("patch_size", "window_size"):
            value = tuple(int(v) for v in getattr(self, name))
            if len(value) != 3 or min(value) < 1:
                raise ValueError(f"{name} must be three positive sizes (T, H, W), got {getattr(self, name)!r}")
            setattr(self, name, value)
        self.depths, self.num_heads = tuple(int(d) for d in self.depths), tuple(int(h) for h in self.num_heads)
        if not self.depths or min(self.depths) < 1 or len(self.num_heads) != len(self.depths):
            raise ValueError(f"depths {self.depths} and num_heads {self.num_heads} must be positive and of one length")
        grid = tuple(-(-n // p) for n, p in zip(self.clip_size, self.patch_size))  # clip padded to whole patches
        rates, stages, merge_from = drop_path_rates(self.drop_path_rate, sum(self.depths)), [], None
        for s, (depth, heads) in enumerate(zip(self.depths, self.num_heads)):
            dim = self.embed_dim * 2**s
            if dim % heads:
                raise ValueError(f"stage {s + 1}: width {dim} is not divisible by {heads} heads")
            if s > 0:  # patch merging halves H and W (padded to even), never T
                merge_from, grid = grid, (grid[0], -(-grid[1] // 2), -(-grid[2] // 2))
            shrunk = tuple(n <= w for n, w in zip(grid, self.window_size))
            window = tuple(n if small else w for n, w, small in zip(grid, self.window_size, shrunk))
            blocks = []
            for j in range(depth):
                shift = tuple(0 if small or j % 2 == 0 else w // 2 for w, small in zip(self.window_size, shrunk))
                blocks.append(SwinBlockConfig(dim, heads, grid, window, shift, rates[sum(self.depths[:s]) + j]))
            stages.append(SwinStageConfig(dim, heads, grid, merge_from, tuple(blocks)))
        self.stages = tuple(stages)

    @property
    def clip_size(self) -> Int3:
        return (int(self.num_frames), *self.img_size)

    @property
    def padded_clip_size(self) -> Int3:
        """The clip zero-padded to whole patches, as the patch embedding sees it."""
        return tuple(_ceil_to(n, p) for n, p in zip(self.clip_size, self.patch_size))  # type: ignore[return-value]


def relative_position_index(window: Int3) -> torch.Tensor:
    """(N, N) index into the (2Wt-1)(2Wh-1)(2Ww-1) relative position table for the N = Wt*Wh*Ww
    tokens of a window in (t, h, w) row-major order (torchvision's and the official definition)."""
    coords = torch.stack(torch.meshgrid(*[torch.arange(w) for w in window], indexing="ij")).flatten(1)  # (3, N)
    rel = coords[:, :, None] - coords[:, None, :] + torch.tensor([w - 1 for w in window])[:, None, None]  # (3, N, N)
    return rel[0] * (2 * window[1] - 1) * (2 * window[2] - 1) + rel[1] * (2 * window[2] - 1) + rel[2]


def shift_regions(cfg: SwinBlockConfig) -> torch.Tensor:
    """(num_windows, N) region id of every token of every window after the cyclic shift: tokens
    of different regions must not attend to each other (-100 on their logits)."""

    def axis(size: int, window: int, shift: int) -> torch.Tensor:
        r = torch.zeros(size, dtype=torch.long)
        if shift:  # the last window mixes [size - window, size - shift) and the wrapped-around tail
            r[size - window:], r[size - shift:] = 1, 2
        return r

    rt, rh, rw = (axis(n, w, s) for n, w, s in zip(cfg.padded_grid, cfg.window, cfg.shift))
    ids = rt[:, None, None] * 9 + rh[None, :, None] * 3 + rw[None, None, :]  # (Tp, Hp, Wp)
    wt, wh, ww = cfg.window
    return rearrange(ids, "(nt wt) (nh wh) (nw ww) -> (nt nh nw) (wt wh ww)", wt=wt, wh=wh, ww=ww)


# how much of a shifted block's per-window bias is made for one kernel call
WINDOW_BIAS_BYTES = 16 << 20


class WindowAttention3d(Attention):
    """`Attention` (fused qkv, output projection) within windows, with the relative position
    bias. `window` is the window used, `table_window` the configured one that sizes the table."""

    def __init__(self, dim: int, num_heads: int, window: Int3, table_window: Int3, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        size = prod(2 * w - 1 for w in table_window)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(size, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        n = prod(window)  # a shrunk window takes the first N rows and columns, as the reference codes
        self.register_buffer("relative_position_index", relative_position_index(table_window)[:n, :n],
                             persistent=False)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B, num_windows, N, C) tokens per window; mask: (num_windows, N, N) shift mask or None."""
        b, nw = x.shape[:2]
        q, k, v = self._qkv(rearrange(x, "b w n c -> (b w) n c"))  # each (B*nW, heads, N, head_dim)
        bias = rearrange(self.relative_position_bias_table[self.relative_position_index], "i j h -> h i j")  # (heads, N, N)
        if mask is None:  # one bias for every window: one call, 4-D inputs (torch's fused CPU kernel takes them)
            out = scaled_dot_product(q, k, v, bias=bias.to(q.dtype), dropout_p=self.dropout_p, backend=self.attn_backend)
            return rearrange(self._project(out), "(b w) n c -> b w n c", b=b)  # (B, nW, N, C)
        # Shifted windows: each window's bias is the position bias plus its own mask. Made for all
        # windows at once it would be (nW, heads, N, N), 236 MB in Swin-T's first stage at 32x224
        # (more than the reference's peak): instead a few windows of one clip per kernel call.
        # Where autograd records the graph, every chunk's bias is kept for the backward anyway:
        # there one call per clip (smaller chunks only fragmented glibc's heap: +9% peak RSS).
        step = nw if bias.requires_grad else max(1, WINDOW_BIAS_BYTES // (prod(bias.shape) * q.element_size()))
        outs = []
        for clip in range(b):
            for w0 in range(0, nw, step):
                rows = slice(clip * nw + w0, clip * nw + min(w0 + step, nw))
                chunk_bias = (bias + mask[w0:w0 + step, None]).to(q.dtype)  # (windows, heads, N, N)
                out = scaled_dot_product(q[rows], k[rows], v[rows], bias=chunk_bias, dropout_p=self.dropout_p,
                                         backend=self.attn_backend)
                outs.append(out.transpose(1, 2))  # (windows, N, heads, head_dim)
        # (B*nW, heads, N, head_dim), laid out for the projection (one chunk: the kernel's output as it is)
        out = (outs[0] if len(outs) == 1 else torch.cat(outs)).transpose(1, 2)
        return rearrange(self._project(out), "(b w) n c -> b w n c", b=b)  # (B, nW, N, C)


class PatchMerging(nn.Module):
    """(B, T, H, W, C) -> (B, T, ceil(H/2), ceil(W/2), 2C): each 2x2 spatial neighbourhood
    concatenated as torchvision orders it ((0,0), (1,0), (0,1), (1,1) in (h, w)), LayerNorm, Linear."""

    def __init__(self, dim: int, grid: Int3, norm_layer: Any) -> None:
        super().__init__()
        self.pad = (0, 0, 0, grid[2] % 2, 0, grid[1] % 2)  # zero-pad H and W to even
        self.norm = norm_layer(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pad):
            x = F.pad(x, self.pad)
        x = rearrange(x, "b t (h dh) (w dw) c -> b t h w (dw dh c)", dh=2, dw=2)  # (B, T, H/2, W/2, 4C)
        return self.reduction(self.norm(x))


class SwinBlock3d(nn.Module):
    """Pre-norm block: x + W-MSA / SW-MSA(norm1(x)), then x + mlp(norm2(x)), on (B, T, H, W, C)."""

    def __init__(self, cfg: SwinBlockConfig, model_cfg: Swin3dConfig, norm_layer: Any) -> None:
        super().__init__()
        self.cfg = cfg
        self.norm1 = norm_layer(cfg.dim)
        self.attn = WindowAttention3d(cfg.dim, cfg.num_heads, cfg.window, model_cfg.window_size, model_cfg.qkv_bias,
                                      model_cfg.attn_drop_rate, model_cfg.drop_rate)
        self.drop_path = DropPath(cfg.drop_path)
        self.norm2 = norm_layer(cfg.dim)
        self.mlp = Mlp(cfg.dim, int(cfg.dim * model_cfg.mlp_ratio), drop=model_cfg.drop_rate)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + self.drop_path(self._window_attention(self.norm1(x), mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def _window_attention(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        (t, h, w), (pt, ph, pw) = self.cfg.grid, self.cfg.padded_grid
        (wt, wh, ww), shift = self.cfg.window, self.cfg.shift
        if (pt, ph, pw) != (t, h, w):
            x = F.pad(x, (0, 0, 0, pw - w, 0, ph - h, 0, pt - t))  # (B, Tp, Hp, Wp, C)
        if self.cfg.shifted:
            x = torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        windows = rearrange(x, "b (nt wt) (nh wh) (nw ww) c -> b (nt nh nw) (wt wh ww) c", wt=wt, wh=wh, ww=ww)
        windows = self.attn(windows, mask if self.cfg.shifted else None)  # (B, nW, Wt*Wh*Ww, C)
        x = rearrange(windows, "b (nt nh nw) (wt wh ww) c -> b (nt wt) (nh wh) (nw ww) c",
                      nt=pt // wt, nh=ph // wh, wt=wt, wh=wh, ww=ww)
        if self.cfg.shifted:
            x = torch.roll(x, shifts=shift, dims=(1, 2, 3))
        return x[:, :t, :h, :w]  # (B, T, H, W, C)


class SwinStage(BlockRunner):
    """Patch merging (stages 2..), then the blocks; the shift mask is built once per forward."""

    def __init__(self, cfg: SwinStageConfig, model_cfg: Swin3dConfig, norm_layer: Any) -> None:
        super().__init__()
        merge = cfg.merge_from
        self.downsample = PatchMerging(cfg.dim // 2, merge, norm_layer) if merge is not None else None
        self.blocks = nn.ModuleList(SwinBlock3d(b, model_cfg, norm_layer) for b in cfg.blocks)
        shifted = next((b for b in cfg.blocks if b.shifted), None)
        self.register_buffer("shift_regions", shift_regions(shifted) if shifted else None, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            x = self.downsample(x)
        mask = None
        if self.shift_regions is not None:
            r = self.shift_regions
            mask = (r[:, :, None] != r[:, None, :]).to(x.dtype) * SHIFT_MASK_VALUE  # (nW, N, N)
        for blk in self.blocks:
            x = self.run_block(blk, x, mask)
        return x


class SwinTransformer3d(Classifier):
    def __init__(self, config: Swin3dConfig):
        super().__init__()
        self.config = cfg = config
        norm_layer = functools.partial(nn.LayerNorm, eps=cfg.norm_eps)
        (t, h, w), (pt, ph, pw) = cfg.clip_size, cfg.padded_clip_size
        self.clip_pad = (0, pw - w, 0, ph - h, 0, pt - t)  # zero-pad the clip to whole patches
        self.patch_embed = TubeletEmbed((ph, pw), pt, cfg.patch_size, cfg.in_chans, cfg.embed_dim)
        self.patch_norm = norm_layer(cfg.embed_dim) if cfg.patch_norm else nn.Identity()
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        self.stages = nn.ModuleList(SwinStage(s, cfg, norm_layer) for s in cfg.stages)
        self.num_features = cfg.stages[-1].dim
        self.norm = norm_layer(self.num_features)
        self.head_drop = nn.Dropout(cfg.head_drop_rate)
        self.head = self._make_head(cfg.num_classes)
        self.apply(init_weights)  # torchvision's: trunc normal 0.02 Linear weights, zero biases

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, T, H, W) -> normed features (B, T', H', W', C') of the last stage."""
        check_video(x, self.config.in_chans, self.config.num_frames, self.config.img_size)
        if any(self.clip_pad):
            x = F.pad(x, self.clip_pad)
        t, h, w = self.patch_embed.grid_size
        x = rearrange(self.patch_embed(x), "b (t h w) c -> b t h w c", t=t, h=h, w=w)  # (B, T', H', W', C)
        x = self.pos_drop(self.patch_norm(x))
        for stage in self.stages:
            x = stage(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(x.mean(dim=(1, 2, 3)))  # (B, C): average over (T, H, W)
        return x if pre_logits else self.head(x)


def _swin(name: str, defaults: dict, overrides: dict) -> SwinTransformer3d:
    return SwinTransformer3d(build_config(Swin3dConfig, name, defaults, overrides))


_TV = "torchvision Swin3D_{}_Weights.KINETICS400_V1 meta: {:,} params"
# fvcore: 88.06 / 166.12 / 281.92 GMACs at 32x224; at 16x224 without LayerNorm, torchvision's _ops exactly
_PAPER = ("Video-Swin-Transformer README, Kinetics-400: {} GFLOPs per 32x224 view, 4x3 views (paper Table 1: {}); "
          "torchvision _ops {} is the same model at 16x224 without LayerNorm")


@register_model("swin", ModelMeta(
    params=28_158_070, gmacs=87.9, input_size=(3, 32, 224, 224),
    source=_TV.format("T", 28_158_070) + "; " + _PAPER.format(87.9, 88, 43.882)))
def swin3d_t(**kw: Any) -> SwinTransformer3d:
    return _swin("swin3d_t", {}, kw)


@register_model("swin", ModelMeta(
    params=49_816_678, gmacs=165.9, input_size=(3, 32, 224, 224),
    source=_TV.format("S", 49_816_678) + "; " + _PAPER.format(165.9, 166, 82.841)))
def swin3d_s(**kw: Any) -> SwinTransformer3d:
    return _swin("swin3d_s", dict(depths=(2, 2, 18, 2)), kw)


@register_model("swin", ModelMeta(
    params=88_048_984, gmacs=281.6, input_size=(3, 32, 224, 224),
    source=_TV.format("B", 88_048_984) + "; " + _PAPER.format(281.6, 282, 140.667)))
def swin3d_b(**kw: Any) -> SwinTransformer3d:
    return _swin("swin3d_b", dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)), kw)


@register_model("swin", ModelMeta(input_size=(3, 8, 32, 32), source="vidbench CPU config"))
def swin3d_tiny(**kw: Any) -> SwinTransformer3d:
    """Swin-T's four stages at CPU size: grids 4x8x8 -> 4x4x4 -> 4x2x2 -> 4x1x1 under a 2x3x3
    window, so stages 1-2 pad to whole windows (8 -> 9, 4 -> 6) and shift on every axis, stages
    3-4 shrink the window to the grid in H and W and shift in time only."""
    tiny = dict(img_size=32, num_frames=8, embed_dim=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8),
                window_size=(2, 3, 3), num_classes=10)
    return _swin("swin3d_tiny", tiny, kw)
