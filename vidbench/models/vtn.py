"""VTN: Video Transformer Network (Neimark et al., ICCVW 2021).

A ViT-B/16 backbone embeds every frame (its cls output after the final norm); a Longformer
temporal encoder runs over the frame embeddings with a global cls token; an MLP head classifies
the cls output. As in the reference code (bomri/SlowFast, projects/vtn):

- temporal embeddings as in Longformer/RoBERTa: frame embedding + learned position embedding
  (the frame's position; the cls token takes position `max_position_embeddings - 2`) + token
  type embedding (1 for cls), then LayerNorm and dropout;
- 3 post-norm Longformer layers, 12 heads, intermediate size 3072, attention window 18 (each
  frame sees 9 neighbours on each side) with the cls token global; global attention has its own
  qkv projection; LayerNorm eps 1e-12 (LongformerConfig's default);
- head: LayerNorm -> Linear(768, 768) -> GELU -> Dropout -> Linear(768, classes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import torch
from einops import rearrange
from torch import nn

from ..layers import Attention, check_video, init_weights, to_2tuple
from ._base import Classifier, check_compatible, load_backbone
from ._registry import ModelMeta, build_config, register_model
from .vit import VisionTransformer, ViTConfig

_LONGFORMER_EPS = 1e-12


@dataclass
class VTNConfig:
    img_size: Union[int, tuple] = 224
    num_frames: int = 16
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 400
    embed_dim: int = 768  # backbone width = temporal hidden size
    depth: int = 12  # backbone depth
    num_heads: int = 12  # backbone heads
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    temporal_depth: int = 3
    temporal_heads: int = 12
    temporal_mlp_dim: int = 3072
    attention_window: int = 18
    max_position_embeddings: int = 288
    head_dim: int = 768  # width of the MLP head's hidden layer
    drop_rate: float = 0.0  # backbone dropout and the head's dropout
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    temporal_drop_rate: float = 0.1  # Longformer hidden_dropout_prob
    temporal_attn_drop_rate: float = 0.1  # Longformer attention_probs_dropout_prob

    def __post_init__(self) -> None:
        if self.num_frames > self.max_position_embeddings - 2:
            raise ValueError(
                f"num_frames {self.num_frames} exceeds the {self.max_position_embeddings - 2} frame positions "
                f"of max_position_embeddings={self.max_position_embeddings}"
            )


class LongformerLayer(nn.Module):
    """Post-norm Longformer layer: LN(x + drop(attn(x))), then LN(h + drop(fc2(gelu(fc1(h)))))."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, window: int, drop: float, attn_drop: float):
        super().__init__()
        self.window = window
        self.attn = Attention(dim, num_heads, qkv_bias=True, attn_drop=attn_drop, proj_drop=drop, num_global_tokens=1)
        self.norm1 = nn.LayerNorm(dim, eps=_LONGFORMER_EPS)
        self.fc1 = nn.Linear(dim, mlp_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(mlp_dim, dim)
        self.drop = nn.Dropout(drop)
        self.norm2 = nn.LayerNorm(dim, eps=_LONGFORMER_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.attn(x, axis="window", window=self.window))
        return self.norm2(x + self.drop(self.fc2(self.act(self.fc1(x)))))


class VTN(Classifier):
    def __init__(self, config: VTNConfig):
        super().__init__()
        self.config = cfg = config
        backbone_cfg = ViTConfig(
            img_size=cfg.img_size, patch_size=cfg.patch_size, in_chans=cfg.in_chans, num_classes=0,
            embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio,
            qkv_bias=cfg.qkv_bias, drop_rate=cfg.drop_rate, attn_drop_rate=cfg.attn_drop_rate,
            drop_path_rate=cfg.drop_path_rate,
        )
        self.backbone = VisionTransformer(backbone_cfg)
        dim = cfg.embed_dim
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, dim)
        self.token_type_embeddings = nn.Embedding(2, dim)
        self.embed_norm = nn.LayerNorm(dim, eps=_LONGFORMER_EPS)
        self.embed_drop = nn.Dropout(cfg.temporal_drop_rate)
        self.temporal_layers = nn.ModuleList(
            LongformerLayer(dim, cfg.temporal_heads, cfg.temporal_mlp_dim, cfg.attention_window,
                            cfg.temporal_drop_rate, cfg.temporal_attn_drop_rate)
            for _ in range(cfg.temporal_depth)
        )
        self.head_norm = nn.LayerNorm(dim)
        self.head_fc = nn.Linear(dim, cfg.head_dim)
        self.head_act = nn.GELU()
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.num_features = cfg.head_dim
        self.head = self._make_head(cfg.num_classes)
        for module in (self.temporal_layers, self.head_fc):
            module.apply(init_weights)
        for emb in (self.position_embeddings, self.token_type_embeddings):
            nn.init.normal_(emb.weight, std=0.02)  # BERT initializer_range

    def forward_features(self, x: torch.Tensor, position_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B, C, T, H, W); position_ids: (B, T) positions of the sampled frames in the video
        (default 0..T-1). Returns the temporal encoder's tokens (B, 1 + T, C)."""
        cfg = self.config
        check_video(x, cfg.in_chans, cfg.num_frames, to_2tuple(cfg.img_size))
        b, t = x.shape[0], x.shape[2]
        frames = self.backbone.forward_head(self.backbone.forward_features(rearrange(x, "b c t h w -> (b t) c h w")),
                                            pre_logits=True)
        x = torch.cat([self.cls_token.expand(b, -1, -1), rearrange(frames, "(b t) c -> b t c", t=t)], dim=1)
        if position_ids is None:
            position_ids = torch.arange(t, device=x.device).expand(b, t)
        max_pos = cfg.max_position_embeddings
        position_ids = torch.cat([position_ids.new_full((b, 1), max_pos - 2), position_ids % (max_pos - 2)], dim=1)
        token_types = torch.zeros_like(position_ids)
        token_types[:, 0] = 1
        x = x + self.position_embeddings(position_ids) + self.token_type_embeddings(token_types)
        x = self.embed_drop(self.embed_norm(x))  # (B, 1 + T, C)
        for layer in self.temporal_layers:
            x = layer(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.head_act(self.head_fc(self.head_norm(x[:, 0]))))
        return x if pre_logits else self.head(x)

    @torch.no_grad()
    def from_image_backbone(self, vit: VisionTransformer, init: str = "central_frame") -> VTN:
        """The backbone takes the image ViT's weights (VTN starts from an ImageNet ViT); the
        temporal encoder and head stay random. `init` is accepted for a uniform interface."""
        pairs = [(f, f) for f in ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "qkv_bias")]
        check_compatible(self.config, vit.config, pairs, "VTN")
        load_backbone(self.backbone, vit)
        return self


def _vtn(name: str, defaults: dict, overrides: dict) -> VTN:
    return VTN(build_config(VTNConfig, name, defaults, overrides))


@register_model("vtn", ModelMeta(input_size=(3, 16, 224, 224), source="VTN (ICCVW 2021), ViT-B-VTN, reference config"))
def vtn_base(**kw: Any) -> VTN:
    return _vtn("vtn_base", dict(), kw)


@register_model("vtn", ModelMeta(input_size=(3, 8, 32, 32), source="vidbench CPU config"))
def vtn_tiny(**kw: Any) -> VTN:
    tiny = dict(img_size=32, num_frames=8, patch_size=8, embed_dim=192, depth=4, num_heads=3, num_classes=10,
                temporal_depth=2, temporal_heads=3, temporal_mlp_dim=768, attention_window=4,
                max_position_embeddings=64, head_dim=192)
    return _vtn("vtn_tiny", tiny, kw)

