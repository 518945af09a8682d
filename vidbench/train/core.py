"""The training core both loops call (the video loop, `vidbench.train.engine`, and SSL
pretraining, `vidbench.ssl.train`): AdamW groups from the model's ``no_weight_decay()`` hook,
a per-step linear warm-up + cosine schedule, autocast and the fp16 gradient scaler, gradient
clipping, finite checks, the safetensors + JSON resume state (`vidbench.train.state`), the
per-epoch CSV and the progress bar. The loops keep only what is theirs: data, loss, metrics.

    core = TrainingCore(model, cfg, steps_per_epoch, device, warmup_from=1e-3)
    for batch in progress(loader, desc="epoch 1/12", enabled=cfg.progress):
        with core.autocast():
            loss = criterion(model(batch.clips), batch.labels)
        core.step(loss)
    core.save(out / "train_state.safetensors", epoch=1)
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm  # not tqdm.auto: its class calls iter() when built (an extra DataLoader iterator)

from ..options import autocast
from ..results import ResultsStore
from .config import TrainingOptions
from .state import StateError, load_train_state, read_state_tensors, save_train_state

__all__ = ["param_groups", "lr_at", "WarmupCosine", "warmup_cosine", "autocast", "is_finite", "params_finite",
           "progress", "EpochLog", "TrainingCore"]

MODEL_PREFIX = "model."  # the model's tensors in a state file (SSL states before the core: "method.")


def param_groups(model: nn.Module, weight_decay: float) -> List[Dict[str, Any]]:
    """AdamW groups as in DeiT / timm: no weight decay on biases and norms (1-d) nor on what the
    model's `no_weight_decay()` names (tokens, position / time embeddings, relative-position
    tables: decaying a zero-initialised time embedding holds it at zero). Parameters keep the
    model's order, so a saved optimizer state maps back onto them."""
    spared = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name in spared else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float, min_lr: float = 0.0) -> float:
    """Closed form: base_lr * (step + 1) / warmup_steps during the warm-up (base_lr at step
    warmup_steps - 1), then cosine decay to min_lr at total_steps."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + (base_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


class WarmupCosine(torch.optim.lr_scheduler.LRScheduler):
    """`lr_at` as a scheduler: step() after each optimizer step. Its position is the step count,
    so `seek(step)` restores it exactly."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, min_lr: float = 0.0):
        self.total_steps, self.warmup_steps, self.min_lr = total_steps, warmup_steps, min_lr
        super().__init__(optimizer)

    def lr_at(self, step: int) -> List[float]:
        return [lr_at(step, self.total_steps, self.warmup_steps, base, self.min_lr) for base in self.base_lrs]

    def get_lr(self) -> List[float]:
        return self.lr_at(self.last_epoch)

    def seek(self, step: int) -> None:
        """Continue at `step` (a resumed run)."""
        self.last_epoch = step
        self._last_lr = self.lr_at(step)
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, *, min_lr: float = 0.0,
                  warmup_from: Optional[float] = None) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step learning rate: linear warm-up over `warmup_steps`, then cosine decay to `min_lr`
    at `total_steps`. Two warm-up rules, each a loop's (their numbers are kept exactly):

    Args:
        warmup_from: a fraction f: torch's LinearLR from f x lr at step 0 to lr at step
            warmup_steps (clamped to total_steps - 1), then CosineAnnealingLR (the video loop,
            f = 1e-3). None: `WarmupCosine`, lr x (step + 1) / warmup_steps reaching lr one step
            earlier, cosine in closed form (SSL pretraining). The cosine parts are the same
            formula; torch's is computed recursively, so they differ in the last bits.
    """
    if warmup_from is None:
        return WarmupCosine(optimizer, total_steps, warmup_steps, min_lr)
    warmup = min(warmup_steps, total_steps - 1)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup), eta_min=min_lr)
    if warmup <= 0:
        return cosine
    linear = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=warmup_from, end_factor=1.0, total_iters=warmup)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [linear, cosine], milestones=[warmup])


def is_finite(x: torch.Tensor) -> bool:
    return bool(torch.isfinite(x).all())


def params_finite(model: nn.Module) -> bool:
    return all(is_finite(p) for p in model.parameters())


def progress(iterable: Optional[Iterable] = None, *, desc: str, enabled: bool, total: Optional[int] = None,
             leave: bool = True) -> tqdm:
    """The progress bar of a loop (disabled: iterates silently)."""
    return tqdm(iterable, desc=desc, total=total, disable=not enabled, leave=leave)


class EpochLog:
    """A loop's per-epoch CSV (`<out>/<table>.csv`, one row per epoch, written as it ends). On
    resume, rows of epochs after the resume state (written just before a kill) are dropped: that
    epoch is trained again, so its row would come twice."""

    def __init__(self, out: Path, table: str):
        self.store, self.table = ResultsStore(out), table

    def append(self, row: Dict[str, Any]) -> None:
        self.store.append(self.table, row)

    def rows(self) -> pd.DataFrame:
        return self.store.read(self.table)

    def drop_after(self, epochs_done: int) -> int:
        rows = self.rows()
        if rows.empty or not (rows["epoch"] > epochs_done).any():
            return 0
        kept = rows[rows["epoch"] <= epochs_done]
        self.store.rewrite(self.table, kept)
        return len(rows) - len(kept)


class TrainingCore:
    """One model's optimisation: AdamW over `param_groups`, the `warmup_cosine` schedule per
    step, autocast and a gradient scaler (fp16), clipping, and the resume state.

    Args:
        model: what is optimised (a `Classifier`, or an `SSLMethod`); its parameters are the
            ones clipped, its state_dict goes into the resume state.
        options: the loop's `TrainingOptions` (lr, min_lr, weight_decay, warmup_epochs,
            epochs, clip_grad, precision).
        steps_per_epoch: optimizer steps in an epoch (the schedule's unit).
        warmup_from: the warm-up rule (`warmup_cosine`).
    """

    def __init__(self, model: nn.Module, options: TrainingOptions, steps_per_epoch: int, device: torch.device, *,
                 warmup_from: Optional[float] = None):
        self.model, self.device = model, torch.device(device)
        self.precision, self.clip_grad = options.precision, options.clip_grad
        self.total_steps = options.epochs * steps_per_epoch
        self.warmup_steps = int(round(options.warmup_epochs * steps_per_epoch))
        self.optimizer = torch.optim.AdamW(param_groups(model, options.weight_decay), lr=options.lr)
        self.scheduler = warmup_cosine(self.optimizer, self.total_steps, self.warmup_steps, min_lr=options.min_lr,
                                       warmup_from=warmup_from)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=options.precision == "fp16")

    def autocast(self) -> Any:
        return autocast(self.device, self.precision)

    @property
    def lr(self) -> float:
        """The learning rate of the next step."""
        return self.optimizer.param_groups[0]["lr"]

    def step(self, loss: torch.Tensor) -> None:
        """Backward (scaled under fp16), clip, optimizer step, schedule step."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()

    def save(self, path: Path, epoch: int, info: Optional[Dict[str, Any]] = None,
             tensors: Optional[Dict[str, torch.Tensor]] = None) -> Path:
        """The resume state after `epoch` epochs: model weights, optimizer, schedule, scaler and
        torch RNG as safetensors, `info` as JSON (nothing is pickled); `tensors`: more to keep."""
        model = {f"{MODEL_PREFIX}{k}": v for k, v in self.model.state_dict().items()}
        return save_train_state(path, self.optimizer, self.scheduler, epoch, self.scaler, info,
                                tensors={**model, **(tensors or {})})

    def load(self, path: Path) -> Tuple[int, Dict[str, Any], Dict[str, torch.Tensor]]:
        """Restore what `save` wrote (the model weights too); returns (epochs done, info, the
        other tensors)."""
        try:
            epoch, info = load_train_state(path, self.optimizer, self.scheduler, self.scaler)
            tensors = read_state_tensors(path)
            prefix = MODEL_PREFIX if any(k.startswith(MODEL_PREFIX) for k in tensors) else "method."
            self.model.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        except (RuntimeError, ValueError, KeyError) as err:
            if isinstance(err, StateError):
                raise
            first = " ".join(str(err).split())[:300]
            raise StateError(f"{path}: does not fit this run's model or optimizer ({first}): a state of another "
                             "run or model; restore this run's state, or start a new --out") from None
        return epoch, info, {k: v for k, v in tensors.items() if not k.startswith(prefix)}
