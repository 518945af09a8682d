"""Raw frames (mmaction2 layout): `vidbench extract-frames` writes JPEG folders + rawframes lists,
the loader reads them like videos (approximately equal: JPEG is lossy), and bad folders are named,
counted and skipped like bad videos."""
import shutil

import pytest
import torch

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
)
from vidbench.data.rawframes import FrameDirRecord, extract_frames, frame_name, is_rawframe_list, open_frames


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    videos = make_dataset(root / "videos", ["red_disc", "move_right"], videos_per_class=4, frames=15,
                          val_fraction=0.25, test_fraction=0.25)
    out, totals, problems = extract_frames(DataSpec.load(videos), root / "frames", quality=95)
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
    jpegs = open_frames(record.path, record.num_frames).get(idx)
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
