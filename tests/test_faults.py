"""Fault injection: a real `kill -9` of train, bench, pretrain and run at a random point, then
--resume: no duplicate or partial rows, and where the run is deterministic the same results as
an uninterrupted run; and a crafted pickle at every path the project reads is never executed."""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from _weights_helpers import Marker

from vidbench.checkpoint import load_checkpoint
from vidbench.cli import main
from vidbench.data import make_dataset

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = ["--model-arg", "depth=1", "--model-arg", "embed_dim=48", "--model-arg", "num_heads=2"]
SSL = ["--img-size", "16", "--patch-size", "8", "--depth", "1", "--embed-dim", "32", "--num-heads", "2",
       "--batch-size", "8", "--frames", "2", "--knn-k", "3", "--proj-dim", "16", "--proj-hidden", "32"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "syn", ["red_disc", "green_square"], videos_per_class=8)


def _rows(path: Path) -> int:
    """Complete data rows of a CSV being written (0 while it does not exist)."""
    if not path.exists():
        return 0
    text = path.read_text()
    return max(0, text.count("\n") - 1)


def kill_at_random_point(argv, progress: Path, seed: int, max_rows: int = 1, timeout: float = 120) -> bool:
    """Start `vidbench argv` in a process of its own, wait until `progress` has a random 1 to
    `max_rows` rows, wait a random 0-0.1 s more (anywhere inside the next row's work, its writes
    included), then SIGKILL it. Returns whether it was killed (not finished): pick `max_rows`
    below the run's row count so it is, whatever the machine's speed."""
    rng = random.Random(seed)
    rows = rng.randint(1, max_rows)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VIDBENCH_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "import torch, sys; torch.set_num_threads(1); "
                             "from vidbench.cli import main; sys.exit(main(sys.argv[1:]))", *argv],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and _rows(progress) < rows and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.1))
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return killed


@pytest.mark.parametrize("seed", [0, 1])
def test_train_killed_then_resumed_equals_an_uninterrupted_run(data, tmp_path, seed):
    args = ["train", "--model", "vit_frameavg_tiny", "--data", str(data), "--epochs", "12", "--batch-size", "4",
            "--workers", "0", "--no-progress", *SMALL]
    assert main(args + ["--out", str(tmp_path / "straight")]) == 0
    out = tmp_path / "killed"
    assert kill_at_random_point(args + ["--out", str(out)], out / "train.csv", seed, max_rows=8)
    assert main(args + ["--out", str(out), "--resume"]) == 0
    assert list(pd.read_csv(out / "train.csv")["epoch"]) == list(range(1, 13))
    a, _ = load_checkpoint(tmp_path / "straight" / "checkpoint.safetensors")
    b, extra = load_checkpoint(out / "checkpoint.safetensors")
    assert extra["epoch"] == 12
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(pa, pb, atol=1e-5, rtol=0, msg=name)
    assert not list(out.glob("*.tmp"))


def test_bench_killed_then_resumed_has_every_row_once(tmp_path):
    out = tmp_path / "bench"
    args = ["bench", "--models", "vit_tiny,timesformer_tiny,vivit_m1_tiny,mvit_tiny", "--mode", "infer", "--iters", "2",
            "--warmup", "0", "--no-isolate", "--no-progress", "--out", str(out)]
    assert kill_at_random_point(args, out / "bench.csv", seed=2, max_rows=2)
    assert main(args + ["--resume"]) == 0
    rows = pd.read_csv(out / "bench.csv")
    assert sorted(rows["model"]) == ["mvit_tiny", "timesformer_tiny", "vit_tiny", "vivit_m1_tiny"]
    assert (rows["status"] == "ok").all()


def test_pretrain_killed_then_resumed_logs_each_epoch_once(data, tmp_path):
    out = tmp_path / "ssl"
    args = ["pretrain", "--method", "byol", "--data", str(data), "--epochs", "4", "--no-eval", "--no-progress", *SSL,
            "--out", str(out)]
    assert kill_at_random_point(args, out / "ssl_log.csv", seed=3, max_rows=2)
    assert main(args + ["--resume"]) == 0
    assert list(pd.read_csv(out / "ssl_log.csv")["epoch"]) == [1, 2, 3, 4]
    rows = pd.read_csv(out / "ssl.csv")
    assert list(rows["status"]) == ["ok"] and rows.iloc[0]["epochs"] == 4


def test_suite_killed_then_resumed_runs_every_stage_once(data, tmp_path):
    suite = tmp_path / "tiny.toml"
    suite.write_text(f'device = "cpu"\nreport = false\n[dataset]\npath = "{data}"\n'
                     '[bench]\nmodels = ["vit_tiny", "timesformer_tiny"]\nmode = ["infer"]\nwarmup = 0\niters = 2\n'
                     '[train]\nmodels = ["vit_frameavg_tiny"]\nepochs = 2\nbatch_size = 4\neval_views = "1x1"\n'
                     'num_workers = 0\nmodel_kwargs = { depth = 1, embed_dim = 48, num_heads = 2 }\n')
    out = tmp_path / "run"
    args = ["run", "--suite", str(suite), "--out", str(out), "--no-progress"]
    assert kill_at_random_point(args, out / "stages.csv", seed=4)
    assert main(args + ["--resume"]) == 0
    stages = pd.read_csv(out / "stages.csv")
    ok = stages[stages["status"] == "ok"]
    assert sorted(ok["stage"]) == ["bench", "dataset", "train:vit_frameavg_tiny"] and not ok["stage"].duplicated().any()
    bench = pd.read_csv(out / "bench.csv")
    assert not bench.duplicated(["model", "frames", "batch_size", "mode"]).any() and len(bench) == 2
    assert len(pd.read_csv(out / "accuracy.csv")) == 1
    assert list(pd.read_csv(out / "train" / "vit_frameavg_tiny" / "train.csv")["epoch"]) == [1, 2]


@pytest.mark.parametrize("where", ["eval-checkpoint", "train-init", "eval-weights-pth", "hf-dir-bin", "ssl-eval-init",
                                   "convert-pyth"])
def test_a_crafted_pickle_is_never_executed(data, tmp_path, where, capsys):
    marker = tmp_path / "executed"
    payload = {"state_dict": {"w": torch.zeros(1)}, "x": Marker(marker)}
    if where == "hf-dir-bin":
        path = tmp_path / "hf"
        path.mkdir()
        (path / "config.json").write_text('{"model_type": "timesformer"}')
        torch.save(payload, path / "pytorch_model.bin")
    else:
        suffix = {"eval-weights-pth": ".pth", "convert-pyth": ".pyth"}.get(where, ".safetensors")
        path = tmp_path / f"evil{suffix}"
        torch.save(payload, path)
    argv = {
        "eval-checkpoint": ["eval", "--checkpoint", str(path), "--data", str(data), "--no-progress"],
        "train-init": ["train", "--model", "vivit_m1_tiny", "--data", str(data), "--out", str(tmp_path / "r"),
                       "--init", str(path), "--no-progress"],
        "eval-weights-pth": ["eval", "--weights", str(path), "--data", str(data), "--no-progress"],
        "hf-dir-bin": ["eval", "--weights", str(path), "--data", str(data), "--no-progress"],
        "ssl-eval-init": ["ssl-eval", "--init", str(path), "--data", str(data), "--out", str(tmp_path / "s"),
                          ],
        "convert-pyth": ["convert", str(path), str(tmp_path / "out.safetensors")],
    }[where]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and (path.name in err or str(path) in err), err
    assert not marker.exists()
