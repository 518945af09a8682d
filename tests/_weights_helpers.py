"""Shared by the published-weights tests: perturb every weight away from its initial value (a
zero-initialised temporal fc, an identity LayerNorm or a tiny init hides real differences), and
compare logits on both attention kernel paths."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from vidbench.layers import fused_attn


@torch.no_grad()
def perturb_(module: nn.Module, seed: int = 0, scale: float = 0.05) -> nn.Module:
    """Add N(0, scale * max(1, std)) noise to every floating-point parameter and buffer, so no
    tensor keeps a special value (zero, one, identity) and their scales still look trained."""
    gen = torch.Generator().manual_seed(seed)
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.is_floating_point():
            std = float(tensor.float().std()) if tensor.numel() > 1 else 0.0
            noise = torch.randn(tensor.shape, generator=gen, dtype=torch.float32) * scale * max(1.0, std)
            tensor.add_(noise.to(tensor.dtype))
    return module


def assert_same_logits(ours: nn.Module, reference: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                       atol: float = 1e-4) -> float:
    """Max |ours(x) - reference(x)| <= atol on the fused and on the reference kernel path; returns
    the larger of the two differences."""
    ours.eval()
    worst = 0.0
    with torch.no_grad():
        want = reference(x)
        for fused in (True, False):
            with fused_attn(fused):
                got = ours(x)
            assert got.shape == want.shape, (got.shape, want.shape)
            diff = float((got - want).abs().max())
            assert diff <= atol, f"fused={fused}: max |diff| {diff:.3g} > {atol}"
            worst = max(worst, diff)
    return worst
