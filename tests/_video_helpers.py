"""Small videos written by the data tests (nothing downloaded)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vidbench.data import write_mp4


def ramp_frames(num_frames: int, size=(32, 40), seed: int = 0) -> np.ndarray:
    """Frames that differ from each other and survive 4:2:0 compression: random grey 4x4 blocks
    plus a white bar whose position encodes the index."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 200, size=(num_frames, size[0] // 4, size[1] // 4), dtype=np.uint8)
    grey = np.kron(blocks, np.ones((1, 4, 4), np.uint8))  # (T, H, W)
    frames = np.repeat(grey[..., None], 3, axis=-1)
    for t in range(num_frames):
        frames[t, :, (2 * t) % size[1]] = 255
    return frames


def write_video(path: Path, num_frames: int, gop_size: int = 1, **kw) -> Path:
    return write_mp4(path, ramp_frames(num_frames), gop_size=gop_size, **kw)
