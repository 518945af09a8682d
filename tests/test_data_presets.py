"""`make-dataset --preset kinetics|ssv2`: real layouts, annotation files and encodings (at tiny
sizes), read back through DataSpec / build_dataset, and bad items in those formats."""
import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.frame import PictureType

from vidbench.cli import main
from vidbench.data import AnnotationError, DataSpec, build_dataset, open_video, read_annotations
from vidbench.data.annotations import LabelMap
from vidbench.data.presets import SSV2_TEMPLATES, make_preset_dataset
from vidbench.data.synthetic import CLASSES, Canvas, action_spans, render_video

CLASS_NAMES = ["red_disc", "move_left"]
KINETICS_HEADER = ["label", "youtube_id", "time_start", "time_end", "split"]


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory):
    return make_preset_dataset(tmp_path_factory.mktemp("k") / "k", "kinetics", CLASS_NAMES, videos_per_class=3,
                               duration_s=1.5, short_side=64)


@pytest.fixture(scope="module")
def ssv2(tmp_path_factory):  # the preset's own 2-6 s durations, at 64 rows
    return make_preset_dataset(tmp_path_factory.mktemp("s") / "s", "ssv2", CLASS_NAMES, videos_per_class=3,
                               short_side=64)


def _stream_facts(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        name, size = stream.codec_context.name, (stream.width, stream.height)
        keys = sum(p.is_keyframe for p in container.demux(stream) if p.size)
    with av.open(str(path)) as container:
        types = Counter(PictureType(f.pict_type).name for f in container.decode(video=0))  # I, P, B
    return name, size, keys, types


def _copy(root, tmp_path, drop_manifest=True):
    dst = tmp_path / root.name
    shutil.copytree(root, dst)
    if drop_manifest:
        (dst / "dataset.json").unlink()
    return dst


def test_kinetics_layout_csv_and_encoding(kinetics):
    rows = {}
    for name, split in (("train.csv", "train"), ("validate.csv", "val"), ("test.csv", "test")):
        with open(kinetics / name, newline="") as f:
            reader = csv.reader(f)
            assert next(reader) == KINETICS_HEADER
            rows[split] = list(reader)
    assert {s: len(r) for s, r in rows.items()} == {"train": 2, "val": 2, "test": 2}  # 3 per class: 1 / 1 / 1
    for split, items in rows.items():
        for label, ytid, start, end, col in items:
            assert col == split and label in CLASS_NAMES and len(ytid) == 11 and int(end) - int(start) == 2
            video = kinetics / split / label / f"{ytid}_{int(start):06d}_{int(end):06d}.mp4"
            codec, (w, h), keys, types = _stream_facts(video)
            assert codec == "h264" and h == 64 and w in (84, 114)  # 340:256 or 454:256 at short side 64
            assert sum(types.values()) == 45 == open_video(video, "pyav").num_frames  # 1.5 s at 30 fps
            assert keys < 45 and types["I"] >= 1 and types["B"] > 0 and types["P"] > 0  # long GOP with B-frames
    meta = json.loads((kinetics / "dataset.json").read_text())
    assert meta["classes"] == sorted(CLASS_NAMES) and meta["no_flip"] == ["move_left"]
    assert meta["splits"] == {"train": "train.csv", "val": "validate.csv", "test": "test.csv"}


def test_ssv2_layout_json_and_encoding(ssv2):
    labels = json.loads((ssv2 / "labels.json").read_text())
    names = {c: SSV2_TEMPLATES[c][0].replace("[", "").replace("]", "") for c in CLASS_NAMES}
    assert labels == {n: str(i) for i, n in enumerate(sorted(names.values()))}
    entries = {s: json.loads((ssv2 / f).read_text()) for s, f in
               (("train", "train.json"), ("val", "validation.json"), ("test", "test.json"))}
    assert {s: len(e) for s, e in entries.items()} == {"train": 2, "val": 2, "test": 2}
    for entry in entries["train"] + entries["val"]:
        assert set(entry) == {"id", "label", "template", "placeholders"} and entry["template"].replace(
            "[", "").replace("]", "") in labels and "[" not in entry["label"]
    assert all(set(e) == {"id"} for e in entries["test"])  # unlabelled, as released
    answers = dict(line.split(";") for line in (ssv2 / "test-answers.csv").read_text().splitlines())
    assert sorted(answers) == sorted(e["id"] for e in entries["test"]) and set(answers.values()) <= set(labels)
    ids = [e["id"] for es in entries.values() for e in es]
    assert sorted(ids, key=int) == [str(i) for i in range(1, 7)]
    lengths = set()
    for vid in ids:
        video = ssv2 / "20bn-something-something-v2" / f"{vid}.webm"
        assert video.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # Matroska / WebM
        codec, (w, h), _, types = _stream_facts(video)
        assert codec in ("vp9", "libvpx-vp9") and h == 64 and w in (86, 114)
        n = sum(types.values())
        assert 24 <= n <= 72 and open_video(video, "pyav").num_frames == n  # 2-6 s at 12 fps
        lengths.add(n)
    assert len(lengths) > 1  # drawn per video


@pytest.mark.parametrize("manifest", [True, False])
@pytest.mark.parametrize("layout", ["kinetics", "ssv2"])
def test_dataspec_reads_both_layouts(layout, manifest, kinetics, ssv2, tmp_path):
    root = kinetics if layout == "kinetics" else ssv2
    root = root if manifest else _copy(root, tmp_path)  # by convention alone
    spec = DataSpec.load(root)
    truth = _truth(root, layout)
    for split in ("train", "val", "test"):
        records, issues = spec.records(split)
        assert issues == [] and len(records) == 2
        for rec in records:
            assert spec.classes[rec.label] == truth[Path(rec.path).name]
    assert spec.default_eval_split() == "test"
    if manifest:
        assert spec.label_groups() == [{"red_disc": "static", "move_left": "temporal"}[_synthetic(spec, n)]
                                       for n in spec.classes]
    dataset, issues = build_dataset(spec, "train", train=True, backend="pyav")
    clip, label, _ = dataset[1]
    assert clip.shape[0] == 3 and label == dataset.records[1].label
    test, _ = build_dataset(spec, "test", train=False, views=(2, 1), backend="pyav")
    assert test[0][0].shape[:2] == (2, 3)


def _synthetic(spec, name):
    meta = json.loads((spec.root / "dataset.json").read_text())
    return meta["generator"]["synthetic_classes"][name]


def _truth(root, layout):
    """file name -> class name, from the files' own places (class folder / test-answers)."""
    if layout == "kinetics":
        return {p.name: p.parent.name for p in root.rglob("*.mp4")}
    out = {}
    for f in ("train.json", "validation.json"):
        for e in json.loads((root / f).read_text()):
            out[f"{e['id']}.webm"] = e["template"].replace("[", "").replace("]", "")
    for line in (root / "test-answers.csv").read_text().splitlines():
        vid, label = line.split(";")
        out[f"{vid}.webm"] = label
    return out


def test_kinetics_bad_items_are_named_counted_and_skipped(kinetics, tmp_path):
    root = _copy(kinetics, tmp_path)
    lines = (root / "train.csv").read_text().splitlines()
    label, ytid, start, end, split = lines[1].split(",")
    (root / "train.csv").write_text("\n".join(lines + [
        f"red_disc,MISSINGvid00,{start},{end},train",  # line 4: no such file
        f"flying,{ytid},{start},{end},train",  # line 5: not a class
        f"{label},{ytid},soon,{end},train",  # line 6: not a time
        ",,,,train",  # line 7: empty
        lines[1],  # line 8: a repeat
    ]) + "\n")
    labels = LabelMap(sorted(CLASS_NAMES))
    records, issues, _ = read_annotations(root / "train.csv", labels, root, on_error="skip")
    assert len(records) == 2 and [i.line for i in issues] == [4, 5, 6, 7, 8]
    assert "video file not found" in str(issues[0]) and "MISSINGvid00" in str(issues[0])
    assert str(issues[0]).startswith(f"{root / 'train.csv'}:4:")
    assert "'flying' is not in the label map" in issues[1].message and "whole seconds" in issues[2].message
    assert "duplicate of line 2" in issues[4].message
    with pytest.raises(AnnotationError, match="5 annotation problem"):
        read_annotations(root / "train.csv", labels, root)
    spec = DataSpec.load(root)
    dataset, issues = build_dataset(spec, "train", train=True, backend="pyav")
    assert len(dataset) == 2 and len(issues) == 5
    (root / "test.csv").write_text("youtube_id,time_start,time_end,split\nabcdefghijk,1,11,test\n")  # unlabelled
    records, issues = spec.records("test")
    assert records == [] and [(i.line, "no label for abcdefghijk" in i.message) for i in issues] == [(2, True)]
    (root / "test.csv").write_text("label,youtube_id,time_start\nred_disc,x,1\n")
    with pytest.raises(AnnotationError, match="test.csv.*lacks column"):
        spec.records("test")


def test_ssv2_bad_items_and_malformed_json(ssv2, tmp_path):
    root = _copy(ssv2, tmp_path)
    entries = json.loads((root / "train.json").read_text())
    good = entries[0]
    entries += [
        {**good, "id": "999"},  # entry 3: no such video
        {**good, "template": "Juggling [something]"},  # entry 4: not a class
        {"label": "no id"},  # entry 5
        good,  # entry 6: a repeat
    ]
    (root / "train.json").write_text(json.dumps(entries))
    (root / "test-answers.csv").write_text("")  # test.json entries lose their labels
    spec = DataSpec.load(root)
    records, issues = spec.records("train")
    assert len(records) == 2 and len(issues) == 4
    text = [str(i) for i in issues]
    assert text[0].startswith(f"{root / 'train.json'}: entry 3 (id 999): video file not found")
    assert "entry 4" in text[1] and "'Juggling something' is not in the label map" in text[1]
    assert "entry 5: no video id" in text[2] and "duplicate" in text[3]
    test_records, test_issues = spec.records("test")
    assert test_records == [] and len(test_issues) == 2 and "no label" in test_issues[0].message
    (root / "validation.json").write_text('[{"id": "1",}')
    with pytest.raises(AnnotationError, match=r"validation.json:1: malformed JSON"):
        spec.records("val", on_error="skip")
    assert main(["train", "--model", "vit_frameavg_tiny", "--data", str(root), "--out", str(tmp_path / "r"),
                 "--epochs", "1", "--workers", "0", "--no-progress"]) == 2  # one line, exit 2
    (root / "labels.json").write_text('{"a": "0", "b": "0"}')
    with pytest.raises(AnnotationError, match="labels.json.*0..1, each once"):
        DataSpec.load(root)


def test_generators_scale_to_wide_long_videos():
    """Rectangular frames, repeated actions: each action moves the object a fraction of the
    frame, the reverse class plays every action backwards, objects stay a fraction of the short
    side, and drawing only inside each shape's box changes nothing."""
    spans = action_spans(40, 12)
    assert spans == [(0, 14), (14, 13), (27, 13)] and action_spans(17, None) == [(0, 17)]

    def centre_x(cls):
        video = render_video(CLASSES[cls], 0, 40, 48, seed=0, width=80, action_frames=12)
        assert video.shape == (40, 48, 80, 3)
        bright = video.astype(float).mean(-1) > 150  # the yellow disc
        assert all(0.2 < f.any(1).sum() / 48 < 0.45 for f in bright)  # diameter 0.28-0.36 of the short side
        return [np.nonzero(f.any(0))[0].mean() for f in bright]

    backwards = [(40 - start - n, n) for start, n in spans]  # the reversed video's actions
    for cls, sign, actions in (("move_right", 1, spans), ("move_left", -1, backwards)):
        xs = centre_x(cls)
        for start, n in actions:  # within every action the disc moves one way, 0.4-0.5 of the height
            assert 0.3 * 48 < sign * (xs[start + n - 1] - xs[start]) < 0.6 * 48
    canvas = Canvas(1, 40, np.random.default_rng(0), width=64)
    for kind in ("disc", "square", "stripes", "triangle", "hand"):
        shape = canvas.shape(kind, 30.3, 17.8, 9.0, 0.7)
        full = canvas.coverage(shape)
        ys, xs = canvas._box(shape)
        inside = np.zeros_like(full, dtype=bool)
        inside[ys, xs] = True
        assert full[inside].sum() > 0 and not full[~inside].any()


def test_cli_preset_then_train(tmp_path, capsys):
    data = tmp_path / "k"
    args = ["make-dataset", "--preset", "kinetics", "--out", str(data), "--classes", "red_disc,green_square",
            "--videos-per-class", "2", "--duration-s", "1", "--short-side", "32", "--seed", "1"]
    assert main(args) == 0
    assert "4 videos" in capsys.readouterr().out
    first = {p.relative_to(data): p.read_bytes() for p in sorted(data.rglob("*")) if p.is_file()}
    (data / "train" / "stray").mkdir()
    for _ in range(2):  # regenerating replaces it, byte for byte (x264 is run so that it repeats itself)
        assert main(args) == 0
        assert {p.relative_to(data): p.read_bytes() for p in sorted(data.rglob("*")) if p.is_file()} == first
    assert not (data / "train" / "stray").exists() and len(list(data.rglob("*.mp4"))) == 4
    assert main(["train", "--model", "vit_frameavg_tiny", "--data", str(data), "--out", str(tmp_path / "r"),
                 "--epochs", "1", "--batch-size", "2", "--workers", "0", "--model-arg", "depth=1",
                 "--model-arg", "embed_dim=48", "--model-arg", "num_heads=2", "--no-progress"]) == 0
    assert '"epoch": 1' in capsys.readouterr().out
    assert main(["make-dataset", "--preset", "ssv2", "--out", str(tmp_path / "s"), "--frames", "9"]) == 2
    assert "--frames does not apply to --preset" in capsys.readouterr().err
    assert main(["make-dataset", "--out", str(tmp_path / "x"), "--short-side", "64"]) == 2


def test_ssv2_regeneration_is_byte_identical(tmp_path):
    """VP9 in WebM too: no random segment ids, one encoder thread."""
    made = [make_preset_dataset(tmp_path / name, "ssv2", ["grow"], videos_per_class=2, duration_s=2, short_side=32)
            for name in ("a", "b")]
    a, b = ({p.relative_to(r): p.read_bytes() for p in sorted(r.rglob("*")) if p.is_file()} for r in made)
    assert a == b and len([p for p in a if p.suffix == ".webm"]) == 2
