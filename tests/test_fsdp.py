"""`vidbench bench --strategy fsdp` (issue 25): FSDP2 training rows on 2 gloo processes beside the
DDP rows of the same model, with what each process holds counted from the tensors: the sharded
parameters and AdamW state are half the replicated ones; `--batch-size max` searches the largest
batch per process with every process taking each try."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from vidbench.bench import SweepConfig, run_sweep
from vidbench.cli import main as cli_main
from vidbench.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
TINY = {"depth": 2}  # vit_tiny at 32 px, two blocks: a step in a few ms


def test_fsdp_rows_hold_half_the_state_of_ddp_rows(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "scale"
    cfg = SweepConfig(models=["vit_tiny"], img_size=[32], model_kwargs=TINY, mode=["train"], batch_size=[2], nproc=2,
                      strategy=["ddp", "fsdp"], precision=["bf16"], grad_checkpointing=["on"], warmup=1, iters=2,
                      threads=1, isolate=False)
    run_sweep(cfg, out, progress=False)
    df = pd.read_csv(out / "bench.csv")
    print(df.T.to_string())  # shown when an assertion below fails
    assert (df["status"] == "ok").all()
    one, ddp, fsdp = (df[df["strategy"].fillna("") == s].iloc[0] for s in ("", "ddp", "fsdp"))
    assert one["nproc"] == 1 and ddp["nproc"] == fsdp["nproc"] == 2
    for row in (ddp, fsdp):  # weak scaling: each process holds the row's batch
        assert row["scaling"] == "weak" and row["batch_size"] == 2 and row["global_batch"] == 4
        assert row["nnodes"] == 1 and row["dist_backend"] == "gloo" and row["hosts"].endswith(" x2")
        assert row["clips_per_s"] == pytest.approx(2 * row["clips_per_s_per_process"])
        assert row["scaling_efficiency"] == pytest.approx(row["clips_per_s"] / (2 * one["clips_per_s"]))
        assert bool(row["grad_checkpointing"]) and row["precision"] == "bf16"
    # replicated: every parameter, its gradient and two AdamW moments, in fp32, on every process
    assert ddp["param_mb"] == pytest.approx(ddp["params"] * 4 / 2**20)
    assert ddp["grad_mb"] == pytest.approx(ddp["param_mb"])
    assert ddp["optimizer_state_mb"] == pytest.approx(2 * ddp["param_mb"], rel=1e-3)
    # sharded over 2 processes: about half of each on the larger process (dim-0 shards, uneven for small tensors)
    state = lambda r: r["param_mb"] + r["grad_mb"] + r["optimizer_state_mb"]  # noqa: E731
    assert 0.5 <= state(fsdp) / state(ddp) < 0.52
    assert 0.5 <= fsdp["param_mb"] / ddp["param_mb"] < 0.52


def test_fsdp_needs_processes_and_says_so(capsys):
    with pytest.raises(ConfigError, match="strategy fsdp shards the model over processes"):
        SweepConfig(models=["vit_tiny"], mode=["train"], strategy=["fsdp"])
    assert cli_main(["bench", "--models", "vit_tiny", "--mode", "train", "--strategy", "fsdp"]) == 2
    err = capsys.readouterr().err.strip()
    assert "give --nproc N" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit):  # argparse names the choices
        cli_main(["bench", "--models", "vit_tiny", "--mode", "train", "--strategy", "fsdp,zero"])
    assert "invalid choice 'zero' (choose from ddp, fsdp)" in capsys.readouterr().err


SEARCH = textwrap.dedent("""
    import json, sys
    import torch.distributed as dist
    from vidbench.bench.ddp import _measure_multi, scaling_points
    from vidbench.bench.grid import SweepConfig
    from vidbench.distributed import exit_process, setup_distributed

    env = setup_distributed("cpu")
    found = {}
    for limit in ("8GB", "100MB"):  # every try fits / the processes alone are above the limit
        cfg = SweepConfig(models=["vit_tiny"], img_size=[32], model_kwargs={"depth": 2}, mode=["train"],
                          batch_size=["max"], nproc=2, strategy=["fsdp"], mem_limit=limit, max_batch_cap=4,
                          warmup=1, iters=1, threads=1)
        (_, (point,)), = scaling_points(cfg)
        found[limit] = _measure_multi(point, cfg, env.device, None)
    # MViT under bf16: its pooled attention's norms meet bf16 weights (autocast on top of them was refused on CPU)
    from vidbench.bench import measure
    row = measure("mvit_tiny", mode="train", precision="bf16", batch_size=1, warmup=1, iters=1, distributed=True,
                  strategy="fsdp", device=env.device)
    found["mvit"] = {k: row[k] for k in ("params", "param_mb", "strategy", "precision")}
    # what the forward saves for backward (activation_mb) is the same sharded or not: FSDP frees each
    # block's gathered parameters after its forward, and activations allocated at their addresses count too
    import torch
    from vidbench import create_model
    from vidbench.bench.fsdp import saved_tensor_bytes, shard_model
    found["saved"] = []
    for shard in (False, True):
        torch.manual_seed(0)
        net = create_model("videomae_tiny", num_classes=10).train()
        net = shard_model(net) if shard else net
        clip = torch.randn(2, *net.input_size)
        found["saved"].append(saved_tensor_bytes(lambda: net(clip), net))
    if env.rank == 0:
        print("RESULT " + json.dumps(found))
    dist.barrier()
    exit_process(0)  # not the interpreter's finalisation, where gloo's threads can abort a finished run
""")


def test_batch_size_max_under_fsdp_searches_the_batch_per_process_and_mvit_trains_in_bf16(tmp_path):
    """Also: FSDP's activation count equals the unsharded model's."""
    script = tmp_path / "search.py"
    script.write_text(SEARCH)
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    import json

    found = json.loads(next(line for line in run.stdout.splitlines() if line.startswith("RESULT "))[7:])
    fits, none = found["8GB"], found["100MB"]
    assert fits["status"] == "ok" and fits["found_batch_size"] == 4 and fits["strategy"] == "fsdp"
    assert fits["batch_tries"] == "1 ok, 2 ok, 4 ok, 4 ok (measured)"
    assert none["status"] == "oom" and none["batch_tries"] == "1 oom" and "batch 1 does not fit" in none["error"]
    mvit = found["mvit"]
    assert mvit["strategy"] == "fsdp" and mvit["precision"] == "bf16"
    assert 0.5 <= mvit["param_mb"] / (mvit["params"] * 4 / 2**20) < 0.55  # fp32 shards, half each
    replicated, sharded = found["saved"]
    assert sharded == replicated > 2**20  # was 5.03 of 6.51 MB sharded (counted by address)
