"""`vidbench eval` never writes a NaN accuracy: a split without labels is refused in one line
unless --predict asks for predictions (per video: top-5 classes and scores, views averaged as for
accuracy); a split with no usable video is refused; results never overwrite another run's."""
import csv
import json
import shutil

import pytest
from _video_helpers import ramp_frames

from vidbench.cli import main
from vidbench.data import DataSpec, LabelMap, make_dataset, read_annotations, write_mp4
from vidbench.data.annotations import NO_LABEL

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    data = make_dataset(root / "data", ["red_disc", "green_square", "move_right"], videos_per_class=3, frames=12,
                        val_fraction=0.34, test_fraction=0.34)
    assert main(["train", "--model", "vit_frameavg_tiny", "--data", str(data), "--out", str(root / "run"),
                 "--epochs", "1", "--batch-size", "4", "--workers", "0", "--model-arg", "depth=1",
                 "--model-arg", "embed_dim=48", "--model-arg", "num_heads=2", "--no-progress"]) == 0
    return data, root / "run" / "checkpoint.safetensors"


def _eval(checkpoint, data, *extra):
    return main(["eval", "--checkpoint", str(checkpoint), "--data", str(data), "--views", "2x3", "--workers", "0",
                 "--no-progress", *extra])


def _one_line(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


def _unlabelled_copy(data, tmp_path, header="path"):
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    rows = list(csv.DictReader((data / "test.csv").open()))
    if header == "path":
        (copy / "test.csv").write_text("path\n" + "".join(f"{r['path']}\n" for r in rows))
    else:  # the label column is there, its cells empty
        (copy / "test.csv").write_text("path,label\n" + "".join(f"{r['path']},\n" for r in rows))
    return copy, [r["path"] for r in rows]


@pytest.mark.parametrize("header", ["path", "path,label"])
def test_a_split_without_labels_is_refused_not_scored_nan(trained, tmp_path, capsys, header):
    data, checkpoint = trained
    copy, _ = _unlabelled_copy(data, tmp_path, header)
    table = tmp_path / "results"
    assert _eval(checkpoint, copy, "--out", str(table)) == 2
    _one_line(capsys, str(copy / "test.csv"), "no labels", "--predict")
    assert not (table / "accuracy.csv").exists()


def test_predict_writes_top5_averaged_over_views_as_eval_scores(trained, tmp_path, capsys):
    data, checkpoint = trained
    copy, paths = _unlabelled_copy(data, tmp_path)
    table = tmp_path / "results"
    assert _eval(checkpoint, copy, "--out", str(table), "--predict", str(tmp_path / "unlabelled.csv")) == 0
    assert json.loads(capsys.readouterr().out)["num_videos"] == len(paths)
    assert not (table / "accuracy.csv").exists()  # nothing to score: no accuracy row
    unlabelled = list(csv.DictReader((tmp_path / "unlabelled.csv").open()))
    assert [r["path"] for r in unlabelled] == paths and all(r["label"] == "" and r["skipped"] == "" for r in unlabelled)
    classes = DataSpec.load(data).classes
    for row in unlabelled:  # 3 classes: the top-k is every class once, probabilities summing to 1
        assert sorted(row[f"class{i}"] for i in (1, 2, 3)) == sorted(classes)
        scores = [float(row[f"score{i}"]) for i in (1, 2, 3)]
        assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 1e-4
    # the same videos with labels: the same predictions, and the accuracy row agrees with them
    assert _eval(checkpoint, data, "--out", str(table), "--predict", str(tmp_path / "labelled.csv")) == 0
    row = json.loads(capsys.readouterr().out)
    labelled = list(csv.DictReader((tmp_path / "labelled.csv").open()))
    assert [{k: v for k, v in r.items() if k != "label"} for r in labelled] == \
           [{k: v for k, v in r.items() if k != "label"} for r in unlabelled]
    hits = sum(r["class1"] == r["label"] for r in labelled)
    written = list(csv.DictReader((table / "accuracy.csv").open()))
    assert len(written) == 1 and row["num_videos"] == len(labelled)
    assert float(written[0]["top1"]) == pytest.approx(100 * hits / len(labelled))
    # never over another file
    assert _eval(checkpoint, copy, "--predict", str(tmp_path / "labelled.csv")) == 2
    _one_line(capsys, "labelled.csv", "exists")


def test_predict_names_a_video_it_could_not_read(trained, tmp_path, capsys):
    data, checkpoint = trained
    copy, paths = _unlabelled_copy(data, tmp_path)
    (copy / paths[0]).write_bytes(b"\0" * 300)
    assert _eval(checkpoint, copy, "--predict", str(tmp_path / "p.csv")) == 0
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert len(rows) == len(paths) and rows[0]["class1"] == "" and rows[0]["skipped"]
    assert all(r["class1"] and not r["skipped"] for r in rows[1:])


@pytest.mark.parametrize("case", ["header only", "labels unknown", "videos unreadable"])
def test_a_split_with_no_usable_video_is_refused(trained, tmp_path, capsys, case):
    data, checkpoint = trained
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    rows = list(csv.DictReader((data / "test.csv").open()))
    if case == "header only":
        (copy / "test.csv").write_text("path,label\n")
    elif case == "labels unknown":
        (copy / "test.csv").write_text("path,label\n" + "".join(f"{r['path']},no_such_class\n" for r in rows))
    else:
        for r in rows:
            (copy / r["path"]).write_bytes(b"\0" * 300)
    table = tmp_path / "results"
    assert _eval(checkpoint, copy, "--out", str(table)) == 2
    _one_line(capsys, str(copy / "test.csv"), {"header only": "no usable videos", "labels unknown": "no_such_class",
                                               "videos unreadable": "none of the"}[case])
    assert not (table / "accuracy.csv").exists()


def test_unlabelled_kinetics_and_ssv2_test_files_are_read_for_predictions(tmp_path):
    labels = LabelMap(["abseiling", "air drumming"])
    root = tmp_path / "k400"
    write_mp4(root / "test" / "aaa_000000_000010.mp4", ramp_frames(4))
    (root / "test.csv").write_text("youtube_id,time_start,time_end,split\naaa,0,10,test\n")
    records, issues, _ = read_annotations(root / "test.csv", labels, on_error="skip")
    assert records == [] and "no label" in issues[0].message  # without unlabelled=True: an issue, as before
    records, issues, _ = read_annotations(root / "test.csv", labels, unlabelled=True)
    assert issues == [] and [(r.path, r.label) for r in records] == [(str(root / "test" / "aaa_000000_000010.mp4"),
                                                                       NO_LABEL)]
    ssv2 = tmp_path / "ssv2"
    write_mp4(ssv2 / "20bn-something-something-v2" / "7.mp4", ramp_frames(4))
    (ssv2 / "test.json").write_text(json.dumps([{"id": "7"}]))
    records, issues, _ = read_annotations(ssv2 / "test.json", labels, unlabelled=True)
    assert issues == [] and [r.label for r in records] == [NO_LABEL]
    listing = tmp_path / "list.txt"
    listing.write_text(f"{ssv2 / '20bn-something-something-v2' / '7.mp4'}\n")
    records, issues, _ = read_annotations(listing, labels, unlabelled=True)
    assert issues == [] and [r.label for r in records] == [NO_LABEL]


def test_predict_with_published_weights_names_the_models_classes(trained, tmp_path, capsys):
    transformers = pytest.importorskip("transformers", reason="transformers is in the test extra")
    import torch

    data, _ = trained
    names = ["abseiling", "green_square", "move_right", "red_disc"]  # a class the dataset lacks: 4 outputs, 3 classes
    cfg = transformers.TimesformerConfig(image_size=32, patch_size=16, num_frames=8, hidden_size=24, num_hidden_layers=1,
                                         num_attention_heads=2, intermediate_size=48, num_labels=4,
                                         id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    torch.manual_seed(0)
    hf = tmp_path / "hf"
    transformers.TimesformerForVideoClassification(cfg).eval().save_pretrained(hf)
    capsys.readouterr()  # transformers' progress bar
    copy, paths = _unlabelled_copy(data, tmp_path)
    table = tmp_path / "results"
    args = ["eval", "--weights", str(hf), "--out", str(table), "--views", "1x1", "--workers", "0", "--no-progress"]
    assert main([*args, "--data", str(copy)]) == 2
    _one_line(capsys, "no labels", "--predict")
    assert main([*args, "--data", str(copy), "--predict", str(tmp_path / "p.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [r["path"] for r in rows] == paths and not (table / "accuracy.csv").exists()
    assert all(sorted(r[f"class{i}"] for i in range(1, 5)) == names for r in rows)
    assert main([*args, "--data", str(data), "--predict", str(tmp_path / "q.csv")]) == 0
    labelled = list(csv.DictReader((tmp_path / "q.csv").open()))
    hits = sum(r["class1"] == r["label"] for r in labelled)
    written = list(csv.DictReader((table / "accuracy.csv").open()))
    assert len(written) == 1 and float(written[0]["top1"]) == pytest.approx(100 * hits / len(labelled))


def test_rows_name_the_trained_architecture_not_the_registry_entry(trained, tmp_path):
    # trained with --model-arg depth=1 embed_dim=48 num_heads=2: not vit_frameavg_tiny's architecture
    data, checkpoint = trained
    assert _eval(checkpoint, data, "--out", str(tmp_path)) == 0
    row = next(csv.DictReader((tmp_path / "accuracy.csv").open()))
    assert row["model"] == "vit(embed_dim=48, depth=1, num_heads=2)", row["model"]
