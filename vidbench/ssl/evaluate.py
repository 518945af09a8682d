"""Evaluation of a frozen backbone on labelled frames: weighted kNN and a linear probe.

kNN (Wu et al. 2018): cosine similarity of L2-normalised features, the k nearest training
features vote for their class with weight exp(s / tau) (k = 200, tau = 0.07 in the paper).
Linear probe: a linear classifier on standardised frozen features (multinomial logistic
regression), trained by the training core every vidbench loop uses (`vidbench.train.core`:
AdamW with decoupled weight decay, linear warm-up then cosine decay, finite checks), one
full-batch step per epoch from a zero initialisation: deterministic, and the same optimiser
code the backbones were trained with.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..errors import UserError
from ..train.config import TrainingOptions
from ..train.core import TrainingCore, is_finite
from .data import BadItem, EvalDataset, collate_views

__all__ = ["extract_features", "knn_predict", "knn_top1", "linear_probe", "EvalResult", "evaluate_backbone"]


@torch.no_grad()
def extract_features(backbone: nn.Module, dataset: Dataset, batch_size: int = 256, device: str = "cpu",
                     num_workers: int = 0) -> Tuple[torch.Tensor, torch.Tensor, List[BadItem]]:
    """Features (N, D) and labels (N,) of an (image, label) dataset, backbone in eval mode;
    items that fail to load are left out and returned. NaN / inf features are refused (the
    training core's finite check): kNN and the probe would turn them into a plausible top-1."""
    was_training = backbone.training
    backbone.eval().to(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_views)
    feats, labels, bad = [], [], []
    for batch, failed in loader:
        bad.extend(failed)
        if batch is None:
            continue
        x, y = batch
        feats.append(backbone(x.to(device)).float().cpu())
        labels.append(y)
    backbone.train(was_training)
    if not feats:
        raise ValueError("no features: every item failed to load")
    features = torch.cat(feats)
    bad_rows = int((~torch.isfinite(features).all(dim=1)).sum())
    if bad_rows:
        raise UserError(f"the backbone's features are NaN or infinite for {bad_rows} of {len(features)} items: its "
                        "weights are not finite (a diverged run or a damaged file); nothing to evaluate")
    return features, torch.cat(labels), bad


@torch.no_grad()
def knn_predict(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor, k: int = 200,
                temperature: float = 0.07, num_classes: int = 0, chunk: int = 1024) -> torch.Tensor:
    """Predicted class of each test feature by temperature-weighted votes of its k nearest
    (cosine) training features."""
    num_classes = num_classes or int(train_labels.max()) + 1
    k = min(k, train_feats.shape[0])
    bank = F.normalize(train_feats.float(), dim=1)  # (N, D)
    preds = []
    for start in range(0, test_feats.shape[0], chunk):
        q = F.normalize(test_feats[start:start + chunk].float(), dim=1)  # (Q, D)
        sim, idx = (q @ bank.T).topk(k, dim=1)  # (Q, k)
        votes = torch.zeros(q.shape[0], num_classes).scatter_add_(1, train_labels[idx], (sim / temperature).exp())
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds)


def knn_top1(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor, test_labels: torch.Tensor,
             k: int = 200, temperature: float = 0.07) -> float:
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    preds = knn_predict(train_feats, train_labels, test_feats, k, temperature, num_classes)
    return (preds == test_labels).float().mean().item()


# the probe's recipe: full-batch steps, so an "epoch" is one step
PROBE = TrainingOptions(epochs=300, lr=0.05, min_lr=0.0, weight_decay=1e-3, warmup_epochs=10, clip_grad=0.0,
                        precision="fp32", num_workers=0, progress=False)


def linear_probe(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                 test_labels: torch.Tensor, options: TrainingOptions = PROBE) -> float:
    """Top-1 of a linear probe on standardised training features, trained by `TrainingCore`
    (AdamW, warm-up + cosine; `options.epochs` full-batch steps, in float64)."""
    mean, std = train_feats.mean(0), train_feats.std(0).clamp_min(1e-6)
    xtr, xte = (train_feats.double() - mean) / std, (test_feats.double() - mean) / std
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    probe = nn.Linear(xtr.shape[1], num_classes).double().to(xtr.device)
    nn.init.zeros_(probe.weight)
    nn.init.zeros_(probe.bias)
    core = TrainingCore(probe, options, steps_per_epoch=1, device=xtr.device)
    with torch.enable_grad():
        for _ in range(options.epochs):
            loss = F.cross_entropy(probe(xtr), train_labels)
            if not is_finite(loss):  # finite features (checked above) cannot get here but by a bug
                raise RuntimeError(f"linear probe: the loss is {loss.item()} at step {core.scheduler.last_epoch}")
            core.step(loss)
    with torch.no_grad():
        return (probe(xte).argmax(1) == test_labels).float().mean().item()


@dataclass
class EvalResult:
    knn_top1: float
    linear_top1: float
    n_train: int
    n_eval: int
    k: int
    bad: List[BadItem] = field(default_factory=list)

    def row(self) -> Dict[str, object]:
        return {"knn_top1": round(self.knn_top1, 4), "linear_top1": round(self.linear_top1, 4),
                "n_train": self.n_train, "n_eval": self.n_eval, "knn_k": self.k}


def evaluate_backbone(backbone: nn.Module, train_source: Dataset, eval_source: Dataset, k: int = 200,
                      temperature: float = 0.07, batch_size: int = 256, device: str = "cpu",
                      mean=None, std=None, num_workers: int = 0) -> EvalResult:
    """kNN and linear-probe top-1 on `eval_source`, fitted on `train_source` (both frame
    sources of (image in [0, 1], label))."""
    norm = {} if mean is None else {"mean": mean, "std": std}
    ftr, ytr, bad1 = extract_features(backbone, EvalDataset(train_source, **norm), batch_size, device, num_workers)
    fte, yte, bad2 = extract_features(backbone, EvalDataset(eval_source, **norm), batch_size, device, num_workers)
    return EvalResult(knn_top1(ftr, ytr, fte, yte, k, temperature), linear_probe(ftr, ytr, fte, yte),
                      len(ytr), len(yte), min(k, len(ytr)), bad1 + bad2)
