"""VideoPrism (Zhao et al., ICML 2024): a factorised space-then-time ViT with soft-capped attention.

Follows Hugging Face's `transformers.models.videoprism` (`VideoPrismVisionModel`,
`VideoPrismForVideoClassification`) and the official Flax release (google-deepmind/videoprism,
`encoders.FactorizedEncoder`):

- per-frame patch embedding (HF: a Conv3d of kernel 1 x 18 x 18; here `TubeletEmbed` with the
  same kernel), no cls token;
- a learned spatial position embedding (1, H'*W', C) added to every frame, a spatial transformer
  on each frame's tokens, a LayerNorm;
- a learned temporal position embedding (1, T, C) added to every spatial position, a temporal
  transformer on each position's frames, a LayerNorm; the output is (B, T*H'*W', C), time-major
  (HF's `last_hidden_state`);
- pre-norm blocks (`Block` on the one kernel, fused qkv) whose attention logits are soft-capped
  (`Attention(..., softcap=50)`: c * tanh(logits / c) after the 1/sqrt(d) scaling), exact (erf)
  GELU (HF's "gelu_python"), LayerNorm epsilon 1e-6 everywhere.

The spatial stage runs on (B*T, H'*W', C) sequences and the temporal stage on (B*H'*W', T, C),
each reshaped once (ViViT Model 2's pattern), so every kernel call sees one frame or one position.

Norm weights: HF and the Flax code store each LayerNorm's scale as an offset from 1
(``F.layer_norm(x, ..., weight + 1, bias)``); vidbench stores the scale itself (torch's
`nn.LayerNorm`): the converter adds the 1 (formats/hf_videoprism.py).

Heads (`pool`):

- ``"attention"``: HF's `VideoPrismForVideoClassification`: one learned query attends to all
  tokens (`AttentionPoolingHead`: q / k / v / output projections of width `pool_dim`, HF's
  intermediate_size, the query scaled per dimension by softplus(per_dim_scale) * 1.442695041 /
  sqrt(head_dim), no cap), a LayerNorm, the classifier. The official Flax
  `FactorizedVideoClassifier` has the same pooler at width embed_dim: ``pool_dim=embed_dim``.
- ``"mean"``: the mean of the output tokens, then the classifier; no parameters beyond it. The
  released checkpoints (google/videoprism-base-f16r288, -large-f8r288) are encoders without a
  head: they load with ``pool="mean"`` (nothing random in the model) and ``num_classes=0``, and
  the paper-size registry entries use it, so that their count is the published encoder's (114M
  / 354M) plus the classifier. ``pool="attention"`` gives HF's classifier at any size.

The temporal positions are fixed to `num_frames` (HF interpolates them on request with
``interpolate_pos_encoding=True``; vidbench does not).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Optional, Set, Union

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..layers import (
    Attention,
    BlockConfig,
    TubeletEmbed,
    default_attn_backend,
    init_weights,
    make_blocks,
    scaled_dot_product,
)
from ..layers.mlp import ACTIVATIONS, get_act_layer
from ._base import Classifier, EncoderConfig
from ._checks import check_config
from ._registry import ModelMeta, build_config, register_model

POOLS = ("mean", "attention")
# HF `_R_SOFTPLUS_0` (1 / softplus(0) = 1 / ln 2): with per_dim_scale 0 the query scale is 1/sqrt(d)
R_SOFTPLUS_0 = 1.442695041


@dataclass
class VideoPrismConfig(EncoderConfig):
    """VideoPrism's factorised encoder: the encoder fields (`EncoderConfig`; `depth` is the
    spatial depth), per-frame patches, the temporal depth, the logit cap and the head."""
    img_size: Union[int, tuple] = 288
    num_frames: int = 16
    patch_size: int = 18  # per-frame patch (HF tubelet_size (1, 18, 18))
    temporal_depth: int = 4
    softcap: Optional[float] = 50.0  # attention-logit soft cap (HF attn_logit_softcapping); None: none
    norm_eps: float = 1e-6  # every LayerNorm (HF layer_norm_eps)
    act_layer: str = "gelu"  # exact GELU (HF "gelu_python")
    pool: str = "mean"  # "mean" or "attention" (HF's VideoPrismForVideoClassification head)
    pool_dim: Optional[int] = None  # attention pooler width; None: embed_dim * mlp_ratio (HF intermediate_size)

    def __post_init__(self) -> None:
        check_config(self)
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")
        if self.act_layer not in ACTIVATIONS:
            raise ValueError(f"act_layer must be one of {tuple(ACTIVATIONS)}, got {self.act_layer!r}")
        if self.softcap is not None and not self.softcap > 0:
            raise ValueError(f"softcap must be > 0 (or None), got {self.softcap}")
        if self.pool_dim is None:
            self.pool_dim = int(self.embed_dim * self.mlp_ratio)
        if self.pool_dim < 1 or self.pool_dim % self.num_heads:
            raise ValueError(f"pool_dim {self.pool_dim} must be a positive multiple of num_heads {self.num_heads}")


class AttentionPoolingHead(nn.Module):
    """HF's `VideoPrismMultiheadAttentionPoolingHead`: a learned query attends to the tokens
    through the one kernel. q from the query, k and v (fused `kv`) from the tokens, width `dim`
    split over `num_heads`; the query is scaled per dimension, softplus(per_dim_scale) *
    R_SOFTPLUS_0 / sqrt(head_dim), and the kernel runs with scale 1 and no cap."""

    def __init__(self, embed_dim: int, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0):
        super().__init__()
        self.num_heads, self.head_dim, self.attn_drop = num_heads, dim // num_heads, attn_drop
        self.attn_backend = default_attn_backend()
        self.query = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.q = nn.Linear(embed_dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(embed_dim, 2 * dim, bias=qkv_bias)
        self.per_dim_scale = nn.Parameter(torch.zeros(self.head_dim))
        self.proj = nn.Linear(dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) tokens -> (B, C)."""
        b, h = x.shape[0], self.num_heads
        q = rearrange(self.q(self.query).expand(b, -1, -1), "b n (h d) -> b h n d", h=h)
        q = q * (R_SOFTPLUS_0 / math.sqrt(self.head_dim)) * F.softplus(self.per_dim_scale)
        k, v = rearrange(self.kv(x), "b n (two h d) -> two b h n d", two=2, h=h)
        out = scaled_dot_product(q, k, v, dropout_p=self.attn_drop if self.training else 0.0, scale=1.0,
                                 backend=self.attn_backend)  # (B, heads, 1, head_dim)
        return self.proj(rearrange(out, "b h n d -> b (n h d)"))


class VideoPrism(Classifier):
    """The VideoPrism vision encoder (spatial then temporal transformer) with its head."""

    def __init__(self, config: VideoPrismConfig):
        super().__init__()
        self.config = cfg = config
        self.num_features = dim = cfg.embed_dim
        self.patch_embed = TubeletEmbed(cfg.img_size, cfg.num_frames, (1, cfg.patch_size, cfg.patch_size),
                                        cfg.in_chans, dim)
        t, s = self.patch_embed.grid
        self.pos_embed = nn.Parameter(torch.zeros(1, s, dim))  # spatial, shared over frames
        self.temporal_pos_embed = nn.Parameter(torch.zeros(1, t, dim))  # shared over positions
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        attn = functools.partial(Attention, softcap=cfg.softcap)  # the kernel caps the logits
        block_cfg = BlockConfig.from_model(cfg, act_layer=get_act_layer(cfg.act_layer), norm_eps=cfg.norm_eps,
                                           attn_layer=attn)
        self.blocks = make_blocks(block_cfg, cfg.depth, cfg.drop_path_rate)
        self.norm = block_cfg.norm()
        self.temporal_blocks = make_blocks(block_cfg, cfg.temporal_depth, cfg.drop_path_rate)
        self.temporal_norm = block_cfg.norm()
        if cfg.pool == "attention":
            self.pool = AttentionPoolingHead(dim, cfg.pool_dim, cfg.num_heads, cfg.qkv_bias, cfg.attn_drop_rate)
            self.fc_norm = block_cfg.norm()
        else:
            self.pool, self.fc_norm = None, None
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.apply(init_weights)
        for p in (self.pos_embed, self.temporal_pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        if self.pool is not None:
            nn.init.trunc_normal_(self.pool.query, std=0.02)
        self.head = self._make_head(cfg.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        t, s = self.patch_embed.grid
        x = rearrange(self.patch_embed(x), "b (t s) c -> (b t) s c", t=t, s=s)  # one sequence per frame
        x = self.pos_drop(x + self.pos_embed)
        for blk in self.blocks:
            x = self.run_block(blk, x)  # spatial attention
        x = rearrange(self.norm(x), "(b t) s c -> (b s) t c", t=t)  # one sequence per position
        x = self.pos_drop(x + self.temporal_pos_embed)
        for blk in self.temporal_blocks:
            x = self.run_block(blk, x)  # temporal attention
        return rearrange(self.temporal_norm(x), "(b s) t c -> b (t s) c", s=s)  # (B, T*S, C), time-major

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.fc_norm(self.pool(x)) if self.pool is not None else x.mean(dim=1)  # (B, C)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def no_weight_decay(self) -> Set[str]:
        """The tokens and embeddings (`Classifier.no_weight_decay`) and the pooler's learned query, a
        token too."""
        return super().no_weight_decay() | ({"pool.query"} if self.pool is not None else set())


def _videoprism(name: str, defaults: dict, overrides: dict) -> VideoPrism:
    return VideoPrism(build_config(VideoPrismConfig, name, defaults, overrides))


_README = "google-deepmind/videoprism README 'Released models' (#Params) and models.py CONFIGS"


# VideoPrism-B: ViT-B spatial (12 layers) + 4 temporal layers, 16 x 288 (patch 18: 16 x 16 tokens
# per frame); the README's 114M is the encoder (HF VideoPrismVisionModel: 114,365,184, equal to
# vidbench's with num_classes=0)
@register_model("videoprism", ModelMeta(params=114e6, input_size=(3, 16, 288, 288),
                                        source=f"{_README}: VideoPrism-B 114M (encoder), videoprism_v1_base"))
def videoprism_base(**kw: Any) -> VideoPrism:
    return _videoprism("videoprism_base", dict(), kw)


# VideoPrism-L: ViT-L spatial (24 layers) + 4 temporal layers, 8 x 288; encoder 353,965,056 (HF and vidbench)
@register_model("videoprism", ModelMeta(params=354e6, input_size=(3, 8, 288, 288),
                                        source=f"{_README}: VideoPrism-L 354M (encoder), videoprism_v1_large"))
def videoprism_large(**kw: Any) -> VideoPrism:
    large = dict(num_frames=8, embed_dim=1024, depth=24, num_heads=16)
    return _videoprism("videoprism_large", large, kw)


# VideoPrism-g: models.py CONFIGS['videoprism_v1_giant'] (width 1408, 40 spatial + 4 temporal layers,
# 16 heads, mlp 6144, 8 x 288; encoder 1,112,755,072 here and in HF); no weights released. The
# paper's "1B parameters in the spatial encoder" (Sec. 3.2) is not the encoder's count: left unset. No
# VideoPrism size has a published FLOPs figure: the README's 'Released models' table gives #Params only;
# the paper (arXiv 2402.13217, read in its LaTeX source) gives the encoder's shapes (appendix B) and, in
# its VideoGLUE tables, the trainable FLOPs of the task heads only.
@register_model("videoprism", ModelMeta(input_size=(3, 8, 288, 288),
                                        source="google-deepmind/videoprism models.py CONFIGS['videoprism_v1_giant']"))
def videoprism_giant(**kw: Any) -> VideoPrism:
    giant = dict(num_frames=8, embed_dim=1408, depth=40, num_heads=16, mlp_ratio=6144 / 1408)
    return _videoprism("videoprism_giant", giant, kw)


# CPU config: HF's attention-pooling head, so the quick suite, bench and train run it
@register_model("videoprism", ModelMeta(input_size=(3, 8, 32, 32), source="vidbench CPU config"))
def videoprism_tiny(**kw: Any) -> VideoPrism:
    tiny = dict(img_size=32, num_frames=8, patch_size=8, embed_dim=96, depth=2, temporal_depth=2, num_heads=3,
                num_classes=10, pool="attention")
    return _videoprism("videoprism_tiny", tiny, kw)
