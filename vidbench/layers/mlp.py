"""MLP, stochastic depth and weight initialisation shared by the transformer models."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["Mlp", "DropPath", "init_weights"]


class Mlp(nn.Module):
    """Linear -> GELU -> dropout -> Linear -> dropout (timm's parameter names fc1 / fc2)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None, drop: float = 0.0):
        super().__init__()
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
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
