"""measure() and its parts: step functions, timing statistics, peak memory (measured, not
estimated), the matmul peak and the MFU arithmetic."""
import pytest
import torch

import vidbench.bench.throughput as throughput
from vidbench.bench import PeakMemory, Timing, count_flops, make_step, matmul_peak_flops, measure, time_steps
from vidbench.bench.memory import current_rss_bytes
from vidbench.models import create_model

MIB = 2**20


pytestmark = pytest.mark.usefixtures("one_thread")


def test_timing_statistics():
    t = Timing([0.005, 0.001, 0.004, 0.002, 0.003])
    assert t.median_s == 0.003
    assert t.iqr_s == pytest.approx(0.002)  # q75 0.004 - q25 0.002
    assert Timing([0.1]).iqr_s == 0.0


def test_time_steps_times_each_step_alone_after_untimed_warmup(monkeypatch):
    """On a fake clock that only the steps move: each timed step is its own duration (warm-up
    excluded, the clock restarted per step), and the device is synchronised right before each
    clock start and stop."""
    clock, events = [0.0], []
    durations = iter([100.0, 100.0, 1.0, 2.0, 3.0, 4.0, 5.0])  # two warm-up steps, then five timed

    def step():
        clock[0] += next(durations)
        events.append("step")

    def perf_counter():
        events.append("clock")
        return clock[0]

    monkeypatch.setattr(throughput.time, "perf_counter", perf_counter)
    monkeypatch.setattr(throughput, "synchronize", lambda device: events.append("sync"))
    timing = time_steps(step, torch.device("cpu"), warmup=2, iters=5)
    assert timing.times_s == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert events == ["step", "step"] + ["sync", "clock", "step", "sync", "clock"] * 5
    assert (timing.median_s, timing.iqr_s) == (3.0, 2.0)
    with pytest.raises(ValueError, match="iters"):
        time_steps(lambda: None, torch.device("cpu"), iters=0)


def test_train_step_updates_weights_and_infer_step_does_not():
    model = create_model("vivit_m1_tiny")
    x = torch.randn(2, *model.input_size)
    before = model.head.weight.detach().clone()
    make_step(model, x, "infer")()
    assert torch.equal(model.head.weight, before)
    make_step(model, x, "train")()
    assert not torch.equal(model.head.weight, before)
    assert model.training


@pytest.mark.parametrize("precision,dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_autocast_steps_compute_in_the_precision(precision, dtype):
    """Both steps run the layers in the precision's dtype under autocast (fp32 weights kept);
    the bf16 train step updates the weights, the fp16 one goes through a GradScaler, whose first
    steps at scale 2**16 overflow and are skipped, leaving the weights finite and unchanged."""
    model = create_model("timesformer_tiny")
    x = torch.randn(1, *model.input_size)
    seen = []
    model.head.register_forward_hook(lambda module, inputs, out: seen.append(out.dtype))
    make_step(model, x, "infer", precision)()
    before = model.head.weight.detach().clone()
    make_step(model, x, "train", precision)()
    assert seen == [dtype, dtype]
    assert model.head.weight.dtype == torch.float32 and torch.isfinite(model.head.weight).all()
    assert torch.equal(model.head.weight, before) == (precision == "fp16")


def test_bad_mode_and_precision_are_named():
    model = create_model("vivit_m1_tiny")
    x = torch.randn(1, *model.input_size)
    with pytest.raises(ValueError, match="'eval'"):
        make_step(model, x, "eval")
    with pytest.raises(ValueError, match="'fp8'"):
        measure("vivit_m1_tiny", precision="fp8")
    with pytest.raises(ValueError, match="batch size"):
        measure("vivit_m1_tiny", input_shape=(0, 3, 8, 32, 32))


def test_cpu_peak_memory_is_measured():
    """A 256 MiB tensor made and freed inside the context shows up; garbage from before does not."""
    junk = torch.ones(64 * MIB // 4)  # 64 MiB touched before: must not count
    del junk
    with PeakMemory(torch.device("cpu")) as big:
        t = torch.ones(256 * MIB // 4)
        del t
    with PeakMemory(torch.device("cpu")) as small:
        torch.ones(1024)
    assert big.result.method.startswith("cpu_peak_rss_minus_baseline")
    assert 240 <= big.result.peak_mb < 400
    assert small.result.peak_mb < 32
    assert current_rss_bytes() > 0


def test_matmul_peak_is_the_fastest_product(monkeypatch):
    """2 n^3 FLOPs over the fastest of the timed products (a fake clock: 0.5 s, then 0.25 s)."""
    ticks = iter([0.0, 0.0, 0.5, 1.0, 1.25, 1.25])  # the window's start, two products, the window's check
    monkeypatch.setattr(throughput.time, "perf_counter", lambda: next(ticks))
    assert matmul_peak_flops(torch.device("cpu"), "fp32", size=64, reps=2, window_s=1.0) == 2 * 64**3 / 0.25


def test_matmul_peak_is_the_best_over_its_window(monkeypatch):
    """A pass in a slow moment (stolen CPU time on a shared VM) does not set the peak: passes repeat
    until the window is over (fake clock: a first pass at 1 s per product, a second at 0.25 s)."""
    ticks = iter([0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.25, 2.25, 2.5, 2.5, 3.0])
    monkeypatch.setattr(throughput.time, "perf_counter", lambda: next(ticks))
    assert matmul_peak_flops(torch.device("cpu"), "fp32", size=64, reps=2, window_s=2.5) == 2 * 64**3 / 0.25


def test_matmul_peak_on_this_cpu_is_plausible():
    # a 2-core CPU does about 1e11 FLOP/s in fp32; 1e8 would be a 256^3 product taking 0.3 s
    assert 1e8 < matmul_peak_flops(torch.device("cpu"), "fp32", size=256, reps=2) < 1e15


@pytest.mark.parametrize("mode", ["infer", "train"])
def test_measure_row(mode):
    row = measure("vivit_m2_tiny", mode=mode, batch_size=2, warmup=1, iters=3, peak_flops=1e12)
    assert row["gmacs"] == count_flops("vivit_m2_tiny").gmacs
    assert row["params"] == sum(p.numel() for p in create_model("vivit_m2_tiny").parameters())
    assert row["batch_size"] == 2 and row["input_shape"] == "2x3x8x32x32" and row["mode"] == mode
    assert row["step_ms_median"] > 0 and row["step_ms_iqr"] >= 0
    assert row["clips_per_s"] == pytest.approx(2 / (row["step_ms_median"] / 1e3))
    factor = 3 if mode == "train" else 1
    assert row["flop_factor"] == factor
    achieved = factor * 2 * row["gmacs"] * 1e9 * row["clips_per_s"]
    assert row["mfu_pct"] == pytest.approx(100 * achieved / 1e12)
    assert row["peak_mem_mb"] > 0 and row["mem_method"].startswith("cpu_peak_rss_minus_baseline")


def test_measure_a_module_with_overrides_applied_by_the_caller():
    model = create_model("vivit_m1_tiny", num_frames=16)
    row = measure(model, (1, 3, 16, 32, 32), warmup=0, iters=1, memory=False)
    assert row["gmacs"] == pytest.approx(count_flops("vivit_m1_tiny", num_frames=16).gmacs)
    assert row["mem_method"] == "off" and row["peak_mem_mb"] is None
    assert row["matmul_peak_tflops"] > 0


FRESH_BASELINE = """
import importlib, json, sys
m = importlib.import_module("vidbench.bench.measure")  # the module (vidbench.bench.measure is also the function)
seen = {}
rss = m.current_rss_bytes
m.current_rss_bytes = lambda: seen.setdefault("modules", set(sys.modules)) and rss()
row = m.measure("vit_tiny", mode="infer", batch_size=1, warmup=1, iters=1, gmacs=1.0, peak_flops=1e12)
print(json.dumps({"after": sorted(set(sys.modules) - seen["modules"]), "peak": row["peak_mem_mb"],
                  "params": row["params"]}))
"""


def test_a_fresh_bench_process_loads_its_libraries_before_the_memory_baseline():
    """A CPU row's peak is RSS above a baseline taken before the weights exist. torch imports
    torch._dynamo (inductor, sympy, triton: ~145 MiB) on the first conv under the dispatch mode
    that names the attention kernels, after that baseline: vit_base inference read 519 MiB with it
    counted, 360 without. The runtime is warmed and the model's modules imported first."""
    import json
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", FRESH_BASELINE], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    heavy = [name for name in out["after"] if name.split(".")[0] in ("sympy", "triton", "numpy")
             or name.startswith(("torch._dynamo", "torch._inductor", "vidbench"))]
    assert heavy == [], heavy
    weights = out["params"] * 4 / MIB
    assert weights <= out["peak"] < weights + 24  # the weights, a batch-1 vit_tiny forward, the RSS's page slack
