"""Results are never lost silently (issue 26): a short write, a full disk or a read-only --out is
one line naming the file and exit 2, what was written before stays readable, and nothing is left
half-made. Most cases use a write wrapper that returns short counts (fast, portable); the others
use a real small tmpfs, mounted where the test runs as root (CI), skipped where mounting is not
permitted."""
import errno
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch

from vidbench.cli import main
from vidbench.data import make_dataset
from vidbench.results import ResultsStore

pytestmark = pytest.mark.usefixtures("one_thread")
BENCH = ["bench", "--models", "vivit_m[34]_tiny", "--batch-size", "1", "--mode", "infer", "--warmup", "0",
         "--iters", "1", "--threads", "1", "--no-isolate", "--no-progress"]
SMALL = ["--model-arg", "depth=1", "--model-arg", "embed_dim=48", "--model-arg", "num_heads=2"]
SSL = ["--img-size", "16", "--patch-size", "8", "--depth", "1", "--embed-dim", "32", "--num-heads", "2",
       "--batch-size", "8", "--frames", "2", "--knn-k", "3", "--proj-dim", "16", "--proj-hidden", "32"]


def _one_line_error(capsys, *needles):
    err = "\n".join(line for line in capsys.readouterr().err.strip().splitlines() if "%|" not in line)  # no bars
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size, read_only=False) -> a fresh tmpfs folder of `size` bytes, unmounted after."""
    mounted = []

    def mount(size: int, read_only: bool = False) -> Path:
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        opts = f"size={size}" + (",ro" if read_only else "")
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root (CI runs as root)")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"mount not permitted here: {done.stderr.decode().strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "syn", ["red_disc", "green_square"], videos_per_class=8)


def _short_then_full(monkeypatch, target: str, after: int = 0):
    """os.write on `target`: the first `after` writes whole, then one short write (half the bytes,
    as a nearly full disk does), then ENOSPC."""
    real = os.write
    seen = {"n": 0, "short": False}

    def write(fd, data):
        if not os.readlink(f"/proc/self/fd/{fd}").endswith(target):
            return real(fd, data)
        seen["n"] += 1
        if seen["n"] <= after:
            return real(fd, data)
        if not seen["short"]:
            seen["short"] = True
            return real(fd, bytes(data)[: max(1, len(data) // 2)])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", write)


def test_a_short_write_of_a_bench_row_is_an_error_not_a_lost_row(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    # the sweep's last row is written short: nothing after it would notice (row 1 creates the file atomically)
    _short_then_full(monkeypatch, "bench.csv", after=0)
    assert main([*BENCH, "--out", str(out)]) == 2
    _one_line_error(capsys, "no space left on the device writing", str(out / "bench.csv"), "rows written before are intact")
    monkeypatch.undo()
    text = (out / "bench.csv").read_text()
    assert text.endswith("\n") and len(pd.read_csv(out / "bench.csv")) == 1  # no half row
    assert main([*BENCH, "--out", str(out), "--resume"]) == 0  # the rerun completes the table
    assert len(pd.read_csv(out / "bench.csv")) == 2


def test_the_store_writes_every_byte_of_a_short_write():
    """A short count that is not followed by an error (a signal, a pipe) is written on, not dropped."""
    import tempfile

    from vidbench.results import write_all

    real, calls = os.write, []

    def short(fd, data):
        calls.append(len(data))
        return real(fd, bytes(data)[:3])

    with tempfile.TemporaryFile() as f:
        os.write, saved = short, os.write
        try:
            write_all(f.fileno(), b"0123456789", "x")
        finally:
            os.write = saved
        f.seek(0)
        assert f.read() == b"0123456789" and calls == [10, 7, 4, 1]
    assert real is saved


def test_make_dataset_on_a_full_disk_leaves_no_half_made_dataset(tmpfs, capsys):
    disk = tmpfs(48 * 1024)  # a few videos fit
    out = disk / "syn"
    assert main(["make-dataset", "--out", str(out), "--classes", "red_disc,green_square", "--videos-per-class",
                 "40"]) == 2
    _one_line_error(capsys, "no space left on the device writing", str(out))
    assert list(disk.iterdir()) == []  # no partial videos, no temporary folder
    # the mount point itself as --out (an empty folder that cannot be renamed): full, then with room
    assert main(["make-dataset", "--out", str(disk), "--classes", "red_disc,green_square", "--videos-per-class",
                 "40"]) == 2
    assert list(disk.iterdir()) == []
    roomy = tmpfs(4 * 2**20)
    assert main(["make-dataset", "--out", str(roomy), "--classes", "red_disc", "--videos-per-class", "4"]) == 0
    assert (roomy / "dataset.json").exists() and len(list((roomy / "videos" / "red_disc").iterdir())) == 4


def test_train_on_a_full_disk_is_one_line_and_no_row_without_its_checkpoint(data, tmpfs, capsys):
    disk = tmpfs(48 * 1024)
    out = disk / "run"
    assert main(["train", "--model", "vit_frameavg_tiny", "--data", str(data), "--out", str(out), "--epochs", "1",
                 "--batch-size", "4", "--workers", "0", "--no-progress", *SMALL]) == 2
    _one_line_error(capsys, "no space left on the device writing", str(out))
    assert not (out / "train.csv").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


READ_ONLY_CASES = {
    "bench": lambda d, o: [*BENCH, "--out", str(o)],
    "train": lambda d, o: ["train", "--model", "vit_frameavg_tiny", "--data", str(d), "--out", str(o), "--epochs", "1",
                           "--batch-size", "4", "--workers", "0", "--no-progress", *SMALL],
    "pretrain": lambda d, o: ["pretrain", "--method", "simclr", "--data", str(d), "--out", str(o), "--epochs", "1",
                              "--no-progress", *SSL],
    "make-dataset": lambda d, o: ["make-dataset", "--out", str(o), "--classes", "red_disc", "--videos-per-class", "4"],
    "extract-frames": lambda d, o: ["extract-frames", "--data", str(d), "--out", str(o)],
    "report": lambda d, o: ["report", str(d), "--out", str(o)],
    "convert": lambda d, o: ["convert", str(d), str(o / "converted.safetensors")],
}


@pytest.mark.parametrize("command", sorted(READ_ONLY_CASES))
def test_a_read_only_out_is_one_line(command, data, tmpfs, tmp_path, capsys):
    disk = tmpfs(64 * 1024, read_only=True)
    if command == "report":  # a results directory to report on
        src = tmp_path / "results"
        ResultsStore(src).append("bench", {"model": "vit_tiny", "frames": 8, "img_size": 224, "status": "ok"})
        argv = READ_ONLY_CASES[command](src, disk / "out")
    elif command == "convert":  # a checkpoint to convert
        from vidbench.checkpoint import save_checkpoint
        from vidbench.models import create_model

        src = save_checkpoint(create_model("vit_frameavg_tiny", num_classes=2, depth=1), tmp_path / "src.safetensors")
        argv = READ_ONLY_CASES[command](src, disk / "out")
    else:
        argv = READ_ONLY_CASES[command](data, disk / "out")
    assert main(argv) == 2
    _one_line_error(capsys, "read-only file system", str(disk / "out"))


def test_checkpoint_and_state_writes_name_the_file_and_leave_no_tmp(tmpfs, capsys):
    from vidbench.checkpoint import save_checkpoint
    from vidbench.models import create_model
    from vidbench.results import OutputError

    disk = tmpfs(32 * 1024)
    model = create_model("vit_frameavg_tiny", num_classes=2)
    with pytest.raises(OutputError, match=f"no space left on the device writing {disk / 'c.safetensors'}"):
        save_checkpoint(model, disk / "c.safetensors")
    assert list(disk.iterdir()) == []
    assert torch.isfinite(next(model.parameters())).all()
