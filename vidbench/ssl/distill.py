"""SimCLR v2's third step: fine-tune the pretrained network on labels, then distil it into a
(smaller) student on unlabelled inputs with T^2 * CE(softmax(teacher / T), student / T).

The loops take any modules and any inputs: image batches (B, C, H, W) for image backbones, or
clips (B, C, T, H, W) for video models.
"""
from __future__ import annotations

from typing import Iterable, List

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .base import check_finite

__all__ = ["distillation_loss", "finetune", "distill", "agreement"]


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * mean over the batch of -sum_y softmax(teacher / T)_y log softmax(student / T)_y."""
    t = temperature
    target = F.softmax(teacher_logits.detach() / t, dim=-1)
    return t * t * -(target * F.log_softmax(student_logits / t, dim=-1)).sum(dim=-1).mean()


def _inputs(batch) -> torch.Tensor:
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def finetune(model: nn.Module, loader: Iterable, epochs: int, lr: float = 1e-3, weight_decay: float = 0.0,
             device: str = "cpu", progress: bool = False) -> List[float]:
    """Supervised fine-tuning with cross-entropy on (inputs, labels) batches; returns the mean
    loss of each epoch."""
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = []
    for epoch in range(epochs):
        total, count = 0.0, 0
        for x, y in tqdm(loader, desc=f"finetune {epoch + 1}/{epochs}", disable=not progress, leave=False):
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            check_finite(loss, f"fine-tuning epoch {epoch + 1}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(y), count + len(y)
        history.append(total / max(count, 1))
    return history


# distill() has finetune()'s loop shape with another input and loss (a frozen teacher's soft
# targets): two twelve-line loops read better apart than one loop with a mode.
def distill(teacher: nn.Module, student: nn.Module, loader: Iterable, epochs: int, temperature: float = 1.0,
            lr: float = 1e-3, weight_decay: float = 0.0, device: str = "cpu", progress: bool = False) -> List[float]:
    """Train `student` to match the frozen `teacher`'s softened predictions on unlabelled
    batches (labels, if the loader yields any, are ignored); returns the mean loss per epoch."""
    teacher.to(device).eval().requires_grad_(False)
    student.to(device).train()
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=weight_decay)
    history = []
    for epoch in range(epochs):
        total, count = 0.0, 0
        for batch in tqdm(loader, desc=f"distill {epoch + 1}/{epochs}", disable=not progress, leave=False):
            x = _inputs(batch).to(device)
            with torch.no_grad():
                t_logits = teacher(x)
            loss = distillation_loss(student(x), t_logits, temperature)
            check_finite(loss, f"distillation epoch {epoch + 1}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(x), count + len(x)
        history.append(total / max(count, 1))
    return history


@torch.no_grad()
def agreement(teacher: nn.Module, student: nn.Module, loader: Iterable, device: str = "cpu") -> float:
    """Fraction of inputs on which student and teacher predict the same class."""
    teacher.to(device).eval()
    student.to(device).eval()
    same = count = 0
    for batch in loader:
        x = _inputs(batch).to(device)
        same += (teacher(x).argmax(-1) == student(x).argmax(-1)).sum().item()
        count += len(x)
    return same / max(count, 1)
