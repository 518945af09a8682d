"""ARB (Zhang et al., CVPR 2022): "Align Representations with Base".

Each view's embedding matrix (N, d) is standardised per feature over the batch; its base is the
nearest matrix with orthogonal columns, found by ZCA whitening over features,
B = Z Sigma^{-1/2} with Sigma^{-1/2} = U diag(1/sqrt(S + eps)) U^T from the SVD of the feature
covariance, and detached. Each view is aligned with the other view's base feature by feature:
c_d = sum_n z1[n, d] B2[n, d] / (N - 1) (a correlation: both columns have unit variance), loss
sum_d (c_d - 1)^2, mirrored. Optionally the features are shuffled and whitened in groups (the
authors' --swap and --group options).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from einops import rearrange
from torch import nn

from ..errors import ConfigError
from .base import ProjectedMethod, StepOutput, mlp_head

__all__ = ["ARBConfig", "ARB", "standardize", "arb_base", "arb_loss"]


@dataclass
class ARBConfig:
    eps: float = 1e-5
    groups: int = 1
    swap: bool = False  # shuffle features before grouping (only matters with groups > 1)
    proj_hidden: int = 1024
    proj_dim: int = 128


def standardize(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Each feature of (N, d) to zero mean and unit (unbiased) standard deviation over the batch."""
    return (z - z.mean(dim=0)) / (z.std(dim=0) + eps)


def arb_base(z: torch.Tensor, eps: float = 1e-5, groups: int = 1) -> torch.Tensor:
    """The base of a standardised (N, d) matrix: Z Sigma^{-1/2} per group of d / groups features,
    computed in fp32 (fp64 for fp64 input) and detached. For eps = 0 and N > d, B / sqrt(N - 1) is U V^T from the SVD
    Z = U S V^T: the nearest matrix with orthonormal columns."""
    n, d = z.shape
    if d % groups:
        raise ConfigError(f"ARB: {d} features do not split into {groups} groups")
    with torch.no_grad(), torch.autocast(device_type=z.device.type, enabled=False):
        zg = rearrange(z.to(torch.promote_types(z.dtype, torch.float32)), "n (g k) -> g n k", g=groups)  # (G, N, d/G)
        cov = zg.transpose(1, 2) @ zg / (n - 1)  # (G, d/G, d/G)
        u, s, _ = torch.linalg.svd(cov)
        inv_sqrt = u @ torch.diag_embed(1 / torch.sqrt(s + eps)) @ u.transpose(1, 2)  # (G, d/G, d/G)
        return rearrange(zg @ inv_sqrt, "g n k -> n (g k)")  # (N, d)


def arb_loss(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5, groups: int = 1) -> torch.Tensor:
    """sum_d (c_d(z1, B2) - 1)^2 + sum_d (c_d(z2, B1) - 1)^2 on standardised embeddings."""
    n = z1.shape[0]
    s1, s2 = standardize(z1), standardize(z2)
    b1, b2 = arb_base(s1, eps, groups), arb_base(s2, eps, groups)
    c12 = (s1 * b2).sum(dim=0) / (n - 1)  # (d,)
    c21 = (s2 * b1).sum(dim=0) / (n - 1)
    return (c12 - 1).pow(2).sum() + (c21 - 1).pow(2).sum()


class ARB(ProjectedMethod):
    """Args: backbone (images -> (B, D)), projector (D -> proj_dim), config."""

    name = "arb"
    config: ARBConfig
    config_class = ARBConfig

    @classmethod
    def head(cls, num_features: int, config: ARBConfig) -> nn.Module:
        return mlp_head([num_features, config.proj_hidden, config.proj_hidden, config.proj_dim], last_bias=False)

    def forward(self, views: Sequence[torch.Tensor], index: Optional[torch.Tensor] = None) -> StepOutput:
        feats, (z1, z2) = self.project(views)
        if self.config.swap:
            perm = torch.randperm(z1.shape[1], device=z1.device)
            z1, z2 = z1[:, perm], z2[:, perm]
        return StepOutput(arb_loss(z1, z2, self.config.eps, self.config.groups), feats[0], z1, {})
