"""What a video's stream parameters and first packets say about which decoders read it right.

decord and torchcodec are fast but return silently wrong frames on some real encodings, measured
against PyAV's decode-every-frame ground truth (tests/test_data_real_videos.py):

- decord seeks to a keyframe and counts frames from there; where frames that show before a
  keyframe are stored after it (MPEG-4 part 2 with B-frames, HEVC open GOP: CRA keyframes with
  leading pictures) or an H.264 keyframe is not an IDR picture (open GOP), it returns frames of
  the wrong time after a seek.
- torchcodec returns frames off by one or two for B-frames in AVI.
- Both convert colour differently from each other and from PyAV (up to 40 levels) where 4:2:0 or
  4:2:2 chroma meets an odd width or height, and for more than 8 bits per sample.
- B-frames in AVI stored with decode-order timestamps (H.264 in AVI) give no presentation order at
  all: no backend can index them.

`probe_video` reads the stream's parameters and demuxes (never decodes) packets up to the third
keyframe (at least 16, at most `max_packets`); `refusal(backend, probe)` turns that into a short reason, or None.
The caller (`open_video`) raises `BadVideoError` with it, and the dataset reads the file with PyAV.
`frame_rotation` / `display_rotation`: the display matrix's angle, as PyAV reads it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple, Union

PathLike = Union[str, os.PathLike]
CODEC_NAMES = {"h264": "H.264", "hevc": "HEVC", "mpeg4": "MPEG-4 part 2", "mpeg2video": "MPEG-2"}
MAX_PACKETS = 600  # demuxed at most when opening a file for decord or torchcodec (no decoding)
MIN_PACKETS = 16  # and at least, if there are (timestamps need a few to show B-frames' reordering)
NO_PRESENTATION_ORDER = "B-frames stored with decode-order timestamps (AVI): no presentation order to index"


@dataclass(frozen=True)
class VideoProbe:
    codec: str  # FFmpeg decoder name: h264, hevc, mpeg4, vp9, ...
    container: str  # FFmpeg demuxer names, e.g. "avi" or "mov,mp4,m4a,3gp,3g2,mj2"
    width: int  # coded size, before any display rotation
    height: int
    pix_fmt: str
    bits: int  # per sample
    odd_chroma: bool  # subsampled chroma at an odd width or height
    has_b_frames: bool  # the decoder reorders frames (from the stream's parameters)
    leading_frames: bool  # a later keyframe has frames stored after it that show before it (open GOP)
    open_gop: bool  # a later H.264 keyframe that is not an IDR picture
    decode_order_pts: bool  # B-frames, yet timestamps never go back: no presentation order


def probe_video(path: PathLike, max_packets: int = MAX_PACKETS) -> VideoProbe:
    """Stream parameters and a demux of the first packets (PyAV; raises av's errors)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        codec, extradata = context.name, bytes(context.extradata or b"")
        packets: List[Tuple[Optional[int], bool, bytes]] = []
        keyframes = 0
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            keyframes += bool(packet.is_keyframe)
            if keyframes > 2 and packet.is_keyframe and len(packets) >= MIN_PACKETS or len(packets) >= max_packets:
                break
            later_key = packet.is_keyframe and keyframes == 2
            packets.append((packet.pts, bool(packet.is_keyframe), bytes(packet) if later_key else b""))
        fmt = av.VideoFormat(context.format.name, context.width, context.height) if context.format else None
        return VideoProbe(
            codec=codec, container=container.format.name, width=context.width, height=context.height,
            pix_fmt=fmt.name if fmt else "unknown",
            bits=max((c.bits for c in fmt.components), default=8) if fmt else 8,
            odd_chroma=bool(fmt) and _odd_chroma(fmt, context.width, context.height),
            has_b_frames=bool(context.has_b_frames),
            leading_frames=leading_frames([(pts, key) for pts, key, _ in packets]),
            open_gop=any(data and not is_idr(codec, data, extradata) for _, _, data in packets),
            decode_order_pts=decode_order_pts(container.format.name, bool(context.has_b_frames),
                                              [pts for pts, _, _ in packets]),
        )


def refusal(backend: str, probe: VideoProbe) -> Optional[str]:
    """Why `backend` would return wrong frames for this video (one short line), or None."""
    if probe.decode_order_pts:
        return NO_PRESENTATION_ORDER
    if backend == "decord":
        if probe.codec == "mpeg4" and probe.has_b_frames:
            return "decord returns wrong frames for MPEG-4 part 2 with B-frames"
        if probe.leading_frames or probe.open_gop:  # checked at the second keyframe
            return f"decord returns wrong frames for open-GOP {CODEC_NAMES.get(probe.codec, probe.codec)}"
    if backend == "torchcodec" and probe.has_b_frames and probe.container == "avi":
        return "torchcodec returns frames out of order for B-frames in AVI"
    if backend in ("decord", "torchcodec"):
        if probe.odd_chroma:
            return (f"{backend} converts colour differently at an odd {probe.pix_fmt} size "
                    f"({probe.width}x{probe.height})")
        if probe.bits > 8:
            return f"{backend} converts colour differently for {probe.bits}-bit video ({probe.pix_fmt})"
    return None


def frame_rotation(frame, stream) -> float:
    """A decoded PyAV frame's display rotation, degrees counter-clockwise (its display matrix;
    PyAV before `VideoFrame.rotation`: the stream's clockwise "rotate" tag, where FFmpeg sets it)."""
    rotation = getattr(frame, "rotation", None)
    if rotation is None:
        rotation = -float(stream.metadata.get("rotate", 0) or 0)
    return float(rotation or 0)


def display_rotation(path: PathLike) -> float:
    """The display rotation of `path`'s first video frame (decodes one frame with PyAV; ValueError
    where it cannot)."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return frame_rotation(next(container.decode(stream)), stream)
    except (av.error.FFmpegError, IndexError, StopIteration) as err:
        raise ValueError(f"PyAV cannot decode its first frame ({str(err).strip()[:200]})") from None


def _odd_chroma(fmt, width: int, height: int) -> bool:
    if len(fmt.components) < 3 or fmt.is_rgb:
        return False
    chroma = fmt.components[1]
    return (chroma.width < width and width % 2 == 1) or (chroma.height < height and height % 2 == 1)


def leading_frames(packets: Iterable[Tuple[Optional[int], bool]]) -> bool:
    """(pts, keyframe) in decode order: does a packet after a keyframe other than the first show
    before it (an open GOP's leading B-frames)?"""
    key_pts, seen_key = None, False
    for pts, key in packets:
        if key:
            key_pts, seen_key = (pts if seen_key else None), True
        elif key_pts is not None and pts is not None and pts < key_pts:
            return True
    return False


def decode_order_pts(container: str, has_b_frames: bool, pts: List[Optional[int]]) -> bool:
    """B-frames in AVI whose timestamps are decode-order counters (FFmpeg reconstructs real ones
    only for MPEG-4 part 2): frames come out in an order the timestamps do not give."""
    known = [p for p in pts if p is not None]
    return (container == "avi" and has_b_frames and len(known) >= 8
            and all(a < b for a, b in zip(known, known[1:])))


def is_idr(codec: str, data: bytes, extradata: bytes) -> bool:
    """Whether an H.264 keyframe packet's first slice is an IDR picture (NAL type 5), after which
    no frame refers to one before it; True for other codecs (HEVC's open GOP shows as leading
    frames: a CRA keyframe without them decodes right)."""
    if codec != "h264":
        return True
    for nal in _nal_units(data, _length_size(extradata)):
        if nal and 1 <= nal[0] & 0x1F <= 5:  # the first slice
            return nal[0] & 0x1F == 5
    return True  # no slice found: nothing to refuse on


def _length_size(extradata: bytes) -> Optional[int]:
    """NAL length prefix size from avcC extradata (MP4, MKV); None for Annex B start codes."""
    return (extradata[4] & 3) + 1 if len(extradata) > 4 and extradata[0] == 1 else None


def _nal_units(data: bytes, length_size: Optional[int]) -> Iterable[bytes]:
    if length_size is None:
        yield from data.split(b"\0\0\1")[1:]  # Annex B: each unit follows a 00 00 01 start code
        return
    pos = 0
    while pos + length_size <= len(data):
        size = int.from_bytes(data[pos:pos + length_size], "big")
        yield data[pos + length_size:pos + length_size + size]
        pos += length_size + size
