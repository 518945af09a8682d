"""V-JEPA 2 (Assran et al., 2025): the video encoder and its attentive-probe classifier.

Follows the official code (facebookresearch/vjepa2: src/models/vision_transformer.py with
``use_rope=True``, src/models/utils/modules.py `RoPEAttention`, src/models/attentive_pooler.py)
and Hugging Face's port (transformers `VJEPA2Model`, `VJEPA2ForVideoClassification`):

- Tubelet embedding: Conv3d of kernel = stride = 2 x 16 x 16, tokens time-major; no position
  table (the official checkpoints carry an unused `pos_embed`) and no cls token.
- Pre-norm blocks (LayerNorm eps 1e-6, exact GELU, MLP ratio 4; ViT-g 48 / 11) with joint
  space-time attention on vidbench's `Attention` (fused qkv, q / k / v biases) and 3-D rotary
  positions on q and k before the kernel (`vidbench.layers.rope.Rope3D`: head_dim split in three
  segments of 2 * ((head_dim // 3) // 2) channels for frame, row and column, the rest unrotated,
  the official frequency layout of the released weights). Positions are those of the input's
  own token grid, as the official encoder computes them (`handle_nonsquare_inputs`); Hugging
  Face's port takes the rows and columns of its config's crop size, which is the same grid for
  every input vidbench accepts (the model's own size).
- A final LayerNorm on the tokens.
- Pooling (`pooling`): ``"attentive"``, V-JEPA 2's probe: `probe_depth` pre-norm self-attention
  blocks over the tokens (MLP ratio `probe_mlp_ratio`, 4 whatever the encoder's), then one
  `AttentionPool` block (a learned query attending to the normalised tokens, no output
  projection; `vidbench.layers.attention_pool`), the query -> the linear head. ``"mean"``: the
  mean of the normalised tokens -> the head (the released encoders carry no probe: what they
  load as, a feature extractor with `num_classes=0`).

The probe's heads and LayerNorm epsilon (`probe_heads`, `probe_norm_eps`) default to the encoder's,
as Hugging Face's `VJEPA2AttentivePooler` builds them. The official evaluation builds its probe
with the eval config's ``num_heads`` (16 in every released config, ViT-g's included, whose
encoder has 22) and torch's default LayerNorm epsilon (1e-5): set both to run an official probe
as trained. For ViT-L the head counts agree; for ViT-g they do not, so a ViT-g probe run the
Hugging Face way splits its heads differently from the official code.

The predictor (the pre-training head of the same checkpoints) is not part of the classifier and
is not loaded. The official probe (``AttentiveClassifier``) is built with ``depth=4``: 3
self-attention blocks and the cross-attention block; Hugging Face's ``num_pooler_layers`` (3)
counts the self-attention blocks, as `probe_depth` does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

import torch
from torch import nn

from ..layers import BlockConfig, TubeletEmbed, init_weights, make_blocks, to_3tuple
from ..layers.attention_pool import AttentionPool
from ..layers.block import Block
from ..layers.rope import ROPE_LAYOUTS, Rope3D
from ._base import Classifier, EncoderConfig
from ._checks import check_config
from ._registry import ModelMeta, build_config, register_model

POOLINGS = ("attentive", "mean")


@dataclass
class VJEPA2Config(EncoderConfig):
    """V-JEPA 2's encoder (`EncoderConfig` fields at ViT-L/16, 64 frames at 256 px) and its probe."""
    img_size: Any = 256
    num_frames: int = 64
    tubelet_size: Tuple[int, int, int] = (2, 16, 16)
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_layout: str = "vjepa2"  # the released weights' frequency layout (vidbench.layers.rope)
    pooling: str = "attentive"  # "attentive": V-JEPA 2's probe; "mean": mean of the tokens
    probe_depth: int = 3  # self-attention blocks before the cross-attention block (HF num_pooler_layers)
    probe_mlp_ratio: float = 4.0
    probe_heads: Optional[int] = None  # None: num_heads (HF's pooler); the official eval configs: 16
    probe_norm_eps: Optional[float] = None  # None: norm_eps (HF's pooler); the official probe: 1e-5
    num_queries: int = 1

    def __post_init__(self) -> None:
        check_config(self)
        self.tubelet_size = to_3tuple(self.tubelet_size)
        for name, choices in (("pooling", POOLINGS), ("rope_layout", ROPE_LAYOUTS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; expected one of {choices}")
        self.probe_heads = self.num_heads if self.probe_heads is None else self.probe_heads
        self.probe_norm_eps = self.norm_eps if self.probe_norm_eps is None else self.probe_norm_eps
        if not (self.norm_eps > 0 and self.probe_norm_eps > 0) or self.embed_dim % self.probe_heads:
            raise ValueError(f"LayerNorm epsilons must be > 0 and embed_dim divisible by probe_heads, got norm_eps="
                             f"{self.norm_eps}, probe_norm_eps={self.probe_norm_eps}, {self.embed_dim} / "
                             f"{self.probe_heads}")
        if self.probe_depth < 0 or self.num_queries < 1:
            raise ValueError(f"probe_depth must be >= 0 and num_queries >= 1, got {self.probe_depth}, "
                             f"{self.num_queries}")
        if self.embed_dim % self.num_heads or self.embed_dim // self.num_heads < 6:
            raise ValueError(f"3-D rotary positions need embed_dim divisible by num_heads with head_dim >= 6, got "
                             f"{self.embed_dim} / {self.num_heads}")


class VJEPA2(Classifier):
    """The V-JEPA 2 encoder with its attentive probe (or mean pooling) and linear head."""

    def __init__(self, config: VJEPA2Config):
        super().__init__()
        self.config = cfg = config
        self.num_features = cfg.embed_dim
        self.patch_embed = TubeletEmbed(cfg.img_size, cfg.num_frames, cfg.tubelet_size, cfg.in_chans, cfg.embed_dim)
        self.rope = Rope3D(cfg.embed_dim // cfg.num_heads, self.patch_embed.grid_size, cfg.rope_theta,
                           cfg.rope_layout)
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        self.blocks = make_blocks(BlockConfig.from_model(cfg, norm_eps=cfg.norm_eps), cfg.depth, cfg.drop_path_rate)
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.pool_blocks: Optional[nn.ModuleList] = None
        self.pool: Optional[AttentionPool] = None
        if cfg.pooling == "attentive":
            probe = BlockConfig(dim=cfg.embed_dim, num_heads=cfg.probe_heads, mlp_ratio=cfg.probe_mlp_ratio,
                                qkv_bias=True, norm_eps=cfg.probe_norm_eps)
            self.pool_blocks = nn.ModuleList(Block(probe) for _ in range(cfg.probe_depth))
            self.pool = AttentionPool(cfg.embed_dim, cfg.probe_heads, cfg.num_queries, cfg.probe_mlp_ratio,
                                      norm_eps=cfg.probe_norm_eps)
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.apply(init_weights)
        self.head = self._make_head(cfg.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> the normalised tokens (B, T'*H'*W', C), time-major."""
        x = self.pos_drop(self.patch_embed(x))
        rope = self.rope()
        for blk in self.blocks:
            x = self.run_block(blk, x, rope=rope)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.pool is None:
            x = x.mean(dim=1)
        else:
            for blk in self.pool_blocks:
                x = blk(x)
            x = self.pool(x)  # (B, queries, C)
            x = x.squeeze(1) if x.shape[1] == 1 else x.mean(dim=1)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)


def _vjepa2(name: str, defaults: dict, overrides: dict) -> VJEPA2:
    return VJEPA2(build_config(VJEPA2Config, name, defaults, overrides))


_IN = (3, 64, 256, 256)
_README = "facebookresearch/vjepa2 README (pretrained checkpoints table)"
# No published FLOPs figure for V-JEPA 2: gmacs stays None. The facebookresearch/vjepa2 README gives params
# and resolution only; the paper (arXiv 2506.09985, read in its LaTeX source) gives parameters in its
# classification, anticipation and architecture tables (ViT-L 300M, H 600M, g 1B), no FLOPs. vidbench's
# fvcore counts per view: 5787 / 10671 / 15849 GMACs at 64 x 256, ViT-g 384: 56921 (tests/test_vjepa2.py).
# The registry's encoders carry V-JEPA 2's probe (pooling="attentive") where they classify; the
# parameter figures the papers quote are the encoder's, so the paper-size entries count with
# pooling="mean" and no head (the released encoders as they load): see tests/paper_tables.json.
_ENCODER = dict(pooling="mean", num_classes=0)


@register_model("vjepa2", ModelMeta(params=300e6, params_tol=0.02, input_size=_IN,
                                    source=f"{_README}: ViT-L/16, 300M, 256 px (encoder)"))
def vjepa2_vitl(**kw: Any) -> VJEPA2:
    return _vjepa2("vjepa2_vitl", dict(_ENCODER), kw)


@register_model("vjepa2", ModelMeta(params=600e6, params_tol=0.06, input_size=_IN,
                                    source=f"{_README}: ViT-H/16, 600M, 256 px (encoder)"))
def vjepa2_vith(**kw: Any) -> VJEPA2:
    return _vjepa2("vjepa2_vith", dict(_ENCODER, embed_dim=1280, depth=32, num_heads=16), kw)


_GIANT = dict(_ENCODER, embed_dim=1408, depth=40, num_heads=22, mlp_ratio=48 / 11)


@register_model("vjepa2", ModelMeta(params=1e9, params_tol=0.02, input_size=_IN,
                                    source=f"{_README}: ViT-g/16, 1B, 256 px (encoder)"))
def vjepa2_vitg(**kw: Any) -> VJEPA2:
    return _vjepa2("vjepa2_vitg", dict(_GIANT), kw)


@register_model("vjepa2", ModelMeta(params=1e9, params_tol=0.02, input_size=(3, 64, 384, 384),
                                    source=f"{_README}: ViT-g/16 384, 1B, 384 px (encoder)"))
def vjepa2_vitg_384(**kw: Any) -> VJEPA2:
    return _vjepa2("vjepa2_vitg_384", dict(_GIANT, img_size=384), kw)


# the classifiers people benchmark: the released attentive probes' configurations (SSv2, 174 classes)
@register_model("vjepa2", ModelMeta(input_size=(3, 16, 256, 256),
                                    source="facebook/vjepa2-vitl-fpc16-256-ssv2: ViT-L/16 + attentive probe, 16x256"))
def vjepa2_vitl_probe(**kw: Any) -> VJEPA2:
    return _vjepa2("vjepa2_vitl_probe", dict(num_frames=16, num_classes=174), kw)


@register_model("vjepa2", ModelMeta(input_size=(3, 64, 384, 384),
                                    source="facebook/vjepa2-vitg-fpc64-384-ssv2: ViT-g/16 + attentive probe, 64x384"))
def vjepa2_vitg_384_probe(**kw: Any) -> VJEPA2:
    giant = {k: v for k, v in _GIANT.items() if k not in _ENCODER}
    return _vjepa2("vjepa2_vitg_384_probe", dict(giant, img_size=384, num_classes=174), kw)


@register_model("vjepa2", ModelMeta(input_size=(3, 8, 32, 32), source="vidbench CPU config"))
def vjepa2_tiny(**kw: Any) -> VJEPA2:
    tiny = dict(img_size=32, num_frames=8, tubelet_size=(2, 8, 8), embed_dim=80, depth=4, num_heads=4,
                probe_depth=1, num_classes=10)
    return _vjepa2("vjepa2_tiny", tiny, kw)
