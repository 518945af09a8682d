"""Accuracy of a published checkpoint with its own preprocessing: `vidbench eval --weights`.

The checkpoint's frames, sampling stride, crop, resize, normalisation and test views come from
its published entry or its own config (`model.pretrained_cfg.preprocess`); each can be
overridden; what was used is written into the row, beside the published top-1.

`run_eval`, `vidbench eval`'s entry, lives here: it takes a trained checkpoint to
`vidbench.train.evaluate` (which this module builds on) and published weights to
`evaluate_pretrained`.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence

from ..data import DataSpec
from ..data.sampling import ClipSampler
from ..data.transforms import ClipTransform
from ..distributed import setup_distributed
from ..errors import ConfigError
from ..results import ResultsStore
from ..weights import load_pretrained
from ..weights.classes import match_classes
from .config import EvalConfig
from .evaluate import default_split, evaluate_split, evaluate_trained

__all__ = ["evaluate_weights", "evaluate_pretrained", "pretrained_clip_settings", "run_eval"]


def run_eval(cfg: EvalConfig) -> Dict[str, Any]:
    """`vidbench eval`: a trained checkpoint (`cfg.checkpoint`) or published weights (`cfg.weights`,
    `evaluate_pretrained`) evaluated with multi-view testing; returns the accuracy row."""
    if cfg.predict and os.path.exists(cfg.predict):
        raise FileExistsError(f"{cfg.predict} exists: --predict writes a new file (choose another name)")
    if cfg.weights:
        return evaluate_pretrained(cfg)
    return evaluate_trained(cfg)


def pretrained_clip_settings(preprocess: Dict[str, Any], spec: DataSpec, img_size: int, *,
                             stride: Optional[int] = None, views: Optional[str] = None
                             ) -> Dict[str, Any]:
    """The sampler, transform and views a checkpoint is evaluated with, and where each came from."""
    crop = int(preprocess.get("crop_size") or img_size)
    resize = int(preprocess.get("resize_size") or crop)
    if resize < crop:
        resize = crop
    rate = stride or preprocess.get("sampling_rate") or spec.clip["stride"]
    mode = str(spec.clip["mode"])
    return {
        "sampler": ClipSampler(int(preprocess["num_frames"]), int(rate), mode),
        "transform": ClipTransform(size=crop, short_side=resize, mean=tuple(preprocess["mean"]),
                                   std=tuple(preprocess["std"])),
        "views": views or preprocess.get("views") or "4x3",
    }


def evaluate_weights(weights: Any, data: Optional[str] = None, **options: Any) -> Dict[str, Any]:
    """Evaluate a checkpoint in any supported format on `data`; rank 0 appends the row to
    ``<out>/accuracy.csv`` (default results/pretrained) and returns it. `options`: `EvalConfig`
    fields (model, weights_format, views, split, out, frames, stride, img_size, batch_size,
    num_workers, backend, bad_items, precision, device, progress)."""
    return evaluate_pretrained(EvalConfig(weights=str(weights), data=data, **options))


def evaluate_pretrained(cfg: EvalConfig) -> Dict[str, Any]:
    """`evaluate_weights` of an `EvalConfig` with `weights` set."""
    weights, data = cfg.weights, cfg.data
    env = setup_distributed(cfg.device)
    spec = DataSpec.load(data)
    net = load_pretrained(weights, model=cfg.model, format=cfg.weights_format, num_frames=cfg.frames,
                          img_size=cfg.img_size)
    info = net.pretrained_cfg
    net.to(env.device)
    label_map, matched = match_classes(info.class_names, net.num_classes, spec.classes, where=f"{weights}: ")
    split = cfg.split or default_split(spec, env.is_main)
    size = net.input_size[-1]
    clip = pretrained_clip_settings(info.preprocess, spec, size, stride=cfg.stride, views=cfg.views)
    if clip["transform"].size != size:
        raise ConfigError(f"{weights}: crop {clip['transform'].size} but the model takes {size}x{size}")
    result = evaluate_split(net, spec, split, cfg, env, clip["views"], clip["sampler"], clip["transform"],
                            label_map=label_map, class_names=_output_names(info.class_names, net.num_classes,
                                                                          label_map, spec.classes))
    weights_row = info.row()
    published = weights_row["published_top1"]
    sampler, tf = clip["sampler"], clip["transform"]
    row = {
        "model": info.label or info.model, "init": f"weights:{info.name}", "data": str(data), "split": split,
        "views": clip["views"], **result,
        "published_top1": published,
        "top1_minus_published": (result["top1"] - published) if published is not None and "top1" in result else None,
        "num_frames": sampler.num_frames, "stride": sampler.stride, "crop_size": tf.size, "resize_size": tf.short_side,
        "mean": "/".join(f"{m:g}" for m in tf.mean), "std": "/".join(f"{s:g}" for s in tf.std),
        "class_match": matched,
        **{k: v for k, v in weights_row.items() if k != "published_top1"},
        "checkpoint": str(weights),
    }
    if env.is_main and "top1" in result:  # a split without labels: predictions only (--predict)
        ResultsStore(cfg.out or "results/pretrained").append("accuracy", row)
    return row


def _output_names(names: Optional[Sequence[str]], num_classes: int, label_map: Sequence[int],
                  data_names: Sequence[str]) -> List[str]:
    """A name for each of the model's outputs (predictions): the checkpoint's own class names,
    else the dataset's class matched to each output, else ``class_<index>``."""
    if names and len(names) == num_classes:
        return list(names)
    out = [f"class_{i}" for i in range(num_classes)]
    for data_index, output in enumerate(label_map):
        out[output] = data_names[data_index]
    return out
