"""Data, evaluation and weights files (issue 26, "Data and evaluation" and the weights items of
"Every value checked"): each test here failed on the code before it. A user error is one line
naming the file / option / value, exit code 2, no traceback; a result row never carries a name
or a class match it did not check."""
import csv

import pytest
import torch
from _cli_helpers import one_line_error

from vidbench.checkpoint import read_metadata
from vidbench.cli import main
from vidbench.data import make_dataset

SMALL = ["--model-arg", "depth=1", "--model-arg", "embed_dim=48", "--model-arg", "num_heads=2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "syn", ["red_disc", "green_square"], videos_per_class=4)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["train", "--model", "vit_frameavg_tiny", "--data", str(data), "--out", str(out), "--epochs", "1",
                 "--batch-size", "4", "--workers", "0", "--no-progress", *SMALL]) == 0
    return out / "checkpoint.safetensors"


# -- trained checkpoints: class names ------------------------------------------------------------
def test_train_checkpoint_records_class_names_and_eval_matches_them_by_name(data, trained, tmp_path):
    assert read_metadata(trained)[1]["classes"] == ["red_disc", "green_square"]
    permuted = make_dataset(tmp_path / "perm", ["green_square", "red_disc"], videos_per_class=4)
    predict = tmp_path / "pred.csv"
    assert main(["eval", "--checkpoint", str(trained), "--data", str(permuted), "--views", "1x1",
                 "--out", str(tmp_path / "res"), "--predict", str(predict)]) == 0
    rows = list(csv.DictReader(open(predict)))
    # the model's outputs are named by the checkpoint's classes (were the dataset's, in its order)
    assert {r["class1"] for r in rows} | {r["class2"] for r in rows} == {"red_disc", "green_square"}
    row = list(csv.DictReader(open(tmp_path / "res" / "accuracy.csv")))[-1]
    assert row["class_match"].startswith("by name")
    # the model's top-1 output, by name, against the label: top1 recomputed from the predictions
    top1 = 100 * sum(r["class1"] == r["label"] for r in rows if r["label"]) / sum(bool(r["label"]) for r in rows)
    assert float(row["top1"]) == pytest.approx(top1)


def test_eval_of_a_dataset_with_other_classes_is_refused(trained, tmp_path, capsys):
    other = make_dataset(tmp_path / "other", ["red_disc", "blue_triangle"], videos_per_class=4)
    assert main(["eval", "--checkpoint", str(trained), "--data", str(other), "--views", "1x1",
                 "--out", str(tmp_path / "res")]) == 2
    one_line_error(capsys, "checkpoint.safetensors", "blue_triangle")
    assert not (tmp_path / "res" / "accuracy.csv").exists()


@pytest.mark.parametrize("flag", [["--frames", "4"], ["--img-size", "48"], ["--stride", "1"]])
def test_eval_options_a_checkpoint_does_not_take_are_refused(trained, tmp_path, capsys, flag):
    assert main(["eval", "--checkpoint", str(trained), "--views", "1x1", "--out", str(tmp_path / "res"), *flag]) == 2
    one_line_error(capsys, flag[0], "for --weights only")
    assert not (tmp_path / "res").exists()


# -- smaller: list, compare ----------------------------------------------------------------------
@pytest.mark.parametrize("extra", [[], ["--weights"], ["--formats"]])
def test_list_unknown_family_is_named(capsys, extra):
    assert main(["list", "--family", "vitt", *extra]) == 2
    one_line_error(capsys, "--family vitt: unknown family", "did you mean vit")


def test_list_says_what_matched_nothing(capsys):
    assert main(["list", "zz*", "--family", "vit"]) == 1
    assert capsys.readouterr().err.strip() == "no model matches pattern 'zz*' and family vit"


def test_list_weights_honours_family(capsys):
    assert main(["list", "--weights", "--family", "mvit"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()[2:]
    assert rows and all(r.split()[0].startswith("mvit") for r in rows), rows


def test_compare_reference_arg_the_reference_does_not_take(tmp_path, capsys):
    pytest.importorskip("transformers")
    out = tmp_path / "cmp"
    assert main(["compare", "timesformer_base", "--reference-arg", "num_hiden_layers=2", "--out", str(out)]) == 2
    one_line_error(capsys, "--reference-arg num_hiden_layers", "did you mean num_hidden_layers")
    assert not out.exists()


def test_kinetics_row_with_end_before_start_is_named_as_such(tmp_path):
    from vidbench.data.annotations import LabelMap, read_kinetics_csv

    (tmp_path / "train").mkdir()
    (tmp_path / "train.csv").write_text("label,youtube_id,time_start,time_end,split\nred_disc,abcdefghijk,10,5,train\n")
    records, issues = read_kinetics_csv(tmp_path / "train.csv", LabelMap(["red_disc"]))
    assert not records and len(issues) == 1 and issues[0].line == 2
    assert "time_start 10 / time_end 5" in str(issues[0]) and "not found" not in str(issues[0])


def test_convert_to_a_directory_is_refused_before_any_work(tmp_path, capsys):
    from vidbench.checkpoint import save_checkpoint
    from vidbench.models import create_model

    src = save_checkpoint(create_model("vit_tiny", img_size=32, patch_size=8, depth=1, num_classes=3),
                          tmp_path / "small.safetensors")
    (tmp_path / "dst.safetensors").mkdir()
    assert main(["convert", str(src), str(tmp_path / "dst.safetensors"), "--overwrite"]) == 2
    one_line_error(capsys, "dst.safetensors: is a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst.safetensors", "small.safetensors"]


def test_extract_frames_refuses_a_non_empty_unrelated_folder(data, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me\n")
    assert main(["extract-frames", "--data", str(data), "--out", str(out), "--no-progress"]) == 2
    one_line_error(capsys, "mine is not empty and holds no extracted dataset")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


# -- --bad-items raise: one line in every command, in process and from a DataLoader worker --------
@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    root = make_dataset(tmp_path_factory.mktemp("broken") / "syn", ["red_disc", "green_square"], videos_per_class=4)
    for video in (root / "videos" / "red_disc").glob("*.mp4"):
        video.write_bytes(b"not a video" * 8)
    return root


@pytest.mark.parametrize("command,workers", [("train", "0"), ("train", "1"), ("eval", "1")])
def test_bad_items_raise_is_one_line(broken, trained, tmp_path, capsys, command, workers):
    if command == "train":
        args = ["train", "--model", "vit_frameavg_tiny", "--data", str(broken), "--out", str(tmp_path / "run"),
                "--epochs", "1", "--batch-size", "4", "--no-progress", *SMALL]
    else:
        args = ["eval", "--checkpoint", str(trained), "--data", str(broken), "--views", "1x1",
                "--out", str(tmp_path / "res"), "--no-progress"]
    assert main([*args, "--workers", workers, "--bad-items", "raise"]) == 2
    one_line_error(capsys, "red_disc_00", "PyAV cannot probe it")


# -- one check of a --weights file for every command -------------------------------------------
@pytest.fixture(scope="module")
def bad_weights(tmp_path_factory):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _weights_helpers import write_liar_checkpoint

    from vidbench.checkpoint import save_checkpoint
    from vidbench.models import create_model

    root = tmp_path_factory.mktemp("weights")
    small = create_model("vit_tiny", img_size=32, patch_size=8, depth=1, num_classes=3)
    liar = write_liar_checkpoint(root / "liar.safetensors", small)
    with torch.no_grad():
        small.head.weight[0, 0] = float("nan")
    nan = save_checkpoint(small, root / "nan.safetensors")
    return {"liar": (liar, "do not fit"), "nan": (nan, "non-finite values")}


@pytest.mark.parametrize("which", ["liar", "nan"])
@pytest.mark.parametrize("command", ["flops", "bench"])
def test_every_command_taking_weights_checks_the_file(bad_weights, tmp_path, capsys, command, which):
    path, needle = bad_weights[which]
    args = ["flops", "--weights", str(path)] if command == "flops" else \
        ["bench", "--weights", str(path), "--out", str(tmp_path / "b"), "--no-progress", "--device", "cpu"]
    assert main(args) == 2
    one_line_error(capsys, path.name, needle)
    assert not (tmp_path / "b" / "bench.csv").exists()


# -- crafted Flax msgpack files -------------------------------------------------------------------
def _ext_array(shape, dtype, raw):
    import msgpack

    return msgpack.ExtType(1, msgpack.packb((list(shape), dtype, raw), use_bin_type=True))


def _crafted(kind):
    import msgpack

    good = _ext_array((2, 2), "float32", bytes(16))
    if kind == "deep":  # 1000 nested one-key maps ("a": ...), written by hand (the packer stops at 512)
        return b"\x81\xa1a" * 1000 + msgpack.packb({"x": good}, use_bin_type=True)
    if kind == "no-shape":
        tree = {"w": {"__msgpack_chunked_array__": True, "chunks": {"0": good}}}
    elif kind == "wrong-shape":
        tree = {"w": {"__msgpack_chunked_array__": True, "chunks": {"0": good}, "shape": [3, 3]}}
    elif kind == "short-bytes":
        tree = {"w": _ext_array((4, 4), "float32", bytes(16))}
    else:  # not (shape, dtype, bytes)
        tree = {"w": msgpack.ExtType(1, msgpack.packb(1))}
    return msgpack.packb(tree, use_bin_type=True)


@pytest.mark.parametrize("kind,needle", [("deep", "nested"), ("no-shape", "without its shape"),
                                         ("wrong-shape", "chunks of 4 values for shape (3, 3)"),
                                         ("short-bytes", "does not match its 16 bytes"),
                                         ("not-array", "not (shape, dtype, bytes)")])
def test_crafted_flax_msgpack_is_one_line_naming_the_file(tmp_path, capsys, kind, needle):
    path = tmp_path / "checkpoint_1"
    path.write_bytes(_crafted(kind))
    assert main(["convert", str(path), str(tmp_path / "out.safetensors")]) == 2
    one_line_error(capsys, "checkpoint_1", "Flax msgpack", needle)
    assert not (tmp_path / "out.safetensors").exists()


# -- a plain malicious pickle as .pth ----------------------------------------------------------
@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("kind,refused", [("os.system", "posix.system"), ("builtins.exec", "builtins.exec"),
                                          ("subprocess", "subprocess.call")])
def test_malicious_pickle_names_file_and_global_without_torch_text(tmp_path, capsys, protocol, kind, refused):
    import pickle
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _weights_helpers import CodeMarker

    marker = tmp_path / "executed"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"state_dict": {"w": CodeMarker(marker, kind)}}, protocol=protocol))
    assert main(["convert", str(path), str(tmp_path / "out.safetensors")]) == 2
    err = one_line_error(capsys, "evil.pth: refused", f"the global {refused}", "nothing was executed")
    assert "file an issue" not in err.lower() and "Warning" not in err
    assert not marker.exists()


# -- a model's name in output and rows is the registry name only at that model's config -----------
def test_a_small_checkpoint_is_not_called_by_a_paper_models_name(data, tmp_path, capsys):
    from vidbench.checkpoint import save_checkpoint
    from vidbench.models import create_model

    tiny = save_checkpoint(create_model("timesformer_base", img_size=32, embed_dim=48, depth=2, num_heads=2,
                                        num_frames=4, num_classes=2), tmp_path / "tiny.safetensors")
    assert main(["convert", str(tiny), str(tmp_path / "conv.safetensors"), "--model", "timesformer_base"]) == 0
    out = capsys.readouterr().out
    assert "timesformer(embed_dim=48, depth=2, num_heads=2)" in out and "timesformer_base" not in out, out
    assert main(["eval", "--weights", str(tmp_path / "conv.safetensors"), "--data", str(data), "--views", "1x1",
                 "--out", str(tmp_path / "res"), "--no-progress"]) == 0
    row = list(csv.DictReader(open(tmp_path / "res" / "accuracy.csv")))[-1]
    assert row["model"] == "timesformer(embed_dim=48, depth=2, num_heads=2)"
