"""Bad input and faults (issue: reliability and security): each test here failed on the code
before it. A user error is one line naming the file / option / value, exit code 2, no
traceback; nothing written before is lost or mixed with another run's rows."""
import csv
import errno
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from _cli_helpers import one_line_error
from _weights_helpers import Marker, write_liar_checkpoint
from safetensors.torch import save_file

from vidbench.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from vidbench.cli import main
from vidbench.data import make_dataset
from vidbench.data.videoio import write_mp4
from vidbench.models import create_model
from vidbench.results import ResultsStore, run_lock

SMALL = ["--model-arg", "depth=1", "--model-arg", "embed_dim=48", "--model-arg", "num_heads=2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "syn", ["red_disc", "green_square"], videos_per_class=8)


def _train(data, out, *extra):
    return main(["train", "--model", "vit_frameavg_tiny", "--data", str(data), "--out", str(out), "--epochs", "1",
                 "--batch-size", "4", "--workers", "0", "--no-progress", *SMALL, *extra])


# -- security --------------------------------------------------------------------------------
def test_pretrain_resume_never_unpickles(data, tmp_path, capsys):
    out = tmp_path / "ssl"
    marker = tmp_path / "executed"
    (out / "checkpoints").mkdir(parents=True)
    torch.save({"x": Marker(marker)}, out / "checkpoints" / "byol.safetensors")
    args = ["pretrain", "--method", "byol", "--data", str(data), "--out", str(out), "--epochs", "1",
            "--img-size", "16", "--patch-size", "8", "--depth", "1", "--embed-dim", "32", "--num-heads", "2",
            "--batch-size", "16", "--frames", "2", "--knn-k", "5", "--no-progress", "--resume"]
    assert main(args) == 2
    one_line_error(capsys, "byol.safetensors", "not a readable training state")
    assert not marker.exists()


def test_init_checkpoint_declaring_a_huge_model_is_refused_before_allocation(data, tmp_path, capsys):
    liar = write_liar_checkpoint(tmp_path / "liar.safetensors", create_model("vit_tiny", img_size=32, patch_size=8,
                                                                              depth=1))
    assert _train(data, tmp_path / "run", "--init", str(liar)) == 2
    one_line_error(capsys, "liar.safetensors", "do not fit the declared vit_tiny config")
    assert not (tmp_path / "run" / "checkpoint.safetensors").exists()


@pytest.mark.parametrize("what", ["not-json", "no-model"])
def test_checkpoint_metadata_problems_are_named(tmp_path, what):
    path = tmp_path / "ckpt.safetensors"
    meta = {"format": FORMAT, "model": "{not json"} if what == "not-json" else {"format": FORMAT}
    save_file({"w": torch.zeros(1)}, str(path), metadata=meta)
    with pytest.raises(ValueError, match="ckpt.safetensors: vidbench checkpoint metadata"):
        load_checkpoint(path)


# -- no lost or mixed results ----------------------------------------------------------------
def test_train_refuses_an_existing_run_and_mismatched_resume_and_is_a_noop_when_finished(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(data, out, "--eval-views", "1x1") == 0
    capsys.readouterr()
    before = {n: (out / n).read_bytes() for n in ("checkpoint.safetensors", "train.csv", "accuracy.csv")}
    assert _train(data, out) == 2
    one_line_error(capsys, str(out), "already holds a training run", "--resume")
    assert _train(data, out, "--resume", "--epochs", "3") == 2
    one_line_error(capsys, "options differ", "epochs 1 -> 3")
    assert _train(data, out, "--resume", "--eval-views", "1x1") == 0
    assert "training already finished (1 epochs); nothing to do" in capsys.readouterr().out
    assert {n: (out / n).read_bytes() for n in before} == before  # no row appended, nothing rewritten


def test_a_diverging_run_keeps_its_last_finite_checkpoint(data, tmp_path, monkeypatch, capsys):
    import vidbench.train.engine as engine

    calls = {"n": 0}

    class LossGoesNaN(torch.nn.CrossEntropyLoss):
        def forward(self, logits, labels):
            calls["n"] += 1
            loss = super().forward(logits, labels)
            return loss * float("nan") if calls["n"] > 4 else loss  # epoch 1 has 4 steps

    monkeypatch.setattr(engine.nn, "CrossEntropyLoss", LossGoesNaN)
    out = tmp_path / "run"
    assert _train(data, out, "--epochs", "3") == 2
    err = one_line_error(capsys, "training diverged at epoch 2", "first at step", "checkpoint of epoch 1 is kept")
    assert "--lr" in err
    model, extra = load_checkpoint(out / "checkpoint.safetensors")
    assert extra["epoch"] == 1 and all(torch.isfinite(p).all() for p in model.parameters())


def test_eval_refuses_non_finite_weights(data, tmp_path, capsys):
    model = create_model("vit_frameavg_tiny", num_classes=2)
    with torch.no_grad():
        model.head.weight[0, 0] = float("inf")
    path = tmp_path / "bad.safetensors"
    save_checkpoint(model, path, {"data": str(data)})
    assert main(["eval", "--checkpoint", str(path), "--workers", "0", "--no-progress"]) == 2
    one_line_error(capsys, "bad.safetensors", "non-finite weights")
    assert not (tmp_path / "accuracy.csv").exists()


def test_a_second_writer_is_refused_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom vidbench.results import run_lock\n"
                               f"with run_lock({str(out)!r}, 'holder'):\n    print('held', flush=True)\n"
                               "    time.sleep(60)\n"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["bench", "--models", "vit_tiny", "--out", str(out), "--no-progress"]) == 2
        one_line_error(capsys, str(out), "in use by another vidbench process", f"pid {holder.pid}")
        assert not (out / "bench.csv").exists()
    finally:
        holder.kill()
        holder.wait()
    with run_lock(out), run_lock(out):  # free again once the holder is gone; re-entrant in one process
        pass


def test_disk_full_is_a_clear_error_and_written_rows_stay(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)
    store.append("t", {"a": 1, "b": 2})
    real_write = os.write

    def full(fd, data):
        real_write(fd, data[:3])  # a partial line, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(Exception, match="no space left on the device writing .*t.csv: the rows written before are intact"):
        store.append("t", {"a": 3, "b": 4})
    monkeypatch.undo()
    assert store.read("t").to_dict("records") == [{"a": 1, "b": 2}]
    store.append("t", {"a": 5, "b": 6})
    assert len(store.read("t")) == 2


# -- errors that name what is wrong ------------------------------------------------------------
def test_eval_on_a_kinetics_style_tree_uses_val_and_says_so(data, tmp_path, capsys):
    tree = tmp_path / "tree"
    for split, dst in (("train", "train"), ("val", "val"), ("test", "val")):
        with open(data / f"{split}.csv") as f:
            for r in csv.DictReader(f):
                (tree / dst / r["label"]).mkdir(parents=True, exist_ok=True)
                shutil.copy(data / r["path"], tree / dst / r["label"])
    out = tmp_path / "run"
    assert _train(tree, out) == 0  # its test evaluation is skipped (no --eval-views)
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out / "checkpoint.safetensors"), "--data", str(tree), "--views", "1x1",
                 "--workers", "0", "--no-progress"]) == 0
    assert "has no test split: evaluating the val split" in capsys.readouterr().out
    assert pd.read_csv(out / "accuracy.csv").iloc[-1]["split"] == "val"
    # pretrain reads the same class-folder tree that train reads
    assert main(["pretrain", "--method", "simclr", "--data", str(tree), "--out", str(tmp_path / "ssl"), "--epochs",
                 "1", "--img-size", "16", "--patch-size", "8", "--depth", "1", "--embed-dim", "32", "--num-heads", "2",
                 "--batch-size", "8", "--frames", "2", "--knn-k", "3", "--no-progress"]) == 0


def test_pretrain_with_a_bad_video_sets_it_aside(data, tmp_path, capsys):
    broken = tmp_path / "data"
    shutil.copytree(data, broken)
    first = next((broken / "videos" / "red_disc").glob("*.mp4"))
    first.write_bytes(first.read_bytes()[:200])
    assert main(["pretrain", "--method", "byol", "--data", str(broken), "--out", str(tmp_path / "ssl"), "--epochs", "1",
                 "--img-size", "16", "--patch-size", "8", "--depth", "1", "--embed-dim", "32", "--num-heads", "2",
                 "--batch-size", "8", "--frames", "2", "--knn-k", "3", "--no-progress"]) == 0


def test_report_reads_missing_columns_and_names_an_unparsable_csv(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "bench.csv").write_text("model,gmacs,frames,img_size,batch_size,precision,mode\n"
                                              "vit_tiny,1.2,,32,1,fp32,infer\n")
    assert main(["report", str(tmp_path / "a")]) == 0
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "accuracy.csv").write_text('model,top1\n"unterminated,3\n')
    assert main(["report", str(tmp_path / "b")]) == 2
    one_line_error(capsys, "accuracy.csv", "not a readable CSV")


@pytest.mark.parametrize("argv,needle", [
    (["train", "--model", "vit_frameavg_tiny", "--out", "x", "--num-frames", "0"], "--num-frames: must be >= 1"),
    (["train", "--model", "vit_frameavg_tiny", "--out", "x", "--stride", "-1"], "--stride: must be >= 1"),
    (["bench", "--models", "vit_tiny", "--frames", "0"], "--frames: bad list '0': must be >= 1"),
    (["eval", "--weights", "w", "--data", "d", "--img-size", "0"], "--img-size: must be >= 1"),
])
def test_zero_and_negative_values_are_errors(argv, needle, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and needle in capsys.readouterr().err


@pytest.mark.parametrize("arg,needles", [
    ("depth=abc", ["option depth='abc' should be a int"]),
    ("tubelet_size=3,8,8", ["frame count 8 is not divisible by the patch/tubelet size 3"]),
    ("nonsense", ["--model-arg expects KEY=VALUE", "'nonsense'"]),
])
def test_model_args_name_the_key_and_the_syntax(data, tmp_path, capsys, arg, needles):
    assert main(["train", "--model", "vivit_m1_tiny", "--data", str(data), "--out", str(tmp_path / "r"),
                 "--epochs", "1", "--workers", "0", "--no-progress", "--model-arg", arg]) == 2
    one_line_error(capsys, *needles)


def test_a_pickle_given_as_train_state_is_named(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(data, out, "--epochs", "1") == 0
    marker = tmp_path / "executed"
    torch.save({"x": Marker(marker)}, out / "train_state.safetensors")
    assert _train(data, out, "--resume", "--epochs", "1") == 0  # finished: the state is not needed
    out2 = tmp_path / "run2"
    shutil.copytree(out, out2)
    meta = load_checkpoint(out2 / "checkpoint.safetensors")[1]
    meta["epoch"] = 0  # pretend it stopped early, so --resume must read the state
    model = load_checkpoint(out2 / "checkpoint.safetensors")[0]
    save_checkpoint(model, out2 / "checkpoint.safetensors", meta)
    capsys.readouterr()
    assert _train(data, out2, "--resume", "--epochs", "1") == 2
    one_line_error(capsys, "train_state.safetensors", "not a readable training state")
    assert not marker.exists()


def test_no_usable_training_videos_is_said_as_such(data, tmp_path, capsys):
    empty = tmp_path / "data"
    shutil.copytree(data, empty)
    (empty / "train.csv").write_text("path,label\nvideos/missing.mp4,red_disc\n")
    out = tmp_path / "run"
    assert _train(empty, out) == 2
    one_line_error(capsys, "no training videos in the train split", "1 annotation line(s) skipped")
    assert not (out / "checkpoint.safetensors").exists()


def test_decord_failure_falls_back_to_pyav_per_file(tmp_path):
    pytest.importorskip("decord")
    from vidbench.data.annotations import VideoRecord
    from vidbench.data.dataset import VideoClipDataset, collate_clips
    from vidbench.data.sampling import ClipSampler
    from vidbench.data.transforms import ClipTransform

    odd = write_mp4(tmp_path / "odd.mp4", (np.random.default_rng(0).random((17, 64, 48, 3)) * 255).astype(np.uint8))
    ds = VideoClipDataset([VideoRecord(str(odd), 0)], ClipSampler(8, 2), ClipTransform(size=32), train=False,
                          backend="decord")
    batch = collate_clips([ds[0]])
    assert len(batch) == 1 and batch.bad == [] and len(batch.fallbacks) == 1
    assert "odd.mp4" in batch.fallbacks[0] and "decord" in batch.fallbacks[0]


def test_bom_and_duplicate_annotation_lines(data, tmp_path):
    from vidbench.data.annotations import LabelMap, read_csv

    rows = (data / "train.csv").read_text().splitlines()
    bom = tmp_path / "train.csv"
    bom.write_text("\ufeff" + "\n".join(rows + [rows[1]]) + "\n", encoding="utf-8")
    records, issues = read_csv(bom, LabelMap(["red_disc", "green_square"]), root=data)
    assert len(records) == len(rows) - 1
    assert len(issues) == 1 and "duplicate of line 2 (kept once)" in issues[0].message and issues[0].line == len(rows) + 1


@pytest.mark.parametrize("model", ["mvit_tiny", "swin3d_tiny"])
def test_init_is_refused_for_models_without_image_initialisation(data, tmp_path, capsys, model):
    backbone = tmp_path / "vit.safetensors"
    save_checkpoint(create_model("vit_tiny", img_size=32, patch_size=8, depth=1), backbone)
    assert main(["train", "--model", model, "--data", str(data), "--out", str(tmp_path / "r"), "--init", str(backbone),
                 "--workers", "0", "--no-progress"]) == 2
    one_line_error(capsys, f"--init: {model} has no image initialisation", "--weights")


def test_weight_decay_spares_what_the_model_names():
    from vidbench.train.engine import param_groups

    model = create_model("swin3d_tiny")
    spared = model.no_weight_decay()
    assert any(n.endswith("relative_position_bias_table") for n in spared)
    decay, no_decay = param_groups(model, 0.05)
    ids = {id(p) for p in no_decay["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in ids) == (p.ndim <= 1 or name in spared), name
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0


def _descendants(pid):
    """Every process below `pid` (Linux /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read().replace("\0", " ")
    except OSError:
        return ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_killed_bench_launcher_takes_its_torchrun_workers_with_it(tmp_path):
    import signal
    import time

    launcher = subprocess.Popen([sys.executable, "-m", "vidbench", "bench", "--models", "vit_tiny", "--mode", "train",
                                 "--nproc", "2", "--oversubscribe", "--iters", "1000", "--warmup", "0", "--img-size",
                                 "32", "--out", str(tmp_path / "b"), "--no-progress"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, workers = time.time() + 120, []
        while time.time() < deadline and len(workers) < 2 and launcher.poll() is None:
            time.sleep(0.2)
            below = _descendants(launcher.pid)
            workers = [p for p in below if "-m vidbench.bench.ddp" in _cmdline(p)
                       and "torch.distributed.run" not in _cmdline(p)]
        assert len(workers) == 2, "torchrun's two workers never started"
    finally:
        if launcher.poll() is None:
            os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any("vidbench" in _cmdline(p) or "torch" in _cmdline(p) for p in below):
        time.sleep(0.2)
    left = [(p, _cmdline(p)[:80]) for p in below if _cmdline(p)]
    for p, _ in left:  # never leave them behind for the next test
        os.kill(p, signal.SIGKILL)
    assert not left, f"orphans of the killed launcher: {left}"


# -- results are never lost silently (issue 26) -------------------------------------------------
def test_a_diverged_epoch_records_nothing_and_resume_writes_each_epoch_once(data, tmp_path, monkeypatch, capsys):
    import vidbench.train.engine as engine

    class AlwaysNaN(torch.nn.CrossEntropyLoss):
        def forward(self, logits, labels):
            return super().forward(logits, labels) * float("nan")

    out = tmp_path / "run"
    monkeypatch.setattr(engine.nn, "CrossEntropyLoss", AlwaysNaN)
    assert _train(data, out) == 2
    one_line_error(capsys, "training diverged at epoch 1")
    assert not (out / "train.csv").exists() or pd.read_csv(out / "train.csv").empty  # no row with a blank loss
    monkeypatch.undo()
    assert _train(data, out, "--resume") == 0
    rows = pd.read_csv(out / "train.csv")
    assert rows["epoch"].tolist() == [1] and rows["train_loss"].notna().all()


def _killed_after_epoch_1(data, out, monkeypatch):
    """`train --epochs 2` killed after epoch 1's checkpoint (before its row)."""
    import vidbench.train.engine as engine

    with monkeypatch.context() as m:
        m.setattr(engine.EpochLog, "append", lambda self, row: (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            _train(data, out, "--epochs", "2")


def test_an_epoch_killed_after_its_checkpoint_gets_its_row_on_resume(data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _killed_after_epoch_1(data, out, monkeypatch)
    assert (out / "checkpoint.safetensors").exists() and not (out / "train.csv").exists()
    assert _train(data, out, "--epochs", "2", "--resume") == 0
    assert pd.read_csv(out / "train.csv")["epoch"].tolist() == [1, 2]


def test_pretrain_refuses_an_existing_run_without_resume(data, tmp_path, capsys):
    out = tmp_path / "ssl"
    args = ["pretrain", "--method", "simclr", "--data", str(data), "--out", str(out), "--epochs", "1", "--no-eval",
            "--img-size", "16", "--patch-size", "8", "--depth", "1", "--embed-dim", "32", "--num-heads", "2",
            "--batch-size", "8", "--frames", "2", "--proj-dim", "16", "--proj-hidden", "32", "--no-progress"]
    assert main(args) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.glob("*.*") if p.name != ".vidbench.lock"}
    assert main(args) == 2
    one_line_error(capsys, str(out), "already holds a simclr pretraining run", "--resume")
    assert {p.name: p.read_bytes() for p in out.glob("*.*") if p.name != ".vidbench.lock"} == before  # kept, no row added


def test_a_train_state_from_another_run_is_refused_on_resume(data, tmp_path, monkeypatch, capsys):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    other = make_dataset(tmp_path / "three", ["red_disc", "green_square", "blue_triangle"], videos_per_class=4)
    for run, d in ((a, data), (b, data), (c, other)):
        _killed_after_epoch_1(d, run, monkeypatch)
    capsys.readouterr()
    state = "train_state.safetensors"
    # same architecture and options, another run: refused by the run identity, not resumed with b's schedule
    shutil.copy(a / state, tmp_path / "a_state")
    shutil.copy(b / state, a / state)
    assert _train(data, a, "--epochs", "2", "--resume") == 2
    one_line_error(capsys, f"{state} is of another run than checkpoint.safetensors")
    # another head size where no checkpoint says whose the state is: one line naming the file, no traceback
    (a / "checkpoint.safetensors").unlink()
    shutil.copy(c / state, a / state)
    assert _train(data, a, "--epochs", "2", "--resume") == 2
    one_line_error(capsys, state, "does not fit this run's model")
    shutil.copy(tmp_path / "a_state", a / state)  # its own state: resumes
    assert _train(data, a, "--epochs", "2", "--resume") == 0
    assert pd.read_csv(a / "train.csv")["epoch"].tolist() == [1, 2]


def _published_suite(tmp_path, weights, tree):
    suite = tmp_path / "pub.toml"
    suite.write_text(f'device = "cpu"\nreport = false\n[published]\nweights_dir = "{weights}"\ndata = "{tree}"\n'
                     'views = "1x1"\nnum_workers = 0\nbench = false\n')
    return suite


def test_published_suite_checks_its_inputs_before_making_a_run(data, tmp_path, capsys):
    weights = tmp_path / "weights"
    weights.mkdir()
    model = create_model("vit_frameavg_tiny", num_classes=2, depth=1, embed_dim=48, num_heads=2, img_size=32,
                         num_frames=8)
    save_checkpoint(model, weights / "frameavg.safetensors", {"classes": ["red_disc", "green_square"]})
    out = tmp_path / "run"
    for bad in (_published_suite(tmp_path, tmp_path / "nope", data), _published_suite(tmp_path, weights,
                                                                                     tmp_path / "nodata")):
        assert main(["run", "--suite", str(bad), "--out", str(out), "--no-progress"]) == 2
        one_line_error(capsys, "nope" if "nope" in bad.read_text() else "nodata")
        assert not out.exists()
    # what the earlier version left after a bad --data: a lock, environment.json and failed stages only
    out.mkdir()
    (out / ".vidbench.lock").write_text("")
    ResultsStore(out).append("stages", {"stage": "published:frameavg.safetensors", "status": "error", "seconds": 0.1,
                                        "message": "FileNotFoundError: nodata", "timestamp": "2026-01-01"})
    assert main(["run", "--suite", str(_published_suite(tmp_path, weights, data)), "--out", str(out),
                 "--no-progress"]) == 0
    stages = pd.read_csv(out / "stages.csv")
    assert stages["status"].tolist() == ["ok"]


def test_a_refused_run_leaves_no_folder_behind(data, tmp_path, capsys):
    out = tmp_path / "new" / "run"
    assert main(["bench", "--models", "vit_tiny", "--timeout-s", "0", "--out", str(out), "--no-progress"]) == 2
    assert _train(tmp_path / "missing", out) == 2
    capsys.readouterr()
    assert not out.exists() and not (tmp_path / "new").exists()
    with run_lock(out):
        pass
    assert not out.exists()  # a lock alone is not a run
