"""Video decoding (decord, PyAV) and H.264 writing (PyAV).

Both decoders return the same thing: uint8 frames (T, H, W, C) in RGB for a list of frame
indices, and a frame count taken from the stream's packets (the frames that are really there),
never from the container's metadata, which a truncated file still reports in full.

decord is the fast path (`VideoReader` + `get_batch`); its output is converted to numpy and then
torch explicitly, since decord's torch bridge is a process-global switch that does not reach
DataLoader workers. PyAV is the fallback where decord is not installed (it ships no arm64 or
macOS wheels) and can be chosen by name.
"""
from __future__ import annotations

import bisect
import importlib.util
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

__all__ = ["BACKENDS", "BadVideoError", "VideoSource", "available_backends", "default_backend", "open_video",
           "write_mp4"]

BACKENDS = ("decord", "pyav")
PathLike = Union[str, os.PathLike]


class BadVideoError(ValueError):
    """A video that cannot be used: unreadable, corrupt, truncated, empty or too short."""

    def __init__(self, path: PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def available_backends() -> List[str]:
    return [b for b in BACKENDS if importlib.util.find_spec("av" if b == "pyav" else b) is not None]


def default_backend() -> str:
    """decord where it is installed, else PyAV."""
    found = available_backends()
    if not found:
        raise RuntimeError("no video decoder: install decord (x86_64) or av (PyAV)")
    return found[0]


class VideoSource:
    """An opened video: `num_frames` and `get(indices) -> uint8 tensor (T, H, W, C)`."""

    path: str
    num_frames: int

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        raise NotImplementedError

    def _check(self, indices: Sequence[int]) -> List[int]:
        idx = [int(i) for i in indices]
        if not idx:
            raise ValueError("no frame indices to decode")
        bad = [i for i in idx if not 0 <= i < self.num_frames]
        if bad:
            raise BadVideoError(self.path, f"frame index {bad[0]} out of range for {self.num_frames} frames")
        return idx


class DecordSource(VideoSource):
    def __init__(self, path: PathLike):
        import decord

        self.path = str(path)
        try:  # one thread: parallelism comes from DataLoader workers
            self._reader = decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=1)
            self.num_frames = len(self._reader)  # decord indexes every packet when it opens the file
        except (RuntimeError, decord.DECORDError) as err:
            raise BadVideoError(path, f"decord cannot open it ({_first_line(err)})") from None

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        import decord

        idx = self._check(indices)
        try:
            frames = self._reader.get_batch(idx).asnumpy()  # (T, H, W, C) uint8
        except (RuntimeError, decord.DECORDError) as err:
            raise BadVideoError(self.path, f"decord cannot decode frames {idx} ({_first_line(err)})") from None
        return torch.from_numpy(np.ascontiguousarray(frames))


class PyAVSource(VideoSource):
    """Frame-accurate access by packet index: frame i is the i-th packet in presentation order;
    decoding seeks to the last keyframe at or before each requested frame."""

    def __init__(self, path: PathLike):
        import av

        self.path = str(path)
        if not os.path.isfile(self.path):
            raise BadVideoError(path, "file not found")
        try:
            with av.open(self.path) as container:
                stream = container.streams.video[0]
                packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size > 0]
        except (av.error.FFmpegError, IndexError) as err:
            raise BadVideoError(path, f"PyAV cannot open it ({_first_line(err)})") from None
        if any(pts is None for pts, _ in packets):
            raise BadVideoError(path, "packets without timestamps: cannot index frames")
        self._pts = sorted(pts for pts, _ in packets)
        self._index: Dict[int, int] = {pts: i for i, pts in enumerate(self._pts)}
        self._keyframes = sorted(self._index[pts] for pts, key in packets if key)
        self.num_frames = len(self._pts)

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        import av

        idx = self._check(indices)
        wanted = sorted(set(idx))
        wanted_set = set(wanted)
        frames: Dict[int, np.ndarray] = {}
        try:
            with av.open(self.path) as container:
                stream = container.streams.video[0]
                position = -1  # index of the last frame decoded since the last seek
                decoder = None
                for target in wanted:
                    if target in frames:
                        continue
                    key = self._keyframes[max(bisect.bisect_right(self._keyframes, target) - 1, 0)]
                    if decoder is None or key > position + 1:
                        container.seek(self._pts[key], stream=stream, backward=True, any_frame=False)
                        decoder = container.decode(stream)
                    for frame in decoder:
                        position = self._index.get(frame.pts, -1)
                        if position in wanted_set and position not in frames:
                            frames[position] = frame.to_ndarray(format="rgb24")
                        if position >= target:
                            break
        except av.error.FFmpegError as err:
            raise BadVideoError(self.path, f"PyAV cannot decode frames {idx} ({_first_line(err)})") from None
        missing = [i for i in wanted if i not in frames]
        if missing:
            raise BadVideoError(self.path, f"frame {missing[0]} is indexed but does not decode (truncated?)")
        return torch.from_numpy(np.stack([frames[i] for i in idx]))  # (T, H, W, C)


def open_video(path: PathLike, backend: Optional[str] = None) -> VideoSource:
    """Open a video with `backend` ('decord', 'pyav'; None: decord where installed, else PyAV).

    Raises BadVideoError (naming the file) for a missing, unreadable, corrupt or empty video.
    """
    backend = backend or default_backend()
    if backend not in BACKENDS:
        raise ValueError(f"unknown video backend {backend!r}; choose from {BACKENDS}")
    if backend not in available_backends():
        raise RuntimeError(f"video backend {backend!r} is not installed (available: {available_backends()})")
    if not os.path.isfile(path):
        raise BadVideoError(path, "file not found")
    if os.path.getsize(path) == 0:
        raise BadVideoError(path, "empty file (0 bytes)")
    source = DecordSource(path) if backend == "decord" else PyAVSource(path)
    if source.num_frames == 0:
        raise BadVideoError(path, "no video frames")
    return source


def write_mp4(path: PathLike, frames: np.ndarray, fps: int = 8, qp: Optional[int] = 12, gop_size: int = 1,
              faststart: bool = False) -> Path:
    """Encode uint8 RGB frames (T, H, W, 3) as H.264 (libx264, yuv420p) in an MP4.

    Args:
        qp: constant quantiser (None: x264's default CRF). With `gop_size=1` (every frame a
            keyframe) and a constant quantiser, each frame's encoding depends on that frame alone,
            so a video and its time reversal decode to the same set of frames.
        faststart: moov atom at the front (a truncated file still opens and reports every frame).
    """
    import av

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"H.264 4:2:0 needs even frame sizes, got {frames.shape[1]}x{frames.shape[2]}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop_size
        stream.options = {"threads": "1", **({"qp": str(qp)} if qp is not None else {})}
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__
