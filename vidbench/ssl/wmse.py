"""W-MSE (Ermolov et al., ICML 2021): "Whitening for Self-Supervised Representation Learning".

The embeddings of each view are whitened per sub-batch of `w_size` images (random partition of
the batch, redrawn `w_iter` times): with Sigma the sub-batch covariance shrunk towards the
identity, (1 - eps) Sigma + eps I = L L^T (Cholesky), the whitened embeddings are
L^{-1} (z - mean). The loss is the MSE of the L2-normalised whitened embeddings, 2 - 2 cos, over
every pair of views. Gradients flow through the whitening. The whitening runs in fp32, also
under autocast.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import ProjectedMethod, SingularCovariance, StepOutput, mlp_head

__all__ = ["WMSEConfig", "WMSE", "whiten", "wmse_loss", "suggest_eps"]


@dataclass
class WMSEConfig:
    views: int = 2  # 2 or 4 (the paper's W-MSE 2 and W-MSE 4)
    w_size: int = 128  # sub-batch size; must exceed emb_dim for a full-rank covariance
    w_iter: int = 1
    w_eps: float = 0.0  # shrinkage (1 - eps) Sigma + eps I; the reference's default is 0
    proj_hidden: int = 1024
    emb_dim: int = 64

    def __post_init__(self) -> None:
        if self.views not in (2, 4):
            raise ConfigError(f"W-MSE takes 2 or 4 views per image, got views={self.views}")
        if self.w_iter < 1:
            raise ValueError(f"w_iter must be at least 1, got {self.w_iter}")
        if not 0 <= self.w_eps < 1:
            raise ValueError(f"w_eps must be in [0, 1), got {self.w_eps}")
        if self.w_size < 2 or self.proj_hidden < 1 or self.emb_dim < 1:
            raise ValueError(f"need w_size >= 2, proj_hidden >= 1 and emb_dim >= 1, got {self.w_size}, "
                             f"{self.proj_hidden}, {self.emb_dim}")

    def check_batch(self, batch_size: int) -> None:
        """Each step whitens sub-batches of `w_size` images: a smaller batch has none (refused
        before any work, rather than at the first step)."""
        if batch_size < self.w_size:
            raise ConfigError(f"wmse: batch_size {batch_size} is below the whitening sub-batch w_size {self.w_size}; "
                              f"give --batch-size >= {self.w_size} or --w-size <= {batch_size}")


def suggest_eps(cov: torch.Tensor, max_condition: float = 1e5) -> float:
    """The smallest power of ten eps for which (1 - eps) cov + eps I has a condition number
    below `max_condition` (fp32 Cholesky is safe well before its 1e7 precision limit)."""
    eig = torch.linalg.eigvalsh(cov.double())
    lo, hi = eig[0].item(), max(eig[-1].item(), 0.0)
    c = 1.0 / max_condition
    # (1 - eps) lo + eps >= c ((1 - eps) hi + eps)  <=>  eps >= (c hi - lo) / (1 - lo - c + c hi)
    need = (c * hi - lo) / max(1 - lo - c + c * hi, 1e-12)
    return float(min(10 ** math.ceil(math.log10(max(need, 1e-8))), 0.1))


def whiten(x: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Whiten (n, d) by the Cholesky factor of its shrunk covariance: returns (n, d) in fp32 (or
    fp64 for fp64 input) whose covariance is the identity (for eps = 0). Raises
    SingularCovariance, naming the eps to use, when the covariance has no Cholesky factor."""
    n, d = x.shape
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.to(torch.promote_types(x.dtype, torch.float32))
        xc = x - x.mean(dim=0, keepdim=True)  # (n, d)
        cov = xc.T @ xc / (n - 1)  # (d, d)
        eye = torch.eye(d, device=x.device, dtype=x.dtype)
        chol, info = torch.linalg.cholesky_ex((1 - eps) * cov + eps * eye)
        if info.item() != 0 or not torch.isfinite(cov).all():
            raise _singular(cov.detach(), n, d, eps)
        return torch.linalg.solve_triangular(chol, xc.T, upper=False).T  # (n, d) = (L^-1 xc^T)^T


def _singular(cov: torch.Tensor, n: int, d: int, eps: float) -> SingularCovariance:
    if not torch.isfinite(cov).all():
        return SingularCovariance(f"W-MSE whitening: the covariance of a sub-batch ({n} x {d}) has NaN/inf entries "
                                  "(the embeddings diverged); lower --lr")
    eig = torch.linalg.eigvalsh(cov.double())
    rank = f" (a sub-batch of {n} samples has rank at most {n - 1} < {d}: use --w-size > {d}, e.g. {2 * d})" if n <= d else ""
    return SingularCovariance(
        f"W-MSE whitening: the covariance of a sub-batch ({n} x {d}) is singular with w_eps={eps:g}{rank}; "
        f"use --w-eps 1e{round(math.log10(suggest_eps(cov)))} (eigenvalues {eig[0].item():.3g} .. {eig[-1].item():.3g})")


def wmse_loss(views: Sequence[torch.Tensor], w_size: int, w_iter: int = 1, eps: float = 0.0,
              generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """W-MSE over V views (each (N, d), row n from image n).

    For each of `w_iter` random partitions of the N images into sub-batches of `w_size` (a
    remainder of N mod w_size images is left out of that iteration), whiten each view's
    sub-batch, then average 2 - 2 cos(w_i, w_j) over images and over all view pairs i < j.
    """
    n = views[0].shape[0]
    if n < w_size:
        raise ValueError(f"W-MSE: batch of {n} images is smaller than w_size={w_size}")
    pairs = list(combinations(range(len(views)), 2))
    total = views[0].new_zeros((), dtype=torch.float32)
    for _ in range(w_iter):
        perm = torch.randperm(n, generator=generator)[: n - n % w_size].view(-1, w_size).to(views[0].device)
        whitened: List[torch.Tensor] = [torch.cat([whiten(v[idx], eps) for idx in perm]) for v in views]
        for i, j in pairs:  # rows of every whitened view follow the same permutation
            total = total + (2 - 2 * F.cosine_similarity(whitened[i], whitened[j], dim=-1)).mean()
    return total / (w_iter * len(pairs))


class WMSE(ProjectedMethod):
    """Args: backbone (images -> (B, D)), projector (D -> emb_dim), config."""

    name = "wmse"
    config: WMSEConfig
    config_class = WMSEConfig

    def __init__(self, backbone: nn.Module, projector: nn.Module, config: WMSEConfig):
        super().__init__(backbone, projector, config)
        self.num_views = config.views

    @classmethod
    def head(cls, num_features: int, config: WMSEConfig) -> nn.Module:
        return mlp_head([num_features, config.proj_hidden, config.emb_dim])

    def forward(self, views: Sequence[torch.Tensor], index: Optional[torch.Tensor] = None) -> StepOutput:
        feats, z = self.project(views)  # V x (B, emb)
        c = self.config
        return StepOutput(wmse_loss(z, c.w_size, c.w_iter, c.w_eps), feats[0], z[0], {})
