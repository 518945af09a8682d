"""MLP, stochastic depth and weight initialisation shared by the transformer models."""
from __future__ import annotations

import functools
from typing import Callable, Dict

import torch
from torch import nn

__all__ = ["Mlp", "DropPath", "init_weights", "ACTIVATIONS", "get_act_layer"]

# The MLP activations a config may name. "gelu" is the exact (erf) GELU of PyTorch and timm;
# "gelu_tanh" is its tanh approximation, which Flax / JAX checkpoints were trained with
# (`flax.linen.gelu` is `jax.nn.gelu(x, approximate=True)`: scenic's ViViT) and Hugging Face's
# ViViT config declares (hidden_act "gelu_fast", the same formula).
ACTIVATIONS: Dict[str, Callable[[], nn.Module]] = {
    "gelu": nn.GELU,
    "gelu_tanh": functools.partial(nn.GELU, approximate="tanh"),
}


def get_act_layer(name: str) -> Callable[[], nn.Module]:
    """The activation module factory for a config's activation name; a clear error otherwise."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; supported: {', '.join(ACTIVATIONS)}") from None


class Mlp(nn.Module):
    """Linear -> activation (default exact GELU) -> dropout -> Linear -> dropout (timm's
    parameter names fc1 / fc2). `act_layer` builds the activation module (`get_act_layer`)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None, drop: float = 0.0,
                 act_layer: Callable[[], nn.Module] = nn.GELU):
        super().__init__()
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class DropPath(nn.Module):
    """Stochastic depth per sample on the residual branch (training mode only)."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


def init_weights(module: nn.Module) -> None:
    """ViT initialisation (timm): truncated normal 0.02 for Linear weights, zero biases,
    LayerNorm to identity. Use with `model.apply(init_weights)`."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
