"""`vidbench bench --detail` times forward, backward and optimizer inside the timed steps (a
timestamp after each phase, as timm's --detail), so the phases add up to the step; every bench row
says where it ran (versions, CPU, GPU) (issue 25)."""
import pytest
import torch

from vidbench.bench import SweepConfig, measure, run_sweep, throughput
from vidbench.bench.throughput import Timing, time_steps
from vidbench.results import MACHINE_COLUMNS, cpu_name

SMALL = dict(img_size=64, depth=2)  # vit_tiny cut down: steps of tens of ms


def test_phases_are_timed_inside_each_timed_step(monkeypatch):
    """On a fake clock only the phases move: each timed step is its phases back to back, the
    device synchronised before every timestamp, and a step is the sum of its phases."""
    clock, events = [0.0], []
    costs = {"forward": iter([9.0, 1.0, 2.0, 3.0]), "backward": iter([9.0, 2.0, 4.0, 6.0]),
             "optimizer": iter([9.0, 0.5, 0.5, 0.5])}

    def phase(name):
        def run():
            clock[0] += next(costs[name])
            events.append(name)
        return name, run

    phases = [phase("forward"), phase("backward"), phase("optimizer")]
    monkeypatch.setattr(throughput.time, "perf_counter", lambda: events.append("clock") or clock[0])
    monkeypatch.setattr(throughput, "synchronize", lambda device: events.append("sync"))
    timing = time_steps(throughput.run_phases(phases), torch.device("cpu"), warmup=1, iters=3, phases=phases)
    assert timing.times_s == [3.5, 6.5, 9.5]
    assert timing.phase_times_s == {"forward": [1.0, 2.0, 3.0], "backward": [2.0, 4.0, 6.0],
                                    "optimizer": [0.5, 0.5, 0.5]}
    one_step = ["sync", "clock"] + ["forward", "sync", "clock", "backward", "sync", "clock", "optimizer", "sync",
                                    "clock"]
    assert events == ["forward", "backward", "optimizer"] + one_step * 3
    assert timing.median_phases_s() == {"forward": 2.0, "backward": 4.0, "optimizer": 0.5}
    # an even count: the two middle steps, as the median takes them
    even = Timing([4.0, 1.0, 3.0, 2.0], {"a": [3.0, 0.5, 2.0, 1.0], "b": [1.0, 0.5, 1.0, 1.0]})
    assert sum(even.median_phases_s().values()) == pytest.approx(even.median_s) == 2.5


def test_detail_phases_add_up_to_the_measured_step():
    torch.manual_seed(0)
    row = measure("vit_tiny", mode="train", batch_size=4, warmup=2, iters=5, detail=True, **SMALL)
    phases = [row["forward_ms"], row["backward_ms"], row["optimizer_ms"]]
    assert all(p > 0 for p in phases)
    assert sum(phases) == pytest.approx(row["step_ms_median"], rel=1e-9)  # the same steps, cut in three
    assert all(row[f"{p}_peak_mem_mb"] is not None for p in ("forward", "backward", "optimizer"))
    # what the process holds, counted from the tensors: AdamW keeps two moments per parameter
    assert row["grad_mb"] == pytest.approx(row["param_mb"])
    assert row["optimizer_state_mb"] == pytest.approx(2 * row["param_mb"], rel=1e-3)
    assert row["param_mb"] == pytest.approx(row["params"] * 4 / 2**20)
    # the activations saved for backward, weights (and the views of them linear layers save) left out: what the
    # meta-device count of the scaling study finds at batch 1, four times
    from vidbench.bench.activation_memory import count_activations

    assert row["activation_mb"] == pytest.approx(4 * count_activations("vit_tiny", **SMALL).bytes / 2**20, rel=1e-3)
    infer = measure("vit_tiny", mode="infer", batch_size=2, warmup=1, iters=3, detail=True, **SMALL)
    assert infer["forward_ms"] == pytest.approx(infer["step_ms_median"], rel=1e-9)
    assert infer["backward_ms"] is None and infer["param_mb"] is None


def test_rows_say_where_they_ran(tmp_path):
    cfg = SweepConfig(models=["vit_tiny"], img_size=[32], model_kwargs={"depth": 1}, mode=["infer"], warmup=1,
                      iters=1, isolate=False)
    (row,) = run_sweep(cfg, tmp_path, progress=False)
    assert row["torch_version"] == torch.__version__
    assert row["cpu_model"] == cpu_name() and row["cpu_cores"] >= row["cpu_cores_usable"] >= 1
    for gpu in ("cuda_version", "cudnn_version", "gpu_driver", "gpu_name", "gpu_power_limit_w", "gpu_memory_mb"):
        assert row[gpu] is None, gpu  # measured on the CPU: no GPU figure, whatever this machine has
    assert row["timestamp"]  # the date
    import json

    env = json.loads((tmp_path / "environment.json").read_text())
    same = [k for k in MACHINE_COLUMNS if k != "cuda_version"]  # environment.json's is torch's build, as before
    assert {k: env[k] for k in same} == {k: row[k] for k in same}
