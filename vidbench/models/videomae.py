"""VideoMAE (Tong et al., NeurIPS 2022): the fine-tuned encoder, a plain ViT on tubelets.

Follows the official code (MCG-NJU/VideoMAE, modeling_finetune.py) and Hugging Face's port:
tubelet embedding (Conv3d, tokens time-major as Conv3d-then-flatten orders them), a fixed
sinusoidal position table over the flattened token index (not learned, not in the state dict:
a non-persistent buffer), pre-norm blocks with joint space-time attention, no cls token, then
mean pooling of the tokens followed by `fc_norm` (no final norm: `use_mean_pooling`, the
default) or, with ``use_mean_pooling=False``, a final norm and the first token (HF's
`VideoMAEModel` / pre-training encoder layout).

It is its own small file rather than a ViViT Model 1 configuration because it differs in every
part around the blocks: no cls token, fixed positions, fc_norm after pooling, q / v biases
without a k bias, the head's init scale. The blocks themselves are vidbench's `Block` with the
shared `Attention` (fused qkv on the one kernel):

- q / v bias, no k bias: the official `Attention` has `q_bias`, `v_bias` and feeds
  ``cat(q_bias, 0, v_bias)`` as the qkv bias; HF has `query.bias`, `value.bias` and a bias-free
  `key`. Here it is the fused ``qkv.bias`` whose middle (k) third is zero (converters and
  `from_image_backbone` write zeros there). The k bias is left trainable: it cannot change any
  output (it adds q . b_k to every logit of a query's row, and softmax ignores a per-row shift),
  so its gradient is zero up to rounding and a zero stays a zero under plain SGD; an optimiser
  that normalises tiny gradients (Adam) may drift it, harmlessly. Fused, the parameter count is
  the official one plus depth * width (9,216 for ViT-B, 0.01%).
- LayerNorm epsilon: `norm_eps` for the blocks and the final norm (official 1e-6, HF's config
  default 1e-12), `fc_norm_eps` for fc_norm (official: the same 1e-6; HF builds fc_norm with
  torch's default 1e-5): each registry entry and checkpoint sets its source's.
- Head: trunc-normal(0.02) scaled by `head_init_scale` (official fine-tuning `--init_scale 0.001`).
- The official Mlp has dropout only after fc2; vidbench's Mlp also after the activation. Both
  default to 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

import torch
from torch import nn

from ..layers import TUBELET_INITS, BlockConfig, TubeletEmbed, init_weights, make_blocks, to_2tuple, to_3tuple
from ._base import Classifier, EncoderConfig, check_compatible, copy_head, copy_module
from ._checks import check_config
from ._registry import ModelMeta, build_config, register_model
from .vit import VisionTransformer


@dataclass
class VideoMAEConfig(EncoderConfig):
    """VideoMAE's fine-tuning ViT: the encoder fields (`EncoderConfig`; `qkv_bias` means q and v
    biases, the k third of the fused qkv bias stays zero), a tubelet embedding, mean pooling."""
    num_frames: int = 16
    tubelet_size: Tuple[int, int, int] = (2, 16, 16)
    patch_size: Optional[int] = None  # shorthand: sets the tubelet's spatial size, keeps its time
    use_mean_pooling: bool = True  # mean of the tokens then fc_norm; False: final norm, first token
    norm_eps: float = 1e-6  # blocks and final norm (official 1e-6; HF config default 1e-12)
    fc_norm_eps: Optional[float] = None  # None: norm_eps (official); HF's fc_norm: 1e-5
    head_init_scale: float = 0.001  # official fine-tuning --init_scale
    fc_drop_rate: float = 0.0  # dropout before the head (official fc_drop_rate)

    def __post_init__(self) -> None:
        check_config(self)
        self.tubelet_size = to_3tuple(self.tubelet_size)
        if self.patch_size is not None:
            self.tubelet_size = (self.tubelet_size[0], self.patch_size, self.patch_size)
            self.patch_size = None
        if self.fc_norm_eps is None:
            self.fc_norm_eps = self.norm_eps
        if not (self.norm_eps > 0 and self.fc_norm_eps > 0):
            raise ValueError(f"LayerNorm epsilons must be > 0, got norm_eps={self.norm_eps}, "
                             f"fc_norm_eps={self.fc_norm_eps}")
        if self.embed_dim % 2:
            raise ValueError(f"the sinusoidal position table needs an even embed_dim, got {self.embed_dim}")


def sinusoid_table(num_positions: int, dim: int) -> torch.Tensor:
    """(1, N, dim) fixed position table of the official `get_sinusoid_encoding_table`:
    angle(p, j) = p / 10000 ** (2 * (j // 2) / dim), sin on even channels, cos on odd ones."""
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (N, 1)
    j = torch.arange(dim)
    angle = pos / torch.pow(10000.0, (2 * (j // 2)).to(torch.float64) / dim)  # (N, dim)
    return torch.where(j % 2 == 0, angle.sin(), angle.cos()).to(torch.float32)[None]  # (1, N, dim)


class VideoMAE(Classifier):
    """The VideoMAE encoder with its classification head."""

    image_init_rules = TUBELET_INITS

    def __init__(self, config: VideoMAEConfig):
        super().__init__()
        self.config = cfg = config
        self.num_features = cfg.embed_dim
        self.patch_embed = TubeletEmbed(cfg.img_size, cfg.num_frames, cfg.tubelet_size, cfg.in_chans, cfg.embed_dim)
        self.register_buffer("pos_embed", sinusoid_table(self.patch_embed.num_patches, cfg.embed_dim),
                             persistent=False)  # (1, T'*H'*W', C), fixed
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        self.blocks = make_blocks(BlockConfig.from_model(cfg, norm_eps=cfg.norm_eps), cfg.depth, cfg.drop_path_rate)
        self.norm = nn.Identity() if cfg.use_mean_pooling else nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.fc_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.fc_norm_eps) if cfg.use_mean_pooling else None
        self.head_drop = nn.Dropout(cfg.fc_drop_rate)
        self.apply(init_weights)
        self.head = self._make_head(cfg.num_classes)

    def _make_head(self, num_classes: int) -> nn.Module:
        head = super()._make_head(num_classes)
        if isinstance(head, nn.Linear):
            with torch.no_grad():
                head.weight.mul_(self.config.head_init_scale)
                head.bias.mul_(self.config.head_init_scale)
        return head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)  # (B, T'*H'*W', C), time-major
        x = self.pos_drop(x + self.pos_embed.to(x.dtype))
        for blk in self.blocks:
            x = self.run_block(blk, x)  # joint space-time attention
        return self.norm(x)  # (B, N, C); identity when mean pooling

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.fc_norm(x.mean(dim=1)) if self.fc_norm is not None else x[:, 0]  # (B, C)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    @torch.no_grad()
    def from_image_backbone(self, vit: VisionTransformer, init: str = "central_frame") -> VideoMAE:
        """Initialise from an image ViT: tubelet by `init` (central_frame, inflation or random),
        blocks copied (the k part of the qkv bias zeroed, which changes no output), the image
        ViT's final norm into `fc_norm` (into `norm` when not mean pooling), the head where the
        class counts agree. The positions stay the fixed sinusoids, so the image's position
        embeddings are not used, and there is no cls token to take.

        The image ViT may have a cls token or not and either pooling: what carries over is its
        per-token computation. The video model pools before its norm (mean then fc_norm) where
        the image ViT normalises tokens first, and has no cls token for its patch tokens to
        attend to, so even on a static clip the logits are not the image ViT's; with a
        class_token=False ViT and the same positions for every time index, the block outputs
        are exactly the image's per frame (tests/test_videomae.py)."""
        cfg, vc = self.config, vit.config
        check_compatible(cfg, vc, [(f, f) for f in ("embed_dim", "num_heads", "depth", "mlp_ratio", "qkv_bias")],
                         "VideoMAE")
        img = to_2tuple(vc.img_size)
        if cfg.tubelet_size[1:] != (vc.patch_size, vc.patch_size) or self.patch_embed.img_size != img:
            raise ValueError(f"VideoMAE: image backbone patch {vc.patch_size} at {img} does not match tubelet "
                             f"{cfg.tubelet_size} at {self.patch_embed.img_size}")
        self.patch_embed.init_from_2d(vit.patch_embed.proj.weight, vit.patch_embed.proj.bias, init)
        for dst, src in zip(self.blocks, vit.blocks):
            copy_module(dst, src)
            if dst.attn.qkv.bias is not None:
                dim = dst.attn.qkv.bias.shape[0] // 3
                dst.attn.qkv.bias[dim:2 * dim].zero_()
        copy_module(self.fc_norm if self.fc_norm is not None else self.norm, vit.norm)
        copy_head(self, vit)
        return self


def _videomae(name: str, defaults: dict, overrides: dict) -> VideoMAE:
    return VideoMAE(build_config(VideoMAEConfig, name, defaults, overrides))


_IN = (3, 16, 224, 224)
_SRC = "VideoMAE (NeurIPS 2022) K400, 16x224, tubelet 2x16x16"


# ViT-S: 57G / 22M as listed for the same architecture (ViT-S/16, 16x224, tubelet 2) in
# mmaction2's configs/recognition/videomaev2/README.md (VideoMAE V2 distilled ViT-S)
@register_model("videomae", ModelMeta(params=22e6, params_tol=0.02, gmacs=57.0, gmacs_tol=0.01, input_size=_IN,
                                      source="mmaction2 videomaev2 README, ViT-S 16x4x1 K400: 57G, 22M"))
def videomae_small(**kw: Any) -> VideoMAE:
    return _videomae("videomae_small", dict(embed_dim=384, depth=12, num_heads=6), kw)


# ViT-B: 180G / 87M (REFERENCE.md; mmaction2 configs/recognition/videomae/README.md)
@register_model("videomae", ModelMeta(params=87e6, gmacs=180.0, gmacs_tol=0.01, input_size=_IN,
                                      source=f"{_SRC}; mmaction2 videomae README: 180G, 87M"))
def videomae_base(**kw: Any) -> VideoMAE:
    return _videomae("videomae_base", dict(), kw)


# ViT-L: 597G / 305M (mmaction2 configs/recognition/videomae/README.md)
@register_model("videomae", ModelMeta(params=305e6, gmacs=597.0, gmacs_tol=0.01, input_size=_IN,
                                      source=f"{_SRC}; mmaction2 videomae README: 597G, 305M"))
def videomae_large(**kw: Any) -> VideoMAE:
    return _videomae("videomae_large", dict(embed_dim=1024, depth=24, num_heads=16), kw)


# ViT-H: no confirmed published FLOPs / params found here (left unset)
@register_model("videomae", ModelMeta(input_size=_IN, source=f"{_SRC}; ViT-H/16 (official vit_huge_patch16_224)"))
def videomae_huge(**kw: Any) -> VideoMAE:
    return _videomae("videomae_huge", dict(embed_dim=1280, depth=32, num_heads=16), kw)


# VideoMAE V2 (Wang et al., CVPR 2023; OpenGVLab/VideoMAEv2 models/modeling_finetune.py): the same
# encoder (q / v biases, fixed sinusoids, mean pooling then fc_norm, LayerNorm eps 1e-6, no layer
# scale: init_values 0 in every fine-tuning script), at ViT-g/14: `vit_giant_patch14_224`, width
# 1408, 40 blocks, 16 heads, mlp_ratio 48 / 11 (hidden 6144), patch 14, tubelet 2. Its distilled
# ViT-S/16 and ViT-B/16 are videomae_small / videomae_base.
# Published figures: the paper (arXiv 2303.16727; read in its LaTeX source): "It has 1,011M parameters"
# (Sec. 4.1; the official ViT-g without a head counts 1,011,610,752, tests/test_videomae_v2.py) and, K400
# Table 6(a), 38.16 TFLOPs over 5 x 3 views at 16 x 224 (2544 per view) and 160.30 over 2 x 3 at 64 x 266
# (26.72 per view). Its "FLOPs" are multiply-adds: fvcore counts 2543.9 and 26,716 GMACs per view
# (x 6 = 160.297 T). OpenGVLab/VideoMAEv2's MODEL_ZOO.md gives no figures.
@register_model("videomae", ModelMeta(params=1011e6, gmacs=2544.0, gmacs_tol=0.01, input_size=_IN,
                                      source="VideoMAE V2 (CVPR 2023) ViT-g/14, 16x224, tubelet 2x14x14 (official "
                                             "vit_giant_patch14_224): 1,011M params (Sec. 4.1), K400 Table 6(a) "
                                             "38.16 TFLOPs over 5x3 views"))
def videomae_v2_giant(**kw: Any) -> VideoMAE:
    giant = dict(embed_dim=1408, depth=40, num_heads=16, mlp_ratio=48 / 11, tubelet_size=(2, 14, 14))
    return _videomae("videomae_v2_giant", giant, kw)


@register_model("videomae", ModelMeta(input_size=(3, 8, 32, 32), source="vidbench CPU config"))
def videomae_tiny(**kw: Any) -> VideoMAE:
    tiny = dict(img_size=32, num_frames=8, tubelet_size=(2, 8, 8), embed_dim=192, depth=4, num_heads=3,
                num_classes=10)
    return _videomae("videomae_tiny", tiny, kw)
