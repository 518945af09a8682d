"""Vision Transformer (Dosovitskiy et al. 2021) and the frame-average video baseline.

Parameter names follow timm, so timm's checkpoints load through the identity mapping of
`vidbench.weights.formats.timm_vit` (which refuses timm features this ViT lacks). Layer scale
(`init_values`: DINOv2, CaiT) and register tokens (`reg_tokens`: DINOv2 with registers) are
config fields; the self-supervised backbones (DINO, MAE, MoCo v3, DINOv2) load into it with
`num_classes=0` (no head: forward returns the pooled, pre-logits features).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional

import torch
from einops import rearrange
from torch import nn

from ..layers import BlockConfig, LayerNorm, PatchEmbed, check_video, init_weights, make_blocks, to_2tuple
from ._base import Classifier, EncoderConfig, check_compatible, copy_head, load_backbone
from ._checks import MAX_SIZE, check_config
from ._registry import ModelMeta, build_config, register_model


@dataclass
class ViTConfig(EncoderConfig):
    """An image ViT (timm's `VisionTransformer`): the encoder fields (`EncoderConfig`), ImageNet's
    1000 classes, a p x p patch, a class token or average pooling.

    `init_values`: layer scale in every block (timm's `init_values`, DINOv2's `ls1` / `ls2`), None
    for none. `reg_tokens`: register tokens (DINOv2 with registers, timm's `reg_tokens`), placed
    after the class token once the position embedding is added, so they have no position row;
    they are prefix tokens (`num_prefix_tokens`), left out of average pooling."""
    patch_size: int = 16
    num_classes: int = 1000
    class_token: bool = True
    global_pool: str = "token"  # "token" (cls) or "avg" (mean of patch tokens after the final norm)
    init_values: Optional[float] = None
    reg_tokens: int = 0

    def __post_init__(self) -> None:
        check_config(self)
        if isinstance(self.reg_tokens, bool) or not isinstance(self.reg_tokens, int) \
                or not 0 <= self.reg_tokens <= MAX_SIZE:
            raise ValueError(f"reg_tokens must be an integer in [0, {MAX_SIZE:,}], got {self.reg_tokens!r}")
        if self.init_values is not None and (isinstance(self.init_values, bool)
                                             or not isinstance(self.init_values, (int, float))
                                             or not math.isfinite(self.init_values)):
            raise ValueError(f"init_values must be None or a finite number, got {self.init_values!r}")
        if self.global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {self.global_pool!r}")
        if self.global_pool == "token" and not self.class_token:
            raise ValueError("global_pool='token' needs class_token=True")


class VisionTransformer(Classifier):
    """ViT on images (B, C, H, W)."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = cfg = config
        self.num_features = self.embed_dim = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg.img_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim)
        self.num_prefix_tokens = (1 if cfg.class_token else 0) + cfg.reg_tokens
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim)) if cfg.class_token else None
        self.reg_token = nn.Parameter(torch.zeros(1, cfg.reg_tokens, cfg.embed_dim)) if cfg.reg_tokens else None
        num_tokens = self.patch_embed.num_patches + (1 if cfg.class_token else 0)  # registers have no position
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, cfg.embed_dim))
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        self.blocks = make_blocks(BlockConfig.from_model(cfg, init_values=cfg.init_values), cfg.depth,
                                  cfg.drop_path_rate)
        self.norm = LayerNorm(cfg.embed_dim)
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.head = self._make_head(cfg.num_classes)
        self.apply(init_weights)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        if self.reg_token is not None:
            nn.init.normal_(self.reg_token, std=1e-6)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)  # (B, N, C)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + N, C)
        x = x + self.pos_embed
        if self.reg_token is not None:  # DINOv2's order: registers after the position embedding, behind the cls token
            cls = 1 if self.cls_token is not None else 0
            x = torch.cat([x[:, :cls], self.reg_token.expand(x.shape[0], -1, -1), x[:, cls:]], dim=1)
        x = self.pos_drop(x)
        for blk in self.blocks:
            x = self.run_block(blk, x)
        return self.norm(x)  # (B, prefix + N, C)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens (..., prefix + N, C) -> pooled (..., C)."""
        if self.config.global_pool == "token":
            return x[..., 0, :]
        return x[..., self.num_prefix_tokens:, :].mean(dim=-2)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.pool(x))
        return x if pre_logits else self.head(x)


@dataclass
class FrameAverageConfig(ViTConfig):
    num_frames: int = 8


class VideoFrameAverage(Classifier):
    """The image ViT run on every frame of (B, C, T, H, W), logits averaged over frames: the
    image-backbone baseline video models are compared with. The head is linear, so averaging
    pooled features before it is the same as averaging logits."""

    def __init__(self, config: FrameAverageConfig):
        super().__init__()
        self.config = config
        self.vit = VisionTransformer(dataclasses.replace(config, num_classes=0))  # shared over frames
        self.num_features = self.vit.num_features
        self.head = self._make_head(config.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        check_video(x, cfg.in_chans, cfg.num_frames, to_2tuple(cfg.img_size))
        tokens = self.vit.forward_features(rearrange(x, "b c t h w -> (b t) c h w"))
        return rearrange(tokens, "(b t) n d -> b t n d", t=cfg.num_frames)  # (B, T, N, C)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.vit.head_drop(self.vit.pool(x).mean(dim=1))  # (B, C)
        return x if pre_logits else self.head(x)

    def from_image_backbone(self, vit: VisionTransformer) -> VideoFrameAverage:
        """Take the image ViT's weights as they are. There is no tubelet, so no init rule is
        offered (`image_init_rules` is empty: train --init-mode refuses anything but its default)."""
        fields = ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "class_token", "global_pool", "mlp_ratio",
                  "init_values", "reg_tokens")
        check_compatible(self.config, vit.config, [(f, f) for f in fields], "vit_frameavg")
        load_backbone(self.vit, vit)
        copy_head(self, vit)
        return self


TINY = dict(img_size=32, patch_size=8, embed_dim=192, depth=4, num_heads=3, num_classes=10)


def _vit(name: str, defaults: dict, overrides: dict) -> VisionTransformer:
    return VisionTransformer(build_config(ViTConfig, name, defaults, overrides))


@register_model("vit", ModelMeta(params=5_717_416, input_size=(3, 224, 224), source="DeiT-Ti (timm vit_tiny_patch16_224)"))
def vit_tiny(**kw: Any) -> VisionTransformer:
    return _vit("vit_tiny", dict(embed_dim=192, depth=12, num_heads=3), kw)


@register_model("vit", ModelMeta(params=22_050_664, gmacs=4.6, input_size=(3, 224, 224), source="DeiT-S (timm vit_small_patch16_224)"))
def vit_small(**kw: Any) -> VisionTransformer:
    return _vit("vit_small", dict(embed_dim=384, depth=12, num_heads=6), kw)


@register_model("vit", ModelMeta(params=86_567_656, gmacs=17.6, input_size=(3, 224, 224), source="torchvision vit_b_16 meta; timm 17.58"))
def vit_base(**kw: Any) -> VisionTransformer:
    return _vit("vit_base", dict(), kw)


@register_model("vit", ModelMeta(params=304_326_632, gmacs=61.6, input_size=(3, 224, 224),
                                 source="ViT-L/16 (timm vit_large_patch16_224; MAE ViT-L's encoder)"))
def vit_large(**kw: Any) -> VisionTransformer:
    return _vit("vit_large", dict(embed_dim=1024, depth=24, num_heads=16), kw)


# DINOv2 (Oquab et al. 2023) backbones as released: patch 14 at 518 px (37 x 37 positions), layer scale,
# no head; the _reg4 ones with 4 register tokens (Darcet et al. 2024). Params as timm counts them on
# the meta device (no mask_token: it only masks tokens during pretraining).
_DINOV2 = dict(img_size=518, patch_size=14, init_values=1e-5, num_classes=0)
_DINOV2_SRC = "DINOv2 {} (facebookresearch/dinov2 hub; timm vit_{}_patch14{}_dinov2.lvd142m)"


@register_model("vit", ModelMeta(params=22_056_192, input_size=(3, 518, 518), source=_DINOV2_SRC.format("ViT-S/14", "small", "")))
def vit_small_dinov2(**kw: Any) -> VisionTransformer:
    return _vit("vit_small_dinov2", dict(_DINOV2, embed_dim=384, depth=12, num_heads=6), kw)


@register_model("vit", ModelMeta(params=86_579_712, input_size=(3, 518, 518), source=_DINOV2_SRC.format("ViT-B/14", "base", "")))
def vit_base_dinov2(**kw: Any) -> VisionTransformer:
    return _vit("vit_base_dinov2", dict(_DINOV2), kw)


@register_model("vit", ModelMeta(params=22_057_344, input_size=(3, 518, 518),
                                 source=_DINOV2_SRC.format("ViT-S/14 reg4", "small", "_reg4")))
def vit_small_dinov2_reg4(**kw: Any) -> VisionTransformer:
    return _vit("vit_small_dinov2_reg4", dict(_DINOV2, embed_dim=384, depth=12, num_heads=6, reg_tokens=4), kw)


@register_model("vit", ModelMeta(params=86_582_016, input_size=(3, 518, 518),
                                 source=_DINOV2_SRC.format("ViT-B/14 reg4", "base", "_reg4")))
def vit_base_dinov2_reg4(**kw: Any) -> VisionTransformer:
    return _vit("vit_base_dinov2_reg4", dict(_DINOV2, reg_tokens=4), kw)


@register_model("vit", ModelMeta(input_size=(3, 8, 32, 32), source="vidbench CPU config"))
def vit_frameavg_tiny(**kw: Any) -> VideoFrameAverage:
    return VideoFrameAverage(build_config(FrameAverageConfig, "vit_frameavg_tiny", dict(TINY, num_frames=8), kw))


@register_model("vit", ModelMeta(input_size=(3, 8, 224, 224), source="ViT-B/16 per frame, logits averaged"))
def vit_frameavg_base(**kw: Any) -> VideoFrameAverage:
    return VideoFrameAverage(build_config(FrameAverageConfig, "vit_frameavg_base", dict(num_frames=8, num_classes=400), kw))
