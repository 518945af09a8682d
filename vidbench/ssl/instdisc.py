"""Instance discrimination (Wu et al., CVPR 2018): "Unsupervised Feature Learning via
Non-Parametric Instance Discrimination".

Every image is its own class. A memory bank holds one L2-normalised 128-d feature per image;
for a feature f of image i, P(i | f) = exp(v_i . f / tau) / Z. Noise-contrastive estimation with
K noise images drawn uniformly (P_n = 1/N): h(j, f) = P(j | f) / (P(j | f) + K / N), loss
-log h(i, f) - sum_k log(1 - h(j_k, f)). The normaliser Z = N E_j[exp(v_j . f / tau)] is
estimated from the noise samples and smoothed with a moving average (the paper computes it
once). After each step the bank row becomes normalize(m v_i + (1 - m) f).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import SSLMethod, StepOutput

__all__ = ["InstDiscConfig", "InstDisc", "MemoryBank", "nce_loss"]


@dataclass
class InstDiscConfig:
    feat_dim: int = 128
    num_negatives: int = 4096  # K (capped at the dataset size)
    temperature: float = 0.1  # 0.07 for ImageNet, 0.1 for CIFAR in the paper
    bank_momentum: float = 0.5
    z_momentum: float = 0.9  # moving average of the normaliser Z
    head_bn: bool = True  # BN-Linear head; False: the paper's plain Linear (see InstDisc.build)

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature}")
        for name in ("bank_momentum", "z_momentum"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")


class MemoryBank(nn.Module):
    """N x feat_dim L2-normalised features (a buffer, so checkpoints carry it)."""

    def __init__(self, size: int, feat_dim: int, momentum: float = 0.5):
        super().__init__()
        if size < 2:
            raise ConfigError(f"the memory bank needs at least 2 entries, got {size}")
        self.momentum = momentum
        self.register_buffer("features", F.normalize(torch.randn(size, feat_dim), dim=1))

    def __len__(self) -> int:
        return self.features.shape[0]

    @torch.no_grad()
    def update(self, index: torch.Tensor, feats: torch.Tensor) -> None:
        """v_i <- normalize(m v_i + (1 - m) f_i) for each row of `index`."""
        mixed = self.momentum * self.features[index] + (1 - self.momentum) * feats.detach().to(self.features.dtype)
        self.features[index] = F.normalize(mixed, dim=1)


def nce_loss(pos_logits: torch.Tensor, noise_logits: torch.Tensor, log_z: torch.Tensor, n_data: int) -> torch.Tensor:
    """NCE loss of InstDisc, averaged over the batch.

    Args:
        pos_logits: (B,) v_i . f / tau for each image's own bank entry.
        noise_logits: (B, K) v_j . f / tau for K noise entries per image.
        log_z: log of the normaliser Z (a constant: no gradient).
        n_data: N, so P_n = 1 / N.
    With P = exp(logit - log Z) and noise term K P_n, h = P / (P + K P_n) and
    loss = -log h(pos) - sum_k log(1 - h(noise_k)).
    """
    k = noise_logits.shape[1]
    log_knoise = torch.log(torch.tensor(k / n_data, dtype=pos_logits.dtype, device=pos_logits.device))
    # log h = log P - log(P + K Pn) = -softplus(log K Pn - log P); log(1 - h) = -softplus(log P - log K Pn)
    log_p_pos = pos_logits - log_z.detach()
    log_p_noise = noise_logits - log_z.detach()
    return (F.softplus(log_knoise - log_p_pos) + F.softplus(log_p_noise - log_knoise).sum(dim=1)).mean()


class InstDisc(SSLMethod):
    """Args: backbone (images -> (B, D)), head (D -> feat_dim, the paper's final fc layer),
    num_images (N, the memory bank size), config. One augmented view per image."""

    name = "instdisc"
    num_views = 1

    def __init__(self, backbone: nn.Module, head: nn.Module, num_images: int, config: InstDiscConfig):
        super().__init__(backbone)
        self.config = config
        self.head = head
        self.bank = MemoryBank(num_images, config.feat_dim, config.bank_momentum)
        self.register_buffer("log_z", torch.tensor(float("nan")))  # NaN until the first estimate

    @classmethod
    def build(cls, backbone: nn.Module, num_images: int, config: Optional[InstDiscConfig] = None) -> InstDisc:
        """The head is the paper's fc layer to feat_dim, by default after a BatchNorm: a ViT's
        class token, unlike the batch-normalised pooled ResNet features of the paper, is nearly
        the same for every image at initialisation, and NCE with a moving-average Z then
        settles in the collapsed state (every h = 1/(K+1), loss log(K+1) + K log(1 + 1/K))."""
        c = config or InstDiscConfig()
        fc = nn.Linear(backbone.num_features, c.feat_dim)
        return cls(backbone, nn.Sequential(nn.BatchNorm1d(backbone.num_features), fc) if c.head_bn else fc, num_images, c)

    def forward(self, views: Sequence[torch.Tensor], index: Optional[torch.Tensor] = None) -> StepOutput:
        self.check_views(views)
        if index is None:
            raise ValueError("instdisc needs the dataset index of every image (the memory bank row)")
        c, n = self.config, len(self.bank)
        feats = self.backbone(views[0])  # (B, D)
        f = F.normalize(self.head(feats), dim=1)  # (B, 128)
        k = min(c.num_negatives, n)
        noise_idx = torch.randint(0, n, (f.shape[0], k), device=f.device)  # P_n uniform
        pos_logits = (self.bank.features[index] * f).sum(dim=1) / c.temperature  # (B,)
        noise_logits = torch.einsum("bkd,bd->bk", self.bank.features[noise_idx], f) / c.temperature  # (B, K)
        if self.training:
            self._update_z(noise_logits.detach(), n)
            self.bank.update(index, f)
        loss = nce_loss(pos_logits, noise_logits, self.log_z, n)
        return StepOutput(loss, feats, f, {"log_z": self.log_z.item()})

    @torch.no_grad()
    def _update_z(self, noise_logits: torch.Tensor, n: int) -> None:
        """Z ~ N mean_j exp(v_j . f / tau) by Monte Carlo over the noise samples, then a moving
        average of Z itself (kept in log space for range)."""
        log_z_batch = math.log(n) + torch.logsumexp(noise_logits.flatten(), 0) - math.log(noise_logits.numel())
        if torch.isnan(self.log_z):
            self.log_z.copy_(log_z_batch)
        else:
            m = self.config.z_momentum
            self.log_z.copy_(torch.logaddexp(self.log_z + math.log(m), log_z_batch + math.log1p(-m)) if m > 0 else log_z_batch)
