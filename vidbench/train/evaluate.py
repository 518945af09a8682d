"""Multi-view evaluation: softmax probabilities averaged over N temporal clips x 1 or 3 crops;
top-1, top-5 and top-1 per class group (acc_static, acc_temporal on the generated dataset).

Counts are summed over processes under torchrun, each item seen exactly once.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from einops import rearrange
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..checkpoint import load_checkpoint
from ..data import DataSpec, build_dataset, clip_settings, collate_clips
from ..data.transforms import ClipTransform
from ..errors import ConfigError
from ..results import ResultsStore
from .config import EvalConfig, parse_views
from .core import autocast
from .distributed import ShardSampler, all_gather_lists, all_reduce_sum, setup_distributed

__all__ = ["evaluate", "evaluate_checkpoint", "run_eval", "make_loader", "summarize"]


def make_loader(dataset: Any, batch_size: int, num_workers: int, sampler: Any, pin_memory: bool = False) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate_clips, pin_memory=pin_memory, drop_last=False)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, num_classes: int, device: torch.device, precision: str = "fp32",
             progress: bool = False, desc: str = "eval", label_map: Optional[Sequence[int]] = None
             ) -> Tuple[torch.Tensor, List[Tuple[str, str]], List[str]]:
    """Per-class counts (3, K): top-1 hits, top-5 hits, items; the (path, reason) of skipped
    items; and the files decoded by PyAV after decord / torchcodec failed on them. Summed / gathered over
    processes. `precision`: autocast dtype (fp32, bf16, fp16). `label_map[i]`: the model's output index of dataset
    class i (a checkpoint with other or more classes); default: the same index."""
    model.eval()
    counts = torch.zeros(3, num_classes, dtype=torch.float64)
    bad: List[Tuple[str, str]] = []
    fallbacks: List[str] = []
    mapping = torch.as_tensor(label_map, device=device) if label_map is not None else None
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        bad.extend((b.path, b.reason) for b in batch.bad)
        fallbacks.extend(batch.fallbacks)
        if len(batch) == 0:
            continue
        clips = batch.clips.to(device, non_blocking=True)
        views = clips.shape[1] if clips.ndim == 6 else 1
        x = rearrange(clips, "b v c t h w -> (b v) c t h w") if clips.ndim == 6 else clips
        with autocast(device, precision):
            logits = model(x).float()  # (B*V, K)
        probs = rearrange(logits.softmax(dim=-1), "(b v) k -> b v k", v=views).mean(dim=1)  # (B, K)
        labels = batch.labels.to(device)
        targets = mapping[labels] if mapping is not None else labels  # in the model's class indices
        top = probs.topk(min(5, probs.shape[1]), dim=1).indices  # (B, k)
        hits = torch.stack([top[:, 0] == targets, (top == targets[:, None]).any(dim=1),
                            torch.ones_like(labels, dtype=torch.bool)]).double().cpu()  # (3, B)
        for row in range(3):
            counts[row].index_add_(0, batch.labels, hits[row])
    return all_reduce_sum(counts.to(device)).cpu(), all_gather_lists(bad), all_gather_lists(fallbacks)


def summarize(counts: torch.Tensor, groups: Sequence[Optional[str]]) -> Dict[str, float]:
    """Percentages from per-class counts: top1, top5, acc_<group> for each group, num_videos."""
    hit1, hit5, total = counts
    n = float(total.sum())
    out = {"top1": 100 * float(hit1.sum()) / n if n else float("nan"),
           "top5": 100 * float(hit5.sum()) / n if n else float("nan"), "num_videos": int(n)}
    for group in sorted({g for g in groups if g}):
        mask = torch.tensor([g == group for g in groups])
        g_total = float(total[mask].sum())
        out[f"acc_{group}"] = 100 * float(hit1[mask].sum()) / g_total if g_total else float("nan")
    return out


def _default_split(spec: DataSpec, say: bool) -> str:
    split = spec.default_eval_split()
    if say and split != "test":
        print(f"{spec.root} has no test split: evaluating the {split} split")
    return split


def run_eval(cfg: EvalConfig) -> Dict[str, Any]:
    """`vidbench eval`: a trained checkpoint (`cfg.checkpoint`) or published weights (`cfg.weights`,
    `vidbench.train.pretrained_eval`) evaluated with multi-view testing; returns the accuracy row."""
    if cfg.weights:
        from .pretrained_eval import evaluate_pretrained

        return evaluate_pretrained(cfg)
    return _evaluate_checkpoint(cfg)


def evaluate_checkpoint(checkpoint: Any, **options: Any) -> Dict[str, Any]:
    """Evaluate a trained checkpoint on a split with multi-view testing; rank 0 appends the row
    to ``<out>/accuracy.csv`` (default: the checkpoint's directory) and returns it. `options`:
    `EvalConfig` fields (data, views, split, out, batch_size, num_workers, backend, bad_items,
    precision, device, progress)."""
    return _evaluate_checkpoint(EvalConfig(checkpoint=str(checkpoint), **options))


def _evaluate_checkpoint(cfg: EvalConfig) -> Dict[str, Any]:
    checkpoint, views = cfg.checkpoint, cfg.views or EvalConfig.DEFAULT_VIEWS
    env = setup_distributed(cfg.device)
    model, extra = load_checkpoint(checkpoint)
    model.to(env.device)
    data = cfg.data or extra.get("data")
    if not data:
        raise ConfigError(f"{checkpoint} does not record its dataset: pass --data")
    spec = DataSpec.load(data)
    clip = extra.get("clip", {})
    sampler, size = clip_settings(spec, clip.get("num_frames"), clip.get("stride"), clip.get("mode"), clip.get("size"))
    if len(spec.classes) != model.num_classes:
        raise ConfigError(f"{data} has {len(spec.classes)} classes, the checkpoint's model {model.num_classes}")
    split = cfg.split or _default_split(spec, env.is_main)
    norm = {k: tuple(clip[k]) for k in ("mean", "std") if clip.get(k)}  # fine-tuned from published weights
    result = evaluate_split(model, spec, split, cfg, env, views, sampler, ClipTransform(size=size, **norm))
    row = {
        "model": extra.get("model", getattr(model, "model_name", type(model).__name__)),
        "init": extra.get("init", "unknown"), "data": str(data), "split": split, "views": views,
        "epochs": extra.get("epoch", ""), **result, "train_time_s": extra.get("train_time_s", ""),
        "checkpoint": str(checkpoint),
    }
    if env.is_main:
        ResultsStore(cfg.out or Path(checkpoint).parent).append("accuracy", row)
    return row


def evaluate_split(model: nn.Module, spec: DataSpec, split: str, cfg: Any, env: Any, views: str, sampler: Any,
                   transform: ClipTransform, label_map: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """Multi-view evaluation of `model` on a split, the part `vidbench eval` shares for trained
    checkpoints and published weights: the dataset, the loader sharded over processes, the
    metrics, and what was skipped or decoded by the fallback (warned once, on rank 0). `cfg` is
    the `EvalConfig` (batch_size, num_workers, backend, bad_items, precision, progress)."""
    dataset, issues = build_dataset(spec, split, train=False, views=parse_views(views), sampler=sampler,
                                    backend=cfg.backend, bad_items=cfg.bad_items, transform=transform)
    loader = make_loader(dataset, cfg.batch_size, cfg.num_workers,
                         ShardSampler(len(dataset), env.rank, env.world_size), pin_memory=env.device.type == "cuda")
    start = time.perf_counter()
    counts, bad, fallbacks = evaluate(model, loader, len(spec.classes), env.device, cfg.precision,
                                      cfg.progress and env.is_main, desc=f"eval {views}", label_map=label_map)
    if env.is_main:
        for issue in issues:
            warnings.warn(f"skipping annotation: {issue}", stacklevel=3)
        for path, reason in sorted(set(bad)):
            warnings.warn(f"skipped {path}: {reason}", stacklevel=3)
        for note in sorted(set(fallbacks)):
            warnings.warn(f"decoded with PyAV after the first decoder failed: {note}", stacklevel=3)
    return {
        **summarize(counts, spec.label_groups()),
        "skipped_items": len(issues) + len({p for p, _ in bad}),
        "skipped": "; ".join(sorted({Path(p).name for p, _ in bad} | {f"{Path(i.source).name}:{i.line}" for i in issues})),
        "decoder_fallbacks": len(set(fallbacks)), "eval_time_s": round(time.perf_counter() - start, 2),
        "world_size": env.world_size, "backend": cfg.backend or "auto",
    }
