"""The sweep runner: a complete CSV, failures recorded as rows while the sweep goes on, resume
after an interruption (simulated, and a real SIGKILL) without duplicate rows."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from vidbench.bench import BENCH_COLUMNS, KEY_COLUMNS, SweepConfig, expand_grid, measure, resolve_models, run_sweep

ROOT = Path(__file__).resolve().parents[1]


def quick(**kw):
    base = dict(warmup=0, iters=2, threads=1, isolate=False)
    return SweepConfig(**{**base, **kw})


def keys(df):
    return [tuple(r) for r in df[list(KEY_COLUMNS)].astype(str).itertuples(index=False, name=None)]


@pytest.fixture(autouse=True)
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_patterns_and_unknown_names():
    assert resolve_models(["vivit_*_tiny", "vivit_m1_tiny"]) == [f"vivit_m{i}_tiny" for i in range(1, 5)]
    with pytest.raises(KeyError, match="vivit_m1_tiny"):
        resolve_models(["vivit_m1_tinny"])
    with pytest.raises(KeyError, match="matches no"):
        resolve_models(["nothing_*"])


def test_grid_resolves_defaults_and_collapses_frames_for_images():
    grid = expand_grid(quick(models=["vit_tiny", "vtn_tiny"], frames=[None, 8, 16], mode=["infer"]))
    assert [(r.model, r.frames, r.img_size) for r in grid] == [
        ("vit_tiny", None, 224), ("vtn_tiny", 8, 32), ("vtn_tiny", 16, 32)]
    with pytest.raises(ValueError, match="'fp64'"):
        quick(models=["vit_tiny"], precision=["fp64"])


def test_cpu_sweep_writes_a_complete_csv(tmp_path):
    cfg = quick(models=["vivit_m1_tiny", "timesformer_tiny"], frames=[8, 16], batch_size=[1])
    rows = run_sweep(cfg, tmp_path, progress=False)
    df = pd.read_csv(tmp_path / "bench.csv")
    assert len(rows) == len(df) == 2 * 2 * 2  # models x frames x (infer, train)
    assert list(df.columns) == list(BENCH_COLUMNS)
    assert (df["status"] == "ok").all() and df["error"].isna().all()
    for col in ("params", "gmacs", "clips_per_s", "step_ms_median", "peak_mem_mb", "mfu_pct", "matmul_peak_tflops"):
        assert (df[col] > 0).all(), col
    assert (df["step_ms_iqr"] >= 0).all()
    assert df["mem_method"].str.startswith("cpu_peak_rss_minus_baseline").all()
    assert len(set(keys(df))) == len(df)
    sixteen = df[(df.model == "vivit_m1_tiny") & (df.frames == 16)].gmacs.iloc[0]
    eight = df[(df.model == "vivit_m1_tiny") & (df.frames == 8)].gmacs.iloc[0]
    assert sixteen > 2 * eight  # frames reach create_model (attention is quadratic in tokens)
    env = json.loads((tmp_path / "environment.json").read_text())
    for key in ("vidbench_version", "git_commit", "torch_version", "cuda_version", "device_name", "cpu",
                "torch_threads", "date", "sweep", "matmul_peak_tflops"):
        assert key in env, key
    with pytest.raises(FileExistsError, match="resume"):
        run_sweep(cfg, tmp_path, progress=False)


def test_failures_become_rows_and_the_sweep_goes_on(tmp_path):
    def flaky(name, **kw):
        if name == "vivit_m3_tiny":
            raise RuntimeError("injected failure in the model")
        return measure(name, **kw)

    cfg = quick(models=["vivit_m1_tiny", "vivit_m3_tiny", "vivit_m4_tiny"], batch_size=[1, 10**9],
                frames=[8, 7], mode=["infer"], retry_oom=1)
    run_sweep(cfg, tmp_path, progress=False, measure_fn=flaky)
    df = pd.read_csv(tmp_path / "bench.csv")
    status = {(r.model, r.frames, r.batch_size): r.status for r in df.itertuples()}
    assert status[("vivit_m1_tiny", 8, 1)] == "ok" and status[("vivit_m4_tiny", 8, 1)] == "ok"
    assert status[("vivit_m3_tiny", 8, 1)] == "error"
    assert "injected failure" in df[df.model == "vivit_m3_tiny"].error.iloc[0]
    # an impossible batch: the allocator refuses at once; one retry at half the batch
    assert status[("vivit_m1_tiny", 8, 10**9)] == "oom" and status[("vivit_m1_tiny", 8, 5 * 10**8)] == "oom"
    retried = df[(df.model == "vivit_m1_tiny") & (df.batch_size == 5 * 10**8)]
    assert retried.retry_of.iloc[0] == 10**9
    assert "can't allocate memory" in retried.error.iloc[0]
    # 7 frames do not divide into ViViT's 2-frame tubelets: the model cannot be built
    bad = df[(df.model == "vivit_m4_tiny") & (df.frames == 7)]
    assert (bad.status == "error").all() and bad.error.str.contains("not divisible").all()
    assert len(set(keys(df))) == len(df)


def test_resume_after_an_interruption_adds_no_duplicates(tmp_path):
    cfg = quick(models=["vivit_m1_tiny", "vivit_m2_tiny"], batch_size=[1, 2], mode=["infer"])
    calls = []

    def interrupted(name, **kw):
        calls.append(name)
        if len(calls) == 3:
            raise KeyboardInterrupt  # like Ctrl-C in the middle of the third configuration
        return measure(name, **kw)

    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfg, tmp_path, progress=False, measure_fn=interrupted)
    first = pd.read_csv(tmp_path / "bench.csv")
    assert len(first) == 2
    run_sweep(cfg, tmp_path, resume=True, progress=False)
    df = pd.read_csv(tmp_path / "bench.csv")
    assert len(df) == 4 and len(set(keys(df))) == 4
    pd.testing.assert_frame_equal(df.iloc[:2], first)  # rows already written are untouched
    env = json.loads((tmp_path / "environment.json").read_text())
    assert env["skipped_as_done"] == 2 and len(env["earlier_runs"]) == 1


def test_killed_cli_run_resumes_without_duplicates(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "vidbench", "bench", "--models", "vivit_m1_tiny,vivit_m4_tiny,timesformer_tiny",
           "--batch-size", "1,2", "--mode", "infer", "--warmup", "0", "--iters", "2", "--threads", "1",
           "--no-isolate", "--no-progress", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    csv = out / "bench.csv"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if csv.exists() and len(csv.read_text().splitlines()) >= 2:  # header + one row
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = pd.read_csv(csv)
    assert 1 <= len(partial) < 6, "the kill should land mid-sweep"
    subprocess.run(cmd + ["--resume"], cwd=ROOT, check=True, capture_output=True)
    df = pd.read_csv(csv)
    assert len(df) == 6 and len(set(keys(df))) == 6 and (df.status == "ok").all()
    pd.testing.assert_frame_equal(df.iloc[:len(partial)], partial)


def test_isolated_run_measures_in_a_fresh_process(tmp_path):
    cfg = quick(models=["vivit_m1_tiny"], batch_size=[1, 10**9], mode=["infer"], isolate=True)
    run_sweep(cfg, tmp_path, progress=False)
    df = pd.read_csv(tmp_path / "bench.csv")
    ok, oom = df.iloc[0], df.iloc[1]
    assert ok.status == "ok" and ok.isolated and ok.mem_method.endswith("(fresh process)")
    assert ok.peak_mem_mb > 0 and ok.clips_per_s > 0
    assert oom.status == "oom" and "can't allocate memory" in oom.error


def test_count_mode_counts_without_running_and_keeps_the_machine_record(tmp_path):
    """--mode count (the suite's [flops] stage is this sweep): params and GMACs on the meta device,
    one row per model and input whatever the batch; a count-only resume leaves environment.json alone."""
    out = tmp_path / "b"
    rows = run_sweep(quick(models=["vivit_m1_tiny"], frames=[8, 16], batch_size=[4], mode=["infer", "count"]), out,
                     progress=False)
    df = pd.read_csv(out / "bench.csv")
    counted, measured = df[df["mode"] == "count"], df[df["mode"] == "infer"]
    assert len(rows) == 4 and len(counted) == 2 and len(measured) == 2 and (df["status"] == "ok").all()
    assert (counted["batch_size"] == 1).all() and counted["clips_per_s"].isna().all() and not counted["isolated"].any()
    # the counts are the measured rows' own (one count per model and input, shared)
    assert counted["gmacs"].tolist() == pytest.approx(measured["gmacs"].tolist(), rel=1e-4)
    assert counted["params"].tolist() == measured["params"].tolist()
    env = (out / "environment.json").read_text()
    run_sweep(quick(models=["vivit_m1_tiny"], frames=[32], mode=["count"]), out, resume=True, progress=False)
    assert (out / "environment.json").read_text() == env and len(pd.read_csv(out / "bench.csv")) == 5


def test_the_summary_prints_rows_whose_counts_came_back_as_floats():
    # a multi-process run's rows (FSDP, strong scaling) carried frames as 8.0: the summary crashed
    # after every row was written, and the run exited 1
    from vidbench.bench.summary import cell, summary

    row = {"model": "videomae_tiny", "frames": 8.0, "img_size": 32, "batch_size": 2, "precision": "fp32",
           "mode": "train", "gmacs": 0.125, "clips_per_s": 45.4, "step_ms_median": 88.0, "step_ms_iqr": 2.0,
           "peak_mem_mb": 61.0, "mfu_pct": 20.0, "status": "ok"}
    assert summary([row]).splitlines()[1].split()[:2] == ["videomae_tiny", "8"]
    assert cell(float("nan"), "d") == "-" and cell(2.5, ".1f") == "2.5"
