"""ViViT: A Video Vision Transformer (Arnab et al., ICCV 2021), Models 1-4.

Follows the reference code (scenic/projects/vivit): tubelet embedding, learned 1-D position
embeddings added to all tokens, pre-norm blocks, final LayerNorm, then cls token or global
average pooling.

- Model 1 (``joint``): every token attends to every token; cls token.
- Model 2 (``factorised_encoder``): a spatial encoder shared over time with a cls token per
  temporal index, then a temporal encoder over those cls outputs with its own cls token.
- Model 3 (``factorised_self_attention``): each block runs spatial then temporal self-attention
  (separate LayerNorms), then the MLP; no cls token, global average pooling.
- Model 4 (``factorised_dot_product``): Model 1's parameters; half of the heads attend over
  time and half over space, concatenated and projected once; global average pooling.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import torch
from einops import rearrange
from torch import nn

from ..layers import (
    TUBELET_INITS,
    Attention,
    Block,
    BlockConfig,
    DropPath,
    TubeletEmbed,
    check_grid,
    init_weights,
    make_blocks,
    scaled_dot_product,
    to_2tuple,
    to_3tuple,
)
from ..layers.mlp import ACTIVATIONS, get_act_layer
from ._base import Classifier, EncoderConfig, check_compatible, copy_head, copy_module
from ._checks import check_config
from ._registry import ModelMeta, build_config, register_model
from .vit import VisionTransformer

ATTENTION_TYPES = ("joint", "factorised_encoder", "factorised_self_attention", "factorised_dot_product")


@dataclass
class ViViTConfig(EncoderConfig):
    """ViViT Models 1-4: the encoder fields (`EncoderConfig`; `depth` is the spatial depth of the
    factorised encoder), a tubelet embedding, the attention type and its options."""
    num_frames: int = 32
    tubelet_size: Tuple[int, int, int] = (2, 16, 16)
    patch_size: Optional[int] = None  # shorthand: sets the tubelet's spatial size, keeps its time
    temporal_depth: int = 4  # factorised encoder only
    attention_type: str = "joint"
    attention_order: str = "space_time"  # Model 3: paper order (scenic also offers time_space)
    classifier: Optional[str] = None  # "token" or "gap"; default per attention type as in scenic
    # 0 (default): the paper's init (scenic: every position embedding ~N(0, 0.02)). Above 0, each
    # time index's positions also get an offset ~N(0, temporal_pos_std), shared over its spatial
    # positions (Model 2: its temporal position embedding): an option for training from scratch,
    # where frame order is visible only through these (README, accuracy section).
    temporal_pos_std: float = 0.0
    # MLP activation: "gelu" (exact, erf; PyTorch / timm) or "gelu_tanh" (tanh approximation).
    # Published ViViT weights need "gelu_tanh": scenic's MlpBlock uses flax's nn.gelu, which is
    # jax.nn.gelu(approximate=True), and Hugging Face's ViViT config says hidden_act "gelu_fast"
    # (the same formula). The registry's paper configs (vivit_m*_base, vivit_m2_large) use it, so
    # that the official models are what the names build; the tiny CPU configs and a bare config keep
    # PyTorch's exact form. vidbench.weights sets it from the checkpoint when loading.
    act_layer: str = "gelu"
    # epsilon of every LayerNorm (scenic / flax and HF ViViT: 1e-6)
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        check_config(self)
        if self.temporal_pos_std < 0:
            raise ValueError(f"temporal_pos_std must be >= 0, got {self.temporal_pos_std}")
        if self.act_layer not in ACTIVATIONS:
            raise ValueError(f"act_layer must be one of {tuple(ACTIVATIONS)}, got {self.act_layer!r}")
        if not self.norm_eps > 0:
            raise ValueError(f"norm_eps must be > 0, got {self.norm_eps}")
        if self.attention_type not in ATTENTION_TYPES:
            raise ValueError(f"attention_type must be one of {ATTENTION_TYPES}, got {self.attention_type!r}")
        self.tubelet_size = to_3tuple(self.tubelet_size)
        if self.patch_size is not None:
            self.tubelet_size = (self.tubelet_size[0], self.patch_size, self.patch_size)
            self.patch_size = None
        factorised = self.attention_type in ("factorised_self_attention", "factorised_dot_product")
        if self.classifier is None:
            self.classifier = "gap" if factorised else "token"
        if self.classifier not in ("token", "gap"):
            raise ValueError(f"classifier must be 'token' or 'gap', got {self.classifier!r}")
        if factorised and self.classifier == "token":
            raise ValueError(f"{self.attention_type} has no cls token (scenic): use classifier='gap'")
        if self.attention_order not in ("space_time", "time_space"):
            raise ValueError(f"attention_order must be 'space_time' or 'time_space', got {self.attention_order!r}")


class SplitHeadAttention(Attention):
    """Model 4's factorised dot-product attention: Model 1's parameters (fused qkv, one output
    projection); the first half of the heads attends over time, the second half over space
    (scenic's order), each through the one kernel, and the heads are concatenated and projected
    once. Tokens are (B, T*S, C), time-major on grid (T, S)."""

    def __init__(self, dim: int, num_heads: int, **kwargs: Any) -> None:
        if num_heads % 2 != 0:
            raise ValueError(f"split-head attention needs an even number of heads, got {num_heads}")
        super().__init__(dim, num_heads, **kwargs)

    def forward(self, x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:  # type: ignore[override]
        t, s = check_grid(x, "split", grid)
        q, k, v = self._qkv(x)  # (B, heads, T*S, head_dim)
        half = self.num_heads // 2
        time_in = [rearrange(z[:, :half], "b h (t s) d -> (b s) h t d", t=t, s=s) for z in (q, k, v)]
        space_in = [rearrange(z[:, half:], "b h (t s) d -> (b t) h s d", t=t, s=s) for z in (q, k, v)]
        time_out = rearrange(scaled_dot_product(*time_in, dropout_p=self.dropout_p, backend=self.attn_backend), "(b s) h t d -> b h (t s) d", s=s)
        space_out = rearrange(scaled_dot_product(*space_in, dropout_p=self.dropout_p, backend=self.attn_backend), "(b t) h s d -> b h (t s) d", t=t)
        return self._project(torch.cat([time_out, space_out], dim=1))  # heads back together


class FactorisedSelfAttentionBlock(nn.Module):
    """Model 3 block: x + attn_space(LN(x)), x + attn_time(LN(x)) (order configurable), x + mlp(LN(x))."""

    def __init__(self, cfg: BlockConfig, order: str = "space_time"):
        super().__init__()
        self.order = ("space", "time") if order == "space_time" else ("time", "space")
        self.norm_space, self.norm_time, self.norm_mlp = cfg.norm(), cfg.norm(), cfg.norm()
        self.attn_space, self.attn_time = cfg.attention(), cfg.attention()
        self.mlp = cfg.mlp()
        self.drop_path = DropPath(cfg.drop_path)

    def forward(self, x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
        for axis in self.order:
            norm, attn = (self.norm_space, self.attn_space) if axis == "space" else (self.norm_time, self.attn_time)
            x = x + self.drop_path(attn(norm(x), axis=axis, grid=grid))
        return x + self.drop_path(self.mlp(self.norm_mlp(x)))


def _block_config(cfg: ViViTConfig) -> BlockConfig:
    """The blocks of every ViViT model: the config's activation and LayerNorm epsilon; Model 4
    with the split-head attention."""
    attn = SplitHeadAttention if cfg.attention_type == "factorised_dot_product" else Attention
    return BlockConfig.from_model(cfg, act_layer=get_act_layer(cfg.act_layer), norm_eps=cfg.norm_eps, attn_layer=attn)


class ViViT(Classifier):
    """ViViT Models 1, 3 and 4 on a shared tubelet embedding and a single token sequence."""

    image_init_rules = TUBELET_INITS

    def __init__(self, config: ViViTConfig):
        super().__init__()
        self.config = cfg = config
        if cfg.attention_type == "factorised_encoder":
            raise ValueError("use ViViTFactorisedEncoder for attention_type='factorised_encoder'")
        self.num_features = cfg.embed_dim
        self.patch_embed = TubeletEmbed(cfg.img_size, cfg.num_frames, cfg.tubelet_size, cfg.in_chans, cfg.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim)) if cfg.classifier == "token" else None
        num_prefix = 1 if self.cls_token is not None else 0
        self.pos_embed = nn.Parameter(torch.zeros(1, num_prefix + self.patch_embed.num_patches, cfg.embed_dim))
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        block_cfg, block = _block_config(cfg), Block
        if cfg.attention_type == "factorised_self_attention":
            block = functools.partial(FactorisedSelfAttentionBlock, order=cfg.attention_order)
        self.blocks = make_blocks(block_cfg, cfg.depth, cfg.drop_path_rate, block=block)
        self.norm = block_cfg.norm()
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.head = self._make_head(cfg.num_classes)
        self.apply(init_weights)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        _add_time_offset(self.pos_embed, num_prefix, self.patch_embed.grid, cfg.temporal_pos_std)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        cfg, grid = self.config, self.patch_embed.grid
        x = self.patch_embed(x)  # (B, T'*S, C)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + T'*S, C)
        x = self.pos_drop(x + self.pos_embed)
        for blk in self.blocks:
            x = self.run_block(blk, x) if cfg.attention_type == "joint" else self.run_block(blk, x, grid=grid)
        return self.norm(x)  # (B, [1 +] T'*S, C)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(x[:, 0] if self.cls_token is not None else x.mean(dim=1))
        return x if pre_logits else self.head(x)

    @torch.no_grad()
    def from_image_backbone(self, vit: VisionTransformer, init: str = "central_frame") -> ViViT:
        """Initialise from an image ViT by the paper's rules: tubelet by `init` (central_frame,
        inflation or random), position embeddings tiled over time (plus the config's per-time
        offset, none for the paper), blocks copied; Model 3's spatial attention from the image
        attention and its temporal attention zero, so each block starts as the image block."""
        _check_image_backbone(self.config, vit)
        self.patch_embed.init_from_2d(vit.patch_embed.proj.weight, vit.patch_embed.proj.bias, init)
        _init_pos_embed(self.pos_embed, vit, self.patch_embed.grid_size[0], has_cls=self.cls_token is not None)
        _add_time_offset(self.pos_embed, 1 if self.cls_token is not None else 0, self.patch_embed.grid,
                         self.config.temporal_pos_std)
        if self.cls_token is not None and vit.cls_token is not None:
            self.cls_token.copy_(vit.cls_token)
        for dst, src in zip(self.blocks, vit.blocks):
            if isinstance(dst, FactorisedSelfAttentionBlock):
                for mine, image in ((dst.norm_space, src.norm1), (dst.attn_space, src.attn), (dst.norm_mlp, src.norm2),
                                    (dst.mlp, src.mlp)):
                    copy_module(mine, image)
                for p in dst.attn_time.parameters():
                    p.zero_()
            else:
                copy_module(dst, src)
        copy_module(self.norm, vit.norm)
        copy_head(self, vit)
        return self


class ViViTFactorisedEncoder(Classifier):
    """ViViT Model 2: spatial encoder per temporal index, then a temporal encoder."""

    image_init_rules = TUBELET_INITS

    def __init__(self, config: ViViTConfig):
        super().__init__()
        self.config = cfg = config
        if cfg.classifier != "token":
            raise ValueError("the factorised encoder here uses cls tokens (classifier='token')")
        self.num_features = cfg.embed_dim
        self.patch_embed = TubeletEmbed(cfg.img_size, cfg.num_frames, cfg.tubelet_size, cfg.in_chans, cfg.embed_dim)
        (t, s), dim = self.patch_embed.grid, cfg.embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))  # spatial, one per temporal index
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + s, dim))  # shared over time
        self.temporal_cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.temporal_pos_embed = nn.Parameter(torch.zeros(1, 1 + t, dim))
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        block_cfg = _block_config(cfg)
        self.blocks = make_blocks(block_cfg, cfg.depth, cfg.drop_path_rate)
        self.norm = block_cfg.norm()
        self.temporal_blocks = make_blocks(block_cfg, cfg.temporal_depth, cfg.drop_path_rate)
        self.temporal_norm = block_cfg.norm()
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.head = self._make_head(cfg.num_classes)
        self.apply(init_weights)
        for p in (self.pos_embed, self.temporal_pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        _add_time_offset(self.temporal_pos_embed, 1, (t, 1), cfg.temporal_pos_std)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        t, s = self.patch_embed.grid
        x = rearrange(self.patch_embed(x), "b (t s) c -> (b t) s c", t=t, s=s)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B*T', 1 + S, C)
        x = self.pos_drop(x + self.pos_embed)
        for blk in self.blocks:
            x = self.run_block(blk, x)
        x = rearrange(self.norm(x)[:, 0], "(b t) c -> b t c", t=t)  # per-frame cls outputs (B, T', C)
        x = torch.cat([self.temporal_cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + T', C)
        x = self.pos_drop(x + self.temporal_pos_embed)
        for blk in self.temporal_blocks:
            x = self.run_block(blk, x)
        return self.temporal_norm(x)  # (B, 1 + T', C)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(x[:, 0])
        return x if pre_logits else self.head(x)

    @torch.no_grad()
    def from_image_backbone(self, vit: VisionTransformer, init: str = "central_frame") -> ViViTFactorisedEncoder:
        """The spatial encoder takes the image ViT's weights (scenic loads 'SpatialTransformer');
        the tubelet follows `init`; the temporal encoder stays randomly initialised."""
        _check_image_backbone(self.config, vit)
        if vit.cls_token is None:
            raise ValueError("the factorised encoder's spatial cls token needs an image ViT with a cls token")
        self.patch_embed.init_from_2d(vit.patch_embed.proj.weight, vit.patch_embed.proj.bias, init)
        self.cls_token.copy_(vit.cls_token)
        self.pos_embed.copy_(vit.pos_embed)
        for dst, src in zip(self.blocks, vit.blocks):
            copy_module(dst, src)
        copy_module(self.norm, vit.norm)
        copy_head(self, vit)
        return self


@torch.no_grad()
def _add_time_offset(pos: nn.Parameter, num_prefix: int, grid: Tuple[int, int], std: float) -> None:
    """Add ~N(0, std) per time index to a time-major position embedding (1, prefix + T*S, C)."""
    if std > 0:
        t, s = grid
        offset = torch.randn(1, t, 1, pos.shape[-1], device=pos.device, dtype=pos.dtype) * std
        pos[:, num_prefix:] += offset.expand(-1, -1, s, -1).reshape(1, t * s, -1)


def _check_image_backbone(cfg: ViViTConfig, vit: VisionTransformer) -> None:
    vc, mine, img = vit.config, to_2tuple(cfg.img_size), to_2tuple(vit.config.img_size)
    check_compatible(cfg, vc, [(f, f) for f in ("embed_dim", "num_heads", "depth", "mlp_ratio", "qkv_bias")], "ViViT")
    if cfg.tubelet_size[1:] != (vc.patch_size, vc.patch_size) or mine != img:
        raise ValueError(
            f"ViViT: image backbone patch {vc.patch_size} at {img} does not match tubelet {cfg.tubelet_size} at {mine}"
        )


def _init_pos_embed(pos: torch.Tensor, vit: VisionTransformer, frames: int, has_cls: bool) -> None:
    """Tile the image grid's position embeddings over time; the cls position where both have one."""
    pos[:, 1 if has_cls else 0:].copy_(vit.pos_embed[:, vit.num_prefix_tokens:].repeat(1, frames, 1))  # time-major
    if has_cls and vit.num_prefix_tokens:
        pos[:, :1].copy_(vit.pos_embed[:, :1])


def _vivit(name: str, cls: type, defaults: dict, overrides: dict) -> Classifier:
    return cls(build_config(ViViTConfig, name, defaults, overrides))


TINY = dict(img_size=32, num_frames=8, tubelet_size=(2, 8, 8), embed_dim=192, depth=4, num_heads=3, num_classes=10)
_SRC = "ViViT (ICCV 2021) Table 2, K400, 32x224, tubelet 2x16x16"
_OFFICIAL = dict(act_layer="gelu_tanh")  # scenic's flax nn.gelu, HF's gelu_fast: the tanh approximation
_IN = (3, 32, 224, 224)


@register_model("vivit", ModelMeta(params=88.9e6, gmacs=455.2, gmacs_tol=0.02, input_size=_IN, source=_SRC))
def vivit_m1_base(**kw: Any) -> ViViT:
    return _vivit("vivit_m1_base", ViViT, dict(_OFFICIAL, attention_type="joint"), kw)


@register_model("vivit", ModelMeta(params=115.1e6, gmacs=284.4, gmacs_tol=0.02, input_size=_IN, source=_SRC))
def vivit_m2_base(**kw: Any) -> ViViTFactorisedEncoder:
    return _vivit("vivit_m2_base", ViViTFactorisedEncoder, dict(_OFFICIAL, attention_type="factorised_encoder"), kw)


@register_model("vivit", ModelMeta(params=117.3e6, gmacs=372.3, gmacs_tol=0.02, input_size=_IN, source=_SRC))
def vivit_m3_base(**kw: Any) -> ViViT:
    return _vivit("vivit_m3_base", ViViT, dict(_OFFICIAL, attention_type="factorised_self_attention"), kw)


@register_model("vivit", ModelMeta(params=88.9e6, gmacs=277.1, gmacs_tol=0.02, input_size=_IN, source=_SRC))
def vivit_m4_base(**kw: Any) -> ViViT:
    return _vivit("vivit_m4_base", ViViT, dict(_OFFICIAL, attention_type="factorised_dot_product"), kw)


@register_model("vivit", ModelMeta(input_size=_IN, source="ViViT-L/16x2 factorised encoder (scenic config)"))
def vivit_m2_large(**kw: Any) -> ViViTFactorisedEncoder:
    # scenic configs/kinetics{400,600}/vivit_large_factorised_encoder.py: 24 spatial and 24
    # temporal layers of width 1024, 16 heads, mlp 4096
    large = dict(_OFFICIAL, attention_type="factorised_encoder", embed_dim=1024, depth=24, temporal_depth=24, num_heads=16)
    return _vivit("vivit_m2_large", ViViTFactorisedEncoder, large, kw)


_TINY_META = ModelMeta(input_size=(3, 8, 32, 32), source="vidbench CPU config")


@register_model("vivit", _TINY_META)
def vivit_m1_tiny(**kw: Any) -> ViViT:
    return _vivit("vivit_m1_tiny", ViViT, dict(TINY, attention_type="joint"), kw)


@register_model("vivit", _TINY_META)
def vivit_m2_tiny(**kw: Any) -> ViViTFactorisedEncoder:
    return _vivit("vivit_m2_tiny", ViViTFactorisedEncoder, dict(TINY, attention_type="factorised_encoder", temporal_depth=2), kw)


@register_model("vivit", _TINY_META)
def vivit_m3_tiny(**kw: Any) -> ViViT:
    return _vivit("vivit_m3_tiny", ViViT, dict(TINY, attention_type="factorised_self_attention"), kw)


@register_model("vivit", _TINY_META)
def vivit_m4_tiny(**kw: Any) -> ViViT:
    return _vivit("vivit_m4_tiny", ViViT, dict(TINY, attention_type="factorised_dot_product", num_heads=4, embed_dim=192), kw)
