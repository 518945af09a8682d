"""What every self-supervised method shares: the method interface, projection heads, the
collapse monitor and the errors that stop a run with its reason (kinds of the project's one
`vidbench.errors.TrainingStopped`, which this module re-exports)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Set, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import TrainingStopped

__all__ = [
    "TrainingStopped", "NonFiniteLoss", "SingularCovariance", "StepOutput", "SSLMethod", "ProjectedMethod", "mlp_head",
    "feature_std", "effective_rank", "collapse_stats", "check_finite",
]


class NonFiniteLoss(TrainingStopped):
    """The loss is NaN or infinite (`check_finite`)."""


class SingularCovariance(TrainingStopped):
    """W-MSE / ARB whitening met a covariance with no Cholesky factor."""


@dataclass
class StepOutput:
    """loss: the scalar to minimise; features: backbone features (B, D) and embeddings: the
    head's output (B, P) that the loss sees, both of the first view, for the collapse monitor;
    stats: extra scalars to log (floats)."""

    loss: torch.Tensor
    features: torch.Tensor
    embeddings: torch.Tensor
    stats: Dict[str, float]


class SSLMethod(nn.Module):
    """A self-supervised objective around an image backbone (a `VisionTransformer` with no
    classifier, or any module mapping (B, C, H, W) to (B, D) features) and its heads.

    `forward(views, index)` takes the list of augmented views (each (B, C, H, W)) and the dataset
    indices of the images (B,), and returns a `StepOutput`. `after_optimizer_step(step, total)` is
    called after each optimiser step (EMA targets, schedules); `step` counts completed steps from 0.
    """

    name: str = ""
    num_views: int = 2

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def encode(self, views: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Backbone features of every view in one batched pass: a list of (B, D)."""
        feats = self.backbone(torch.cat(list(views)))  # (V*B, D)
        return list(feats.chunk(len(views)))

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        return None

    def no_weight_decay(self) -> Set[str]:
        """What AdamW spares (timm's hook): the backbone's names, prefixed (tokens, position
        embeddings). Heads have only weights and 1-d parameters, which the grouping handles."""
        spared = self.backbone.no_weight_decay() if hasattr(self.backbone, "no_weight_decay") else set()
        return {f"backbone.{name}" for name in spared}

    def check_views(self, views: Sequence[torch.Tensor]) -> None:
        if len(views) != self.num_views:
            raise ValueError(f"{self.name} takes {self.num_views} views per image, got {len(views)}")


class ProjectedMethod(SSLMethod):
    """A method whose loss sees one projection head's output of every view (SimCLR, W-MSE, ARB,
    the contrastive loss). Args: backbone, projector (D -> P), config (the method's dataclass)."""

    config_class: type  # the method's config dataclass (its defaults where `build` gets none)

    def __init__(self, backbone: nn.Module, projector: nn.Module, config: Any):
        super().__init__(backbone)
        self.config = config
        self.projector = projector

    @classmethod
    def head(cls, num_features: int, config: Any) -> nn.Module:
        """The projection head: Linear-BN-ReLU, then a Linear (num_features -> proj_hidden -> proj_dim);
        a method whose head differs says so here."""
        return mlp_head([num_features, config.proj_hidden, config.proj_dim])

    @classmethod
    def build(cls, backbone: nn.Module, config: Any = None) -> ProjectedMethod:
        """The method around `backbone` with its head sized from `backbone.num_features`."""
        config = config or cls.config_class()
        return cls(backbone, cls.head(backbone.num_features, config), config)

    def project(self, views: Sequence[torch.Tensor]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """(backbone features, projections) of the views, each a list of one (B, D) / (B, P) per
        view: one batched pass through the backbone and one through the projector."""
        self.check_views(views)
        feats = self.encode(views)
        return feats, list(self.projector(torch.cat(feats)).chunk(len(views)))


def mlp_head(dims: Sequence[int], last_bn: bool = False, last_bias: bool = True) -> nn.Sequential:
    """Linear-BN-ReLU for every hidden layer, then a Linear (optionally followed by BN).

    `mlp_head([192, 512, 128])` is BYOL's projector shape: Linear-BN-ReLU-Linear.
    """
    if len(dims) < 2:
        raise ValueError(f"a head needs at least input and output sizes, got {list(dims)}")
    layers: List[nn.Module] = []
    for i in range(len(dims) - 2):
        layers.append(nn.Sequential(nn.Linear(dims[i], dims[i + 1]), nn.BatchNorm1d(dims[i + 1]), nn.ReLU(inplace=True)))
    last: List[nn.Module] = [nn.Linear(dims[-2], dims[-1], bias=last_bias)]
    if last_bn:
        last.append(nn.BatchNorm1d(dims[-1]))
    layers.append(nn.Sequential(*last) if last_bn else last[0])
    return nn.Sequential(*layers)


# --- collapse monitor -------------------------------------------------------------------------

@torch.no_grad()
def feature_std(x: torch.Tensor) -> float:
    """Mean over dimensions of the standard deviation across the batch of L2-normalised
    features (BYOL/SimSiam's collapse measure): 0 when every input maps to one point, about
    1/sqrt(D) for features spread over the sphere."""
    return F.normalize(x.detach().float(), dim=1).std(dim=0).mean().item()


@torch.no_grad()
def effective_rank(x: torch.Tensor) -> float:
    """Effective rank (Roy & Vetterli 2007) of the centred (B, D) feature matrix: exp of the
    entropy of its normalised singular values; 1 for a rank-one (collapsed) set, up to min(B, D)."""
    x = x.detach().double()
    s = torch.linalg.svdvals(x - x.mean(dim=0))
    if s.sum() <= 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return math.exp(-(p * p.log()).sum().item())


def collapse_stats(embeddings: torch.Tensor, features: torch.Tensor) -> Dict[str, float]:
    """emb_std (with emb_std_ref = 1/sqrt(P), its value for embeddings spread over the sphere)
    and emb_rank of the head's output; feat_rank of the backbone features."""
    return {"emb_std": feature_std(embeddings), "emb_std_ref": 1.0 / math.sqrt(embeddings.shape[1]),
            "emb_rank": effective_rank(embeddings), "feat_rank": effective_rank(features)}


def check_finite(loss: torch.Tensor, where: str) -> None:
    """Raise NonFiniteLoss when the loss is NaN or infinite."""
    if not torch.isfinite(loss).all():
        raise NonFiniteLoss(
            f"loss is {loss.item()} at {where}; the run stops here (the last checkpoint is kept). "
            "Lower --lr, add warm-up (--warmup-epochs), or check the input data for NaNs.")
