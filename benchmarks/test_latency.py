"""Forward and training-step latency of every tiny model (pytest-benchmark).

Each timed call runs one step and synchronises the device inside the call, so the time covers
the work and not just the kernel launches; warm-up rounds run before timing. The model, input,
mode, precision, device, threads and GMACs go into extra_info.

    python -m pytest benchmarks --benchmark-save=before      # .benchmarks/<machine>/0001_before.json
    python -m pytest benchmarks --benchmark-compare=0001     # run again and compare with run 0001
    python -m pytest benchmarks --benchmark-disable          # each step once, as a smoke test
"""
from functools import cache

import pytest
import torch

from vidbench.bench import MODES, count_flops, make_step
from vidbench.bench.memory import synchronize
from vidbench.models import create_model, list_models

TINY_MODELS = list_models("*_tiny")


@cache
def _gmacs(name: str) -> float:
    return count_flops(name).gmacs


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", TINY_MODELS)
def test_step_latency(benchmark, bench_settings, name, mode):
    device, precision = bench_settings["device"], bench_settings["precision"]
    model = create_model(name).to(device)
    x = torch.randn(bench_settings["batch_size"], *model.input_size, device=device)
    step = make_step(model, x, mode, precision)

    def one_step() -> None:
        step()
        synchronize(device)  # inside the timed call

    benchmark.group = mode
    benchmark.extra_info.update(
        model=name, mode=mode, input_shape=list(x.shape), precision=precision, device=str(device),
        threads=torch.get_num_threads(), gmacs_per_clip=_gmacs(name), torch_version=torch.__version__,
        warmup_rounds=bench_settings["warmup"], device_synchronised_in_timed_call=True,
    )
    benchmark.pedantic(one_step, rounds=bench_settings["rounds"], iterations=1,
                       warmup_rounds=bench_settings["warmup"])
