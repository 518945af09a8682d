"""BYOL (Grill et al., NeurIPS 2020): "Bootstrap Your Own Latent".

An online network (backbone, projector, predictor) predicts the projection of another view
made by a target network (backbone, projector) whose weights are an exponential moving
average of the online ones, with tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2 rising
from tau_base to 1 over the K training steps, updated after each optimiser step.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import SSLMethod, StepOutput, mlp_head

__all__ = ["BYOLConfig", "BYOL", "byol_loss", "cosine_tau"]


@dataclass
class BYOLConfig:
    tau_base: float = 0.99  # 0.996 for ImageNet in the paper; 0.99 is solo-learn's small-data value
    proj_hidden: int = 1024
    proj_dim: int = 128


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z), with z detached."""
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1)).mean()


def cosine_tau(step: int, total_steps: int, tau_base: float) -> float:
    """The target decay rate after optimiser step `step` (0-based) of `total_steps`."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    return 1 - (1 - tau_base) * (math.cos(math.pi * step / total_steps) + 1) / 2


class BYOL(SSLMethod):
    """Args: backbone (images -> (B, D)), projector (D -> P), predictor (P -> P)."""

    name = "byol"

    def __init__(self, backbone: nn.Module, projector: nn.Module, predictor: nn.Module, config: BYOLConfig):
        super().__init__(backbone)
        self.config = config
        self.projector = projector
        self.predictor = predictor
        self.target_backbone = copy.deepcopy(backbone).requires_grad_(False)
        self.target_projector = copy.deepcopy(projector).requires_grad_(False)
        self.tau = config.tau_base

    @classmethod
    def build(cls, backbone: nn.Module, config: Optional[BYOLConfig] = None) -> BYOL:
        c = config or BYOLConfig()
        d = backbone.num_features
        return cls(backbone, mlp_head([d, c.proj_hidden, c.proj_dim]), mlp_head([c.proj_dim, c.proj_hidden, c.proj_dim]), c)

    def forward(self, views: Sequence[torch.Tensor], index: Optional[torch.Tensor] = None) -> StepOutput:
        self.check_views(views)
        feats = self.encode(views)  # 2 x (B, D)
        z_online = self.projector(torch.cat(feats))  # (2B, P)
        p1, p2 = self.predictor(z_online).chunk(2)  # (B, P) each
        with torch.no_grad():
            z1, z2 = self.target_projector(self.target_backbone(torch.cat(list(views)))).chunk(2)
        loss = byol_loss(p1, z2) + byol_loss(p2, z1)  # symmetrised
        return StepOutput(loss, feats[0], z_online[: len(feats[0])], {"tau": self.tau})

    @torch.no_grad()
    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """EMA of the online weights into the target with tau at this step; BN running stats
        are copied as well."""
        self.tau = cosine_tau(step, total_steps, self.config.tau_base)
        for online, target in ((self.backbone, self.target_backbone), (self.projector, self.target_projector)):
            for po, pt in zip(online.parameters(), target.parameters()):
                pt.mul_(self.tau).add_(po.detach(), alpha=1 - self.tau)
            for bo, bt in zip(online.buffers(), target.buffers()):
                bt.copy_(bo)
