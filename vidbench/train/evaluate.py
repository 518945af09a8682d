"""Multi-view evaluation: softmax probabilities averaged over N temporal clips x 1 or 3 crops;
top-1, top-5 and top-1 per class group (acc_static, acc_temporal on the generated dataset).

Counts are summed over processes under torchrun, each item seen exactly once. A split with no
usable video (header only, every label unknown, every video unreadable) is refused in one line,
never written as a NaN row; so is a split without labels, unless `predict` names a CSV: each
video's top-5 classes and scores (views averaged, as for accuracy) are written there, and an
accuracy row only where the split has labels.
"""
from __future__ import annotations

import csv
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
from ..data import DataSpec, VideoClipDataset, clip_settings, make_loader
from ..data.annotations import NO_LABEL, AnnotationError, AnnotationIssue, VideoRecord, read_annotations
from ..data.transforms import ClipTransform
from ..distributed import ShardSampler, all_gather_lists, all_reduce_sum, setup_distributed
from ..errors import ConfigError
from ..results import ResultsStore
from ..weights.classes import match_classes
from .config import EvalConfig, parse_views
from .core import autocast

__all__ = ["evaluate", "evaluate_checkpoint", "evaluate_trained", "evaluate_split", "default_split", "make_loader",
           "summarize"]


Prediction = Tuple[int, List[int], List[float]]  # dataset index, top-5 output indices, their probabilities


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, num_classes: int, device: torch.device, precision: str = "fp32",
             progress: bool = False, desc: str = "eval", label_map: Optional[Sequence[int]] = None,
             predictions: Optional[List[Prediction]] = None) -> Tuple[torch.Tensor, List[Tuple[str, str]], List[str]]:
    """Per-class counts (3, K): top-1 hits, top-5 hits, items; the (path, reason) of skipped
    items; and the files decoded by PyAV after decord / torchcodec failed on them. Summed / gathered over
    processes. `precision`: autocast dtype (fp32, bf16, fp16). `label_map[i]`: the model's output index of dataset
    class i (a checkpoint with other or more classes); default: the same index. Items labelled `NO_LABEL`
    are not counted. `predictions`: a list extended with every item's top-5 (gathered over processes)."""
    model.eval()
    top_items: List[Prediction] = []
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
        scores, top = probs.topk(min(5, probs.shape[1]), dim=1)  # (B, k) each
        if predictions is not None:
            top_items.extend(zip(batch.indices.tolist(), top.tolist(), scores.tolist()))
        known = batch.labels != NO_LABEL  # (B,)
        if not bool(known.any()):
            continue
        labels = batch.labels[known].to(device)
        targets = mapping[labels] if mapping is not None else labels  # in the model's class indices
        top = top[known.to(top.device)]
        hits = torch.stack([top[:, 0] == targets, (top == targets[:, None]).any(dim=1),
                            torch.ones_like(labels, dtype=torch.bool)]).double().cpu()  # (3, B)
        for row in range(3):
            counts[row].index_add_(0, batch.labels[known], hits[row])
    if predictions is not None:
        predictions.extend(all_gather_lists(top_items))
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


def default_split(spec: DataSpec, say: bool) -> str:
    """The split `vidbench eval` takes when none is given: test, else the next one (said on rank 0)."""
    split = spec.default_eval_split()
    if say and split != "test":
        print(f"{spec.root} has no test split: evaluating the {split} split")
    return split


def evaluate_checkpoint(checkpoint: Any, **options: Any) -> Dict[str, Any]:
    """Evaluate a trained checkpoint on a split with multi-view testing; rank 0 appends the row
    to ``<out>/accuracy.csv`` (default: the checkpoint's directory) and returns it. `options`:
    `EvalConfig` fields (data, views, split, out, batch_size, num_workers, backend, bad_items,
    precision, device, progress)."""
    return evaluate_trained(EvalConfig(checkpoint=str(checkpoint), **options))


# EvalConfig fields that only published weights take
_WEIGHTS_ONLY = ("frames", "img_size", "stride", "model", "weights_format")


def evaluate_trained(cfg: EvalConfig) -> Dict[str, Any]:
    """`evaluate_checkpoint` of an `EvalConfig` with `checkpoint` set."""
    checkpoint, views = cfg.checkpoint, cfg.views or EvalConfig.DEFAULT_VIEWS
    ignored = [f"--{name.replace('_', '-')}" for name in _WEIGHTS_ONLY if getattr(cfg, name, None) is not None]
    if ignored:  # a trained model is evaluated on the clips it was trained on (they were silently ignored)
        raise ConfigError(f"{' / '.join(ignored)}: for --weights only; a --checkpoint is evaluated with the frames, "
                          f"stride and crop it was trained with (recorded in {checkpoint})")
    env = setup_distributed(cfg.device)
    model, extra = load_checkpoint(checkpoint)
    model.to(env.device)
    data = cfg.data or extra.get("data")
    if not data:
        raise ConfigError(f"{checkpoint} does not record its dataset: pass --data")
    spec = DataSpec.load(data)
    clip = extra.get("clip", {})
    sampler, size = clip_settings(spec, clip.get("num_frames"), clip.get("stride"), clip.get("mode"), clip.get("size"))
    names = extra.get("classes")  # recorded by vidbench train; older checkpoints have none
    names = [str(n) for n in names] if isinstance(names, list) and len(names) == model.num_classes else None
    try:
        label_map, matched = match_classes(names, model.num_classes, spec.classes, where=f"{checkpoint}: ")
    except ValueError as err:
        raise ConfigError(f"{err} (dataset {data})") from None
    split = cfg.split or default_split(spec, env.is_main)
    norm = {k: tuple(clip[k]) for k in ("mean", "std") if clip.get(k)}  # fine-tuned from published weights
    result = evaluate_split(model, spec, split, cfg, env, views, sampler, ClipTransform(size=size, **norm),
                            label_map=label_map, class_names=names)
    row = {
        "model": extra.get("model", getattr(model, "model_name", type(model).__name__)),
        "init": extra.get("init", "unknown"), "data": str(data), "split": split, "views": views,
        "epochs": extra.get("epoch", ""), **result, "train_time_s": extra.get("train_time_s", ""),
        "class_match": matched, "checkpoint": str(checkpoint),
    }
    if env.is_main and "top1" in result:
        ResultsStore(cfg.out or Path(checkpoint).parent).append("accuracy", row)
    return row


def _split_records(spec: DataSpec, split: str, cfg: Any) -> Tuple[List[VideoRecord], List[AnnotationIssue], bool]:
    """The records to evaluate, the annotation problems met, and whether any record has a label.

    Refused in one line (ConfigError): a split with no usable video, and a split without labels
    (no label column, or every label empty) unless `cfg.predict` asks for predictions; then its
    records without a label carry `NO_LABEL`."""
    predict = getattr(cfg, "predict", None)
    source = spec.splits[split] if split in spec.splits else None
    try:
        records, issues = spec.records(split, on_error="skip")
        unreadable: Optional[AnnotationError] = None
    except AnnotationError as err:  # e.g. a CSV header without a label column: read below without labels
        records, issues, unreadable = [], [], err
    if records and not predict:
        if issues and cfg.bad_items == "raise":
            raise AnnotationError(issues)
        return records, issues, True
    try:
        unlabelled, unlabelled_issues, _ = read_annotations(source, spec.labels, spec.video_root or spec.root, "skip",
                                                            unlabelled=True)
    except AnnotationError:
        raise unreadable or AnnotationError(issues) from None
    if not records and not unlabelled:
        if unreadable is not None:
            raise unreadable
        said = f"{len(issues)} annotation line(s) skipped, e.g. {issues[0]}" if issues else "no annotation lines"
        raise ConfigError(f"{source}: no usable videos in the {split} split ({said})")
    if not predict:
        raise ConfigError(f"{source}: no labels in the {split} split ({len(unlabelled)} videos without one): nothing "
                          "to score; --predict FILE.csv writes each video's top-5 classes instead")
    if unlabelled_issues and cfg.bad_items == "raise":
        raise AnnotationError(unlabelled_issues)
    if records:  # labelled lines are read as for accuracy (the row's counts); the rest are predicted only
        labelled = {(r.path, r.start, r.end) for r in records}
        records = records + [r for r in unlabelled if r.label == NO_LABEL and (r.path, r.start, r.end) not in labelled]
        return records, issues, True
    return unlabelled, unlabelled_issues, False


def _write_predictions(path: str, dataset: VideoClipDataset, predictions: List[Prediction], names: Sequence[str],
                       label_names: Sequence[str], bad: Dict[str, str], root: Path) -> None:
    """One row per video, in annotation order: path (below `root`, as annotations give it, where
    it lies there), segment, its label where known, the top-5 classes and scores; a video that
    could not be used has its reason in `skipped` instead."""
    top = {index: (classes, scores) for index, classes, scores in predictions}
    k = max((len(c) for c, _ in top.values()), default=5)
    header = ["path", "start", "end", "label", *[f"{what}{i}" for i in range(1, k + 1) for what in ("class", "score")],
              "skipped"]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "x", newline="") as f:  # "x": never over another run's file
        writer = csv.writer(f)
        writer.writerow(header)
        prefix = str(root).rstrip("/") + "/"
        for index, record in enumerate(dataset.records):
            classes, scores = top.get(index, ([], []))
            cells = [v for c, p in zip(classes, scores) for v in (names[c], f"{p:.6f}")]
            cells += [""] * (2 * k - len(cells))
            label = label_names[record.label] if record.label != NO_LABEL else ""
            skipped = "" if index in top else bad.get(record.path, "not evaluated")
            shown = record.path[len(prefix):] if record.path.startswith(prefix) else record.path
            writer.writerow([shown, "" if record.start is None else record.start,
                             "" if record.end is None else record.end, label, *cells, skipped])


def evaluate_split(model: nn.Module, spec: DataSpec, split: str, cfg: Any, env: Any, views: str, sampler: Any,
                   transform: ClipTransform, label_map: Optional[Sequence[int]] = None,
                   class_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Multi-view evaluation of `model` on a split, the part `vidbench eval` shares for trained
    checkpoints and published weights: the dataset, the loader sharded over processes, the
    metrics, and what was skipped or decoded by the fallback (warned once, on rank 0). `cfg` is
    the `EvalConfig` (batch_size, num_workers, backend, bad_items, precision, progress, predict).
    With `cfg.predict`, rank 0 writes each video's top-5 there, named by `class_names` (the
    model's outputs; default the dataset's classes); the result has accuracy keys (top1, ...)
    only where the split has labels."""
    records, issues, labelled = _split_records(spec, split, cfg)
    dataset = VideoClipDataset(records, sampler, transform, train=False, views=parse_views(views),
                               backend=cfg.backend, bad_items=cfg.bad_items, no_flip_labels=spec.no_flip_labels())
    loader = make_loader(dataset, cfg.batch_size, cfg.num_workers,
                         ShardSampler(len(dataset), env.rank, env.world_size), pin_memory=env.device.type == "cuda")
    start = time.perf_counter()
    predict = getattr(cfg, "predict", None)
    predictions: Optional[List[Prediction]] = [] if predict else None
    counts, bad, fallbacks = evaluate(model, loader, len(spec.classes), env.device, cfg.precision,
                                      cfg.progress and env.is_main, desc=f"eval {views}", label_map=label_map,
                                      predictions=predictions)
    if predictions is not None and env.is_main:
        _write_predictions(predict, dataset, predictions, class_names or spec.classes, spec.classes, dict(bad),
                           spec.video_root or spec.root)
    scored = int(counts[2].sum())  # labelled videos evaluated
    if not predictions and scored == 0:
        shown = f", e.g. {sorted(set(bad))[0][0]}: {sorted(set(bad))[0][1]}" if bad else ""
        raise ConfigError(f"{spec.splits[split]}: none of the {len(dataset)} videos of the {split} split could be "
                          f"evaluated ({len({p for p, _ in bad})} skipped{shown})")
    labelled = labelled and scored > 0  # else predictions only: no accuracy of zero videos
    if env.is_main:
        for issue in issues:
            warnings.warn(f"skipping annotation: {issue}", stacklevel=3)
        for path, reason in sorted(set(bad)):
            warnings.warn(f"skipped {path}: {reason}", stacklevel=3)
        for note in sorted(set(fallbacks)):
            warnings.warn(f"decoded with PyAV after the first decoder failed: {note}", stacklevel=3)
    scores = summarize(counts, spec.label_groups()) if labelled else {"num_videos": len(predictions or [])}
    return {
        **scores, **({"predictions": str(predict)} if predict else {}),
        "skipped_items": len(issues) + len({p for p, _ in bad}),
        "skipped": "; ".join(sorted({Path(p).name for p, _ in bad} | {f"{Path(i.source).name}:{i.line}" for i in issues})),
        "decoder_fallbacks": len(set(fallbacks)), "eval_time_s": round(time.perf_counter() - start, 2),
        "world_size": env.world_size, "backend": cfg.backend or "auto",
    }
