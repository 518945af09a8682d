"""Shared by the attention tests: run a computation with the fused kernel and with the reference."""
from vidbench.layers import fused_attn


def both_kernels(fn):
    """(fused result, reference result) of `fn()`."""
    with fused_attn(True):
        a = fn()
    with fused_attn(False):
        b = fn()
    return a, b
