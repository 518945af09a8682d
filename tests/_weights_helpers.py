"""Shared by the published-weights tests: perturb every weight away from its initial value (a
zero-initialised temporal fc, an identity LayerNorm or a tiny init hides real differences), and
compare logits on both attention kernel paths."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from vidbench.checkpoint import FORMAT
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


class Marker:
    """A pickle that would create the file `path` if it were ever unpickled with code execution."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def write_liar_checkpoint(path: Path, model: nn.Module) -> Path:
    """`model`'s tensors in a vidbench checkpoint whose metadata declares a huge vit_tiny
    (embed_dim 8192, depth 64: ~50 GB): the declared config must be checked against the
    tensors before anything is allocated."""
    from safetensors.torch import save_file

    spec = {"name": "vit_tiny", "class": "VisionTransformer", "config_class": "ViTConfig",
            "config": {"img_size": 32, "patch_size": 8, "embed_dim": 8192, "depth": 64, "num_heads": 64}}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"format": FORMAT, "model": json.dumps(spec), "extra": "{}"})
    return path


class CodeMarker:
    """A pickle whose payload would create the file `path` through `kind`: "os.system",
    "builtins.exec" or "subprocess" (subprocess.call), if it were ever unpickled with code execution."""

    def __init__(self, path, kind: str) -> None:
        self.path, self.kind = str(path), kind

    def __reduce__(self):
        import builtins
        import os
        import subprocess

        if self.kind == "os.system":
            return (os.system, (f"touch '{self.path}'",))
        if self.kind == "builtins.exec":
            return (builtins.exec, (f"open({self.path!r}, 'w').close()",))
        if self.kind == "subprocess":
            return (subprocess.call, (["touch", self.path],))
        raise ValueError(self.kind)
