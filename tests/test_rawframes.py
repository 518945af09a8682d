"""Raw frames (mmaction2 layout): `vidbench extract-frames` writes JPEG folders + rawframes lists,
the loader reads them like videos (approximately equal: JPEG is lossy), and bad folders are named,
counted and skipped like bad videos."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _video_helpers import ramp_frames

from vidbench.cli import main
from vidbench.data import (
    BadItem,
    BadVideoError,
    ClipSampler,
    ClipTransform,
    DataSpec,
    VideoClipDataset,
    build_dataset,
    make_dataset,
    open_video,
    read_annotations,
    write_mp4,
)
from vidbench.data.rawframes import FrameDirRecord, extract_frames, frame_name, is_rawframe_list, open_frame_folder


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    videos = make_dataset(root / "videos", ["red_disc", "move_right"], videos_per_class=4, frames=15,
                          val_fraction=0.25, test_fraction=0.25)
    out, totals, problems, _ = extract_frames(DataSpec.load(videos), root / "frames", quality=95)
    assert problems == [] and totals["train"] == 4 * 15
    return videos, out


def test_layout_and_lists(datasets):
    videos, frames = datasets
    lines = (frames / "train_rawframes.txt").read_text().splitlines()
    folder, total, label = lines[0].split()
    assert total == "15" and (frames / folder / "img_00001.jpg").is_file() and (frames / folder / "img_00015.jpg").is_file()
    assert not (frames / folder / "img_00016.jpg").exists()
    assert is_rawframe_list(frames / "train_rawframes.txt")
    assert not is_rawframe_list(videos / "train.csv")
    spec = DataSpec.load(frames)
    assert spec.classes == DataSpec.load(videos).classes and spec.no_flip == DataSpec.load(videos).no_flip
    records, _ = spec.records("train")
    assert len(records) == 4 and all(isinstance(r, FrameDirRecord) and r.num_frames == 15 for r in records)


def test_frames_and_items_match_the_videos(datasets):
    videos, frames = datasets
    for split in ("train", "test"):
        from_video, _ = build_dataset(DataSpec.load(videos), split, train=False, views=(2, 3), bad_items="raise")
        from_frames, _ = build_dataset(DataSpec.load(frames), split, train=False, views=(2, 3), bad_items="raise")
        assert from_video.labels == from_frames.labels and len(from_video) > 0
        for i in range(len(from_video)):
            a, b = from_video[i], from_frames[i]
            assert a[0].shape == b[0].shape == (6, 3, 8, 32, 32) and a[1:] == b[1:]
            assert (a[0] - b[0]).abs().mean() < 0.1  # normalised units (about 6 uint8 levels): JPEG is lossy
            assert (a[0] - from_frames[(i + 1) % len(from_frames)][0]).abs().mean() > 0.3  # another video is far off
    record = DataSpec.load(frames).records("test")[0][0]
    video_record = DataSpec.load(videos).records("test")[0][0]
    idx = [14, 0, 7, 7]
    decoded = open_video(video_record.path).get(idx).float()
    jpegs = open_frame_folder(record.path, record.num_frames).get(idx)
    assert jpegs.dtype == torch.uint8 and jpegs.shape == decoded.shape
    assert (jpegs.float() - decoded).abs().mean() < 4.0  # uint8 levels (q95, 4:2:0 chroma, noisy 32x32 frames)
    train_v = build_dataset(DataSpec.load(videos), "train", train=True, seed=3)[0]
    train_f = build_dataset(DataSpec.load(frames), "train", train=True, seed=3)[0]
    assert (train_v[1][0] - train_f[1][0]).abs().mean() < 0.05  # same seed: same clip and crop


def test_bad_frame_folders_are_named_counted_and_skipped(datasets, tmp_path):
    _, frames = datasets
    copy = tmp_path / "frames"
    shutil.copytree(frames, copy)
    spec = DataSpec.load(copy)
    records, _ = spec.records("train")
    good, missing_dir, missing_jpeg, corrupt, too_many = records[0], *records[1:4], records[0]
    shutil.rmtree(missing_dir.path)
    (copy / missing_jpeg.path / frame_name(4)).rename(copy / missing_jpeg.path / "img_00099.jpg")
    (copy / corrupt.path / frame_name(6)).write_bytes(b"not a jpeg")
    too_many = FrameDirRecord(too_many.path, too_many.label, num_frames=40)
    bad = [missing_dir, missing_jpeg, corrupt, too_many]
    dataset = VideoClipDataset([good, *bad], ClipSampler(8, 1, "uniform"), ClipTransform(size=16), train=False,
                               views=(2, 1), bad_items="skip")
    assert not isinstance(dataset[0], BadItem)
    reasons = [dataset[i] for i in range(1, 5)]
    assert all(isinstance(r, BadItem) for r in reasons)
    assert [r.path for r in reasons] == [r.path for r in bad]
    assert "frame folder not found" in reasons[0].reason
    assert "img_00005.jpg is missing" in reasons[1].reason
    assert "img_00007.jpg is not a readable JPEG" in reasons[2].reason
    assert "40 frames, folder holds 15" in reasons[3].reason
    strict = VideoClipDataset(bad, ClipSampler(8, 1, "uniform"), ClipTransform(size=16), train=False,
                              bad_items="raise")
    for i, record in enumerate(bad):
        with pytest.raises(BadVideoError, match=record.path.rsplit("/", 1)[1]):
            strict[i]


def test_malformed_lines_are_annotation_issues(datasets, tmp_path):
    _, frames = datasets
    text = (frames / "train_rawframes.txt").read_text().splitlines()
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join([text[0], text[0], f"{text[1].rsplit(maxsplit=1)[0]} 9", text[2]]) + "\n")
    records, issues, _ = read_annotations(listing, DataSpec.load(frames).labels, frames, on_error="skip")
    assert len(records) == 2 and all(isinstance(r, FrameDirRecord) for r in records)
    assert [i.line for i in issues] == [2, 3]
    assert "duplicate" in issues[0].message and "label id 9" in issues[1].message


def test_cli_extract_frames_then_train_and_eval_read_it(tmp_path, capsys):
    data, frames = tmp_path / "videos", tmp_path / "frames"
    make_dataset(data, ["red_disc", "green_square"], videos_per_class=4, frames=15, val_fraction=0.25,
                 test_fraction=0.25)
    assert main(["extract-frames", "--data", str(data), "--out", str(frames), "--quality", "90",
                 "--workers", "2", "--no-progress"]) == 0
    assert "train 60 frames" in capsys.readouterr().out
    assert main(["train", "--model", "vit_frameavg_tiny", "--data", str(frames), "--out", str(tmp_path / "r"),
                 "--epochs", "1", "--batch-size", "4", "--workers", "0", "--model-arg", "depth=1",
                 "--model-arg", "embed_dim=48", "--model-arg", "num_heads=2", "--no-progress"]) == 0
    assert main(["eval", "--checkpoint", str(tmp_path / "r" / "checkpoint.safetensors"), "--data", str(frames),
                 "--views", "2x3", "--workers", "0", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert '"num_videos": 2' in out and '"skipped_items": 0' in out and f'"data": "{frames}"' in out
    assert main(["extract-frames", "--data", str(data), "--out", str(tmp_path / "x"), "--split", "nope"]) == 2
    assert "no split 'nope'" in capsys.readouterr().err


# -- extract-frames: per-file fallback, no partial folders, the dataset's layout, mmaction2 lists ----
def _noise(seed: int, frames: int = 6, size=(32, 32)):
    return ramp_frames(frames, size=size, seed=seed)  # 4x4 grey blocks: JPEG keeps them close


def _leftovers(out):
    """Temporary or empty folders extract-frames must not leave behind."""
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")
                  if p.name.startswith(".") or (p.is_dir() and not any(p.iterdir())))


def test_extract_falls_back_to_pyav_per_file_and_counts_it(tmp_path, capsys):
    pytest.importorskip("decord")
    data = tmp_path / "data"
    write_mp4(data / "train" / "a" / "good.mp4", _noise(0))
    write_mp4(data / "train" / "a" / "odd.mp4", _noise(1, frames=7, size=(64, 48)))  # decord cannot decode it
    assert main(["extract-frames", "--data", str(data), "--out", str(tmp_path / "out"), "--backend", "decord",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "0 skipped; 1 decoded by PyAV after the first decoder failed" in out
    assert "odd.mp4 (decord)" in out
    lines = (tmp_path / "out" / "train_rawframes.txt").read_text().splitlines()
    assert lines == ["train/a/good 6 0", "train/a/odd 7 0"]
    assert len(list((tmp_path / "out" / "train" / "a" / "odd").glob("img_*.jpg"))) == 7
    assert json.loads((tmp_path / "out" / "dataset.json").read_text())["source"]["decoder_fallbacks"] == 1


def test_extract_leaves_no_folder_for_a_video_it_cannot_extract(tmp_path, monkeypatch):
    pytest.importorskip("decord")
    from vidbench.data import videoio

    data = tmp_path / "data"
    write_mp4(data / "train" / "a" / "good.mp4", _noise(0))
    write_mp4(data / "train" / "b" / "odd.mp4", _noise(1, frames=7, size=(64, 48)))  # opens, fails to decode
    (data / "train" / "c").mkdir(parents=True)
    (data / "train" / "c" / "junk.mp4").write_bytes(b"\0" * 500)
    monkeypatch.setattr(videoio, "fallback_backend", lambda backend: None)  # as where PyAV is not installed
    result = extract_frames(DataSpec.load(data), tmp_path / "out", backend="decord")
    assert len(result.problems) == 2 and result.fallbacks == []
    assert any("odd.mp4" in p and "decord cannot decode" in p for p in result.problems)
    out = tmp_path / "out"
    assert (out / "train_rawframes.txt").read_text() == "train/a/good 6 0\n"
    assert not (out / "train" / "b").exists() and not (out / "train" / "c").exists()
    assert _leftovers(out) == []
    # a second run into the same folder replaces each frame folder whole
    (out / "train" / "a" / "good" / frame_name(40)).write_bytes(b"stale")
    extract_frames(DataSpec.load(data), out, backend="pyav")
    assert sorted(p.name for p in (out / "train" / "a" / "good").iterdir()) == [frame_name(i) for i in range(6)]
    assert (out / "train" / "b" / "odd").is_dir() and _leftovers(out) == []


@pytest.fixture(scope="module")
def two_splits(tmp_path_factory):
    """train/<class>/clip1.mp4 and val/<class>/clip1.mp4: the same names, different videos; a
    class with a space (as Kinetics' "air drumming")."""
    root = tmp_path_factory.mktemp("layout")
    data = root / "data"
    for s, split in enumerate(("train", "val")):
        for c, name in enumerate(("abseiling", "air drumming")):
            write_mp4(data / split / name / "clip1.mp4", _noise(10 * s + c))
    return data


def _first_frame(folder):
    from PIL import Image

    with Image.open(folder / frame_name(0)) as image:
        return np.asarray(image.convert("RGB")).astype(float)


def _check_layout(out, data):
    assert (out / "train_rawframes.txt").read_text() == "train/abseiling/clip1 6 0\ntrain/air_drumming/clip1 6 1\n"
    assert (out / "val_rawframes.txt").read_text() == "val/abseiling/clip1 6 0\nval/air_drumming/clip1 6 1\n"
    for split in ("train", "val"):  # each folder holds its own video's frames
        for name, folder in (("abseiling", "abseiling"), ("air drumming", "air_drumming")):
            decoded = open_video(data / split / name / "clip1.mp4", "pyav").get([0])[0].numpy().astype(float)
            assert np.abs(_first_frame(out / split / folder / "clip1") - decoded).mean() < 4
    assert np.abs(_first_frame(out / "train/abseiling/clip1") - _first_frame(out / "val/abseiling/clip1")).mean() > 40


@pytest.mark.parametrize("form", ["relative", "dotdot", "symlink", "absolute"])
def test_extract_keeps_the_dataset_layout_whatever_data_is(two_splits, tmp_path, monkeypatch, capsys, form):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link").symlink_to(two_splits)
    data = {"relative": os.path.relpath(two_splits, tmp_path), "dotdot": os.path.relpath(two_splits, tmp_path / "sub"),
            "symlink": "link", "absolute": str(two_splits)}[form]
    if form == "dotdot":
        data = os.path.join("sub", data)
    assert main(["extract-frames", "--data", data, "--out", "out", "--no-progress"]) == 0
    _check_layout(tmp_path / "out", two_splits)


def test_extract_keeps_the_layout_of_annotation_paths(two_splits, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(two_splits, data)
    (data / "classes.txt").write_text("abseiling\nair drumming\n")
    (data / "train.csv").write_text(f"path,label\ntrain/abseiling/clip1.mp4,abseiling\n"  # relative and absolute
                                    f"{data}/train/air drumming/clip1.mp4,air drumming\n")
    (data / "val.txt").write_text(f"{tmp_path}/data/../data/val/abseiling/clip1.mp4 0\nval/air drumming/clip1.mp4 1\n")
    result = extract_frames(DataSpec.load(data), tmp_path / "out")
    assert result.problems == []
    _check_layout(tmp_path / "out", data)


def test_extract_keeps_kinetics_and_ssv2_layouts(tmp_path):
    kinetics = tmp_path / "k400"
    rows = {"train": ["abseiling,aaa,0,10,train", "air drumming,bbb,5,15,train"],
            "validate": ["abseiling,aaa,20,30,validate", "air drumming,ccc,0,10,validate"]}
    for split, lines in rows.items():
        (kinetics / split).mkdir(parents=True)
        (kinetics / f"{split}.csv").write_text("label,youtube_id,time_start,time_end,split\n" + "\n".join(lines) + "\n")
        for n, line in enumerate(lines):
            label, vid, start, end, _ = line.split(",")
            write_mp4(kinetics / split / label / f"{vid}_{int(start):06d}_{int(end):06d}.mp4", _noise(n))
    assert extract_frames(DataSpec.load(kinetics), tmp_path / "k_out").problems == []
    assert (tmp_path / "k_out" / "train_rawframes.txt").read_text() == (
        "train/abseiling/aaa_000000_000010 6 0\ntrain/air_drumming/bbb_000005_000015 6 1\n")
    assert (tmp_path / "k_out" / "val_rawframes.txt").read_text() == (
        "validate/abseiling/aaa_000020_000030 6 0\nvalidate/air_drumming/ccc_000000_000010 6 1\n")
    ssv2 = tmp_path / "ssv2"
    (ssv2 / "labels.json").parent.mkdir()
    (ssv2 / "labels.json").write_text(json.dumps({"Pushing something": "0", "Holding something": "1"}))
    for split, ids in (("train", ["1", "2"]), ("validation", ["3"])):
        entries = [{"id": i, "template": ["Pushing [something]", "Holding [something]"][int(i) % 2]} for i in ids]
        (ssv2 / f"{split}.json").write_text(json.dumps(entries))
        for i in ids:
            write_mp4(ssv2 / "20bn-something-something-v2" / f"{i}.mp4", _noise(int(i)))
    assert extract_frames(DataSpec.load(ssv2), tmp_path / "s_out").problems == []
    assert (tmp_path / "s_out" / "val_rawframes.txt").read_text() == "20bn-something-something-v2/3 6 1\n"


@pytest.mark.parametrize("clash", ["extension", "whitespace"])
def test_extract_refuses_two_videos_for_one_folder(tmp_path, capsys, clash):
    data = tmp_path / "data"
    write_mp4(data / "train" / "a b" / "clip1.mp4", _noise(0))
    other = data / "train" / ("a b" if clash == "extension" else "a_b") / ("clip1.mkv" if clash == "extension" else "clip1.mp4")
    write_mp4(other, _noise(1))
    assert main(["extract-frames", "--data", str(data), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "would both be extracted to" in err and "a_b/clip1" in err, err
    assert not (tmp_path / "out").exists()


def _mmaction2_rawframe_list(path):
    """mmaction2's RawframeDataset.load_data_list (mmaction/datasets/rawframe_dataset.py, 1.x;
    with_offset=False, multi_class=False), transcribed: whitespace split, then frame_dir,
    int(total_frames), int(label)."""
    data_list = []
    for line in Path(path).read_text().splitlines():
        line_split = line.strip().split()
        video_info = {"frame_dir": os.path.join(os.path.dirname(path), line_split[0])}
        video_info["total_frames"] = int(line_split[1])
        label = [int(x) for x in line_split[2:]]
        if not label:
            label = [-1]
        assert len(label) == 1
        video_info["label"] = label[0]
        data_list.append(video_info)
    return data_list


def test_lists_read_by_mmaction2_and_by_vidbench_alike(two_splits, tmp_path):
    out = extract_frames(DataSpec.load(two_splits), tmp_path / "out").out
    classes = (out / "classes.txt").read_text().splitlines()
    assert classes == ["abseiling", "air drumming"]
    for split in ("train", "val"):
        theirs = _mmaction2_rawframe_list(out / f"{split}_rawframes.txt")
        ours, issues = DataSpec.load(out).records(split)
        assert issues == [] and len(theirs) == len(ours) == 2
        for info, record in zip(theirs, ours):
            assert os.path.normpath(info["frame_dir"]) == os.path.normpath(record.path)
            assert info["total_frames"] == record.num_frames == 6 and info["label"] == record.label
            assert len(list(Path(info["frame_dir"]).glob("img_*.jpg"))) == 6
            assert Path(info["frame_dir"]).parent.name == classes[info["label"]].replace(" ", "_")


def test_rawframes_reader_names_malformed_lines(datasets, tmp_path):
    _, frames = datasets
    good = (frames / "train_rawframes.txt").read_text().splitlines()
    folder, total, label = good[0].split()
    listing = tmp_path / "train_rawframes.txt"
    listing.write_text("\n".join([f"{folder} {total}", good[1], f"{folder} 3 {total} {label}", f"a b {total} {label}",
                                  good[2]]) + "\n")
    records, issues, _ = read_annotations(listing, DataSpec.load(frames).labels, frames, on_error="skip")
    assert [Path(r.path).name for r in records] == [Path(good[1].split()[0]).name, Path(good[2].split()[0]).name]
    assert all(isinstance(r, FrameDirRecord) for r in records)
    assert [i.line for i in issues] == [1, 3, 4]
    assert "no label" in issues[0].message and "whitespace in the folder name" in issues[2].message
