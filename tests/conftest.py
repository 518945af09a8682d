import os

import pytest
import torch

# deterministic, and no oversubscription on a 2-core CI runner
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _one_pass_matmul_peak(monkeypatch):
    """The matmul peak's 2 s window (steady on a shared VM) would be spent in every sweep a test
    runs; one pass serves tests, which check no machine's MFU (test_bench_measure tests the window)."""
    import vidbench.bench.throughput as throughput

    monkeypatch.setattr(throughput, "PEAK_WINDOW_S", 0.0)


@pytest.fixture
def one_thread():
    """One intra-op thread for a test module (`pytestmark = pytest.mark.usefixtures("one_thread")`):
    its tensors are tiny, and on a busy 2-core runner a second thread only adds synchronisation
    (an SSL step went from ~0.05 s to ~1 s with two). No timing is asserted anywhere."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
