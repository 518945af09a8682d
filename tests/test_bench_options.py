"""The measurement options of `vidbench bench` (issue: measurement at scale): attention backends,
per-phase detail, activation checkpointing, compile modes, the largest batch under a memory
limit, multi-process (gloo) training rows, and the noise flag of the report."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from vidbench import create_model, list_models
from vidbench.bench import SweepConfig, measure, run_sweep
from vidbench.cli import main as cli_main
from vidbench.errors import ConfigError
from vidbench.layers import attn_backend

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(img_size=32, depth=2)  # vit_tiny cut down: a row in well under a second


def test_every_backend_gives_the_same_logits_on_masked_and_factorised_models():
    # Swin (float bias: relative positions + shift mask), VTN (boolean band mask), TimeSformer (space / time axes)
    for name in ("swin3d_tiny", "vtn_tiny", "timesformer_tiny", "mvit_tiny"):
        torch.manual_seed(0)
        model = create_model(name).eval()
        x = torch.randn(1, *model.input_size)
        with torch.no_grad():
            ref = model(x)
            for backend in ("math", "reference", "flex"):
                with attn_backend(backend):
                    assert (model(x) - ref).abs().max().item() < 1e-5, (name, backend)


def test_backend_axis_records_the_kernels_run_and_an_impossible_backend_is_an_error_row(tmp_path):
    cfg = SweepConfig(models=["vit_tiny"], mode=["infer"], attn_backend=["auto", "math", "reference", "cudnn"],
                      warmup=1, iters=1, isolate=False, model_kwargs=SMALL)
    rows = {r["attn_backend"]: r for r in run_sweep(cfg, tmp_path, progress=False)}
    assert list(rows) == ["auto", "math", "reference", "cudnn"]  # the sweep went on past the failing backend
    assert rows["math"]["attn_kernels"] == "math x2"
    assert rows["reference"]["attn_kernels"] == "reference x2"
    assert rows["auto"]["status"] == "ok" and rows["auto"]["attn_kernels"].endswith("x2")
    assert rows["cudnn"]["status"] == "error"
    assert "attention backend 'cudnn' cannot run vit_tiny on cpu" in rows["cudnn"]["error"]
    csv = pd.read_csv(tmp_path / "bench.csv")
    assert csv["attn_backend"].tolist() == ["auto", "math", "reference", "cudnn"]


def test_detail_phases_sum_to_the_step():
    torch.manual_seed(0)
    # 64 px: steps of tens of ms, so that timer and scheduler noise stays small beside them
    row = measure("vit_tiny", mode="train", batch_size=4, warmup=2, iters=7, detail=True, **{**SMALL, "img_size": 64})
    phases = [row["forward_ms"], row["backward_ms"], row["optimizer_ms"]]
    assert all(p > 0 for p in phases)
    assert 0.6 < sum(phases) / row["step_ms_median"] < 1.5  # the same step cut in three, timed separately
    assert all(row[f"{p}_peak_mem_mb"] is not None for p in ("forward", "backward", "optimizer"))
    infer = measure("vit_tiny", mode="infer", batch_size=2, warmup=1, iters=2, detail=True, **SMALL)
    assert infer["forward_ms"] > 0 and infer["backward_ms"] is None


def test_grad_checkpointing_keeps_outputs_and_gradients_of_every_model():
    for name in list_models("*tiny"):
        torch.manual_seed(0)
        model = create_model(name).train()
        x = torch.randn(2, *model.input_size)
        torch.manual_seed(1)
        model(x).pow(2).mean().backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        model.zero_grad()
        model.set_grad_checkpointing(True)
        assert model.checkpoint_blocks(), name
        torch.manual_seed(1)  # dropout / drop path draw the same masks when recomputed
        model(x).pow(2).mean().backward()
        for k, p in model.named_parameters():
            if p.grad is not None:
                assert torch.allclose(p.grad, grads[k], atol=1e-6), (name, k)
        assert set(model.state_dict()) == set(create_model(name).state_dict())


def test_grad_checkpointing_lowers_the_peak_memory_of_a_training_step(tmp_path):
    cfg = SweepConfig(models=["timesformer_tiny"], frames=[16], img_size=[64], batch_size=[4], mode=["train"],
                      grad_checkpointing=["off", "on"], warmup=1, iters=1)  # fresh process per row
    off, on = run_sweep(cfg, tmp_path, progress=False)
    assert (off["grad_checkpointing"], on["grad_checkpointing"]) == (False, True)
    assert off["status"] == on["status"] == "ok"
    assert on["peak_mem_mb"] < off["peak_mem_mb"] - 40, (on["peak_mem_mb"], off["peak_mem_mb"])


def test_infer_rows_ignore_checkpointing():
    from vidbench.bench import expand_grid

    cfg = SweepConfig(models=["vit_tiny"], grad_checkpointing=["off", "on"])
    rows = expand_grid(cfg)
    assert [(r.mode, r.grad_checkpointing) for r in rows] == [("infer", False), ("train", False), ("train", True)]


def test_compile_mode_is_recorded_with_its_compile_time():
    row = measure("vit_tiny", mode="infer", batch_size=2, warmup=1, iters=2, compile="default", **{**SMALL, "depth": 1})
    assert row["compile"] == "default"
    assert row["compile_s"] > 0.5  # compilation is in the first step, not in the timed ones
    assert row["compile_s"] > 10 * row["step_ms_median"] / 1e3


def test_compile_flag_takes_a_mode_and_bare_means_default():
    from vidbench.cli import build_parser
    from vidbench.cli._options import config_from_args

    parse = build_parser().parse_args
    assert config_from_args(SweepConfig, parse(["bench", "--models", "vit_tiny", "--compile"])).compile == "default"
    assert config_from_args(SweepConfig, parse(["bench", "--models", "vit_tiny", "--compile",
                                                "max-autotune"])).compile == "max-autotune"
    assert SweepConfig(models=["vit_tiny"], compile=True).compile == "default"  # older suites: compile = true
    with pytest.raises(SystemExit):
        parse(["bench", "--models", "vit_tiny", "--compile", "fastest"])


def _worker_baseline_mb() -> float:
    """The resident memory of a fresh worker process before it builds anything."""
    code = "import vidbench.bench.worker as w; from vidbench.bench.memory import current_rss_bytes as r; print(r())"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    return int(out.stdout.strip().splitlines()[-1]) / 2**20


def test_batch_size_max_finds_the_largest_batch_under_the_limit(tmp_path):
    # each try is a fresh process whose whole peak RSS the limit caps: the limit leaves 330 MiB above an
    # imported torch, about 4 clips of a vit_tiny training step at 224 px (measured here: 324 MiB; 5 do not
    # fit); the cap of 6 stops the doubling at 4, so the search ends after the tries 1, 2, 4, 5
    limit_mb = _worker_baseline_mb() + 330
    cfg = SweepConfig(models=["vit_tiny"], batch_size=["max"], mode=["train"], mem_limit=f"{limit_mb:.0f}MiB",
                      max_batch_cap=6, warmup=1, iters=1)
    (row,) = run_sweep(cfg, tmp_path, progress=False)
    assert row["status"] == "ok", row
    assert row["batch_search"] == "max" and 1 < row["batch_size"] < 6
    assert row["process_peak_mb"] <= round(limit_mb) and row["mem_limit_mb"] == pytest.approx(round(limit_mb))
    tries = dict(t.split(" ", 1) for t in row["batch_tries"].split(", ") if "measured" not in t)
    assert tries[str(row["batch_size"])] == "ok"
    assert tries[str(row["batch_size"] + 1)] == "oom" or tries.get(str(2 * row["batch_size"])) == "oom"
    assert pd.read_csv(tmp_path / "bench.csv")["batch_size"].tolist() == [row["batch_size"]]
    # resuming keys the row on "max", not on the batch it found
    assert run_sweep(cfg, tmp_path, resume=True, progress=False) == []


def test_batch_size_max_under_a_limit_below_the_process_is_an_oom_row(tmp_path):
    cfg = SweepConfig(models=["vit_tiny"], batch_size=["max"], mode=["infer"], mem_limit="200MB", warmup=1, iters=1,
                      model_kwargs=SMALL)
    (row,) = run_sweep(cfg, tmp_path, progress=False)
    assert row["status"] == "oom" and "batch 1 does not fit" in row["error"] and "200 MiB" not in row["error"]
    assert row["batch_tries"] == "1 oom"


def test_batch_size_max_on_cpu_needs_a_memory_limit(capsys):
    with pytest.raises(ConfigError, match="--mem-limit"):
        SweepConfig(models=["vit_tiny"], batch_size=["max"])
    assert cli_main(["bench", "--models", "vit_tiny", "--batch-size", "max", "--mem-limit", "4 parsecs"]) == 2
    assert "bad memory size '4 parsecs'" in capsys.readouterr().err


def test_two_gloo_processes_write_scaling_rows(tmp_path, monkeypatch):
    # the Python API (what a suite's [bench] nproc = 2 runs) launches torchrun itself
    monkeypatch.chdir(ROOT)
    out = tmp_path / "ddp"
    cfg = SweepConfig(models=["vit_tiny"], img_size=[32], model_kwargs={"depth": 2}, mode=["train"], batch_size=[2],
                      nproc=2, warmup=1, iters=3)
    rows = run_sweep(cfg, out, progress=False)
    df = pd.read_csv(out / "bench.csv")
    print(df.to_string())  # shown when an assertion below fails
    assert [r["nproc"] for r in rows] == [1, 2]
    assert df["nproc"].tolist() == [1, 2] and (df["status"] == "ok").all()
    # depth=2 is not vit_tiny's architecture: the rows name what was measured, and what it was built from
    assert df["model"].tolist() == ["vit(depth=2)"] * 2 and df["arch"].tolist() == ["vit_tiny"] * 2
    one, two = df.iloc[0], df.iloc[1]
    assert two["dist_backend"] == "gloo" and one["threads"] == two["threads"]
    assert two["clips_per_s"] == pytest.approx(2 * two["clips_per_s_per_process"])
    assert two["scaling_efficiency"] == pytest.approx(two["clips_per_s"] / (2 * one["clips_per_s"]))
    # the command: a second run into the same directory is refused in one line; a resumed one has nothing to do
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "vidbench", "bench", "--models", "vit_tiny", "--img-size", "32", "--model-arg",
            "depth=2", "--mode", "train", "--batch-size", "2", "--nproc", "2", "--out", str(out), "--no-progress"]
    again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "already has 2 rows" in again.stderr and "Traceback" not in again.stderr
    resumed = subprocess.run([*args, "--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert len(pd.read_csv(out / "bench.csv")) == 2


def test_report_flags_noisy_rows_and_shows_each_option_table(tmp_path):
    from vidbench.bench.sweep import BENCH_COLUMNS
    from vidbench.report import write_report

    base = {c: None for c in BENCH_COLUMNS}
    base.update(model="vit_tiny", params=5e6, gmacs=1.0, img_size=224, batch_size=1, precision="fp32", device="cpu",
                mode="train", compile="off", attn_backend="auto", grad_checkpointing=False, nproc=1, clips_per_s=10.0,
                step_ms_median=100.0, step_ms_iqr=2.0, peak_mem_mb=100.0, status="ok", threads=2)
    rows = [base,
            {**base, "attn_backend": "math", "step_ms_median": 120.0, "step_ms_iqr": 30.0, "clips_per_s": 8.3},
            {**base, "grad_checkpointing": True, "step_ms_median": 130.0, "peak_mem_mb": 60.0}]
    pd.DataFrame(rows).to_csv(tmp_path / "bench.csv", index=False)
    md, _ = write_report([tmp_path])
    text = md.read_text()
    assert "### Attention backends" in text and "### Activation checkpointing" in text
    noisy = text.split("### Noisy rows", 1)[1]
    assert "|   120 |" in noisy.replace("120.0", "120") or "120" in noisy
    assert noisy.count("vit_tiny") == 1  # only the math row: 30 / 120 = 25% > 10%
