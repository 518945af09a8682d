"""The classic pairwise contrastive loss (Hadsell, Chopra & LeCun, CVPR 2006): "Dimensionality
Reduction by Learning an Invariant Mapping".

With D the Euclidean distance between two embeddings and Y = 0 for a similar pair, 1 for a
dissimilar one: L = (1 - Y) D^2 / 2 + Y max(0, m - D)^2 / 2. Similar pairs are pulled together;
dissimilar pairs are pushed apart until they are m apart. As a self-supervised baseline, the two
views of an image are a similar pair and views of different images dissimilar pairs; the
positive and negative terms are averaged separately so the N - 1 negatives per image do not
swamp the one positive.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import ProjectedMethod, StepOutput

__all__ = ["ContrastiveConfig", "Contrastive", "contrastive_loss", "pairwise_contrastive_loss"]


@dataclass
class ContrastiveConfig:
    margin: float = 1.0
    normalize: bool = False  # L2-normalise embeddings first (then distances are at most 2)
    proj_hidden: int = 1024
    proj_dim: int = 128

    def __post_init__(self) -> None:
        if self.margin <= 0:
            raise ConfigError(f"margin must be positive, got {self.margin}")


def _dist(sq: torch.Tensor) -> torch.Tensor:
    return sq.clamp_min(1e-12).sqrt()  # finite gradient at D = 0


def contrastive_loss(x1: torch.Tensor, x2: torch.Tensor, dissimilar: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean over pairs of (1 - Y) D^2 / 2 + Y max(0, m - D)^2 / 2 for rows of x1, x2 (N, P)
    and Y = `dissimilar` (N,) in {0, 1}."""
    sq = (x1 - x2).pow(2).sum(dim=-1)  # (N,) D^2
    y = dissimilar.to(sq.dtype)
    return ((1 - y) * sq / 2 + y * F.relu(margin - _dist(sq)).pow(2) / 2).mean()


def pairwise_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, margin: float) -> torch.Tensor:
    """The contrastive loss over all pairs of two views of N images: (z1[n], z2[n]) similar,
    (z1[n], z2[m]) for m != n dissimilar; mean over similar pairs + mean over dissimilar pairs."""
    n = z1.shape[0]
    sq = (z1[:, None, :] - z2[None, :, :]).pow(2).sum(dim=-1)  # (N, N) D^2
    off = ~torch.eye(n, dtype=torch.bool, device=z1.device)
    return sq.diagonal().mean() / 2 + F.relu(margin - _dist(sq[off])).pow(2).mean() / 2


class Contrastive(ProjectedMethod):
    """Args: backbone (images -> (B, D)), projector (D -> P), config (margin)."""

    name = "contrastive"
    config: ContrastiveConfig
    config_class = ContrastiveConfig


    def forward(self, views: Sequence[torch.Tensor], index: Optional[torch.Tensor] = None) -> StepOutput:
        feats, (z1, z2) = self.project(views)
        if self.config.normalize:
            z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        return StepOutput(pairwise_contrastive_loss(z1, z2, self.config.margin), feats[0], z1, {})
