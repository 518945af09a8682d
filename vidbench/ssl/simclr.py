"""SimCLR v1 (Chen et al., ICML 2020) and v2 (Chen et al., NeurIPS 2020).

v1: NT-Xent over the 2N views of a batch: each view's positive is the other view of its image,
the other 2N - 2 views are negatives, cosine similarities over a temperature, self-similarity
masked. Projection head Linear-BN-ReLU-Linear.
v2: the same loss with a deeper head, three layers with BN (the last without ReLU or bias), and
fine-tuning from the head's first layer rather than from the backbone output
(`SimCLRv2Classifier`); distillation to a smaller student is in `distill.py`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import ProjectedMethod, StepOutput, mlp_head

__all__ = ["SimCLRConfig", "SimCLR", "SimCLRv2Classifier", "nt_xent"]


@dataclass
class SimCLRConfig:
    temperature: float = 0.2
    proj_hidden: int = 1024
    proj_dim: int = 128
    proj_layers: int = 2  # v1: 2 (one hidden layer); v2: 3


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent: for each of the 2N views i with positive j,
    -log( exp(sim(i, j)/t) / sum_{k != i} exp(sim(i, k)/t) ), averaged over the 2N views.

    Args:
        z1, z2: (N, P) projections of the two views; row n of z1 and of z2 come from image n.
    """
    if z1.shape != z2.shape:
        raise ValueError(f"nt_xent: views differ in shape, {tuple(z1.shape)} vs {tuple(z2.shape)}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, P)
    logits = z @ z.T / temperature  # (2N, 2N)
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, positives)


class SimCLR(ProjectedMethod):
    """Args: backbone (images -> (B, D)), projector (D -> P), config (temperature)."""

    name = "simclr"
    config_class = SimCLRConfig

    def __init__(self, backbone: nn.Module, projector: nn.Module, config: SimCLRConfig):
        super().__init__(backbone, projector, config)
        if not 0 < config.temperature:
            raise ConfigError(f"temperature must be positive, got {config.temperature}")
        self.name = "simclr_v2" if config.proj_layers == 3 else "simclr"

    @classmethod
    def head(cls, num_features: int, config: SimCLRConfig) -> nn.Module:
        if config.proj_layers < 2:
            raise ConfigError(f"proj_layers must be 2 (v1) or more (v2: 3), got {config.proj_layers}")
        dims = [num_features] + [config.proj_hidden] * (config.proj_layers - 1) + [config.proj_dim]
        v2 = config.proj_layers >= 3
        return mlp_head(dims, last_bn=v2, last_bias=not v2)

    def forward(self, views: Sequence[torch.Tensor], index: Optional[torch.Tensor] = None) -> StepOutput:
        feats, (z1, z2) = self.project(views)
        return StepOutput(nt_xent(z1, z2, self.config.temperature), feats[0], z1, {})


class SimCLRv2Classifier(nn.Module):
    """SimCLR v2 fine-tuning network: backbone, then the projection head's first layer
    (Linear-BN-ReLU), then a new linear classifier."""

    def __init__(self, backbone: nn.Module, head_first_layer: nn.Module, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head_first_layer = head_first_layer
        width = next(m for m in head_first_layer.modules() if isinstance(m, nn.Linear)).out_features
        self.fc = nn.Linear(width, num_classes)

    @classmethod
    def from_method(cls, method: SimCLR, num_classes: int) -> SimCLRv2Classifier:
        return cls(method.backbone, method.projector[0], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head_first_layer(self.backbone(x)))
