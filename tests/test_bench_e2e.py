"""The end-to-end step (`vidbench bench --data TREE`, a suite's [e2e] section): rows with the
e2e, model-only and loader-only rates, the wait share and the CPU figures, read through the real
loader from a tiny generated dataset (2 classes, 8 training videos of 9 frames at 32 px, clips of
4 frames) with a one-block ViViT. Structural truths only: no timing is asserted."""
import json
import shutil

import pandas as pd
import pytest

from vidbench.bench.e2e import E2E_COLUMNS, E2EConfig, run_e2e
from vidbench.cli import main
from vidbench.data import make_dataset
from vidbench.errors import ConfigError
from vidbench.suite import load_suite
from vidbench.suite.runner import plan, run_suite

pytestmark = pytest.mark.usefixtures("one_thread")

MODEL = ["--models", "vivit_m2_tiny", "--model-arg", "depth=1", "--model-arg", "temporal_depth=1",
         "--model-arg", "embed_dim=48", "--model-arg", "num_heads=2", "--frames", "4"]
SMALL = {"depth": 1, "temporal_depth": 1, "embed_dim": 48, "num_heads": 2}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """8 train, 2 val, 2 test videos."""
    return make_dataset(tmp_path_factory.mktemp("e2e") / "tree", ["red_disc", "grow"], videos_per_class=6, frames=9,
                        size=32, num_frames=4)


def test_train_and_infer_rows_hold_every_figure(tree, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["bench", *MODEL, "--batch-size", "2", "--mode", "train,infer", "--data", str(tree), "--workers", "1",
                 "--warmup", "1", "--iters", "3", "--out", str(out), "--no-progress"]) == 0
    rows = pd.read_csv(out / "e2e.csv")
    assert list(rows.columns) == list(E2E_COLUMNS)
    assert list(rows["mode"]) == ["train", "infer"] and set(rows["status"]) == {"ok"}
    assert list(rows["split"]) == ["train", "test"]  # infer reads the evaluation split
    assert (rows["num_workers"] == 1).all() and rows["backend"].notna().all()
    for _, r in rows.iterrows():
        assert 0 <= r["wait_share"] <= 1
        assert r["clips_per_s"] > 0 and r["model_clips_per_s"] > 0 and r["loader_clips_per_s"] > 0
        assert r["clips"] == 2 * 3 and r["loader_clips"] == 2 * 3 and r["bad_items"] == 0  # 3 timed full batches
        assert r["wait_ms_median"] <= r["step_ms_median"]
        assert r["cores_busy"] > 0 and 0 <= r["worker_cores_busy"] <= r["cores_busy"]
        assert r["loader_cpu_s_per_clip"] > 0
        # the loader's CPU seconds per clip x the model-only rate: the cores that would keep the model fed
        assert r["cores_per_device"] == pytest.approx(r["loader_cpu_s_per_clip"] * r["model_clips_per_s"])
        assert r["params"] > 0 and r["frames"] == 4 and r["img_size"] == 32 and r["model_mfu_pct"] > 0
    assert json.loads((out / "environment.json").read_text())["e2e_runs"][0]["data"] == str(tree)
    printed = capsys.readouterr().out
    assert "2 rows ->" in printed and "cores/dev" in printed
    # --resume skips the measured rows; without it the table is not mixed into
    assert main(["bench", *MODEL, "--batch-size", "2", "--mode", "train,infer", "--data", str(tree), "--workers", "1",
                 "--warmup", "1", "--iters", "3", "--out", str(out), "--no-progress", "--resume"]) == 0
    assert len(pd.read_csv(out / "e2e.csv")) == 2
    assert len(json.loads((out / "environment.json").read_text())["e2e_runs"]) == 2  # each run's options kept
    assert main(["bench", *MODEL, "--mode", "infer", "--data", str(tree), "--out", str(out), "--no-progress"]) == 2


def test_a_bad_video_is_set_aside_and_counted(tree, tmp_path):
    """One unreadable training video: the loader's own handling (skipped, counted), the row goes on."""
    data = tmp_path / "tree"
    shutil.copytree(tree, data)
    first = pd.read_csv(data / "train.csv")["path"].iloc[0]
    (data / first).write_bytes(b"not a video" * 8)
    cfg = E2EConfig(models=["vivit_m2_tiny"], model_kwargs=SMALL, frames=[4], batch_size=[4], mode=["train"],
                    data=str(data), num_workers=0, warmup=1, iters=2)
    # 8 videos at batch 4: the warm-up step and the timed ones read the split whole at least once
    [row] = run_e2e(cfg, tmp_path / "out", progress=False)
    assert row["status"] == "ok" and row["bad_items"] >= 1
    assert 0 < row["clips"] <= 4 * 2 and row["clips_per_s"] > 0
    assert pd.read_csv(tmp_path / "out" / "e2e.csv").iloc[0]["bad_items"] == row["bad_items"]


@pytest.mark.parametrize("make", ["missing", "empty", "file"])
def test_a_missing_or_invalid_tree_is_one_line(tree, tmp_path, capsys, make):
    bad = tmp_path / "nothing"
    if make == "empty":
        bad.mkdir()
    elif make == "file":
        bad.write_text("x")
    out = tmp_path / "out"
    assert main(["bench", *MODEL, "--data", str(bad), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and "Traceback" not in err
    assert not out.exists()  # refused before anything is written
    with pytest.raises(ConfigError, match="nothing"):
        run_e2e(E2EConfig(models=["vivit_m2_tiny"], data=str(bad)), out, progress=False)


def test_loader_options_and_what_the_e2e_step_refuses(tree, tmp_path, capsys):
    assert main(["bench", *MODEL, "--workers", "1", "--out", str(tmp_path / "o")]) == 2
    assert "give --data TREE too" in capsys.readouterr().err
    for bad in ({"mode": ["count"]}, {"batch_size": ["max"], "mem_limit": "1GB"}, {"detail": True}):
        with pytest.raises(ConfigError, match="end-to-end step"):
            E2EConfig(models=["vivit_m2_tiny"], data=str(tree), **bad)
    with pytest.raises(ConfigError, match="split nope"):  # a split the dataset lacks, named
        run_e2e(E2EConfig(models=["vivit_m2_tiny"], data=str(tree), split="nope"), tmp_path / "o", progress=False)
    assert main(["bench", *MODEL, "--data", str(tree), "--split", "nope", "--out", str(tmp_path / "o")]) == 2


def test_suite_e2e_stage_reads_the_dataset_section(tree, tmp_path):
    suite_file = tmp_path / "e2e.toml"
    suite_file.write_text(f"""
report = false
[dataset]
path = "{tree}"
generate = false
[e2e]
models = ["vivit_m2_tiny"]
model_kwargs = {{depth = 1, temporal_depth = 1, embed_dim = 48, num_heads = 2}}
frames = [4]
batch_size = [2]
mode = ["infer"]
num_workers = 0
backend = "pyav"
warmup = 1
iters = 2
""")
    suite = load_suite(suite_file)
    assert suite.e2e.num_workers == 0 and suite.e2e.data is None
    assert [s.name for s in plan(suite, tmp_path / "run")] == ["dataset", "e2e"]
    stages = run_suite(suite, tmp_path / "run", progress=False)
    assert list(stages["status"]) == ["ok", "ok"], stages["message"].tolist()
    rows = pd.read_csv(tmp_path / "run" / "e2e.csv")
    assert len(rows) == 1 and rows.iloc[0]["data"] == str(tree) and rows.iloc[0]["split"] == "test"
    assert rows.iloc[0]["backend"] == "pyav" and rows.iloc[0]["status"] == "ok"
    bad = tmp_path / "bad.toml"
    bad.write_text("[e2e]\nmodels = [\"vivit_m2_tiny\"]\nworkers = 1\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_suite(bad)
