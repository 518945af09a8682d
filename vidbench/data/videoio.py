"""Video decoding (decord, torchcodec, PyAV) and H.264 writing (PyAV).

Every decoder returns the same thing: uint8 frames (T, H, W, C) in RGB for a list of frame
indices, and a frame count taken from the stream's packets (the frames that are really there),
never from the container's metadata, which a truncated file still reports in full.

- decord (`VideoReader` + `get_batch`): the default where it is installed and imports. Its output
  is converted to numpy and then torch explicitly, since decord's torch bridge is a
  process-global switch that does not reach DataLoader workers.
- torchcodec (`VideoDecoder` in exact seek mode, which indexes every packet when it opens the
  file): chosen automatically where decord is not, when it imports *and* loads the system FFmpeg
  shared libraries it links against (FFmpeg 4-9; pip does not bring them). When it cannot,
  `torchcodec_problem()` says why in one line, naming the missing library.
- PyAV (bundles its own FFmpeg): the fallback that installs everywhere, and the reference.

One definition of a video's frames, whatever the backend: frame i is the i-th frame in
presentation order, turned for display by the container's rotation (display matrix; decord and
torchcodec turn frames themselves, PyAV's are turned here; `open_video(..., rotate=False)` gives
them as stored, in every backend), converted to RGB by FFmpeg's default YUV->RGB conversion. On
real encodings (H.264 and HEVC with B-frames, VP9, MPEG-4 part 2 AVI, rotation, variable frame
rate; tests/test_data_real_videos.py) every backend returns PyAV's decode-everything frames.
Where decord or torchcodec would not (decord after a seek in open-GOP video and MPEG-4 part 2
with B-frames, torchcodec on B-frames in AVI, both on odd 4:2:0 sizes and >8-bit colour, where
their FFmpeg builds convert colour differently), `open_video` finds out from the stream's
parameters and first packets (`probe.py`, no decoding) and raises `BadVideoError` with the
reason; the dataset then reads that file with PyAV (`fallback_backend`) and counts it.

Resizing in the decoder (`open_video(..., short_side=S)`, for test views whose first step is a
short-side resize to S): the frames come with their shorter side at S, the longer rounded as
torchvision rounds it, scaled by FFmpeg's swscale as part of the YUV->RGB conversion (PyAV:
bilinear, area-averaging when shrinking; torchcodec: its `Resize` decoder transform, bilinear
with antialiasing; decord: its scale filter). A different filter from torchvision's antialiased
bilinear resize: within a few levels of decode-then-resize (tests/test_data_decoder_resize.py),
not equal, so it is asked for (`ClipTransform.decoder_resize`), never the default. decord and
torchcodec resize only upright videos (display rotation 0); a rotated one is decoded at full size
and resized by the transform, and a decoder that returns another size than asked raises
`BadVideoError` (the dataset then reads the file with PyAV, which resizes each frame before
turning it).

GPU decoding (`backend="torchcodec-cuda"`): torchcodec on CUDA (NVDEC), frames returned on the
GPU. Never chosen automatically; refused in one line where CUDA or torchcodec is missing; upright
videos only (a rotated one is refused: a bad item, no PyAV fallback, whose clips would be on the
CPU); no decoder resize. CUDA does not survive a fork: use it with 0 DataLoader workers (or the
spawn start method).
"""
from __future__ import annotations

import bisect
import functools
import importlib.util
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..errors import UserError
from .probe import (
    MAX_PACKETS,
    NO_PRESENTATION_ORDER,
    VideoProbe,
    decode_order_pts,
    display_rotation,
    frame_rotation,
    probe_video,
    refusal,
)
from .transforms import short_side_size

__all__ = ["BACKENDS", "GPU_BACKENDS", "BadVideoError", "VideoBackendError", "VideoSource", "available_backends",
           "check_backend", "cuda_problem", "default_backend", "fallback_backend", "open_video", "torchcodec_problem",
           "write_mp4"]

BACKENDS = ("decord", "torchcodec", "pyav")  # in the order of the automatic choice
GPU_BACKENDS = ("torchcodec-cuda",)  # asked for by name only: decoding on the GPU, frames on the GPU
PathLike = Union[str, os.PathLike]
# what brings the FFmpeg shared libraries torchcodec links against (Debian / Ubuntu; any FFmpeg 4-9)
FFMPEG_APT = "apt-get install -y --no-install-recommends ffmpeg"


class BadVideoError(ValueError):
    """A video that cannot be used: unreadable, corrupt, truncated, empty or too short."""

    def __init__(self, path: PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


class VideoBackendError(UserError, RuntimeError):
    """A video backend that was asked for by name but is not installed or cannot load."""


@functools.cache
def _import_problem(module: str) -> Optional[str]:
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed"
    try:
        importlib.import_module(module)
    except Exception as err:  # a broken install: any error on import means "does not work here"
        return f"{module} does not import ({_first_line(err)})"
    return None


@functools.cache
def torchcodec_problem() -> Optional[str]:
    """None when torchcodec imports and its FFmpeg libraries load; else one line saying why not
    (naming the missing shared library) and how to install them."""
    problem = _import_problem("torchcodec")
    if problem is not None:
        return f"{problem} (pip install torchcodec)"
    import torchcodec

    if getattr(torchcodec, "ffmpeg_major_version", None) is not None:
        return None
    try:  # torchcodec imports without FFmpeg; its decoder raises the loader's errors, one per FFmpeg version
        from torchcodec.decoders import VideoDecoder

        VideoDecoder(b"\0")
    except Exception as err:
        return torchcodec_load_error(str(err))
    return None


def torchcodec_load_error(text: str) -> str:
    """One line from torchcodec's "Could not load libtorchcodec" error: which shared library is
    missing. torchcodec tries FFmpeg 9 down to 4; a version whose libavutil loads but whose other
    libraries do not is the one partly installed, so its missing library is the one named."""
    tried = re.split(r"FFmpeg version (\d+):", text)
    missing: Dict[int, str] = {}
    for version, body in zip(tried[1::2], tried[2::2]):
        found = re.search(r"OSError: ([^\s:]+\.so[.\d]*): cannot open shared object file", body)
        other = re.findall(r"(?:OSError|ImportError): (.+)", body)
        missing[int(version)] = found.group(1) if found else (other[-1].strip() if other else "unknown error")
    fix = f"install FFmpeg 4-9 shared libraries (e.g. {FFMPEG_APT}) or choose --backend pyav"
    if not missing:
        return f"torchcodec cannot load ({_first_line(ValueError(text))}); {fix}"
    partial = {v: lib for v, lib in missing.items() if not lib.startswith("libavutil.so")}
    if partial:
        version = max(partial)
        return f"torchcodec cannot load FFmpeg {version}: {partial[version]} (not found or not loadable); {fix}"
    libs = ", ".join(missing[v] for v in sorted(missing, reverse=True))
    return f"torchcodec cannot load FFmpeg: shared library not found ({libs}); {fix}"


def _backend_problem(backend: str) -> Optional[str]:
    if backend == "torchcodec":
        return torchcodec_problem()
    if backend == "torchcodec-cuda":
        return torchcodec_problem() or cuda_problem()
    return _import_problem("av" if backend == "pyav" else backend)


def cuda_problem() -> Optional[str]:
    """None where torch sees a CUDA device; else why not, in one line."""
    if not torch.cuda.is_available():
        built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "built without CUDA"
        return f"no CUDA device (torch.cuda.is_available() is False; torch {torch.__version__} {built})"
    return None


def check_backend(backend: Optional[str]) -> None:
    """Raise (one line) unless `backend` is None or a backend that works here."""
    if backend is None:
        return
    if backend not in BACKENDS + GPU_BACKENDS:
        raise ValueError(f"unknown video backend {backend!r}; choose from {BACKENDS + GPU_BACKENDS}")
    problem = _backend_problem(backend)
    if problem is not None:
        raise VideoBackendError(f"video backend {backend!r} is not usable: {problem}")


def available_backends() -> List[str]:
    """The backends that work here, in the order of the automatic choice."""
    return [b for b in BACKENDS if _backend_problem(b) is None]


def default_backend() -> str:
    """decord where it is installed and imports, else torchcodec where its FFmpeg libraries load,
    else PyAV."""
    for backend in BACKENDS:
        if _backend_problem(backend) is None:
            return backend
    raise VideoBackendError("no video decoder: install decord (x86_64), torchcodec (with FFmpeg) or av (PyAV)")


def fallback_backend(backend: Optional[str]) -> Optional[str]:
    """The backend that reads a file `backend` (None: the default) failed on, per file: PyAV for
    decord and torchcodec where PyAV works here, else None (for torchcodec-cuda too: its clips
    are on the GPU, PyAV's would not be, so a file it refuses is a bad item, counted)."""
    backend = backend or default_backend()
    return "pyav" if backend in ("decord", "torchcodec") and "pyav" in available_backends() else None


class VideoSource:
    """An opened video: `num_frames` and `get(indices) -> uint8 tensor (T, H, W, C)`.
    `resized_to`: the (H, W) the decoder resizes frames to, None where it does not."""

    path: str
    num_frames: int
    resized_to: Optional[Tuple[int, int]] = None

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

    def _check_size(self, frames: torch.Tensor, backend: str) -> torch.Tensor:
        """The frames, unless the decoder resized them to another size than asked (refused)."""
        if self.resized_to is not None and tuple(frames.shape[1:3]) != self.resized_to:
            got, want = frames.shape[1:3], self.resized_to
            raise BadVideoError(self.path, f"{backend} returned {got[1]}x{got[0]} frames for a resize to "
                                           f"{want[1]}x{want[0]}")
        return frames


def _decoder_size(probe: VideoProbe, short_side: Optional[int], turns: int) -> Optional[Tuple[int, int]]:
    """(H, W) a decord / torchcodec decoder should resize an upright video's frames to; None where
    it should not resize (no short side asked for, already that size, or a rotated video)."""
    if short_side is None or turns % 4 or min(probe.height, probe.width) == short_side:
        return None
    return short_side_size(probe.height, probe.width, short_side)


class DecordSource(VideoSource):
    """decord's `VideoReader`. decord turns frames for display itself (the container's rotation
    tag); with `rotate=False` that turn is undone (the angle read by PyAV from the first frame).
    `size` (H, W): decord scales the frames to it (its `width` / `height`)."""

    def __init__(self, path: PathLike, rotate: bool = True, turns: Optional[int] = None,
                 size: Optional[Tuple[int, int]] = None):
        import decord

        self.path = str(path)
        try:
            turns = _quarter_turns(display_rotation(path)) if turns is None and not rotate else turns
        except ValueError as err:
            raise BadVideoError(path, str(err)) from None
        self._unturn = 0 if rotate else -turns
        self.resized_to = size
        scale = {"height": size[0], "width": size[1]} if size else {}
        try:  # one thread: parallelism comes from DataLoader workers
            self._reader = decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=1, **scale)
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
        return _turn(self._check_size(torch.from_numpy(np.ascontiguousarray(frames)), "decord"), self._unturn)


class TorchCodecSource(VideoSource):
    """torchcodec's `VideoDecoder` in exact mode: opening scans every packet, so `num_frames` is
    the frames present and frame i is the i-th in presentation order (no keyframe snapping).
    torchcodec turns frames for display itself; with `rotate=False` that turn is undone.
    `size` (H, W): its `Resize` decoder transform scales the frames to it (an upright video only:
    a rotated one is opened again without it). `device="cuda"`: NVDEC, frames on the GPU."""

    def __init__(self, path: PathLike, rotate: bool = True, size: Optional[Tuple[int, int]] = None,
                 device: str = "cpu"):
        self.path, self._device = str(path), device
        self._decoder = self._open(size)
        rotation = getattr(self._decoder.metadata, "rotation", None) or 0
        if _quarter_turns(rotation) and device != "cpu":
            raise BadVideoError(path, f"rotated video ({rotation:g} degrees): not read on {device}")
        if _quarter_turns(rotation) and size is not None:
            self._decoder, size = self._open(None), None
        self.resized_to = size
        self.num_frames = int(self._decoder.metadata.num_frames_from_content or 0)
        self._unturn = 0 if rotate else -_quarter_turns(rotation)

    def _open(self, size: Optional[Tuple[int, int]]):
        from torchcodec.decoders import VideoDecoder

        transforms = None
        if size is not None:
            from torchcodec.transforms import Resize

            transforms = [Resize(size)]
        try:  # one thread: parallelism comes from DataLoader workers
            return VideoDecoder(self.path, seek_mode="exact", dimension_order="NHWC", num_ffmpeg_threads=1,
                                device=self._device, transforms=transforms)
        except (RuntimeError, ValueError) as err:
            raise BadVideoError(self.path, f"torchcodec cannot open it ({_first_line(err)})") from None

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        idx = self._check(indices)
        try:
            frames = self._decoder.get_frames_at(idx).data  # (T, H, W, C) uint8, on the decoder's device
        except (RuntimeError, ValueError, IndexError) as err:
            raise BadVideoError(self.path, f"torchcodec cannot decode frames {idx} ({_first_line(err)})") from None
        return _turn(self._check_size(frames.contiguous(), "torchcodec"), self._unturn)


class PyAVSource(VideoSource):
    """Frame-accurate access by packet index: frame i is the i-th packet in presentation order;
    decoding seeks to the last keyframe at or before each requested frame. Frames are turned by
    their display matrix (`rotate=True`), as FFmpeg's command-line tools do. `short_side`: each
    frame is scaled (swscale, bilinear) with its shorter side to that length as it is converted
    to RGB, then turned (a short-side resize commutes with quarter turns)."""

    def __init__(self, path: PathLike, rotate: bool = True, short_side: Optional[int] = None):
        import av

        self.path, self._rotate, self._short_side = str(path), rotate, short_side
        if not os.path.isfile(self.path):
            raise BadVideoError(path, "file not found")
        try:
            with av.open(self.path) as container:
                stream = container.streams.video[0]
                packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size > 0]
                has_b_frames, demuxer = bool(stream.codec_context.has_b_frames), container.format.name
        except (av.error.FFmpegError, IndexError) as err:
            raise BadVideoError(path, f"PyAV cannot open it ({_first_line(err)})") from None
        if any(pts is None for pts, _ in packets):
            raise BadVideoError(path, "packets without timestamps: cannot index frames")
        if decode_order_pts(demuxer, has_b_frames, [pts for pts, _ in packets[:MAX_PACKETS]]):
            raise BadVideoError(path, NO_PRESENTATION_ORDER)
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
                            turns = _quarter_turns(frame_rotation(frame, stream)) if self._rotate else 0
                            frames[position] = np.rot90(self._rgb(frame), turns)
                        if position >= target:
                            break
        except av.error.FFmpegError as err:
            raise BadVideoError(self.path, f"PyAV cannot decode frames {idx} ({_first_line(err)})") from None
        missing = [i for i in wanted if i not in frames]
        if missing:
            raise BadVideoError(self.path, f"frame {missing[0]} is indexed but does not decode (truncated?)")
        return torch.from_numpy(np.stack([frames[i] for i in idx]))  # (T, H, W, C); np.stack copies the turned views

    def _rgb(self, frame) -> np.ndarray:
        """A decoded frame as RGB24 (H, W, 3), as stored; scaled to the short side where asked."""
        if self._short_side is None or min(frame.height, frame.width) == self._short_side:
            return frame.to_ndarray(format="rgb24")
        height, width = short_side_size(frame.height, frame.width, self._short_side)
        return frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="BILINEAR")


def open_video(path: PathLike, backend: Optional[str] = None, rotate: bool = True,
               short_side: Optional[int] = None) -> VideoSource:
    """Open a video with `backend` ('decord', 'torchcodec', 'pyav'; None: the first of those that
    works here, see `default_backend`; or 'torchcodec-cuda', see the module's notes). Frames come
    turned for display by the container's rotation (display matrix), as FFmpeg's tools show them;
    `rotate=False`: as stored. `short_side`: the decoder resizes the frames' shorter side to it
    where it can do so right (PyAV always; decord and torchcodec for upright videos; see
    `VideoSource.resized_to`), else they come at full size.

    Raises BadVideoError (naming the file) for a missing, unreadable, corrupt or empty video, or
    one that `backend` would decode wrong (the reason says why: see `probe.refusal`; PyAV reads
    it), and VideoBackendError (one line, naming what is missing) for a backend that cannot run here.
    """
    backend = backend or default_backend()
    check_backend(backend)
    if not os.path.isfile(path):
        raise BadVideoError(path, "file not found")
    if os.path.getsize(path) == 0:
        raise BadVideoError(path, "empty file (0 bytes)")
    if backend == "pyav":  # PyAV checks the same as `refusal` on the packets it indexes anyway
        source: VideoSource = PyAVSource(path, rotate, short_side)
    else:
        probe = _probe(path)
        reason = refusal("torchcodec" if backend in GPU_BACKENDS else backend, probe)
        if reason is not None:
            raise BadVideoError(path, reason)
        if backend == "decord":
            try:  # decord tells no rotation: PyAV reads it (one frame) where it matters
                turns = _quarter_turns(display_rotation(path)) if short_side is not None or not rotate else 0
            except ValueError as err:
                raise BadVideoError(path, str(err)) from None
            source = DecordSource(path, rotate, turns, _decoder_size(probe, short_side, turns))
        elif backend == "torchcodec":  # a rotated video: TorchCodecSource reopens it without resizing
            source = TorchCodecSource(path, rotate, _decoder_size(probe, short_side, 0))
        else:
            source = TorchCodecSource(path, rotate, device="cuda")
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
    options = {"movflags": "faststart"} if faststart else {}
    stream_options = {"threads": "1", **({"qp": str(qp)} if qp is not None else {})}
    return encode_rgb(path, frames, fps, "mp4", "libx264", options, stream_options, gop_size=gop_size)


def encode_rgb(path: PathLike, frames: np.ndarray, fps: int, fmt: str, codec: str, container_options: Dict[str, str],
               stream_options: Dict[str, str], gop_size: Optional[int] = None,
               max_b_frames: Optional[int] = None) -> Path:
    """Encode uint8 RGB frames (T, H, W, 3) with PyAV into `path` as yuv420p (the one encoding
    loop behind `write_mp4` and the real-size presets)."""
    import av

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"4:2:0 needs even frame sizes, got {frames.shape[2]}x{frames.shape[1]} (width x height)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=fmt, options=container_options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if gop_size is not None:
            stream.codec_context.gop_size = gop_size
        if max_b_frames is not None:
            stream.codec_context.max_b_frames = max_b_frames
        stream.options = stream_options
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _probe(path: PathLike) -> VideoProbe:
    import av

    try:
        return probe_video(path)
    except (av.error.FFmpegError, IndexError) as err:
        raise BadVideoError(path, f"PyAV cannot probe it ({_first_line(err)})") from None


def _quarter_turns(degrees: float) -> int:
    """Counter-clockwise quarter turns nearest to `degrees` (0-3)."""
    return int(round(float(degrees) / 90)) % 4


def _turn(frames: torch.Tensor, turns: int) -> torch.Tensor:
    """(T, H, W, C) frames turned `turns` quarter turns counter-clockwise."""
    return torch.rot90(frames, turns, dims=(1, 2)).contiguous() if turns % 4 else frames


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__
