"""MViT: Multiscale Vision Transformers (Fan et al., ICCV 2021) and MViTv2 (Li et al., CVPR 2022).

Stages of pooling-attention blocks that shrink the token grid and widen the channels:

- cube stem: an overlapping Conv3d (MViT-B 3x7x7, stride 2x4x4, padding 1x3x3) and a cls token;
- stage s (widths embed_dim * 2**s, heads num_heads * 2**s): its first block pools the query by
  `stride_q` (1x2x2), and the residual path by a max pool; keys and values are pooled in every
  block with a stride that starts at `stride_kv` (1x8x8) and is divided by every query stride
  since, so the pooled K/V grid keeps the same size (SlowFast's adaptive kv stride);
- v1: separate spatial, temporal and cls position embeddings; channels widen in the MLP of a
  stage's last block (residual through a Linear on the normed input);
- v2: no absolute position; decomposed relative position as the attention kernel's bias,
  residual pooling of the query; channels widen inside the attention of a stage's first block;
- final LayerNorm, cls token, dropout, linear head.

Module layout and initialisation follow torchvision's `mvit_v1_b` / `mvit_v2_s`, so their weights
load through `convert.torchvision_mvit_to_vidbench` and the logits agree (tested).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Tuple, Union

import torch
from einops import rearrange
from torch import nn

from ..layers import (
    DropPath,
    LayerNorm,
    Mlp,
    TubeletEmbed,
    drop_path_rates,
    init_weights,
    to_2tuple,
)
from ._base import Classifier
from ._checks import check_config
from ._registry import ModelMeta, build_config, register_model
from .mvit_pooling import PoolingAttention, pooled_grid

Int3 = Tuple[int, int, int]


@dataclass(frozen=True)
class MViTBlockConfig:
    """One block, derived by `MViTConfig` from its stage-level numbers.

    grid_in: (T, H, W) token grid entering the block; kernel_q None: no query pooling.
    """

    dim_in: int
    dim_out: int
    num_heads: int
    grid_in: Int3
    stride_q: Int3
    stride_kv: Int3
    kernel_q: Optional[Int3]
    kernel_kv: Int3
    drop_path: float = 0.0
    rel_pos_len: Optional[Int3] = None  # v2: (T, H, W) relative-position table lengths (None: the grids' spans)

    @property
    def grid_out(self) -> Int3:
        return pooled_grid(self.grid_in, self.kernel_q or (1, 1, 1), self.stride_q)

    @property
    def pools_query(self) -> bool:
        return self.stride_q != (1, 1, 1)


@dataclass
class MViTConfig:
    """Stage-level description; `blocks` (one `MViTBlockConfig` each) is derived from it.

    Defaults are MViT-B 16x4 (torchvision `mvit_v1_b`).
    """

    img_size: Union[int, tuple] = 224
    num_frames: int = 16
    in_chans: int = 3
    num_classes: int = 400
    version: int = 1  # 1: MViT, 2: MViTv2
    embed_dim: int = 96  # stage-1 width; doubles at every stage
    num_heads: int = 1  # stage-1 heads; double at every stage
    depths: Tuple[int, ...] = (1, 2, 11, 2)
    patch_kernel: Int3 = (3, 7, 7)
    patch_stride: Int3 = (2, 4, 4)
    patch_padding: Int3 = (1, 3, 3)
    pool_kernel: Int3 = (3, 3, 3)  # query and key/value pooling kernel
    stride_q: Int3 = (1, 2, 2)  # query stride at each stage's first block (stages 2..)
    stride_kv: Int3 = (1, 8, 8)  # key/value stride in stage 1, divided by each query stride after
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_rate: float = 0.0  # after attention projection and in the MLP (torchvision attention_dropout)
    attn_drop_rate: float = 0.0  # on attention weights (not used by the papers)
    drop_path_rate: float = 0.0  # as the rest of the zoo; the MViT-B recipe (and torchvision's default) is 0.2
    head_drop_rate: float = 0.5
    # False: the token grid must halve exactly at every stage boundary (refused otherwise); True: an
    # odd side rounds up as the padded pooling makes it (39 -> 20), with the relative-position
    # tables sized from the floored grid and interpolated, as SlowFast and mmaction2 do (MViTv2-L at 312)
    odd_grids: bool = False
    blocks: Tuple[MViTBlockConfig, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_config(self)
        if self.version not in (1, 2):
            raise ValueError(f"version must be 1 (MViT) or 2 (MViTv2), got {self.version!r}")
        for name in ("patch_kernel", "patch_stride", "patch_padding", "pool_kernel", "stride_q", "stride_kv"):
            setattr(self, name, tuple(int(v) for v in getattr(self, name)))
        if any(k % 2 == 0 for k in self.pool_kernel):
            raise ValueError(f"pool_kernel must be odd in every axis, got {tuple(self.pool_kernel)}")
        self.img_size = to_2tuple(self.img_size)
        self.depths = tuple(int(d) for d in self.depths)
        if not self.depths or min(self.depths) < 1:
            raise ValueError(f"depths must be one or more positive block counts, got {self.depths}")
        self._check_clip_size()
        sizes = (self.num_frames, *self.img_size)
        grid = tuple(n // s for n, s in zip(sizes, self.patch_stride))
        stem = tuple((n + 2 * p - k) // s + 1
                     for n, k, s, p in zip(sizes, self.patch_kernel, self.patch_stride, self.patch_padding))
        if stem != grid:
            raise ValueError(f"stem kernel {self.patch_kernel} with padding {self.patch_padding} gives a {stem} token "
                             f"grid, not clip size / stride = {grid}")
        stride_kv, rates = self.stride_kv, drop_path_rates(self.drop_path_rate, sum(self.depths))
        nominal = grid  # SlowFast's `input_size`: the grid floored at every query stride
        blocks = []
        for stage, depth in enumerate(self.depths):
            dim, heads = self.embed_dim * 2**stage, self.num_heads * 2**stage
            next_dim = dim * 2 if stage + 1 < len(self.depths) else dim
            for j in range(depth):
                stride_q = self.stride_q if stage > 0 and j == 0 else (1, 1, 1)
                stride_kv = tuple(max(kv // q, 1) for kv, q in zip(stride_kv, stride_q))
                if self.version == 1:  # widen in the MLP of the stage's last block
                    dim_in, dim_out = dim, (next_dim if j == depth - 1 else dim)
                else:  # widen in the attention of the stage's first block
                    dim_in, dim_out = (dim // 2 if stage > 0 and j == 0 else dim), dim
                pool_q = self.version == 2 or stride_q != (1, 1, 1)
                # SlowFast / mmaction2 table lengths: 2T - 1 in time, 2 max(side // q, side // kv) - 1 in space
                rel_len = (2 * nominal[0] - 1, *(2 * max(n // q, n // kv) - 1
                                                 for n, q, kv in zip(nominal[1:], stride_q[1:], stride_kv[1:])))
                blocks.append(MViTBlockConfig(dim_in, dim_out, heads, grid, stride_q, stride_kv,
                                              self.pool_kernel if pool_q else None, self.pool_kernel,
                                              rates[len(blocks)], rel_len if self.version == 2 else None))
                grid = blocks[-1].grid_out
                nominal = tuple(n // q for n, q in zip(nominal, stride_q))
        self.blocks = tuple(blocks)

    def _check_clip_size(self) -> None:
        """Frames and size must tile into the stem and (unless `odd_grids`) halve exactly at every
        stage boundary."""
        boundaries = 0 if self.odd_grids else len(self.depths) - 1
        multiples = [s * q**boundaries for s, q in zip(self.patch_stride, self.stride_q)]
        sizes = (self.num_frames, *self.img_size)
        bad = [f"{what} {n} is not a multiple of {m}"
               for what, n, m in zip(("num_frames", "image height", "image width"), sizes, multiples) if n % m]
        if bad:
            raise ValueError(
                f"MViT cannot take this clip: {'; '.join(bad)} (stem stride {self.patch_stride} times the "
                f"query stride {self.stride_q} at each of {boundaries} stage boundaries; odd_grids=True rounds odd "
                "sides up as SlowFast's padded pooling does)"
            )


class MultiscaleBlock(nn.Module):
    """Pre-norm block on pooling attention; pools the residual when the query is pooled and
    widens the channels (v1: in the MLP, v2: in the attention)."""

    def __init__(self, cfg: MViTBlockConfig, version: int, mlp_ratio: float, qkv_bias: bool, drop: float,
                 attn_drop: float) -> None:
        super().__init__()
        self.grid, self.expand_in_attn = cfg.grid_in, version == 2
        attn_dim = cfg.dim_out if self.expand_in_attn else cfg.dim_in
        self.norm1 = LayerNorm(cfg.dim_in)
        self.attn = PoolingAttention(
            cfg.dim_in, attn_dim, cfg.num_heads, cfg.grid_in, cfg.kernel_q, cfg.stride_q, cfg.kernel_kv,
            cfg.stride_kv, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop, rel_pos=version == 2,
            residual_pool=version == 2, rel_pos_len=cfg.rel_pos_len,
        )
        self.drop_path = DropPath(cfg.drop_path)
        self.norm2 = LayerNorm(attn_dim)
        self.mlp = Mlp(attn_dim, int(attn_dim * mlp_ratio), cfg.dim_out, drop=drop)
        self.proj = nn.Linear(cfg.dim_in, cfg.dim_out) if cfg.dim_in != cfg.dim_out else None
        self.pool_skip = None
        if cfg.pools_query:
            kernel = [s + 1 if s > 1 else s for s in cfg.stride_q]
            self.pool_skip = nn.MaxPool3d(kernel, cfg.stride_q, [k // 2 for k in kernel])

    def _skip(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool_skip is None:
            return x
        t, h, w = self.grid
        tokens = rearrange(x[:, 1:], "b (t h w) c -> b c t h w", t=t, h=h, w=w)
        tokens = rearrange(self.pool_skip(tokens), "b c t h w -> b (t h w) c")
        return torch.cat([x[:, :1], tokens], dim=1)  # (B, 1 + T'*H'*W', C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_norm = self.norm1(x)
        x_attn = self.attn(x_norm)  # (B, 1 + N', attn_dim)
        if self.proj is not None and self.expand_in_attn:
            x = self.proj(x_norm)
        x = self._skip(x) + self.drop_path(x_attn)
        x_norm = self.norm2(x)
        if self.proj is not None and not self.expand_in_attn:
            x = self.proj(x_norm)
        return x + self.drop_path(self.mlp(x_norm))


class MViT(Classifier):
    def __init__(self, config: MViTConfig):
        super().__init__()
        self.config = cfg = config
        self.patch_embed = TubeletEmbed(cfg.img_size, cfg.num_frames, cfg.patch_stride, cfg.in_chans, cfg.embed_dim,
                                        kernel_size=cfg.patch_kernel, padding=cfg.patch_padding)
        t, h, w = self.patch_embed.grid_size
        dim = cfg.embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed_spatial = self.pos_embed_temporal = self.pos_embed_class = None
        if cfg.version == 1:
            self.pos_embed_spatial = nn.Parameter(torch.zeros(1, h * w, dim))
            self.pos_embed_temporal = nn.Parameter(torch.zeros(1, t, dim))
            self.pos_embed_class = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(
            MultiscaleBlock(b, cfg.version, cfg.mlp_ratio, cfg.qkv_bias, cfg.drop_rate, cfg.attn_drop_rate)
            for b in cfg.blocks
        )
        self.num_features = cfg.blocks[-1].dim_out
        self.norm = LayerNorm(self.num_features)
        self.head_drop = nn.Dropout(cfg.head_drop_rate)
        self.head = self._make_head(cfg.num_classes)
        self.apply(init_weights)
        for p in (self.cls_token, self.pos_embed_spatial, self.pos_embed_temporal, self.pos_embed_class):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)

    def _pos_embed(self) -> torch.Tensor:
        """v1: temporal[t] + spatial[s] for token (t, s), the cls position first."""
        pos = self.pos_embed_temporal[:, :, None] + self.pos_embed_spatial[:, None]  # (1, T, H*W, C)
        return torch.cat([self.pos_embed_class, rearrange(pos, "1 t s c -> 1 (t s) c")], dim=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, T, H, W) -> normed tokens (B, 1 + T'*H'*W', C') of the last stage, cls first."""
        x = self.patch_embed(x)  # (B, T*H*W, embed_dim)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        if self.pos_embed_spatial is not None:
            x = x + self._pos_embed()
        for blk in self.blocks:
            x = self.run_block(blk, x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(x[:, 0])
        return x if pre_logits else self.head(x)


def _mvit(name: str, defaults: dict, overrides: dict) -> MViT:
    return MViT(build_config(MViTConfig, name, defaults, overrides))


_PTV = "PyTorchVideo model zoo, Kinetics-400: "


@register_model("mvit", ModelMeta(
    params=36_610_672, gmacs=70.5, input_size=(3, 16, 224, 224),
    source="MViT (ICCV 2021) Table 4: 36.6M, 70.5 GFLOPs x 5 views; torchvision mvit_v1_b meta: 36,610,672 "
           "params, 70.599 GFLOPs; " + _PTV + "70.80 GFLOPs"))
def mvit_b_16x4(**kw: Any) -> MViT:
    return _mvit("mvit_b_16x4", {}, kw)


@register_model("mvit", ModelMeta(
    params=36.61e6, gmacs=170.37, input_size=(3, 32, 224, 224),
    source=_PTV + "MViT-B 32x3, 36.61M params, 170.37 GFLOPs x 1 x 5 views (pytorchvideo mvit_base_32x3: "
           "MViT-B's 16 blocks on 32 frames)"))
def mvit_b_32x3(**kw: Any) -> MViT:
    return _mvit("mvit_b_32x3", dict(num_frames=32), kw)


@register_model("mvit", ModelMeta(
    input_size=(3, 16, 224, 224),
    source="MViT (ICCV 2021) MViT-S: no official config was released (SlowFast issues 459, 555); cube 3x8x8 "
           "stride 2x8x8, widths 128/256/512, 3/7/6 blocks as in a public pytorchvideo-style config "
           "(makecent/ProgPreTrain small_16x4); published numbers not verified here"))
def mvit_s_16x4(**kw: Any) -> MViT:
    small = dict(embed_dim=128, depths=(3, 7, 6), patch_kernel=(3, 8, 8), patch_stride=(2, 8, 8),
                 patch_padding=(1, 0, 0))
    return _mvit("mvit_s_16x4", small, kw)


@register_model("mvit", ModelMeta(
    params=34_537_744, gmacs=64.224, input_size=(3, 16, 224, 224),
    source="torchvision mvit_v2_s meta: 34,537,744 params, 64.224 GFLOPs (MViTv2-S 16x4, SlowFast MVITv2_S_16x4)"))
def mvitv2_s_16x4(**kw: Any) -> MViT:
    return _mvit("mvitv2_s_16x4", dict(version=2), kw)


_MVITV2 = "SlowFast projects/mvitv2/README.md, Kinetics-400: "


@register_model("mvit", ModelMeta(
    params=51.2e6, gmacs=225.0, input_size=(3, 32, 224, 224),
    source=_MVITV2 + "MViTv2-B 32x3, 225 GFLOPs x 1 x 5 views, 51.2M params (config Kinetics/MVITv2_B_32x3: "
                     "24 blocks, query pooling at blocks 2, 5, 21; mmaction2 mvit-base-p244_32x3x1)"))
def mvitv2_b_32x3(**kw: Any) -> MViT:
    return _mvit("mvitv2_b_32x3", dict(version=2, depths=(2, 3, 16, 3), num_frames=32), kw)


@register_model("mvit", ModelMeta(
    params=213e6, gmacs=2828.0, input_size=(3, 40, 312, 312),
    source=_MVITV2 + "MViTv2-L 40x3 at 312 px, 2828 GFLOPs x 3 x 5 views (config Kinetics/MVITv2_L_40x3_test: "
                     "width 144, 2 heads, 48 blocks, query pooling at blocks 2, 8, 44); params: mmaction2 mvit README "
                     "213M (mvit-large-p244_40x3x1; its MViT(arch='large') at 40x312 has these shapes exactly; the "
                     "SlowFast README's 217.6M is not reproduced by either code)"))
def mvitv2_l_40x3(**kw: Any) -> MViT:
    large = dict(version=2, embed_dim=144, num_heads=2, depths=(2, 6, 36, 4), num_frames=40, img_size=312,
                 odd_grids=True)
    return _mvit("mvitv2_l_40x3", large, kw)


@register_model("mvit", ModelMeta(input_size=(3, 8, 32, 32), source="vidbench CPU config"))
def mvit_tiny(**kw: Any) -> MViT:
    """MViT-B's stem and stage structure at CPU size: grids 4x8x8 -> 4x4x4 -> 4x2x2 -> 4x1x1."""
    tiny = dict(img_size=32, num_frames=8, embed_dim=24, depths=(1, 1, 2, 1), stride_kv=(1, 4, 4), num_classes=10)
    return _mvit("mvit_tiny", tiny, kw)
