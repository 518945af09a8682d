"""Multi-view test decoding: one decode of the sorted unique frames of every clip (what
`VideoClipDataset` does for a test item) against decoding each view's clip separately, on a
long-GOP H.264 video with B-frames (generated here, or --video).

    python benchmarks/multiview_decode.py --views 4x3 --repeats 5

Prints seconds per test item and the speed-up for every backend that works here, then the same
item read from JPEG frames (`vidbench extract-frames` layout, quality 95) and the extraction time.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from vidbench.data import ClipSampler, ClipTransform, VideoClipDataset, VideoRecord, available_backends, open_video
from vidbench.data.rawframes import FrameDirRecord, _extract, _Job


def long_gop_video(path: Path, frames: int, width: int, height: int, gop: int) -> Path:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"threads": "1", "crf": "23",
                          "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=3"}
        for t in range(frames):
            img = np.stack([(xx + 3 * t) % 256, (yy + 2 * t) % 256, np.full_like(xx, (7 * t) % 256)], -1)
            img = (img + rng.integers(0, 24, img.shape)).clip(0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def per_view(path: str, backend: str, sampler: ClipSampler, tf: ClipTransform, views) -> torch.Tensor:
    """The baseline item: every view decodes its own clip (a seek back to the keyframe each
    time); the transform still runs once per clip, so only the decoding differs."""
    video = open_video(path, backend)
    out = []
    for clip in sampler.test_indices(video.num_frames, views[0]):
        decoded = [video.get(clip) for _ in range(views[1])]
        out += tf.test(decoded[-1], views[1])
    return torch.stack(out)


def decode_only(path: str, backend: str, sampler: ClipSampler, views, how: str) -> None:
    video = open_video(path, backend)
    clips = sampler.test_indices(video.num_frames, views[0])
    if how == "unique":  # this pipeline: sorted unique frames of all clips, one call
        video.get(sorted({i for clip in clips for i in clip}))
    elif how == "flat":  # one call with every clip's indices as they come
        video.get([i for clip in clips for i in clip])
    elif how == "per clip":
        for clip in clips:
            video.get(clip)
    else:  # per view
        for clip in clips:
            for _ in range(views[1]):
                video.get(clip)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", default=None, help="a video to use (default: generate 300 frames 320x240, GOP 250)")
    parser.add_argument("--views", default="4x3")
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    views = tuple(int(v) for v in args.views.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        path = args.video or str(long_gop_video(Path(tmp) / "long_gop.mp4", 300, 320, 240, 250))
        sampler, tf = ClipSampler(args.num_frames, args.stride), ClipTransform(size=args.size)
        print(f"{path}: {open_video(path).num_frames} frames; {args.views} views of {args.num_frames}x{args.stride}")
        for backend in available_backends():
            dataset = VideoClipDataset([VideoRecord(path, 0)], sampler, tf, train=False, views=views,
                                       backend=backend, bad_items="raise")
            assert torch.equal(dataset[0][0], per_view(path, backend, sampler, tf, views))
            timings = {}
            runs = [("item, decode once", lambda d=dataset: d[0]),
                    ("item, each view", lambda b=backend: per_view(path, b, sampler, tf, views))]
            runs += [(f"decode {how}", lambda how=how, b=backend: decode_only(path, b, sampler, views, how))
                     for how in ("unique", "flat", "per clip", "per view")]
            for name, fn in runs:
                fn()  # warm-up
                start = time.perf_counter()
                for _ in range(args.repeats):
                    fn()
                timings[name] = (time.perf_counter() - start) / args.repeats
            base = timings["decode unique"]
            print(f"{backend}: item {timings['item, decode once']:.3f} s decode-once vs "
                  f"{timings['item, each view']:.3f} s each-view "
                  f"({timings['item, each view'] / timings['item, decode once']:.2f}x); decoding alone: "
                  + ", ".join(f"{name[7:]} {t:.3f} s ({t / base:.2f}x)" for name, t in timings.items()
                              if name.startswith("decode ")))
        folder = Path(tmp) / "frames" / "long_gop"
        start = time.perf_counter()
        _, count, error = _extract(_Job(path, str(folder), None, None, 95, None))
        extract_s = time.perf_counter() - start
        assert error is None, error
        frames = VideoClipDataset([FrameDirRecord(str(folder), 0, num_frames=count)], sampler, tf, train=False,
                                  views=views, bad_items="raise")
        frames[0]
        start = time.perf_counter()
        for _ in range(args.repeats):
            frames[0]
        item_s = (time.perf_counter() - start) / args.repeats
        size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
        print(f"rawframes: item {item_s:.3f} s (JPEGs of the needed frames only); extracting {count} frames took "
              f"{extract_s:.2f} s, {size:.1f} MB of JPEGs vs {Path(path).stat().st_size / 1e6:.1f} MB of video")


if __name__ == "__main__":
    main()
