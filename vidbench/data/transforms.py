"""Clip transforms on tensors, built on torchvision.transforms.v2's video ops.

Decoded frames arrive as uint8 (T, H, W, C); the torchvision ops work on (..., T, C, H, W); a
clip leaves as float (C, T, H, W), the layout every vidbench video model takes.

Crops, resizes and flips run on the uint8 frames and only the result is converted to float and
normalised (`ClipTransform.uint8_ops`, the default): the antialiased bilinear resize has a uint8
kernel in torch, and the float conversion then touches the crop, not the whole frame. The result
is the float path's (convert first, then crop and resize) rounded to uint8 levels: the two agree
within 1/255 of the [0, 1] clip before normalisation (tests/test_data_transforms.py, on decoded
video). ``uint8_ops=False`` keeps the float path, to measure one against the other.

Training: random resized crop, horizontal flip (switched off for classes whose label a mirror
image would change, such as "moving left"), normalisation. Testing: short-side resize, then a
centre crop or three crops along the longer side.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import torch
import torchvision.transforms.v2.functional as TF
from einops import rearrange
from torchvision.transforms import RandomResizedCrop

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ClipTransform", "short_side_size", "three_crop"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def short_side_size(height: int, width: int, short_side: int) -> Tuple[int, int]:
    """(height, width) after resizing the shorter side to `short_side`, keeping the aspect ratio,
    rounded as torchvision's ``resize(video, [short_side])`` rounds the longer side (down)."""
    if height <= width:
        return short_side, int(short_side * width / height)
    return int(short_side * height / width), short_side


def three_crop(video: torch.Tensor, size: int) -> List[torch.Tensor]:
    """Three `size` x `size` crops of (..., H, W) along the longer side: start, centre, end,
    centred on the shorter side (SlowFast / mmaction2 ThreeCrop). The shorter side must be at
    least `size` (resize first)."""
    h, w = video.shape[-2:]
    if min(h, w) < size:
        raise ValueError(f"three_crop needs the short side resized to at least {size}, got {h}x{w}")
    if w >= h:
        top = (h - size) // 2
        return [TF.crop(video, top, left, size, size) for left in (0, (w - size) // 2, w - size)]
    left = (w - size) // 2
    return [TF.crop(video, top, left, size, size) for top in (0, (h - size) // 2, h - size)]


@dataclass(frozen=True)
class ClipTransform:
    """Args:
        size: side of the square crop the model takes.
        short_side: test-time resize of the shorter side before cropping (default: `size`).
        scale, ratio: random-resized-crop area fraction and aspect ratio range (training).
        flip: allow random horizontal flips in training (the dataset can still refuse them per class).
        uint8_ops: crop, resize and flip the uint8 frames, then convert the result to float
            (default; within 1/255 of the float path, several times cheaper); False: convert the
            whole frames to float first (the earlier path, kept to measure against).
        decoder_resize: let the decoder do the test views' short-side resize (FFmpeg's scaler as
            it converts to RGB: cheaper, within a few levels of torchvision's resize, not equal;
            see `open_video`); training clips are always decoded at full size.
    """

    size: int = 32
    short_side: int = 0
    scale: Tuple[float, float] = (0.64, 1.0)
    ratio: Tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    uint8_ops: bool = True
    decoder_resize: bool = False

    @property
    def test_short_side(self) -> int:
        """The length the test views resize the shorter side to."""
        return self.short_side or self.size

    def _video(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (T, H, W, C) -> (T, C, H, W): uint8 (a view) with `uint8_ops`, else float in [0, 1]."""
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
        video = rearrange(frames, "t h w c -> t c h w")  # (T, C, H, W)
        return video if self.uint8_ops else self._float(video)

    @staticmethod
    def _float(video: torch.Tensor) -> torch.Tensor:
        """uint8 -> float in [0, 1]; a float video is returned as it is."""
        return TF.to_dtype(video, torch.float32, scale=True)

    def _finish(self, video: torch.Tensor) -> torch.Tensor:
        video = TF.normalize(self._float(video), list(self.mean), list(self.std))
        return rearrange(video, "t c h w -> c t h w")

    def train(self, frames: torch.Tensor, allow_flip: bool = True) -> torch.Tensor:
        """uint8 (T, H, W, C) -> float (C, T, size, size), randomly cropped (and maybe flipped)."""
        video = self._video(frames)
        top, left, h, w = RandomResizedCrop.get_params(video[0], list(self.scale), list(self.ratio))
        video = TF.resized_crop(video, top, left, h, w, [self.size, self.size], antialias=True)
        if self.flip and allow_flip and torch.rand(()) < 0.5:
            video = TF.horizontal_flip(video)
        return self._finish(video)

    def test(self, frames: torch.Tensor, num_crops: int = 1) -> List[torch.Tensor]:
        """uint8 (T, H, W, C) -> `num_crops` (1 or 3) float clips (C, T, size, size)."""
        if num_crops not in (1, 3):
            raise ValueError(f"spatial crops must be 1 or 3, got {num_crops}")
        video = TF.resize(self._video(frames), [self.test_short_side], antialias=True)
        crops = [TF.center_crop(video, [self.size, self.size])] if num_crops == 1 else three_crop(video, self.size)
        return [self._finish(c) for c in crops]
