"""torchrun with 2 CPU processes (gloo) agrees with one process on twice the batch."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from vidbench.data import make_dataset

ROOT = Path(__file__).resolve().parents[1]


def _train_args(data, out, batch_size):
    return ["train", "--model", "vivit_m2_tiny", "--data", str(data), "--out", str(out), "--epochs", "2",
            "--batch-size", str(batch_size), "--lr", "2e-3", "--warmup-epochs", "0.5", "--workers", "0",
            "--model-arg", "depth=1", "--model-arg", "temporal_depth=1", "--model-arg", "embed_dim=48",
            "--model-arg", "num_heads=2", "--eval-views", "2x3", "--no-progress"]


def test_two_process_gloo_matches_single_process(tmp_path):
    # 12 train videos: 2 steps of 6 in one process, of 3 + 3 in two (the same clips in each step)
    data = make_dataset(tmp_path / "syn", ["red_disc", "grow", "shrink"], videos_per_class=6,
                        val_fraction=0.17, test_fraction=0.17)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "-m", "vidbench", *_train_args(data, tmp_path / "one", 6)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "vidbench", *_train_args(data, tmp_path / "two", 3)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one, two = pd.read_csv(tmp_path / "one" / "train.csv"), pd.read_csv(tmp_path / "two" / "train.csv")
    assert len(one) == len(two) == 2
    for column in ("train_loss", "train_acc", "val_top1", "val_top5"):
        assert two[column].tolist() == pytest.approx(one[column].tolist(), rel=1e-3, abs=1e-3), column
    acc_one, acc_two = pd.read_csv(tmp_path / "one" / "accuracy.csv"), pd.read_csv(tmp_path / "two" / "accuracy.csv")
    assert acc_two["world_size"].tolist() == [2] and acc_one["world_size"].tolist() == [1]
    for column in ("top1", "top5", "acc_static", "acc_temporal", "num_videos"):
        assert acc_two[column].tolist() == pytest.approx(acc_one[column].tolist(), abs=1e-6), column


EXIT = """
import atexit, sys
from vidbench.distributed import exit_process, setup_distributed

env = setup_distributed("cpu")
atexit.register(lambda: open(f"{sys.argv[1]}/atexit{env.rank}", "w").close())
print(f"rank {env.rank} done", end="")  # no newline, no flush: exit_process flushes it
exit_process(int(sys.argv[2]))
"""


def test_exit_process_runs_atexit_flushes_and_keeps_the_status(tmp_path):
    # a process that joined a group ends without finalising the interpreter (gloo's threads can abort it
    # there), yet its atexit handlers run, its output arrives and its status is the one given
    script = tmp_path / "exit.py"
    script.write_text(EXIT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script), str(tmp_path), "0"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "rank 0 done" in two.stdout and "rank 1 done" in two.stdout
    assert (tmp_path / "atexit0").exists() and (tmp_path / "atexit1").exists()
    (tmp_path / "atexit0").unlink()
    one = subprocess.run([sys.executable, str(script), str(tmp_path), "3"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)  # no group: sys.exit
    assert one.returncode == 3 and one.stdout == "rank 0 done" and (tmp_path / "atexit0").exists()
