import os

import pytest
import torch

# deterministic, and no oversubscription on a 2-core CI runner
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
