"""Settings for the pytest-benchmark suites (benchmarks, not tests: CI may run them once with
--benchmark-disable). Override with environment variables:

VIDBENCH_BENCH_DEVICE (cpu), VIDBENCH_BENCH_PRECISION (fp32), VIDBENCH_BENCH_BATCH (2),
VIDBENCH_BENCH_THREADS (min(2, cores)), VIDBENCH_BENCH_ROUNDS (10), VIDBENCH_BENCH_WARMUP (3).
"""
import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's vidbench first

torch.set_num_threads(int(os.environ.get("VIDBENCH_BENCH_THREADS", min(2, os.cpu_count() or 1))))


def _env(name: str, default: str) -> str:
    return os.environ.get(f"VIDBENCH_BENCH_{name}", default)


@pytest.fixture(scope="session")
def bench_settings() -> dict:
    return {
        "device": torch.device(_env("DEVICE", "cpu")),
        "precision": _env("PRECISION", "fp32"),
        "batch_size": int(_env("BATCH", "2")),
        "rounds": int(_env("ROUNDS", "10")),
        "warmup": int(_env("WARMUP", "3")),
    }


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
