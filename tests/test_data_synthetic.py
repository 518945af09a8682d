import hashlib
import json

import numpy as np
import pytest
import torch

from vidbench.data import DataSpec, build_dataset, make_dataset, open_video, write_mp4
from vidbench.data.synthetic import CLASSES, render_video


def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_generation_is_deterministic_and_complete(tmp_path):
    classes = ["red_disc", "move_left", "move_right"]
    a = make_dataset(tmp_path / "a", classes, videos_per_class=4, seed=3)
    b = make_dataset(tmp_path / "b", classes, videos_per_class=4, seed=3)
    assert _digest(a) == _digest(b)  # byte-identical for a seed
    c = make_dataset(tmp_path / "c", classes, videos_per_class=4, seed=4)
    assert _digest(a)["videos/red_disc/red_disc_0000.mp4"] != _digest(c)["videos/red_disc/red_disc_0000.mp4"]
    d = make_dataset(tmp_path / "d", ["move_right"], videos_per_class=4, seed=3)  # a class's videos do not
    assert _digest(a)["videos/move_right/move_right_0001.mp4"] == _digest(d)["videos/move_right/move_right_0001.mp4"]
    meta = json.loads((a / "dataset.json").read_text())
    assert meta["groups"] == {"red_disc": "static", "move_left": "temporal", "move_right": "temporal"}
    assert meta["no_flip"] == ["move_left", "move_right"]
    spec = DataSpec.load(a)
    sizes = {s: len(spec.records(s)[0]) for s in ("train", "val", "test")}
    assert sizes == {"train": 6, "val": 3, "test": 3}  # 4 per class: 2 / 1 / 1
    assert spec.no_flip_labels() == {1, 2} and spec.label_groups() == ["static", "temporal", "temporal"]
    dataset, issues = build_dataset(spec, "train", train=True)
    assert issues == [] and dataset[0][0].shape == (3, 8, 32, 32)  # the tiny models' input by default
    with open(dataset.records[0].path, "rb") as f:
        assert f.read(12)[4:8] == b"ftyp"  # an MP4
    assert open_video(dataset.records[0].path).num_frames == 17


def test_regenerating_replaces_and_foreign_dirs_are_refused(tmp_path):
    root = make_dataset(tmp_path / "d", ["grow", "shrink"], videos_per_class=2)
    make_dataset(root, ["grow"], videos_per_class=2)
    assert sorted(p.name for p in (root / "videos").iterdir()) == ["grow"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="other"):
        make_dataset(tmp_path / "other", ["grow"], videos_per_class=2)
    with pytest.raises(ValueError, match="unknown synthetic class"):
        make_dataset(tmp_path / "x", ["fly"], videos_per_class=2)


@pytest.mark.parametrize("forward,reverse", [("move_right", "move_left"), ("move_down", "move_up"),
                                             ("rotate_cw", "rotate_ccw"), ("grow", "shrink"),
                                             ("a_then_b", "b_then_a")])
def test_temporal_pairs_differ_only_in_frame_order(tmp_path, forward, reverse):
    """The reverse class draws from the forward class's generator and reverses time; after
    H.264 (all-intra, constant qp) the decoded reversed video is exactly the decoded video
    reversed, so both classes have the same distribution of frame sets."""
    fwd, rev = CLASSES[forward], CLASSES[reverse]
    assert fwd.draw is rev.draw and rev.reverse and not fwd.reverse and fwd.group == rev.group == "temporal"
    frames = render_video(fwd, 0, 17, 32, seed=0)
    a = open_video(write_mp4(tmp_path / "a.mp4", frames)).get(list(range(17)))
    b = open_video(write_mp4(tmp_path / "b.mp4", np.ascontiguousarray(frames[::-1]))).get(list(range(17)))
    assert torch.equal(b, a.flip(0))
    assert not torch.equal(a, a.flip(0))  # the order does carry the label
    # the two test-clip sets of a 17-frame video map onto each other under reversal
    from vidbench.data import ClipSampler

    clips = ClipSampler(8, 2).test_indices(17, 4)
    assert sorted(sorted(16 - i for i in c) for c in clips) == sorted(sorted(c) for c in clips)


def test_static_classes_share_their_motion_distribution():
    static = [c for c in CLASSES.values() if c.group == "static"]
    assert len(static) == 4 and not any(c.reverse for c in static)
    speeds = []
    for cls in static:
        for i in range(6):
            v = render_video(cls, i, 17, 32, seed=0).astype(float).mean(axis=-1)  # (T, H, W)
            bright = v > v.mean() + 2 * v.std()
            centres = [np.argwhere(f).mean(axis=0) for f in bright if f.any()]
            speeds.append(np.linalg.norm(centres[-1] - centres[0]))
    assert min(speeds) < 4 and max(speeds) > 8  # slow and fast movers in random directions


def test_rotation_turns_clockwise_through_the_lower_half():
    """rotate_cw: a hand about a pivot near (16, 12.8) starts pointing right-ish and turns about
    half a turn clockwise on screen (y down) through the bottom; rotate_ccw plays the same videos
    backwards (tested above)."""
    for i in range(8):
        v = render_video(CLASSES["rotate_cw"], i, 17, 32, seed=0).astype(float).mean(axis=-1)
        centres = np.array([np.argwhere(f > f.mean() + 2 * f.std()).mean(axis=0) for f in v])  # (T, [y, x])
        angles = np.degrees(np.unwrap(np.arctan2(centres[:, 0] - 12.8, centres[:, 1] - 16)))
        assert np.all(np.diff(angles) > 0)  # clockwise at every frame
        assert 150 < angles[-1] - angles[0] < 240
        assert centres[-1, 1] < centres[0, 1] - 6  # from right to left
        assert centres[len(centres) // 2, 0] > 12.8 + 3  # by way of the bottom
