"""Multi-view image augmentations on tensors (torchvision.transforms.v2), one recipe per view,
with each method's recipe from its paper.

Images come in as float (C, H, W) in [0, 1] and leave normalised. Random resized crop, flip,
colour jitter, grayscale, Gaussian blur and solarisation, each with its probability per view.
Small images (under 96 pixels) get the papers' CIFAR recipes (no blur for SimCLR, BYOL's
asymmetric solarisation), larger ones their ImageNet recipes.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Sequence, Tuple, Union

import torch
from torchvision.transforms import v2

from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD  # one definition for clips and frames
from ..errors import ConfigError
from ..options import parse_key_values

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ViewAugment", "MultiViewTransform", "method_views",
           "parse_aug_overrides", "single_thread"]


@dataclass
class ViewAugment:
    """One view's recipe. Probabilities are per image."""

    crop_scale: Tuple[float, float] = (0.08, 1.0)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    gray_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: Tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0
    solarize_threshold: float = 0.5

    def __post_init__(self) -> None:
        for name in ("flip_p", "jitter_p", "gray_p", "blur_p", "solarize_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"augmentation {name} must be a probability in [0, 1], got {getattr(self, name)}")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")

    def build(self, size: int, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> v2.Compose:
        kernel = max(3, int(0.1 * size) // 2 * 2 + 1)  # ~10% of the side, odd (SimCLR)
        ops: List[v2.Transform] = [v2.RandomResizedCrop(size, scale=self.crop_scale, antialias=True)]
        if self.flip_p:
            ops.append(v2.RandomHorizontalFlip(self.flip_p))
        if self.jitter_p:
            jitter = v2.ColorJitter(self.brightness, self.contrast, self.saturation, self.hue)
            ops.append(v2.RandomApply([jitter], p=self.jitter_p))
        if self.gray_p:
            ops.append(v2.RandomGrayscale(self.gray_p))
        if self.blur_p:
            ops.append(v2.RandomApply([v2.GaussianBlur(kernel, sigma=self.blur_sigma)], p=self.blur_p))
        if self.solarize_p:
            ops.append(v2.RandomSolarize(self.solarize_threshold, p=self.solarize_p))
        ops.append(v2.Normalize(list(mean), list(std)))
        return v2.Compose(ops)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run per-image ops on one thread: torch's intra-op pool costs far more than it gains on
    32x32 images (ColorJitter, GaussianBlur go from ~1 ms to tens of ms on a busy 2-core box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class MultiViewTransform:
    """image (C, H, W) in [0, 1] -> list of views, one per recipe."""

    def __init__(self, recipes: Sequence[ViewAugment], size: int, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD):
        if not recipes:
            raise ValueError("at least one view recipe is needed")
        self.recipes = list(recipes)
        self.transforms = [r.build(size, mean, std) for r in self.recipes]

    def __call__(self, image: torch.Tensor) -> List[torch.Tensor]:
        with single_thread():
            return [t(image) for t in self.transforms]

    def __repr__(self) -> str:
        return f"MultiViewTransform({self.recipes})"


_SIMCLR_SMALL = ViewAugment(brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2)  # colour strength 1
_BYOL_SMALL = [ViewAugment(), ViewAugment(solarize_p=0.2)]
_BYOL_LARGE = [ViewAugment(blur_p=1.0), ViewAugment(blur_p=0.1, solarize_p=0.2)]
_RECIPES: Dict[str, Tuple[List[ViewAugment], List[ViewAugment]]] = {  # (small images, large images)
    "byol": (_BYOL_SMALL, _BYOL_LARGE),
    "simclr": ([_SIMCLR_SMALL] * 2, [dataclasses.replace(_SIMCLR_SMALL, blur_p=0.5)] * 2),
    "wmse": ([ViewAugment(crop_scale=(0.2, 1.0), saturation=0.4, gray_p=0.1)] * 2,
             [ViewAugment(blur_p=0.5)] * 2),
    "arb": ([ViewAugment(blur_p=0.2), ViewAugment(blur_p=0.1, solarize_p=0.2)], _BYOL_LARGE),  # the authors' recipe
    "instdisc": ([ViewAugment(crop_scale=(0.2, 1.0), jitter_p=1.0, saturation=0.4, hue=0.4)],) * 2,
    "contrastive": ([_SIMCLR_SMALL] * 2, [dataclasses.replace(_SIMCLR_SMALL, blur_p=0.5)] * 2),
}
_RECIPES["simclr_v2"] = _RECIPES["simclr"]


def method_views(method: str, size: int, num_views: int) -> List[ViewAugment]:
    """The recipe of each of `num_views` views for `method` at image side `size` (W-MSE 4
    repeats its two-view recipe)."""
    if method not in _RECIPES:
        raise KeyError(f"no augmentation recipe for method {method!r}; known: {', '.join(sorted(_RECIPES))}")
    small, large = _RECIPES[method]
    base = small if size < 96 else large
    return [dataclasses.replace(base[i % len(base)]) for i in range(num_views)]


def parse_aug_overrides(items: Union[Sequence[str], Mapping[str, str]]) -> Dict[str, object]:
    """['blur_p=0.5', 'crop_scale=0.2,1.0'] (or those as a mapping of text) -> typed fields of
    ViewAugment (applied to every view)."""
    fields = {f.name: f for f in dataclasses.fields(ViewAugment)}
    if not isinstance(items, Mapping):
        items = parse_key_values(items, "--aug", str, example="blur_p=0.5, crop_scale=0.2,1.0")
    out: Dict[str, object] = {}
    for key, value in items.items():
        item = f"{key}={value}"
        if key not in fields:
            raise ConfigError(f"--aug {item!r}: expected KEY=VALUE with KEY one of {', '.join(fields)}")
        try:
            if key in ("crop_scale", "blur_sigma"):
                lo, hi = (float(v) for v in value.split(","))
                out[key] = (lo, hi)
            else:
                out[key] = float(value)
        except ValueError:
            raise ConfigError(f"--aug {item!r}: {value!r} is not a number"
                              f"{' pair LO,HI' if key in ('crop_scale', 'blur_sigma') else ''}") from None
    return out
