"""Self-supervised pretraining of image backbones: BYOL, SimCLR v1/v2, W-MSE, ARB, instance
discrimination with a memory bank, and the pairwise contrastive loss; multi-view augmentations,
frame sources, the pretraining loop, kNN / linear-probe evaluation.

Each method is an `SSLMethod` module built from the backbone and its heads; each loss is a pure
function in the method's module (`byol_loss`, `nt_xent`, `wmse_loss`, `arb_loss`, `nce_loss`,
`contrastive_loss`).
"""
from .base import NonFiniteLoss, SingularCovariance, SSLMethod, StepOutput, TrainingStopped, collapse_stats
from .methods import METHODS, build_method, method_config

__all__ = ["METHODS", "build_method", "method_config", "SSLMethod", "StepOutput", "TrainingStopped", "NonFiniteLoss",
           "SingularCovariance", "collapse_stats"]
