"""Multi-node bench runs (issue 25): one machine playing two nodes, two torchrun launches meeting
at a c10d rendezvous on 127.0.0.1, write rows that record the nodes, world size, backend and
hosts; strong scaling splits the global batch; the launcher passes --nnodes / --node-rank /
--rdzv-endpoint through to torchrun."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from vidbench.bench import SweepConfig
from vidbench.bench.ddp import torchrun_argv
from vidbench.cli import main as cli_main
from vidbench.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_localhost_write_rows_with_nodes_2(tmp_path):
    port, out = _free_port(), tmp_path / "scale"  # one results folder: a cluster's shared file system
    bench = ["-m", "vidbench", "bench", "--models", "vit_tiny", "--img-size", "32", "--model-arg", "depth=1",
             "--mode", "train", "--batch-size", "4", "--scaling", "strong", "--warmup", "1", "--iters", "2",
             "--threads", "1", "--no-isolate", "--out", str(out), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(r),
                               "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint",
                               f"127.0.0.1:{port}", "--rdzv-id", "test", *bench], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    for node in nodes:
        stdout, stderr = node.communicate(timeout=300)
        assert node.returncode == 0, stderr[-3000:]
    df = pd.read_csv(out / "bench.csv")
    print(df.T.to_string())  # shown when an assertion below fails
    one, two = df.iloc[0], df.iloc[1]
    assert (df["status"] == "ok").all() and len(df) == 2
    assert (one["nproc"], one["nnodes"], one["batch_size"], one["global_batch"]) == (1, 1, 4, 4)
    # strong scaling: the global batch of 4 split over the world of 2 (one process on each of 2 nodes)
    assert (two["nproc"], two["nnodes"], two["batch_size"], two["global_batch"]) == (2, 2, 2, 4)
    assert two["scaling"] == "strong" and two["strategy"] == "ddp" and two["dist_backend"] == "gloo"
    assert two["hosts"] == f"{socket.gethostname()} x2" and "GLOO_SOCKET_IFNAME=lo" in two["net_env"]
    assert two["clips_per_s"] == pytest.approx(4 / (two["step_ms_median"] / 1e3))
    assert two["scaling_efficiency"] == pytest.approx(two["clips_per_s"] / (2 * one["clips_per_s"]))


def test_the_launcher_passes_the_machines_to_torchrun(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    argv = torchrun_argv(4, ["bench"], nnodes=2, node_rank=1, rdzv_endpoint="10.0.0.1:29500")
    assert argv[1:] == ["-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", "1", "--rdzv-backend", "c10d",
                        "--rdzv-endpoint", "10.0.0.1:29500", "--rdzv-id", "vidbench", "--nproc_per_node=4", "-m",
                        "vidbench", "bench"]
    monkeypatch.setenv("SLURM_JOB_ID", "1234")  # two jobs never meet at one endpoint
    assert "1234" in torchrun_argv(1, [], nnodes=2, rdzv_endpoint="h:1")
    assert torchrun_argv(2, ["bench"])[3] == "--standalone"
    cfg = SweepConfig(models=["vit_tiny"], mode=["train"], batch_size=[8], nproc=1, nnodes=4, node_rank=3,
                      rdzv_endpoint="head:29500", scaling="strong")
    assert cfg.world_size == 4


@pytest.mark.parametrize("args, message", [
    (["--nnodes", "2"], "give --rdzv-endpoint HOST:PORT"),
    (["--nnodes", "2", "--node-rank", "2", "--rdzv-endpoint", "h:1"], "ranked 0 to nnodes - 1 = 1"),
    (["--nnodes", "2", "--rdzv-endpoint", "nohost"], "must be HOST:PORT"),
    (["--nproc", "2", "--oversubscribe", "--batch-size", "3", "--scaling", "strong"], "do not divide by 2"),
    (["--nproc", "2", "--oversubscribe", "--batch-size", "max", "--mem-limit", "1GB", "--scaling", "strong"],
     "weak scaling, not strong"),
])
def test_bad_machine_options_are_one_line(args, message, capsys):
    with pytest.raises(ConfigError):
        SweepConfig(models=["vit_tiny"], mode=["train"], **_fields(args))
    assert cli_main(["bench", "--models", "vit_tiny", "--mode", "train", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def _fields(args):
    out, it = {}, iter(args)
    for flag in it:
        name = flag[2:].replace("-", "_")
        if name == "oversubscribe":
            out[name] = True
            continue
        value = next(it)
        out[name] = [int(value) if value.isdigit() else value] if name == "batch_size" else (
            int(value) if value.isdigit() else value)
    return out
