"""The clip dataset on real files, and every bad-item case under both policies and backends."""
import warnings

import numpy as np
import pytest
import torch
from _video_helpers import write_video
from torch.utils.data import DataLoader

from vidbench.data import (
    BadItem,
    BadVideoError,
    ClipSampler,
    ClipTransform,
    VideoClipDataset,
    VideoRecord,
    collate_clips,
)
from vidbench.data.videoio import torchcodec_problem


@pytest.fixture
def files(tmp_path):
    good = [write_video(tmp_path / f"good{i}.mp4", 20) for i in range(3)]
    (tmp_path / "random.mp4").write_bytes(np.random.default_rng(1).bytes(3000))
    data = good[0].read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) * 2 // 3])
    (tmp_path / "empty.mp4").write_bytes(b"")
    write_video(tmp_path / "three.mp4", 3)  # shorter than the clip
    return tmp_path, good


BAD = ("random.mp4", "truncated.mp4", "empty.mp4", "three.mp4")
BACKENDS = ["decord", "pyav"] + ([] if torchcodec_problem() else ["torchcodec"])  # torchcodec where FFmpeg loads


def _dataset(paths, backend, policy, train=True, views=(1, 1)):
    records = [VideoRecord(str(p), i % 2) for i, p in enumerate(paths)]
    return VideoClipDataset(records, ClipSampler(8, 2), ClipTransform(size=16), train=train, views=views,
                            backend=backend, bad_items=policy)


@pytest.mark.parametrize("backend", BACKENDS)
def test_skip_policy_drops_and_reports_every_bad_item(files, backend):
    root, good = files
    paths = [good[0], *(root / n for n in BAD), good[1]]
    loader = DataLoader(_dataset(paths, backend, "skip"), batch_size=3, num_workers=1, collate_fn=collate_clips)
    batches = list(loader)  # the epoch completes
    clips = torch.cat([b.clips for b in batches if len(b)])
    assert clips.shape == (2, 3, 8, 16, 16)
    assert torch.cat([b.indices for b in batches]).tolist() == [0, 5]
    bad = {b.path.rsplit("/", 1)[1]: b.reason for batch in batches for b in batch.bad}
    assert sorted(bad) == sorted(BAD)
    assert "shorter than the clip" in bad["three.mp4"] and "empty" in bad["empty.mp4"]


@pytest.mark.parametrize("name", BAD)
def test_raise_policy_names_the_file(files, name):
    root, _ = files
    dataset = _dataset([root / name], "decord", "raise")
    with pytest.raises(BadVideoError, match=name):
        dataset[0]
    assert isinstance(_dataset([root / name], "pyav", "skip")[0], BadItem)


def test_test_views_and_per_item_determinism(files):
    _, good = files
    test = _dataset(good, None, "raise", train=False, views=(4, 3))
    clip, label, index = test[1]
    assert clip.shape == (12, 3, 8, 16, 16) and (label, index) == (1, 1)
    train = _dataset(good, None, "raise")
    a, b = train[2][0], train[2][0]
    assert torch.equal(a, b)  # same (seed, epoch, index): same clip, whoever loads it
    train.set_epoch(1)
    assert not torch.equal(a, train[2][0])  # a new epoch draws a new clip


def test_segment_bounds(files):
    from vidbench.data import open_video

    _, good = files
    record = VideoRecord(str(good[0]), 0, start=2, end=17)  # exactly one 15-frame span
    tf = ClipTransform(size=16)
    dataset = VideoClipDataset([record], ClipSampler(8, 2), tf, train=False)
    (expected,) = tf.test(open_video(good[0]).get(list(range(2, 17, 2))))
    assert torch.equal(dataset[0][0][0], expected)  # frames 2, 4, ..., 16 of the file
    short = VideoClipDataset([VideoRecord(str(good[0]), 0, start=10, end=20)], ClipSampler(8, 2), tf,
                             bad_items="raise")
    with pytest.raises(BadVideoError, match=r"in segment \[10, 20\)"):
        short[0]


def test_a_segment_shorter_than_the_clip_is_the_samplers_one_error_naming_the_file(files):
    import pickle

    from vidbench.data import ClipTooShortError

    _, good = files
    record = VideoRecord(str(good[0]), 0, start=10, end=20)
    dataset = VideoClipDataset([record], ClipSampler(8, 2), ClipTransform(size=16))
    with pytest.raises(ClipTooShortError, match=r"10 frames, shorter than the clip .*needs 15\) in segment \[10, 20\)") as err:
        dataset._load(record)
    assert isinstance(err.value, BadVideoError) and err.value.path == str(good[0])
    assert str(err.value).startswith(f"{good[0]}: 10 frames")
    again = pickle.loads(pickle.dumps(err.value))  # as a DataLoader worker sends it
    assert type(again) is ClipTooShortError and str(again) == str(err.value)


def test_policy_argument_checked():
    with warnings.catch_warnings(), pytest.raises(ValueError, match="bad_items"):
        VideoClipDataset([], ClipSampler(), ClipTransform(), bad_items="ignore")


def test_test_item_decodes_each_frame_once(files, monkeypatch):
    """4 clips x 3 crops: one decode call per item with the sorted unique frame indices of all
    clips, and views identical to decoding each view's clip on its own."""
    import vidbench.data.dataset as dataset_module
    from vidbench.data import open_video

    _, good = files
    calls = []

    def counting_open(path, backend=None, rotate=True, short_side=None):
        video = open_video(path, backend, rotate=rotate, short_side=short_side)
        decode = video.get
        video.get = lambda indices: calls.append(list(indices)) or decode(indices)
        return video

    monkeypatch.setattr(dataset_module, "open_video", counting_open)
    sampler, tf = ClipSampler(8, 2), ClipTransform(size=16)
    for backend in BACKENDS:
        calls.clear()
        dataset = VideoClipDataset([VideoRecord(str(good[0]), 0)], sampler, tf, train=False, views=(4, 3),
                                   backend=backend, bad_items="raise")
        views = dataset[0][0]
        clips = sampler.test_indices(20, 4)  # overlapping clips: starts 0, 2, 3, 5
        assert calls == [sorted({i for clip in clips for i in clip})]
        assert len(calls[0]) < 4 * 8
        per_view = [tf.test(open_video(good[0], backend).get(clip), 3)[crop] for clip in clips for crop in range(3)]
        assert torch.equal(views, torch.stack(per_view))
