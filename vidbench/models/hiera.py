"""Hiera (Ryali et al., ICML 2023): a hierarchical ViT of plain blocks, mask-unit attention and
max-pooled queries, no relative positions, no convolutions after the stem. The video models
(`hiera_{base,base_plus,large,huge}_16x224`) follow Meta's `hiera-transformer` package
(`hiera/hiera.py`, `hiera/hiera_utils.py`, v0.1.4); its state dicts load through one rename
(`weights.formats.hiera_official`) and the logits agree (tests/test_hiera.py).

- stem: Conv3d 3x7x7, stride 2x4x4, padding 1x3x3; the token grid is the clip divided by the
  stride. Positions: a spatial table (1, H'W', C) plus a temporal one (1, T', C) (`sep_pos_embed`,
  the video configs), or one table over all tokens.
- unroll: the tokens are reordered once, before the blocks, so that the q_stride neighbours of
  every level of pooling are the outermost index: `unroll` moves the (1, 2, 2) strides out of the
  grid (len(depths) - 1 times), the finest first. A max-pool of q_stride is then a max over the
  leading q_stride slices of the sequence, and a mask unit (mask_unit_size tokens, shrinking by
  q_stride at every pooling) is every num_windows-th token: windows are a reshape, not a gather.
  Attention pools nothing else, so the final tokens are in the grid's order again where q_pool
  consumed every level (the video configs); otherwise only their mean is used.
- blocks: pre-norm, `x + attn(norm1(x))` then `x + mlp(norm2(x))`. The first block of stages
  2.. widens (dim_mul) and adds heads (head_mul); its residual is `proj(norm1(x))` max-pooled
  like its queries (stages 2..q_pool + 1). Mask-unit attention runs in the stages
  `mask_unit_attn` names, lagging one block: a stage's first block still uses the previous
  stage's kind (the reference's rule). Attention is fused qkv and the one kernel,
  `scaled_dot_product`, on (B * windows, heads, tokens, head_dim).
- head: mean of the tokens, LayerNorm (eps 1e-6), dropout, linear (init scaled by 0.001).
  The reference's `Head` applies a softmax in eval mode; vidbench returns logits (the argmax and
  every published accuracy are the same).

The 2-D image models of the package are not registered here (vidbench's zoo is video).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Tuple, Union

import torch
from einops import rearrange
from torch import nn

from ..layers import Attention, DropPath, Mlp, TubeletEmbed, drop_path_rates, scaled_dot_product, to_2tuple
from ._base import Classifier
from ._checks import check_config
from ._registry import ModelMeta, build_config, register_model

Int3 = Tuple[int, int, int]


@dataclass(frozen=True)
class HieraBlockConfig:
    """One block, derived by `HieraConfig`: widths, heads, the flat query stride (1: no pooling)
    and the flat mask unit its keys see (0: global attention)."""

    dim: int
    dim_out: int
    num_heads: int
    q_stride: int
    window: int
    drop_path: float = 0.0


@dataclass
class HieraConfig:
    """Defaults: Hiera-B at 16x224 (`hiera.hiera_base_16x224`)."""

    img_size: Union[int, tuple] = 224
    num_frames: int = 16
    in_chans: int = 3
    num_classes: int = 400
    embed_dim: int = 96  # stage-1 width
    num_heads: int = 1  # stage-1 heads
    depths: Tuple[int, ...] = (2, 3, 16, 3)  # the reference's `stages`
    q_pool: int = 3  # how many stage transitions max-pool the queries
    q_stride: Int3 = (1, 2, 2)
    mask_unit_size: Int3 = (1, 8, 8)
    mask_unit_attn: Tuple[bool, ...] = (True, True, False, False)
    dim_mul: float = 2.0
    head_mul: float = 2.0
    patch_kernel: Int3 = (3, 7, 7)
    patch_stride: Int3 = (2, 4, 4)
    patch_padding: Int3 = (1, 3, 3)
    mlp_ratio: float = 4.0
    sep_pos_embed: bool = True  # spatial + temporal tables (video configs); False: one table
    norm_eps: float = 1e-6
    drop_path_rate: float = 0.0
    head_drop_rate: float = 0.0  # the reference's head_dropout
    head_init_scale: float = 0.001
    blocks: Tuple[HieraBlockConfig, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_config(self)
        self.img_size = to_2tuple(self.img_size)
        for name in ("q_stride", "mask_unit_size"):
            value = tuple(getattr(self, name))
            if len(value) != 3 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
                raise ValueError(f"{name} must be three positive sizes (T, H, W), got {getattr(self, name)!r}")
            setattr(self, name, value)
        self.depths, self.mask_unit_attn = tuple(self.depths), tuple(bool(m) for m in self.mask_unit_attn)
        if len(self.mask_unit_attn) != len(self.depths):
            raise ValueError(f"mask_unit_attn {self.mask_unit_attn} needs one flag per stage of {self.depths}")
        if not 0 <= self.q_pool < len(self.depths):
            raise ValueError(f"q_pool must be in [0, {len(self.depths) - 1}] for {len(self.depths)} stages, "
                             f"got {self.q_pool}")
        levels = len(self.depths) - 1  # the reference unrolls one q_stride per stage transition
        for axis, n, mu, s in zip("THW", self.grid, self.mask_unit_size, self.q_stride):
            if n % s ** levels or (s ** levels) % mu:
                raise ValueError(f"{axis}: the token grid {self.grid} must divide by q_stride**{levels} "
                                 f"({s ** levels}), which the mask unit {self.mask_unit_size} must divide")
        self.blocks = self._derive_blocks()

    @property
    def grid(self) -> Int3:
        """(T', H', W') tokens after the stem: the clip divided by the stem's stride."""
        return tuple(n // s for n, s in zip((self.num_frames, *self.img_size), self.patch_stride))  # type: ignore

    def _derive_blocks(self) -> Tuple[HieraBlockConfig, ...]:
        """The reference's loop: widths and heads grow at stage starts, the first q_pool of them
        pool the queries and shrink the mask unit, and a block uses the mask-unit attention flag
        of the stage before it when it starts a stage."""
        ends = [sum(self.depths[:i + 1]) - 1 for i in range(len(self.depths))]
        pooling = {end + 1 for end in ends[:self.q_pool]}
        stride, unit = math.prod(self.q_stride), math.prod(self.mask_unit_size)
        rates = drop_path_rates(self.drop_path_rate, sum(self.depths))
        dim, heads, stage, blocks = self.embed_dim, self.num_heads, 0, []
        for i in range(sum(self.depths)):
            dim_out, mask_unit = dim, self.mask_unit_attn[stage]
            if i - 1 in ends:
                dim_out, heads, stage = int(dim * self.dim_mul), int(heads * self.head_mul), stage + 1
            if dim_out % heads:
                raise ValueError(f"block {i}: width {dim_out} is not divisible by {heads} heads")
            q_stride = stride if i in pooling else 1
            blocks.append(HieraBlockConfig(dim, dim_out, heads, q_stride, unit if mask_unit else 0, rates[i]))
            unit //= q_stride
            dim = dim_out
        return tuple(blocks)


def unroll(x: torch.Tensor, grid: Int3, stride: Int3, levels: int) -> torch.Tensor:
    """(B, T*H*W, C) tokens in grid order -> the same tokens with the `stride` offsets of `levels`
    successive poolings as the outermost index, the finest first (the reference's `Unroll`)."""
    st, sh, sw = stride
    x = x.reshape(x.shape[0], 1, *grid, x.shape[-1])  # (B, 1, T, H, W, C)
    for _ in range(levels):
        x = rearrange(x, "b s (t st) (h sh) (w sw) c -> b (s st sh sw) t h w c", st=st, sh=sh, sw=sw)
    return rearrange(x, "b s t h w c -> b (s t h w) c")


def pool_max(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Max over the leading `stride` slices of an unrolled sequence: (..., stride*N, C) -> (..., N, C),
    a max-pool of the q_stride neighbourhood of every token."""
    return rearrange(x, "... (s n) c -> ... s n c", s=stride).amax(dim=-3)


class MaskUnitAttention(Attention):
    """Fused qkv widening dim -> dim_out, queries max-pooled by `q_stride`, attention within
    mask units of `window` key tokens (0: all tokens), on the one kernel."""

    def __init__(self, cfg: HieraBlockConfig) -> None:
        super().__init__(cfg.dim, cfg.num_heads, qkv_bias=True, dim_out=cfg.dim_out)
        self.q_stride, self.window = cfg.q_stride, cfg.window

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """x: (B, N, dim) unrolled -> (B, N / q_stride, dim_out)."""
        windows = x.shape[1] // self.window if self.window else 1
        qkv = rearrange(self.qkv(x), "b (n w) (three h d) -> three (b w) h n d", w=windows, three=3,
                        h=self.num_heads)  # token n * windows + w is the n-th of mask unit w
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (B*windows, heads, window, head_dim)
        if self.q_stride > 1:
            q = pool_max(q, self.q_stride)  # (B*windows, heads, window / q_stride, head_dim)
        out = scaled_dot_product(q, k, v, dropout_p=self.dropout_p, backend=self.attn_backend)
        out = rearrange(out, "(b w) h n d -> b (n w) (h d)", w=windows)  # (B, N / q_stride, dim_out)
        return self.proj_drop(self.proj(out))


class HieraBlock(nn.Module):
    def __init__(self, cfg: HieraBlockConfig, mlp_ratio: float, norm_eps: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim, eps=norm_eps)
        self.attn = MaskUnitAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.dim_out, eps=norm_eps)
        self.mlp = Mlp(cfg.dim_out, int(cfg.dim_out * mlp_ratio))
        self.drop_path = DropPath(cfg.drop_path)
        self.proj = nn.Linear(cfg.dim, cfg.dim_out) if cfg.dim != cfg.dim_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_norm = self.norm1(x)
        if self.proj is not None:  # a stage's first block: the residual widened and pooled like the queries
            x = pool_max(self.proj(x_norm), self.attn.q_stride)
        x = x + self.drop_path(self.attn(x_norm))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def _init_hiera(module: nn.Module) -> None:
    """The reference's `_init_weights`: trunc-normal(0.02) Linear and Conv weights, Linear and
    LayerNorm biases 0.02, LayerNorm weights 1."""
    if isinstance(module, (nn.Linear, nn.Conv3d)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.constant_(module.bias, 0.02)
    elif isinstance(module, nn.LayerNorm):
        nn.init.constant_(module.bias, 0.02)
        nn.init.ones_(module.weight)


def stem(cfg: HieraConfig) -> TubeletEmbed:
    """The overlapping Conv3d stem; its grid must be the clip divided by its stride (what `unroll` assumes)."""
    embed = TubeletEmbed(cfg.img_size, cfg.num_frames, cfg.patch_stride, cfg.in_chans, cfg.embed_dim,
                         kernel_size=cfg.patch_kernel, padding=cfg.patch_padding)
    if tuple(embed.grid_size) != cfg.grid:
        raise ValueError(f"the stem {cfg.patch_kernel} / {cfg.patch_stride} / {cfg.patch_padding} makes a "
                         f"{embed.grid_size} grid, not the clip / stride {cfg.grid} Hiera unrolls")
    return embed


class Hiera(Classifier):
    def __init__(self, config: HieraConfig):
        super().__init__()
        self.config = cfg = config
        self.patch_embed = stem(cfg)
        t, h, w = cfg.grid
        self.pos_embed = self.pos_embed_spatial = self.pos_embed_temporal = None
        if cfg.sep_pos_embed:
            self.pos_embed_spatial = nn.Parameter(torch.zeros(1, h * w, cfg.embed_dim))
            self.pos_embed_temporal = nn.Parameter(torch.zeros(1, t, cfg.embed_dim))
        else:
            self.pos_embed = nn.Parameter(torch.zeros(1, t * h * w, cfg.embed_dim))
        self.blocks = nn.ModuleList(HieraBlock(b, cfg.mlp_ratio, cfg.norm_eps) for b in cfg.blocks)
        self.num_features = cfg.blocks[-1].dim_out
        self.norm = nn.LayerNorm(self.num_features, eps=cfg.norm_eps)
        self.head_drop = nn.Dropout(cfg.head_drop_rate)
        for p in (self.pos_embed, self.pos_embed_spatial, self.pos_embed_temporal):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)
        self.apply(_init_hiera)
        self.head = self._make_head(cfg.num_classes)

    def _make_head(self, num_classes: int) -> nn.Module:
        if num_classes <= 0:
            return nn.Identity()
        head = nn.Linear(self.num_features, num_classes)
        _init_hiera(head)
        with torch.no_grad():
            head.weight.mul_(self.config.head_init_scale)
            head.bias.mul_(self.config.head_init_scale)
        return head

    def _pos_embed(self) -> torch.Tensor:
        if self.pos_embed is not None:
            return self.pos_embed
        pos = self.pos_embed_temporal[:, :, None] + self.pos_embed_spatial[:, None]  # (1, T', H'W', C)
        return rearrange(pos, "1 t s c -> 1 (t s) c")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, T, H, W) -> the last stage's tokens (B, N, C') (grid order where q_pool
        consumed every unrolled level, as in the published configs), not normed."""
        cfg = self.config
        x = self.patch_embed(x) + self._pos_embed().to(x.dtype)  # (B, T'*H'*W', C) grid order
        x = unroll(x, cfg.grid, cfg.q_stride, len(cfg.depths) - 1)
        for blk in self.blocks:
            x = self.run_block(blk, x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.norm(x.mean(dim=1)))  # (B, C)
        return x if pre_logits else self.head(x)


def _hiera(name: str, defaults: dict, overrides: dict) -> Hiera:
    return Hiera(build_config(HieraConfig, name, defaults, overrides))


_IN = (3, 16, 224, 224)
# params: the Hugging Face model pages of the package's checkpoints (facebook/<name>.<checkpoint>,
# "Model size"); Hiera-H: the package's exact count (no published figure read). No published K400
# GFLOPs were confirmed, so gmacs stay unset: the facebookresearch/hiera README gives top-1 and A100
# speed only, and the paper's (arXiv 2306.00989) K400 table was not reachable in the stored corpora
# (searched again in session 4). fvcore counts 101.9 / 132.5 / 412.7 / 1158.8 GMACs per view (16 x
# 224), as it counts the package's own models (tests/test_hiera.py).
_SRC = "hiera-transformer {} (K400, 16 frames at stride 4, 224); {}"
_HUB = "Hugging Face facebook/{}.{}: {} params"


@register_model("hiera", ModelMeta(params=51_100_000, input_size=_IN, source=_SRC.format(
    "hiera_base_16x224", _HUB.format("hiera_base_16x224", "mae_k400_ft_k400", "51.1M"))))
def hiera_base_16x224(**kw: Any) -> Hiera:
    return _hiera("hiera_base_16x224", {}, kw)


@register_model("hiera", ModelMeta(params=69_400_000, input_size=_IN, source=_SRC.format(
    "hiera_base_plus_16x224", _HUB.format("hiera_base_plus_16x224", "mae_k400", "69.4M"))))
def hiera_base_plus_16x224(**kw: Any) -> Hiera:
    return _hiera("hiera_base_plus_16x224", dict(embed_dim=112, num_heads=2), kw)


@register_model("hiera", ModelMeta(params=213_000_000, input_size=_IN, source=_SRC.format(
    "hiera_large_16x224", _HUB.format("hiera_large_16x224", "mae_k400", "213M"))))
def hiera_large_16x224(**kw: Any) -> Hiera:
    return _hiera("hiera_large_16x224", dict(embed_dim=144, num_heads=2, depths=(2, 6, 36, 4)), kw)


@register_model("hiera", ModelMeta(params=671_627_664, input_size=_IN, source=_SRC.format(
    "hiera_huge_16x224", "the package's exact count, 671,627,664 parameters")))
def hiera_huge_16x224(**kw: Any) -> Hiera:
    return _hiera("hiera_huge_16x224", dict(embed_dim=256, num_heads=4, depths=(2, 6, 36, 4)), kw)


@register_model("hiera", ModelMeta(input_size=(3, 4, 32, 32), source="vidbench CPU config"))
def hiera_tiny(**kw: Any) -> Hiera:
    """Hiera-B's four stages at CPU size (not the package's image Hiera-T): an 2x8x8 token grid in
    1x4x4 mask units, pooled to 2x4x4, 2x2x2, 2x1x1; mask-unit attention in stages 1-2 and the
    first block of stage 3."""
    tiny = dict(img_size=32, num_frames=4, embed_dim=16, depths=(1, 2, 2, 1), mask_unit_size=(1, 4, 4),
                num_classes=10)
    return _hiera("hiera_tiny", tiny, kw)

