"""SimCLR v2's third step: fine-tune the pretrained network on labels, then distil it into a
(smaller) student on unlabelled inputs with T^2 * CE(softmax(teacher / T), student / T).

Both run on the training core (`vidbench.train.core.TrainingCore`: AdamW groups, schedule,
autocast, clipping) with a loss of their own; by default at a constant learning rate in fp32
(`constant_lr`), or with any `TrainingOptions`. They take any modules and any inputs: image
batches (B, C, H, W) for image backbones, or clips (B, C, T, H, W) for video models.
"""
from __future__ import annotations

from typing import Callable, Iterable, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..train.config import TrainingOptions
from ..train.core import TrainingCore
from .base import check_finite

__all__ = ["distillation_loss", "finetune", "distill", "agreement", "constant_lr"]


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * mean over the batch of -sum_y softmax(teacher / T)_y log softmax(student / T)_y."""
    t = temperature
    target = F.softmax(teacher_logits.detach() / t, dim=-1)
    return t * t * -(target * F.log_softmax(student_logits / t, dim=-1)).sum(dim=-1).mean()


def _inputs(batch) -> torch.Tensor:
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def constant_lr(epochs: int, lr: float = 1e-3, weight_decay: float = 0.0, device: str = "cpu",
                progress: bool = False) -> TrainingOptions:
    """The recipe `finetune` and `distill` take by default: AdamW at a constant `lr` (no warm-up,
    a cosine from lr to lr), fp32, no clipping."""
    return TrainingOptions(epochs=epochs, lr=lr, min_lr=lr, weight_decay=weight_decay, warmup_epochs=0.0,
                           clip_grad=0.0, precision="fp32", device=device, progress=progress)


def _fit(model: nn.Module, loader: Iterable, options: TrainingOptions, name: str,
         loss_of: Callable[[object, torch.device], Tuple[torch.Tensor, int]]) -> List[float]:
    """The training core's loop over `loader` for `options.epochs`: `loss_of(batch, device)` gives
    the batch's mean loss and its size; returns the mean loss of each epoch."""
    options.check_training()
    scheduled = options.warmup_epochs > 0 or options.min_lr != options.lr
    if scheduled and not hasattr(loader, "__len__"):
        raise ConfigError(f"{name}: a warm-up or cosine schedule is counted in steps per epoch, and this loader "
                          "has no length; pass a DataLoader or a list, or a constant lr (min_lr = lr, no warm-up)")
    device = torch.device(options.device)
    steps = len(loader) if hasattr(loader, "__len__") else 1  # the schedule's unit (a constant lr needs none)
    core = TrainingCore(model, options, steps, device, warmup_from=None)
    history = []
    for epoch in range(options.epochs):
        total, count = 0.0, 0
        # tqdm.auto's bar, as these loops had, not the core's `progress`: it starts one iterator of the
        # loader that it drops, which draws a shuffled DataLoader's order once per epoch; the core's
        # bar would give each seeded run another data order (the same updates otherwise, bit for bit)
        for batch in tqdm(loader, desc=f"{name} {epoch + 1}/{options.epochs}", disable=not options.progress,
                          leave=False):
            with core.autocast():
                loss, n = loss_of(batch, device)
            loss = loss.float()
            check_finite(loss, f"{name} epoch {epoch + 1}")
            core.step(loss)
            total, count = total + loss.item() * n, count + n
        history.append(total / max(count, 1))
    return history


def finetune(model: nn.Module, loader: Iterable, epochs: int, lr: float = 1e-3, weight_decay: float = 0.0,
             device: str = "cpu", progress: bool = False, options: Optional[TrainingOptions] = None) -> List[float]:
    """Supervised fine-tuning with cross-entropy on (inputs, labels) batches, on the training
    core (AdamW without decay on biases, norms and the model's ``no_weight_decay()``); returns the
    mean loss of each epoch.

    Args:
        options: the whole recipe (epochs, warm-up and cosine, precision, clipping, device), in
            place of the arguments before it; default `constant_lr(epochs, lr, weight_decay,
            device, progress)`.
    """
    options = options or constant_lr(epochs, lr, weight_decay, device, progress)
    model.to(options.device).train()

    def loss_of(batch, device: torch.device) -> Tuple[torch.Tensor, int]:
        x, y = batch
        return F.cross_entropy(model(x.to(device)), y.to(device)), len(y)

    return _fit(model, loader, options, "fine-tuning", loss_of)


def distill(teacher: nn.Module, student: nn.Module, loader: Iterable, epochs: int, temperature: float = 1.0,
            lr: float = 1e-3, weight_decay: float = 0.0, device: str = "cpu", progress: bool = False,
            options: Optional[TrainingOptions] = None) -> List[float]:
    """Train `student` to match the frozen `teacher`'s softened predictions on unlabelled
    batches (labels, if the loader yields any, are ignored), on the training core as `finetune`;
    returns the mean loss per epoch."""
    options = options or constant_lr(epochs, lr, weight_decay, device, progress)
    teacher.to(options.device).eval().requires_grad_(False)
    student.to(options.device).train()

    def loss_of(batch, device: torch.device) -> Tuple[torch.Tensor, int]:
        x = _inputs(batch).to(device)
        with torch.no_grad():
            t_logits = teacher(x)
        return distillation_loss(student(x), t_logits, temperature), len(x)

    return _fit(student, loader, options, "distillation", loss_of)


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
