"""Every registry model attends through the one kernel, `vidbench.layers.scaled_dot_product`.

During a forward of each registry entry (the shrunk configs of test_models.py):

- the kernel, wherever vidbench imported it by name, is replaced by a counting wrapper; every
  transformer block (an element of a ModuleList named `*blocks` or `*layers`) must call it;
- `F.scaled_dot_product_attention`, softmax (function, method, torch.softmax) and matrix products
  (`@`, torch.matmul, torch.bmm) may run only inside that wrapper: attention written by hand
  anywhere else (a softmax of q k^T) or a direct call of torch's fused attention fails the test.
"""
import sys

import pytest
import torch
import torch.nn.functional as F
from test_models import _build, _input
from torch import nn

import vidbench.layers.attention as attention_module
from vidbench.models import list_models

KERNEL = attention_module.scaled_dot_product


class KernelWatch:
    """The counting kernel and the guards around attention primitives."""

    def __init__(self) -> None:
        self.calls = 0
        self.depth = 0  # > 0 while inside the kernel
        self.active_blocks: list = []
        self.blocks_using_kernel: set = set()
        self.outside: list = []  # primitives called outside the kernel

    def kernel(self, *args, **kwargs):
        self.calls += 1
        self.blocks_using_kernel.update(self.active_blocks)
        self.depth += 1
        try:
            return KERNEL(*args, **kwargs)
        finally:
            self.depth -= 1

    def guard(self, name: str, fn):
        def guarded(*args, **kwargs):
            if self.depth == 0:
                self.outside.append(f"{name} in {'/'.join(self.active_blocks) or 'no block'}")
            return fn(*args, **kwargs)

        return guarded


@pytest.fixture
def watch(monkeypatch):
    w = KernelWatch()
    for module in list(sys.modules.values()):  # every binding of the kernel in vidbench
        if module is not None and module.__name__.startswith("vidbench"):
            if getattr(module, "scaled_dot_product", None) is KERNEL:
                monkeypatch.setattr(module, "scaled_dot_product", w.kernel)
    for owner, name in [(F, "scaled_dot_product_attention"), (F, "softmax"), (torch, "softmax"),
                        (torch.Tensor, "softmax"), (torch, "matmul"), (torch, "bmm"), (torch.Tensor, "__matmul__")]:
        monkeypatch.setattr(owner, name, w.guard(f"{getattr(owner, '__name__', owner)}.{name}", getattr(owner, name)))
    return w


def _blocks(model: nn.Module) -> dict:
    """Every transformer block: the elements of ModuleLists named *blocks / *layers."""
    return {f"{name}.{i}": blk for name, mod in model.named_modules() if isinstance(mod, nn.ModuleList)
            and name.rsplit(".", 1)[-1].endswith(("blocks", "layers")) for i, blk in enumerate(mod)}


def _track(watch: KernelWatch, blocks: dict) -> list:
    """Hooks that keep `watch.active_blocks` the stack of blocks running."""

    def enter(name):
        def hook(module, args):
            watch.active_blocks.append(name)

        return hook

    def leave(module, args, output):
        watch.active_blocks.pop()

    return [h for name, blk in blocks.items()
            for h in (blk.register_forward_pre_hook(enter(name)), blk.register_forward_hook(leave))]


def test_the_watch_catches_attention_written_elsewhere(watch):
    q = k = v = torch.randn(1, 2, 5, 4)
    attention_module.scaled_dot_product(q, k, v)  # through the kernel: fine
    assert watch.calls == 1 and watch.outside == []
    torch.softmax(q @ k.transpose(-1, -2), dim=-1)
    F.scaled_dot_product_attention(q, k, v)
    assert len(watch.outside) == 3  # @, softmax, fused attention


@pytest.mark.parametrize("name", list_models())
def test_every_block_attends_through_the_kernel(name, watch):
    model = _build(name).eval()
    blocks = _blocks(model)
    assert blocks, f"{name}: no blocks found"
    handles = _track(watch, blocks)
    try:
        with torch.no_grad():
            model(_input(model, batch=1))
    finally:
        for h in handles:
            h.remove()
    assert watch.outside == [], f"{name}: attention primitives outside the kernel: {sorted(set(watch.outside))}"
    assert sorted(set(blocks) - watch.blocks_using_kernel) == [], f"{name}: blocks that never call the kernel"
    assert watch.calls >= len(blocks)
