"""The pretraining loop shared by every method: AdamW with linear warm-up and cosine decay per
step, the method's after-step hook (BYOL's EMA) after each optimiser step, the collapse monitor,
a checkpoint every epoch (atomic) and resume from it, and a clear stop on a non-finite loss.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..train.state import load_train_state, read_state_tensors, save_train_state
from .base import SSLMethod, check_finite, collapse_stats
from .data import BadItem, collate_views

__all__ = ["TrainConfig", "PretrainResult", "pretrain", "lr_at"]


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    seed: int = 0
    num_workers: int = 0
    device: str = "cpu"
    amp: bool = False  # bfloat16 autocast (W-MSE and ARB still whiten in fp32)
    max_steps_per_epoch: int = 0  # 0 = the whole dataset each epoch
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"need epochs >= 1 and batch_size >= 2, got {self.epochs}, {self.batch_size}")


@dataclass
class PretrainResult:
    history: List[Dict[str, float]]  # one row per epoch
    steps: int
    time_s: float  # wall time of the optimisation (resumed runs add up their pieces)
    bad_items: List[BadItem] = field(default_factory=list)

    @property
    def final(self) -> Dict[str, float]:
        return self.history[-1] if self.history else {}


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up to base_lr, then cosine decay to 0."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * progress))


def _param_groups(method: SSLMethod, weight_decay: float) -> List[Dict]:
    """No weight decay on biases, norms, position embeddings and tokens (1-d or named)."""
    decay, no_decay = [], []
    for name, p in method.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim <= 1 or name.endswith(("pos_embed", "cls_token", "time_embed"))
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _save(path: Path, method: SSLMethod, opt: torch.optim.Optimizer, gen: torch.Generator, info: Dict) -> None:
    """Resume state as safetensors (model, optimizer, RNG) plus JSON (counters, history): nothing
    is pickled, so --resume never runs code from the file."""
    tensors = {f"method.{k}": v for k, v in method.state_dict().items()}
    tensors["rng.loader"] = gen.get_state()
    save_train_state(path, opt, None, int(info["epoch"]), info=info, tensors=tensors)


def _load(path: Path, method: SSLMethod, opt: torch.optim.Optimizer, gen: torch.Generator) -> Dict:
    """Restore what `_save` wrote (the torch RNG too); returns the JSON info."""
    _, info = load_train_state(path, opt, None)
    tensors = read_state_tensors(path)
    method.load_state_dict({k[len("method."):]: v for k, v in tensors.items() if k.startswith("method.")})
    gen.set_state(tensors["rng.loader"])
    return info


def pretrain(method: SSLMethod, dataset: Dataset, config: TrainConfig, checkpoint: Optional[Path] = None,
             resume: bool = False, on_epoch: Optional[Callable[[Dict[str, float]], None]] = None) -> PretrainResult:
    """Train `method` on a dataset of (views, index) items (`MultiViewDataset`).

    Args:
        checkpoint: file written after every epoch (model, optimiser, RNG, history).
        resume: continue from `checkpoint` if it exists.
        on_epoch: called with each epoch's log row (loss, lr, collapse stats, time).
    Raises TrainingStopped (NonFiniteLoss, SingularCovariance) with the reason; the checkpoint
    of the last finished epoch is kept.
    """
    c = config
    if len(dataset) < c.batch_size:
        raise ValueError(f"the pretraining set has {len(dataset)} images, fewer than --batch-size {c.batch_size}")
    torch.manual_seed(c.seed)
    device = torch.device(c.device)
    method.to(device)
    gen = torch.Generator().manual_seed(c.seed)
    loader = DataLoader(dataset, batch_size=c.batch_size, shuffle=True, drop_last=True, generator=gen,
                        collate_fn=collate_views, num_workers=c.num_workers, persistent_workers=c.num_workers > 0)
    steps_per_epoch = min(len(loader), c.max_steps_per_epoch) if c.max_steps_per_epoch else len(loader)
    total = c.epochs * steps_per_epoch
    warmup = int(round(c.warmup_epochs * steps_per_epoch))
    opt = torch.optim.AdamW(_param_groups(method, c.weight_decay), lr=c.lr)
    history: List[Dict[str, float]] = []
    start_epoch, step, elapsed = 0, 0, 0.0
    if resume and checkpoint is not None and Path(checkpoint).exists():
        state = _load(Path(checkpoint), method, opt, gen)
        if state["total_steps"] != total:
            raise ValueError(f"{checkpoint}: made for {state['total_steps']} steps, this run has {total} "
                             "(epochs, batch size or data differ); use another --out or delete the checkpoint")
        start_epoch, step, elapsed, history = state["epoch"], state["step"], state["elapsed_s"], state["history"]
    bad: List[BadItem] = []
    method.train()
    amp = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=c.amp)
    for epoch in range(start_epoch, c.epochs):
        t0 = time.perf_counter()
        sums: Dict[str, float] = {}
        count = 0
        bar = tqdm(total=steps_per_epoch, desc=f"{method.name} {epoch + 1}/{c.epochs}", disable=not c.progress, leave=False)
        for i, (batch, failed) in enumerate(loader):
            if i >= steps_per_epoch:
                break
            bad.extend(failed)
            bar.update(1)
            if batch is None:
                continue
            views, index = batch
            views = [v.to(device, non_blocking=True) for v in views]
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, warmup, c.lr)
            with amp:
                out = method(views, index.to(device))
            check_finite(out.loss, f"{method.name} epoch {epoch + 1} step {step + 1}")
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            if c.grad_clip:
                torch.nn.utils.clip_grad_norm_(method.parameters(), c.grad_clip)
            opt.step()
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
               "lr": lr_at(max(step - 1, 0), total, warmup, c.lr), "time_s": round(elapsed, 2), "bad_items": len(bad)}
        history.append(row)
        if row.get("emb_std", 1.0) < 0.1 * row.get("emb_std_ref", 0.0):
            warnings.warn(f"{method.name} epoch {epoch + 1}: embedding std {row['emb_std']:.4f} is under a tenth of "
                          f"{row['emb_std_ref']:.4f} (embeddings spread over the sphere): the representation may be collapsing", stacklevel=2)
        if checkpoint is not None:
            _save(Path(checkpoint), method, opt, gen, {"epoch": epoch + 1, "step": step, "total_steps": total,
                                                       "elapsed_s": elapsed, "history": history, "config": asdict(c)})
        if on_epoch is not None:
            on_epoch(row)
    return PretrainResult(history, step, elapsed, bad)
