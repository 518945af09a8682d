import numpy as np
import pytest
import torch
from _video_helpers import ramp_frames, write_video

from vidbench.data import BadVideoError, available_backends, default_backend, open_video, write_mp4
from vidbench.data.videoio import torchcodec_problem

# decord and PyAV are installed wherever the tests run; torchcodec joins them where its FFmpeg
# libraries load (test_data_backends asserts the one-line error where they do not)
BACKENDS = ["decord", "pyav"] + (["torchcodec"] if torchcodec_problem() is None else [])


def test_backends_installed_here_and_the_automatic_choice():
    assert set(available_backends()) == set(BACKENDS)
    assert default_backend() == "decord"  # decord first where it works, then torchcodec, then PyAV
    assert available_backends() == [b for b in ("decord", "torchcodec", "pyav") if b in BACKENDS]


@pytest.mark.parametrize("gop_size", [1, 5])
def test_backends_decode_the_same_frames(tmp_path, gop_size):
    """Same indices (unsorted, repeated, across keyframes) -> identical uint8 frames, close to
    what was encoded; the frame count comes from the stream."""
    path = write_video(tmp_path / "v.mp4", 23, gop_size=gop_size)
    videos = {b: open_video(path, b) for b in BACKENDS}
    assert {v.num_frames for v in videos.values()} == {23}
    original = torch.from_numpy(ramp_frames(23)).float()
    for idx in ([0, 2, 4, 6, 8, 10, 12, 14], [22, 3, 3, 17, 0], [21], list(range(23))):
        frames = {b: v.get(idx) for b, v in videos.items()}
        assert frames["decord"].dtype == torch.uint8 and frames["decord"].shape == (len(idx), 32, 40, 3)
        for b in BACKENDS:
            assert torch.equal(frames[b], frames["pyav"]), b
        error = (frames["pyav"].float()[:, None] - original[None]).abs().mean(dim=(2, 3, 4))  # (len(idx), 23)
        assert error.argmin(dim=1).tolist() == idx  # each decoded frame is the requested one
        assert error[range(len(idx)), idx].max() < 4  # qp 12: close to the source


def test_generated_dataset_videos_agree(tmp_path):
    from vidbench.data import make_dataset

    root = make_dataset(tmp_path / "syn", classes=["move_right", "rotate_ccw"], videos_per_class=2)
    for path in sorted((root / "videos").rglob("*.mp4")):
        videos = [open_video(path, b) for b in BACKENDS]
        idx = list(range(1, 17, 2))
        assert {v.num_frames for v in videos} == {17}
        for v in videos[1:]:
            assert torch.equal(v.get(idx), videos[0].get(idx))


@pytest.mark.parametrize("backend", BACKENDS)
def test_frame_count_ignores_container_metadata(tmp_path, backend):
    """A faststart MP4 cut in half still declares every frame in its header; the decoders must
    not trust it (decord refuses the file, PyAV and torchcodec count the packets actually present)."""
    import av

    path = write_video(tmp_path / "v.mp4", 30, gop_size=5, faststart=True)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with av.open(str(cut)) as c:
        assert c.streams.video[0].frames == 30  # the metadata lies
    try:
        video = open_video(cut, backend)
    except BadVideoError as err:
        assert "cut.mp4" in str(err)
        return
    assert video.num_frames < 30
    with pytest.raises(BadVideoError, match="cut.mp4"):
        video.get(list(range(video.num_frames)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_files_raise_naming_the_file(tmp_path, backend):
    (tmp_path / "random.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "empty.mp4").write_bytes(b"")
    full = write_video(tmp_path / "full.mp4", 20).read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(full[: len(full) // 2])  # moov at the end: unreadable
    for name in ("random.mp4", "empty.mp4", "truncated.mp4", "missing.mp4"):
        with pytest.raises(BadVideoError, match=name):
            open_video(tmp_path / name, backend)
    video = open_video(tmp_path / "full.mp4", backend)
    with pytest.raises(BadVideoError, match="out of range"):
        video.get([0, 20])


def test_write_mp4_is_h264_and_deterministic(tmp_path):
    import av

    a = write_video(tmp_path / "a.mp4", 9)
    b = write_video(tmp_path / "b.mp4", 9)
    assert a.read_bytes() == b.read_bytes()
    with av.open(str(a)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
    with pytest.raises(ValueError, match="even"):
        write_mp4(tmp_path / "odd.mp4", np.zeros((2, 31, 32, 3), np.uint8))


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown video backend"):
        open_video("x.mp4", "opencv")
