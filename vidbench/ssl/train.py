"""The pretraining loop shared by every method, a thin caller of the training core
(`vidbench.train.core`: AdamW groups through the method's ``no_weight_decay()``, linear warm-up
and cosine decay per step, autocast, clipping, the safetensors + JSON resume state): the
method's after-step hook (BYOL's EMA) after each optimiser step, the collapse monitor, a state
every epoch (atomic) and resume from it, and a clear stop on a non-finite loss.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import ConfigError
from ..options import accepts_aliases, option, override
from ..train.config import TrainingOptions, precision_option
from ..train.core import TrainingCore, lr_at, progress
from .base import SSLMethod, check_finite, collapse_stats
from .data import BadItem, collate_views

__all__ = ["PretrainConfig", "PretrainResult", "pretrain", "lr_at"]


@accepts_aliases
@dataclass
class PretrainConfig(TrainingOptions):
    """The options of the pretraining loop (`vidbench pretrain`'s training group): the
    `TrainingOptions` every loop takes, with pretraining's defaults (a cosine to 0, no clipping,
    bf16 as ``--precision bf16``; W-MSE and ARB still whiten in fp32)."""

    epochs: int = override(TrainingOptions, "epochs", 10)
    batch_size: int = override(TrainingOptions, "batch_size", 256)
    lr: float = override(TrainingOptions, "lr", 1e-3)
    min_lr: float = override(TrainingOptions, "min_lr", 0.0)
    warmup_epochs: float = override(TrainingOptions, "warmup_epochs", 1.0)
    clip_grad: float = override(TrainingOptions, "clip_grad", 0.0)
    precision: str = precision_option(amp_flag_const="bf16")
    num_workers: int = override(TrainingOptions, "num_workers", 0)
    device: str = override(TrainingOptions, "device", "cpu")
    max_steps_per_epoch: int = option(0, ge=0, help="cap on optimizer steps per epoch (0: the whole dataset)")

    def __post_init__(self) -> None:
        self.check_training(min_batch=2)


def __getattr__(name: str) -> Any:
    if name == "TrainConfig":  # the name this class had; vidbench.train.TrainConfig is the video loop's
        from ..options import deprecation

        warnings.warn(deprecation("vidbench.ssl.train.TrainConfig", "PretrainConfig"), FutureWarning, stacklevel=2)
        return PretrainConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class PretrainResult:
    history: List[Dict[str, float]]  # one row per epoch
    steps: int
    time_s: float  # wall time of the optimisation (resumed runs add up their pieces)
    bad_items: List[BadItem] = field(default_factory=list)

    @property
    def final(self) -> Dict[str, float]:
        return self.history[-1] if self.history else {}


def pretrain(method: SSLMethod, dataset: Dataset, config: PretrainConfig, checkpoint: Optional[Path] = None,
             resume: bool = False, on_epoch: Optional[Callable[[Dict[str, float]], None]] = None) -> PretrainResult:
    """Train `method` on a dataset of (views, index) items (`MultiViewDataset`).

    Args:
        checkpoint: the resume state written after every epoch (model, optimiser, schedule, RNG,
            history).
        resume: continue from `checkpoint` if it exists.
        on_epoch: called with each epoch's log row (loss, lr, collapse stats, time).
    Raises TrainingStopped (NonFiniteLoss, SingularCovariance) with the reason; the state of the
    last finished epoch is kept.
    """
    c = config
    if len(dataset) < c.batch_size:
        raise ConfigError(f"the pretraining set has {len(dataset)} images, fewer than --batch-size {c.batch_size}")
    torch.manual_seed(c.seed)
    device = torch.device(c.device)
    method.to(device)
    gen = torch.Generator().manual_seed(c.seed)
    loader = DataLoader(dataset, batch_size=c.batch_size, shuffle=True, drop_last=True, generator=gen,
                        collate_fn=collate_views, num_workers=c.num_workers, persistent_workers=c.num_workers > 0)
    steps_per_epoch = min(len(loader), c.max_steps_per_epoch) if c.max_steps_per_epoch else len(loader)
    core = TrainingCore(method, c, steps_per_epoch, device, warmup_from=None)
    total = core.total_steps
    history: List[Dict[str, float]] = []
    start_epoch, step, elapsed = 0, 0, 0.0
    if resume and checkpoint is not None and Path(checkpoint).exists():
        _, state, tensors = core.load(Path(checkpoint))
        if state["total_steps"] != total:
            raise ConfigError(f"{checkpoint}: made for {state['total_steps']} steps, this run has {total} "
                             "(epochs, batch size or data differ); use another --out or delete the checkpoint")
        gen.set_state(tensors["rng.loader"])
        start_epoch, step, elapsed, history = state["epoch"], state["step"], state["elapsed_s"], state["history"]
        core.scheduler.seek(step)  # the schedule's position is the step count (older states did not save it)
    bad: List[BadItem] = []
    method.train()
    for epoch in range(start_epoch, c.epochs):
        t0 = time.perf_counter()
        sums: Dict[str, float] = {}
        count = 0
        bar = progress(total=steps_per_epoch, desc=f"{method.name} {epoch + 1}/{c.epochs}", enabled=c.progress,
                       leave=False)
        for i, (batch, failed) in enumerate(loader):
            if i >= steps_per_epoch:
                break
            bad.extend(failed)
            bar.update(1)
            if batch is None:
                continue
            views, index = batch
            views = [v.to(device, non_blocking=True) for v in views]
            with core.autocast():
                out = method(views, index.to(device))
            check_finite(out.loss, f"{method.name} epoch {epoch + 1} step {step + 1}")
            core.step(out.loss)
            method.after_optimizer_step(step, total)
            step += 1
            stats = {"loss": out.loss.item(), **collapse_stats(out.embeddings, out.features), **out.stats}
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            bar.set_postfix(loss=f"{stats['loss']:.4f}", std=f"{stats['emb_std']:.3f}", rank=f"{stats['emb_rank']:.1f}")
        bar.close()
        elapsed += time.perf_counter() - t0
        row = {"epoch": epoch + 1, "step": step, **{k: v / max(count, 1) for k, v in sums.items()},
               "lr": core.scheduler.lr_at(max(step - 1, 0))[0], "time_s": round(elapsed, 2), "bad_items": len(bad)}
        history.append(row)
        if row.get("emb_std", 1.0) < 0.1 * row.get("emb_std_ref", 0.0):
            warnings.warn(f"{method.name} epoch {epoch + 1}: embedding std {row['emb_std']:.4f} is under a tenth of "
                          f"{row['emb_std_ref']:.4f} (embeddings spread over the sphere): the representation may be collapsing", stacklevel=2)
        if checkpoint is not None:
            core.save(Path(checkpoint), epoch + 1, {"epoch": epoch + 1, "step": step, "total_steps": total,
                                                    "elapsed_s": elapsed, "history": history, "config": asdict(c)},
                      tensors={"rng.loader": gen.get_state()})
        if on_epoch is not None:
            on_epoch(row)
    return PretrainResult(history, step, elapsed, bad)
