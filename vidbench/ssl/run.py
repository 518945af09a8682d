"""The pretrain -> save -> evaluate pipeline behind `vidbench pretrain` and `vidbench ssl-eval`,
as plain functions for notebooks.

    from vidbench.ssl.run import open_frames, run_pretraining
    from vidbench.ssl.train import PretrainConfig

    data = open_frames("data/synthetic", img_size=32)      # `vidbench make-dataset --out data/synthetic`
    row = run_pretraining("byol", data, "results/ssl", PretrainConfig(epochs=20),
                          backbone_overrides=dict(img_size=32, patch_size=8, depth=4))
    # results/ssl/byol.safetensors, rows in results/ssl/ssl.csv and ssl_log.csv
"""
from __future__ import annotations

import dataclasses
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import pandas as pd
import torch
from safetensors.torch import save_file
from torch.utils.data import Dataset

from ..checkpoint import save_backbone
from ..errors import ConfigError, TrainingStopped
from ..models import VisionTransformer, create_model
from ..results import ResultsStore, writing
from .augment import IMAGENET_MEAN, IMAGENET_STD, MultiViewTransform, method_views
from .base import effective_rank, feature_std
from .data import ClipFrames, EvalDataset, MultiViewDataset, image_folder_splits, is_image_folder
from .evaluate import extract_features, knn_top1, linear_probe
from .methods import build_method, check_batch, method_config
from .train import PretrainConfig, pretrain

__all__ = ["FrameData", "open_frames", "build_backbone", "run_pretraining", "run_evaluation", "evaluate_init",
           "SSL_TABLE", "LOG_TABLE"]

PathLike = Union[str, os.PathLike]
SSL_TABLE, LOG_TABLE = "ssl", "ssl_log"


@dataclass
class FrameData:
    """Frame sources for pretraining and evaluation (items: image in [0, 1], label)."""

    pretrain: Dataset  # unlabelled use of the training split
    train: Dataset  # labelled: the kNN bank and the probe's training set
    eval: Dataset  # labelled: where top-1 is measured
    eval_split: str
    kind: str  # "images" or "video"
    path: str
    classes: List[str] = field(default_factory=list)


def open_frames(path: PathLike, img_size: int, holdout: float = 0.2, frames_per_clip: int = 8,
                progress: bool = False) -> FrameData:
    """Frame sources from an image folder (class-per-folder, optionally with train/ and val/ or
    test/ splits) or a video dataset (`vidbench make-dataset` or any `vidbench.data.DataSpec`
    directory): `frames_per_clip` evenly spaced frames of the centred clip of each video, the
    train split for pretraining, kNN bank and probe, the val split (else test) for top-1."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--data {path}: no such directory")
    if is_image_folder(path):
        splits = image_folder_splits(path, img_size, holdout)
        eval_split = "val" if "val" in splits else "test" if "test" in splits else None
        if eval_split is None:
            raise ConfigError(f"--data {path}: train/ has no val/ or test/ next to it to evaluate on")
        train = splits["train"]
        return FrameData(train, train, splits[eval_split], eval_split, "images", str(path), list(train.classes))
    if _is_video_dataset(path):
        return _video_frames(path, img_size, frames_per_clip, progress)
    raise ConfigError(f"--data {path}: neither a class-per-folder image tree (or one with train/ and val/ splits) "
                     "nor a video dataset (dataset.json, or <split>.csv / .txt annotations)")


def _is_video_dataset(path: Path) -> bool:
    """A manifest, annotation files, or train/<class>/<video> folders (the layouts `vidbench train` reads)."""
    from ..data.annotations import VIDEO_EXTENSIONS

    if (path / "dataset.json").exists() or any((path / f"train{ext}").is_file() for ext in (".csv", ".txt")):
        return True
    train = path / "train"
    return train.is_dir() and any(f.suffix.lower() in VIDEO_EXTENSIONS for f in train.glob("*/*"))


def _video_frames(path: Path, img_size: int, frames_per_clip: int, progress: bool) -> FrameData:
    from ..data import DataSpec, build_dataset

    spec = DataSpec.load(path)
    eval_split = "val" if "val" in spec.splits else "test" if "test" in spec.splits else None
    if "train" not in spec.splits or eval_split is None:
        raise ConfigError(f"--data {path}: a video dataset needs a train split and a val or test split, "
                         f"has {sorted(spec.splits)}")
    sets = {}
    for split in ("train", eval_split):
        clips, issues = build_dataset(spec, split, train=False, size=img_size)  # centred clip, centre crop
        frames = ClipFrames(clips, frames_per_clip, img_size, IMAGENET_MEAN, IMAGENET_STD, progress=progress)
        for problem in [str(i) for i in issues] + [f"{b.path}: {b.reason}" for b in frames.failed]:
            warnings.warn(f"--data {path} ({split}): skipped {problem}", stacklevel=3)
        sets[split] = frames
    return FrameData(sets["train"], sets["train"], sets[eval_split], eval_split, "video", str(path), spec.classes)


def build_backbone(name: str = "vit_tiny", seed: int = 0, **overrides: Any) -> VisionTransformer:
    """A registry image ViT without a classifier (forward returns pooled features)."""
    torch.manual_seed(seed)
    model = create_model(name, **{**overrides, "num_classes": 0})
    if not isinstance(model, VisionTransformer):
        raise ConfigError(f"--backbone {name}: self-supervised pretraining takes an image ViT (vit_tiny, vit_small, "
                         f"vit_base), got {type(model).__name__}")
    return model


def _ok_row(store: ResultsStore, method: str, epochs: int) -> Optional[Dict[str, Any]]:
    df = store.read(SSL_TABLE)
    if df.empty or "status" not in df.columns:
        return None
    hit = df[(df["method"] == method) & (df["epochs"] == epochs) & (df["status"] == "ok")]
    return hit.iloc[-1].to_dict() if len(hit) else None


def _check_fresh(out: PathLike, method: str) -> None:
    """Without --resume, a `method` run already in `out` (its backbone, its resume state or its
    epoch log) is refused: nothing is overwritten and no row is appended twice (as `train`,
    `bench` and `run` refuse). Other methods may share the directory."""
    out = Path(out)
    found = [str(p.relative_to(out)) for p in (out / f"{method}.safetensors", out / "checkpoints" / f"{method}.safetensors")
             if p.exists()]
    if (out / f"{LOG_TABLE}.csv").exists():
        rows = ResultsStore(out, create=False).read(LOG_TABLE)
        if not rows.empty and "method" in rows and (rows["method"] == method).any():
            found.append(f"{LOG_TABLE}.csv rows")
    if found:
        raise FileExistsError(f"{out} already holds a {method} pretraining run ({', '.join(found)}): pass --resume to "
                              "continue it, or choose another --out")


def run_evaluation(backbone: torch.nn.Module, data: FrameData, k: int = 200, temperature: float = 0.07,
                   batch_size: int = 256, device: str = "cpu", num_workers: int = 0,
                   mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> Dict[str, Any]:
    """kNN and linear-probe top-1 of the frozen backbone, plus collapse stats of its features
    on the evaluation frames (normalised by `mean` / `std`: ImageNet's unless the backbone's
    preprocessing says otherwise). Top-1 in percent."""
    norm = dict(mean=tuple(mean), std=tuple(std))
    ftr, ytr, bad1 = extract_features(backbone, EvalDataset(data.train, **norm), batch_size, device, num_workers)
    fte, yte, bad2 = extract_features(backbone, EvalDataset(data.eval, **norm), batch_size, device, num_workers)
    return {"knn_top1": round(100 * knn_top1(ftr, ytr, fte, yte, k, temperature), 2),  # percent, as accuracy.csv
            "linear_top1": round(100 * linear_probe(ftr, ytr, fte, yte), 2),
            "eval_feat_std": round(feature_std(fte), 5), "eval_feat_rank": round(effective_rank(fte), 2),
            "knn_k": min(k, len(ytr)), "n_train": len(ytr), "n_eval": len(yte), "eval_split": data.eval_split,
            "eval_bad_items": len(bad1) + len(bad2)}


def run_pretraining(method: str, data: FrameData, out: PathLike, train: PretrainConfig, backbone: str = "vit_tiny",
                    backbone_overrides: Optional[Mapping[str, Any]] = None, method_options: Optional[Mapping[str, Any]] = None,
                    aug_overrides: Optional[Mapping[str, Any]] = None, resume: bool = False, evaluate: bool = True,
                    knn_k: int = 200) -> Dict[str, Any]:
    """Pretrain `backbone` with `method` on `data.pretrain`, save `<out>/<method>.safetensors`,
    evaluate, and append the row to `<out>/ssl.csv` (epoch logs in ssl_log.csv). With
    `resume`, a finished (method, epochs) row is returned as it is and an interrupted run goes
    on from `<out>/checkpoints/<method>.safetensors` (safetensors + JSON: nothing is unpickled). A TrainingStopped error is recorded in the row's
    status and raised again."""
    if not resume:
        _check_fresh(out, method)  # before anything is created or written
    store = ResultsStore(out)
    if resume and (done := _ok_row(store, method, train.epochs)) and Path(str(done.get("file", ""))).exists():
        return done
    config = method_config(method, **dict(method_options or {}))
    check_batch(config, train.batch_size)  # before any work
    overrides = dict(backbone_overrides or {})
    vit = build_backbone(backbone, train.seed, **overrides)
    model = build_method(method, vit, num_images=len(data.pretrain), config=config)
    size = vit.patch_embed.img_size[0]
    recipes = [dataclasses.replace(r, **dict(aug_overrides or {})) for r in method_views(method, size, model.num_views)]
    dataset = MultiViewDataset(data.pretrain, MultiViewTransform(recipes, size))
    base = {"method": method, "backbone": backbone, "epochs": train.epochs, "batch_size": train.batch_size,
            "lr": train.lr, "data": data.path, "img_size": size, "depth": vit.config.depth}
    store.write_environment(train.device, {"command": "pretrain", "method": method})

    def log_row(row: Dict[str, float]) -> Dict[str, Any]:
        return {"method": method, **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}}

    def log(row: Dict[str, float]) -> None:
        store.append(LOG_TABLE, log_row(row))

    try:
        result = pretrain(model, dataset, train, Path(out) / "checkpoints" / f"{method}.safetensors", resume, log)
    except TrainingStopped as err:
        store.append(SSL_TABLE, {**base, "status": f"stopped: {err}"})
        raise
    if resume:  # a run killed between its checkpoint and its log row: the log becomes the checkpoint's history
        logged = store.read(LOG_TABLE)
        others = logged[logged["method"] != method] if not logged.empty else logged
        mine = pd.DataFrame([log_row(r) for r in result.history])
        if logged.empty or len(logged) - len(others) != len(mine):
            store.rewrite(LOG_TABLE, pd.concat([others, mine], ignore_index=True))
    final = result.final
    file = save_backbone(vit, Path(out) / f"{method}.safetensors", method, extra={
        "epochs": train.epochs, "steps": result.steps, "data": data.path, "input_mean": list(IMAGENET_MEAN),
        "input_std": list(IMAGENET_STD), "method_config": dataclasses.asdict(config),
        "augment": [dataclasses.asdict(r) for r in recipes], "pretrain_time_s": round(result.time_s, 1)})
    if method == "simclr_v2":  # v2 fine-tunes from the projection head's first layer: keep it beside the ViT
        head = Path(out) / "simclr_v2_head_first_layer.safetensors"
        with writing(head):
            save_file({k: v.detach().cpu().contiguous() for k, v in model.projector[0].state_dict().items()},
                      str(head), metadata={"backbone": file.name})
    row = {**base, "steps": result.steps, "pretrain_time_s": round(result.time_s, 1),
           "final_loss": round(final.get("loss", float("nan")), 5),
           **{k: round(final[k], 5) for k in ("emb_std", "emb_std_ref", "emb_rank", "feat_rank") if k in final},
           "bad_items": len(result.bad_items), "file": str(file)}
    if evaluate:
        row.update(run_evaluation(vit, data, k=knn_k, device=train.device, num_workers=train.num_workers))
    row["status"] = "ok"
    store.append(SSL_TABLE, row)
    return row


def _is_backbone_file(init: PathLike) -> bool:
    """A backbone file written here (`save_backbone`: vidbench's safetensors metadata)."""
    from ..checkpoint import FORMAT, read_metadata

    if Path(init).suffix.lower() != ".safetensors":
        return False
    try:
        from safetensors import safe_open

        with safe_open(str(init), "pt") as f:
            return (f.metadata() or {}).get("format") == FORMAT and bool(read_metadata(init))
    except Exception:  # not a readable safetensors file: vidbench.weights says what it is
        return False


def eval_image_size(init: str, img_size: Optional[int] = None, num_heads: Optional[int] = None) -> int:
    """The frames' crop side for evaluating `init`: for a backbone file written here, its own (as
    before); for a published checkpoint `img_size` if given, else the test crop of its preprocessing (the published
    entry's, else the checkpoint's own config) or else its native size (nothing is allocated)."""
    if _is_backbone_file(init):
        from ..checkpoint import read_backbone_meta

        size = read_backbone_meta(init)["config"]["img_size"]
        return int(size[0] if isinstance(size, (list, tuple)) else size)
    if img_size:
        return int(img_size)
    from ..weights import find_published, inspect_weights

    source, fmt, _, config = inspect_weights(init, num_classes=0, **({"num_heads": num_heads} if num_heads else {}))
    published = find_published(Path(init), source)
    crop = published.crop_size if published else (fmt.preprocess(source) if fmt.preprocess else {}).get("crop_size")
    size = config.get("img_size", 224)
    return int(crop or (size[0] if isinstance(size, (list, tuple)) else size))


def load_eval_backbone(init: str, img_size: Optional[int] = None, num_heads: Optional[int] = None
                       ) -> Tuple[VisionTransformer, Dict[str, Any], Dict[str, Any]]:
    """(backbone, the row's fields about it, its input normalisation) of a backbone file written
    here (vidbench pretrain's, at its own size) or of a published self-supervised checkpoint in any layout
    `vidbench.weights` reads (DINO, MAE, MoCo v3, DINOv2, timm: loaded without a head, position
    embeddings resized to `img_size`; its preprocessing recorded as `vidbench.weights` reports it)."""
    if _is_backbone_file(init):
        from ..checkpoint import load_backbone

        vit = load_backbone(init)
        extra = vit.ssl_extra
        norm = {"mean": list(extra.get("input_mean", IMAGENET_MEAN)), "std": list(extra.get("input_std", IMAGENET_STD))}
        return vit, {"method": vit.ssl_method, "backbone": vit.model_name, "epochs": extra.get("epochs", ""),
                     "pretrain_time_s": extra.get("pretrain_time_s", ""), "file": str(init)}, norm
    from ..weights import load_pretrained

    vit = load_pretrained(init, num_classes=0, img_size=img_size, num_heads=num_heads)  # heads: not in the shapes
    if not isinstance(vit, VisionTransformer):
        raise ConfigError(f"--init {init}: holds a {type(vit).__name__}, not an image ViT backbone")
    info = vit.pretrained_cfg
    pre = info.preprocess
    norm = {"mean": list(pre["mean"]), "std": list(pre["std"])}
    return vit, {"method": info.name, "backbone": info.label or info.model, "epochs": "", "pretrain_time_s": "",
                 "file": str(init), "weights_format": info.format, "preprocess": info.preprocess_source,
                 "input_mean": json.dumps(norm["mean"]), "input_std": json.dumps(norm["std"]),
                 "weights_notes": "; ".join(info.notes)}, norm


def evaluate_init(init: str, data: FrameData, out: PathLike, backbone: str = "vit_tiny",
                  backbone_overrides: Optional[Mapping[str, Any]] = None, seed: int = 0, knn_k: int = 200,
                  device: str = "cpu") -> Dict[str, Any]:
    """Evaluate a saved backbone file (one written here, or a published self-supervised checkpoint:
    `load_eval_backbone`), or a random-init backbone (`init="random"`), and append the row to
    `<out>/ssl.csv` (method from the file's metadata or the published entry, or "random", epochs 0)."""
    from ..options import check_device

    check_device(device, auto=False)
    store = ResultsStore(out)
    norm: Dict[str, Any] = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    if init == "random":
        vit = build_backbone(backbone, seed, **dict(backbone_overrides or {}))
        base: Dict[str, Any] = {"method": "random", "backbone": backbone, "epochs": 0, "pretrain_time_s": 0.0, "file": ""}
    else:
        given = dict(backbone_overrides or {})
        vit, base, norm = load_eval_backbone(init, given.get("img_size"), given.get("num_heads"))
    base.update({"data": data.path, "img_size": vit.patch_embed.img_size[0], "depth": vit.config.depth})
    row = {**base, **run_evaluation(vit, data, k=knn_k, device=device, **norm), "status": "ok"}
    store.append(SSL_TABLE, row)
    return row

