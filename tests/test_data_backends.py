"""decord, torchcodec and PyAV against a decode-every-frame ground truth on long-GOP H.264 with
B-frames and on VP9: identical uint8 frames for unsorted, repeated and random indices (seeks land
on the requested frame, not the keyframe before it), and torchcodec's load failure in one line."""
import av
import numpy as np
import pytest
import torch

from vidbench.data import BadVideoError, ClipSampler, ClipTransform, VideoClipDataset, available_backends, open_video
from vidbench.data.videoio import VideoBackendError, encode_rgb, torchcodec_load_error, torchcodec_problem

FRAMES, HEIGHT, WIDTH = 90, 64, 96
TORCHCODEC_PROBLEM = torchcodec_problem()
WORKING = [b for b in ("decord", "torchcodec", "pyav") if b in available_backends()]


def colour_frames(n: int) -> np.ndarray:
    """Colour gradients that drift per frame plus a moving block: every frame differs, and the
    chroma is far from grey, so a different YUV->RGB matrix or range would show."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    rng = np.random.default_rng(0)
    out = np.empty((n, HEIGHT, WIDTH, 3), np.uint8)
    for t in range(n):
        out[t, ..., 0] = (xx * 255 // WIDTH + 3 * t) % 256
        out[t, ..., 1] = (yy * 255 // HEIGHT + 5 * t) % 256
        out[t, ..., 2] = (37 * t) % 256
        left = (3 * t) % (WIDTH - 8)
        out[t, 20:28, left:left + 8] = rng.integers(0, 256, 3)
    return out


def encode(path, frames: np.ndarray, codec: str, fmt: str, options: dict, bframes: int = 0):
    return encode_rgb(path, frames, 25, fmt, codec, {}, {"threads": "1", **options}, gop_size=60,
                      max_b_frames=bframes or None)


def decode_all(path) -> torch.Tensor:
    with av.open(str(path)) as container:
        return torch.from_numpy(np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("long_gop")
    source = colour_frames(FRAMES)
    paths = {
        "h264": encode(root / "long_gop.mp4", source, "libx264", "mp4",
                       {"crf": "18", "x264-params": "keyint=60:min-keyint=60:scenecut=0:bframes=3"}, bframes=3),
        "vp9": encode(root / "long_gop.webm", source, "libvpx-vp9", "webm",
                      {"crf": "30", "b": "0", "deadline": "realtime", "cpu-used": "8", "g": "60"}),
    }
    out = {}
    for name, path in paths.items():
        truth = decode_all(path)  # (90, H, W, 3): every frame, decoded in order
        assert truth.shape == (FRAMES, HEIGHT, WIDTH, 3)
        error = (truth.float()[:, None] - torch.from_numpy(source).float()[None]).abs().mean(dim=(2, 3, 4))
        assert error.argmin(dim=1).tolist() == list(range(FRAMES))  # the ground truth is the right frames
        assert error.diagonal().max() < 12
        out[name] = (path, truth)
    return out


def test_the_videos_are_long_gop(videos):
    path, _ = videos["h264"]
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(video=0) if p.size > 0]
    assert sum(p.is_keyframe for p in packets) == 2  # frames 0 and 60
    assert [p.pts for p in packets] != sorted(p.pts for p in packets)  # B-frames: decode order != display order
    path, _ = videos["vp9"]
    with av.open(str(path)) as container:
        assert sum(p.is_keyframe for p in container.demux(video=0) if p.size > 0) <= 2


INDEX_LISTS = [
    [59, 3, 3, 88, 61, 0, 30, 89, 60, 45, 2],  # unsorted, repeated, either side of the keyframe at 60
    [61], [59], [89], [0],  # single frames far from the previous keyframe
    list(range(FRAMES))[::-1],  # every frame, backwards
    *[np.random.default_rng(seed).integers(0, FRAMES, 16).tolist() for seed in range(3)],  # random with repeats
]


@pytest.mark.parametrize("codec", ["h264", "vp9"])
@pytest.mark.parametrize("backend", WORKING)
def test_backend_matches_decode_all_ground_truth(videos, codec, backend):
    path, truth = videos[codec]
    video = open_video(path, backend)
    assert video.num_frames == FRAMES
    for idx in INDEX_LISTS:
        frames = video.get(idx)
        assert frames.dtype == torch.uint8 and frames.shape == (len(idx), HEIGHT, WIDTH, 3)
        assert torch.equal(frames, truth[idx]), f"{backend} {codec} {idx}"


def test_all_installed_backends_agree_exactly(videos):
    """decord, torchcodec (where it loads) and PyAV: the same bytes for the same indices."""
    assert {"decord", "pyav"} <= set(WORKING)
    for path, _ in videos.values():
        opened = {b: open_video(path, b) for b in WORKING}
        for idx in INDEX_LISTS[:2] + INDEX_LISTS[-1:]:
            frames = {b: v.get(idx) for b, v in opened.items()}
            for b in WORKING:
                assert torch.equal(frames[b], frames["pyav"]), b


def test_torchcodec_loads_or_says_which_library_is_missing(videos):
    """Where torchcodec and its FFmpeg libraries load it is available and decodes; where they do
    not, asking for it fails in one line naming what is missing (never a silent skip)."""
    path, truth = videos["h264"]
    if TORCHCODEC_PROBLEM is None:
        assert "torchcodec" in available_backends()
        assert torch.equal(open_video(path, "torchcodec").get([61, 2]), truth[[61, 2]])
        return
    assert "torchcodec" not in available_backends()
    with pytest.raises(VideoBackendError, match=r"torchcodec.*(lib\w+\.so[.\d]*|not installed)") as info:
        open_video(path, "torchcodec")
    assert "\n" not in str(info.value)
    with pytest.raises(VideoBackendError, match="torchcodec"):  # a dataset fails at once, not per item
        VideoClipDataset([], ClipSampler(), ClipTransform(), backend="torchcodec")


LOADER_ERROR = """Could not load libtorchcodec. Likely causes:
          1. FFmpeg is not properly installed in your environment.
[start of libtorchcodec loading traceback]
FFmpeg version 7:
Traceback (most recent call last):
  File "/x/torch/_ops.py", line 1587, in load_library
    ctypes.CDLL(path)
OSError: libavutil.so.59: cannot open shared object file: No such file or directory
FFmpeg version 6:
Traceback (most recent call last):
OSError: libavutil.so.58: cannot open shared object file: No such file or directory
FFmpeg version 5:
Traceback (most recent call last):
OSError: {v5}: cannot open shared object file: No such file or directory

The above exception was the direct cause of the following exception:
OSError: Could not load this library: /x/torchcodec/libtorchcodec_core5.so
[end of libtorchcodec loading traceback]."""


def test_load_error_names_the_missing_library():
    none = torchcodec_load_error(LOADER_ERROR.format(v5="libavutil.so.57"))
    assert "libavutil.so.59, libavutil.so.58, libavutil.so.57" in none and "apt-get install" in none
    partial = torchcodec_load_error(LOADER_ERROR.format(v5="libavdevice.so.59"))  # FFmpeg 5 partly installed
    assert "FFmpeg 5: libavdevice.so.59" in partial
    assert "\n" not in none + partial


@pytest.mark.parametrize("backend", WORKING)
def test_truncated_long_gop_file_is_a_bad_video(videos, backend):
    path, _ = videos["h264"]
    data = path.read_bytes()
    cut = path.with_name(f"cut_{backend}.mp4")
    cut.write_bytes(data[: len(data) // 2])  # moov atom at the end: unreadable
    with pytest.raises(BadVideoError, match=cut.name):
        open_video(cut, backend)
