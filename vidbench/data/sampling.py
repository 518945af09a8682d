"""Clip samplers: which frame indices of a video make a clip.

- ``dense``: `num_frames` frames `stride` apart (ViViT samples 32 frames at stride 2), a
  random start for training, N evenly spaced starts at test time (mmaction2's test offsets);
- ``uniform``: TSN segment sampling, the video cut into `num_frames` equal segments, one frame
  from each (random within the segment for training, evenly offset per test clip).

Randomness comes from torch's global generator, which the dataset seeds per item.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch

from .videoio import BadVideoError, PathLike

__all__ = ["ClipSampler", "ClipTooShortError", "SAMPLING_MODES"]

SAMPLING_MODES = ("dense", "uniform")


class ClipTooShortError(BadVideoError):
    """A video (or its segment) shorter than the clip: it decodes, but no clip fits, so no other
    decoder would help. The sampler raises it without a path (the message is the reason alone);
    the dataset raises it again naming the file and segment."""

    def __init__(self, path: PathLike = "", reason: str = ""):
        super().__init__(path, reason)
        if not str(path):
            self.args = (reason,)

    def __reduce__(self):  # rebuilt from (path, reason), not from its message
        return type(self), (self.path, self.reason)


@dataclass(frozen=True)
class ClipSampler:
    num_frames: int = 8
    stride: int = 2  # dense only
    mode: str = "dense"

    def __post_init__(self) -> None:
        if self.mode not in SAMPLING_MODES:
            raise ValueError(f"sampling mode must be one of {SAMPLING_MODES}, got {self.mode!r}")
        if self.num_frames < 1 or self.stride < 1:
            raise ValueError(f"num_frames and stride must be >= 1, got {self.num_frames}, {self.stride}")

    @property
    def span(self) -> int:
        """Frames a video needs at least."""
        return (self.num_frames - 1) * self.stride + 1 if self.mode == "dense" else self.num_frames

    def _check(self, num_video_frames: int) -> None:
        if num_video_frames < self.span:
            raise ClipTooShortError(reason=f"{num_video_frames} frames, shorter than the clip "
                                           f"({self.num_frames} frames, {self.mode} sampling, needs {self.span})")

    def train_indices(self, num_video_frames: int) -> List[int]:
        """One clip at a random position."""
        self._check(num_video_frames)
        n, t = num_video_frames, self.num_frames
        if self.mode == "dense":
            start = int(torch.randint(0, n - self.span + 1, ()).item())
            return [start + i * self.stride for i in range(t)]
        bounds = [(i * n) // t for i in range(t + 1)]  # segment i is [bounds[i], bounds[i+1])
        return [lo + int(torch.randint(0, hi - lo, ()).item()) for lo, hi in zip(bounds[:-1], bounds[1:])]

    def test_indices(self, num_video_frames: int, num_clips: int = 1) -> List[List[int]]:
        """`num_clips` deterministic clips spread evenly over the video."""
        if num_clips < 1:
            raise ValueError(f"num_clips must be >= 1, got {num_clips}")
        self._check(num_video_frames)
        n, t = num_video_frames, self.num_frames
        clips = []
        for k in range(num_clips):
            if self.mode == "dense":
                room = n - self.span + 1  # possible starts
                start = int((k + 0.5) * room / num_clips)
                clips.append([start + i * self.stride for i in range(t)])
            else:
                clips.append([min(int((i + (k + 0.5) / num_clips) * n / t), n - 1) for i in range(t)])
        return clips
