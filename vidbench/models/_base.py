"""Pieces every model shares: the classifier interface and image-to-video weight transfer."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, List, Set, Tuple, Union

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import ConfigError
from ..layers import init_weights


def _NO_DECAY_LEAF(leaf: str) -> bool:
    return "token" in leaf or "embed" in leaf or leaf.startswith("rel_pos") or leaf == "relative_position_bias_table"


CHECKPOINT_LISTS = ("blocks", "temporal_blocks", "temporal_layers")


@dataclass
class EncoderConfig:
    """The fields of the ViT encoder the plain-transformer families share (ViT, ViViT, TimeSformer,
    VTN, VideoMAE), at ViT-B's values, declared once; each family's config adds its own after them
    and may redeclare a default (ViT: 1000 classes; TimeSformer: drop_path_rate 0.1)."""

    img_size: Union[int, tuple] = 224
    in_chans: int = 3
    num_classes: int = 400
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0


class BlockRunner(nn.Module):
    """A module that runs transformer blocks: `run_block` runs one, under activation checkpointing
    where the `grad_checkpointing` flag is on (timm's `self.grad_checkpointing` checked in forward).
    `Classifier.set_grad_checkpointing` sets the flag on the model and every runner inside it
    (Swin's stages, a video model's image backbone)."""

    grad_checkpointing: bool = False

    def run_block(self, block: nn.Module, *args: Any, **kwargs: Any) -> Any:
        """`block(*args, **kwargs)`; with `grad_checkpointing` on and gradients enabled, under
        `torch.utils.checkpoint` (non-reentrant, RNG state kept, so dropout draws the same masks
        when the backward pass recomputes it)."""
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False, **kwargs)
        return block(*args, **kwargs)


class Classifier(BlockRunner):
    """Common interface: forward(x) = forward_head(forward_features(x)); reset_classifier.

    Subclasses set `self.config`, `self.num_features` and `self.head`, and implement
    forward_features and forward_head.

    Image initialisation is a capability: a model that can start from an image ViT has
    `from_image_backbone(vit, ...)`; `image_init_rules` names the tubelet rules its `init=`
    argument takes (ViViT, VideoMAE: central_frame, inflation, random). Models that embed single
    frames (TimeSformer, VTN, the frame average) have no rule to choose and no `init=` argument:
    the tuple is empty, and `vidbench train --init-mode` refuses anything but its default there.
    """

    config: Any
    num_features: int
    head: nn.Module
    image_init_rules: Tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return self.head.out_features if isinstance(self.head, nn.Linear) else 0

    def _make_head(self, num_classes: int) -> nn.Module:
        if num_classes <= 0:
            return nn.Identity()
        head = nn.Linear(self.num_features, num_classes)
        init_weights(head)
        return head

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classification head (0 removes it: forward returns pooled features)."""
        device = next(self.parameters()).device
        self.head = self._make_head(num_classes).to(device)
        self.config.num_classes = num_classes

    @property
    def input_size(self) -> Tuple[int, ...]:
        """(C, T, H, W) for video models, (C, H, W) for images: one view at batch 1."""
        cfg = self.config
        size = cfg.img_size if isinstance(cfg.img_size, (tuple, list)) else (cfg.img_size, cfg.img_size)
        frames = getattr(cfg, "num_frames", None)
        return (cfg.in_chans, frames, *size) if frames else (cfg.in_chans, *size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def checkpoint_blocks(self) -> List[nn.Module]:
        """The modules activation checkpointing runs (`run_block`): every element of a ModuleList named
        ``blocks`` / ``temporal_blocks`` / ``temporal_layers`` anywhere in the model (the
        transformer blocks of every family; Swin's inside its stages)."""
        out: List[nn.Module] = []
        for name, module in self.named_modules():
            if isinstance(module, nn.ModuleList) and name.rsplit(".", 1)[-1] in CHECKPOINT_LISTS:
                out += list(module)
        return out

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing per block (timm's method): sets `grad_checkpointing` on the
        model and every `BlockRunner` in it, whose forward then runs each block with `run_block`,
        recomputed in the backward pass while gradients are enabled. Outputs, weights and
        state-dict keys are unchanged; inference is untouched."""
        for module in self.modules():
            if isinstance(module, BlockRunner):
                module.grad_checkpointing = bool(enable)

    def no_weight_decay(self) -> Set[str]:
        """Parameter names weight decay should spare (timm's hook): tokens, position and time
        embeddings, relative-position tables. Biases and norm weights (1-d) are spared by the
        optimizer grouping anyway. A model with other such tensors overrides this."""
        return {name for name, _ in self.named_parameters() if _NO_DECAY_LEAF(name.rsplit(".", 1)[-1])}


# parts an image ViT may have that a video model must carry (the same config value) or refuse, never
# drop: (config field, its value without the part, what the part is)
IMAGE_PARTS = (("init_values", None, "layer scale"), ("reg_tokens", 0, "register tokens"))


def check_compatible(video_cfg: Any, image_cfg: Any, pairs: Iterable[Tuple[str, str]], what: str) -> None:
    """Raise a clear error when an image backbone's config cannot initialise a video model: a
    field of `pairs` that differs, or a part of the image ViT (`IMAGE_PARTS`: layer scale,
    register tokens) the video model does not carry (a ConfigError naming the part)."""
    for field, absent, part in IMAGE_PARTS:
        value = getattr(image_cfg, field, absent)
        if value != absent and getattr(video_cfg, field, absent) != value:
            has = (f"has {field}={getattr(video_cfg, field)!r}" if hasattr(video_cfg, field)
                   else f"has no {part} ({type(video_cfg).__name__} has no {field})")
            raise ConfigError(f"{what}: the image backbone's {part} ({field}={value!r}) cannot be carried over: the "
                              f"video model {has}; its weights would be dropped")
    bad = [
        f"{vf}={getattr(video_cfg, vf)!r} vs image {imf}={getattr(image_cfg, imf)!r}"
        for vf, imf in pairs
        if getattr(video_cfg, vf) != getattr(image_cfg, imf)
    ]
    if bad:
        raise ValueError(f"{what}: image backbone does not match the video model: " + "; ".join(bad))


@torch.no_grad()
def copy_module(dst: nn.Module, src: nn.Module) -> None:
    """Copy parameters and buffers of `src` into `dst` (same structure, strict)."""
    dst.load_state_dict(src.state_dict(), strict=True)


def heads_match(dst: Classifier, src: Classifier) -> bool:
    return (isinstance(dst.head, nn.Linear) and isinstance(src.head, nn.Linear)
            and dst.head.weight.shape == src.head.weight.shape)


@torch.no_grad()
def copy_head(dst: Classifier, src: Classifier) -> bool:
    """Copy the classification head where shapes agree (a 1000-class ImageNet head does not go
    into a 400-class Kinetics model); returns whether it did."""
    if heads_match(dst, src):
        copy_module(dst.head, src.head)
        return True
    return False


@torch.no_grad()
def load_backbone(dst: Classifier, src: Classifier) -> None:
    """Copy every weight of `src` into `dst` of the same architecture, the head only where the
    class counts agree."""
    state = {k: v for k, v in src.state_dict().items() if heads_match(dst, src) or not k.startswith("head.")}
    missing, unexpected = dst.load_state_dict(state, strict=False)
    leftover = [k for k in missing if not k.startswith("head.")] + list(unexpected)
    if leftover:
        raise ValueError(f"backbone weights do not fit: {leftover[:8]}")
