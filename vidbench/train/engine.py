"""The video training loop (`vidbench train`): the training core (`vidbench.train.core`: AdamW
groups, warm-up + cosine per step, autocast, clipping, resume state, per-epoch CSV) around clip
datasets, label-smoothed cross-entropy, per-epoch validation and a checkpoint per epoch; DDP
under torchrun.

Each process takes `batch_size` clips of a shared random permutation (DistributedSampler); the
loss is the sum over a process's clips divided by the clips of all processes, times the world
size, so DDP's gradient average is the gradient of the mean over every clip in the step, as in a
single process (also when bad items leave processes with different batch sizes).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler

from ..checkpoint import FORMAT, load_checkpoint, read_metadata, save_checkpoint
from ..data import DataSpec, build_dataset, clip_settings
from ..data.transforms import ClipTransform
from ..distributed import ShardSampler, all_gather_lists, all_reduce_sum, setup_distributed
from ..errors import ConfigError, TrainingStopped
from ..models import VisionTransformer, create_model, model_label
from ..options import canonical
from ..results import ResultsStore, run_lock
from ..weights import inspect_weights, load_pretrained
from .config import TrainConfig, parse_views
from .core import EpochLog, TrainingCore, is_finite, param_groups, params_finite, progress
from .evaluate import evaluate, evaluate_checkpoint, make_loader, summarize

__all__ = ["build_model", "param_groups", "train", "CHECKPOINT", "TRAIN_STATE", "RESUME_KEYS", "TrainingStopped"]

CHECKPOINT, TRAIN_STATE = "checkpoint.safetensors", "train_state.safetensors"
# config fields a video model takes from the image ViT it is initialised from (layer scale and register
# tokens only where its config has them: the frame average; other models refuse them, models._base.IMAGE_PARTS)
FOLLOW_IMAGE = ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "qkv_bias",
                "class_token", "global_pool", "init_values", "reg_tokens")


def load_image_backbone(path: str, img_size: Optional[int] = None) -> Tuple[nn.Module, Dict[str, Any]]:
    """`--init`'s image ViT and its metadata: a checkpoint written here (`load_checkpoint`, as
    before: its own size, the dataset's normalisation), or a published image backbone in any layout
    `vidbench.weights` reads (DINO, MAE, MoCo v3, DINOv2, timm), loaded at `img_size` (else the test
    crop of its preprocessing, else its own size: position embeddings resized as its authors' code
    does), with its preprocessing in ``extra["preprocess"]`` (mean, std, crop, where it came from)
    and its published name as ``extra["method"]``."""
    from ..weights import read_source
    from ..weights.source import WeightsError

    try:
        native = read_source(path).metadata.get("format") == FORMAT
    except WeightsError:
        native = False  # let vidbench.weights name what the file is
    if native:
        return load_checkpoint(path)
    vit = load_pretrained(path, img_size=img_size)
    info = vit.pretrained_cfg
    crop = info.published.crop_size if info.published else None
    if img_size is None and crop and crop != vit.config.img_size:  # DINOv2's 518 px file, evaluated at 224
        vit = load_pretrained(path, img_size=crop)
        info = vit.pretrained_cfg
    pre = info.preprocess
    return vit, {"method": info.name, "preprocess": {"mean": list(pre["mean"]), "std": list(pre["std"]),
                                                     "crop_size": pre.get("crop_size"),
                                                     "resize_size": pre.get("resize_size"),
                                                     "source": info.preprocess_source, "format": info.format,
                                                     "notes": list(info.notes)}}


def build_model(cfg: TrainConfig, num_classes: int, num_frames: int, size: int,
                image: Optional[Tuple[nn.Module, Dict[str, Any]]] = None) -> Tuple[nn.Module, str, Dict[str, Any]]:
    """The video model, initialised from `cfg.init` if given; returns (model, init label, the
    config fields taken from the image checkpoint). `image`: `cfg.init` already loaded
    (`load_checkpoint`'s (model, extra)), so the file is read once. The model is built once: its
    config fields are looked up on a meta-device instance (no memory, no random draws)."""
    overrides = dict(cfg.model_kwargs, num_classes=num_classes, num_frames=num_frames, img_size=size)
    if cfg.weights:
        model = load_pretrained(cfg.weights, model=cfg.model, format=cfg.weights_format, **overrides)
        for note in model.pretrained_cfg.notes:
            print(f"--weights: {note}")
        return model.train(), cfg.init_label or f"weights:{model.pretrained_cfg.name}", {}
    if not cfg.init:
        return create_model(cfg.model, **overrides), "random", {}
    with torch.device("meta"):  # the image size follows the image ViT below (its patch may not divide this one)
        probe = create_model(cfg.model, **{k: v for k, v in overrides.items() if k != "img_size"})
    if not hasattr(probe, "from_image_backbone"):
        raise TrainingStopped(f"--init: {cfg.model} has no image initialisation (no image counterpart in the zoo); "
                              "train it from scratch or fine-tune published weights with --weights")
    rules = probe.image_init_rules  # the tubelet rules its from_image_backbone takes (none: single frames)
    if cfg.init_mode not in rules and cfg.init_mode != TrainConfig.init_mode:
        raise TrainingStopped(f"--init-mode {cfg.init_mode}: {cfg.model} takes "
                              + (f"one of {', '.join(rules)}" if rules else "no tubelet rule (its patches are single frames)"))
    vit, extra = image if image is not None else load_image_backbone(cfg.init, cfg.img_size)
    if not isinstance(vit, VisionTransformer):
        raise ConfigError(f"--init {cfg.init}: expected an image ViT checkpoint, got {type(vit).__name__}")
    fields = {f.name for f in dataclasses.fields(probe.config)}
    follow = {k: getattr(vit.config, k) for k in FOLLOW_IMAGE if k in fields}
    model = create_model(cfg.model, **{**overrides, **follow})
    if rules:
        model.from_image_backbone(vit, init=cfg.init_mode)
    else:
        model.from_image_backbone(vit)
    label = cfg.init_label or extra.get("method") or Path(cfg.init).stem
    return model, str(label), follow


def _warn_bad(bad: List[Tuple[str, str]], seen: Set[str]) -> None:
    for path, reason in bad:
        if path not in seen:
            seen.add(path)
            warnings.warn(f"skipping bad video {path}: {reason}", stacklevel=3)


# options whose change would make a resumed run a different run
RESUME_KEYS = ("model", "epochs", "batch_size", "lr", "min_lr", "weight_decay", "warmup_epochs", "label_smoothing",
               "clip_grad", "precision", "seed", "init", "init_mode", "weights", "frames", "stride", "sampling",
               "img_size", "model_kwargs")


def train(cfg: TrainConfig) -> Dict[str, Any]:
    """Train `cfg.model` on `cfg.data` (see `_train`), holding the output directory for this
    process (rank 0 under torchrun): a second run into the same --out is refused."""
    if int(os.environ.get("RANK", "0")) != 0:
        return _train(cfg)
    with run_lock(cfg.out, "vidbench train"):
        return _train(cfg)


def _check_fresh_or_resumable(cfg: TrainConfig, out: Path) -> Optional[Dict[str, Any]]:
    """Without --resume an existing run is an error (nothing is overwritten or appended to);
    with it, the options must be the run's. Returns the run's checkpoint metadata, if any."""
    existing = [n for n in (CHECKPOINT, TRAIN_STATE, "train.csv") if (out / n).exists()]
    if existing and not cfg.resume:
        raise TrainingStopped(f"{out} already holds a training run ({', '.join(existing)}): pass --resume to "
                              "continue it, or choose another --out")
    if not (cfg.resume and (out / CHECKPOINT).exists()):
        return None
    _, extra = read_metadata(out / CHECKPOINT)
    before = canonical(TrainConfig, extra.get("train_config", {}))  # a run of an older version: its spellings
    now = dataclasses.asdict(cfg)
    differ = [f"{k} {before.get(k)!r} -> {now.get(k)!r}" for k in RESUME_KEYS
              if k in before and json.dumps(before.get(k)) != json.dumps(now.get(k))]
    if differ:
        raise TrainingStopped(f"--resume {out}: options differ from the run being resumed ({'; '.join(differ)}): "
                              "resume with the run's options, or start a new --out")
    return extra


def _check_same_run(out: Path, previous: Optional[Dict[str, Any]]) -> None:
    """The resume state and the checkpoint must be of one run (the run id written into both)."""
    if previous is None:
        return  # killed between the first state and its checkpoint: the state alone is the run
    from .state import read_state_info

    state_id, ckpt_id = read_state_info(out / TRAIN_STATE).get("run_id"), previous.get("run_id")
    if state_id != ckpt_id:
        raise TrainingStopped(f"--resume {out}: {TRAIN_STATE} is of another run than {CHECKPOINT} (run id "
                              f"{state_id or 'none'} vs {ckpt_id or 'none'}): a state copied from elsewhere is not "
                              "resumed; restore this run's state, or start a new --out")


def _json_row(row: Dict[str, Any]) -> Dict[str, Any]:
    """An epoch's row as JSON-safe values (NaN as None) for the resume state."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def _log_missing_row(log: EpochLog, epoch: int, row: Optional[Dict[str, Any]]) -> None:
    """Append the row of `epoch` from the state when train.csv lacks it (a kill after the checkpoint)."""
    if epoch < 1 or not row:
        return
    rows = log.rows()
    if rows.empty or "epoch" not in rows or not (rows["epoch"] == epoch).any():
        log.append({k: (float("nan") if v is None else v) for k, v in row.items()})


def _test_evaluation(cfg: TrainConfig, out: Path) -> Dict[str, Any]:
    """The test split with `cfg.eval_views`, into `<out>/accuracy.csv`."""
    return evaluate_checkpoint(out / CHECKPOINT, data=cfg.data, views=cfg.eval_views, out=str(out),
                               batch_size=cfg.batch_size, num_workers=cfg.num_workers, backend=cfg.backend,
                               bad_items=cfg.bad_items, precision=cfg.precision, device=cfg.device,
                               progress=cfg.progress)


def _finished(cfg: TrainConfig, out: Path, extra: Dict[str, Any], is_main: bool) -> Dict[str, Any]:
    """--resume of a run that has done its epochs: nothing is trained again and no row repeated;
    only a test evaluation the run did not get to write (killed after its last epoch) is made."""
    if is_main:
        print(f"{out}: training already finished ({extra.get('epoch')} epochs); nothing to do")
    rows = ResultsStore(out).read("train")
    row: Dict[str, Any] = rows.iloc[-1].to_dict() if not rows.empty else {"epoch": extra.get("epoch")}
    if cfg.eval_views:
        acc = ResultsStore(out).read("accuracy")
        done = not acc.empty and "views" in acc and (acc["views"].astype(str) == cfg.eval_views).any()
        if not done:
            row["test"] = _test_evaluation(cfg, out)
    return row


def _train(cfg: TrainConfig) -> Dict[str, Any]:
    """Train `cfg.model` on `cfg.data`; returns the last epoch's row (and the test row if
    `cfg.eval_views`). Writes ``checkpoint.safetensors``, ``train_state.safetensors`` and
    ``train.csv`` into `cfg.out` (process 0)."""
    env = setup_distributed(cfg.device)
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    spec = DataSpec.load(cfg.data)
    ckpt: Dict[str, Any] = {}
    if cfg.weights:  # the model and config the checkpoint holds (read once here, once to load)
        _, _, name, ckpt = inspect_weights(cfg.weights, cfg.model, cfg.weights_format)
        cfg = dataclasses.replace(cfg, model=name)
    previous = _check_fresh_or_resumable(cfg, out)
    if previous is not None and int(previous.get("epoch", 0)) >= cfg.epochs:
        return _finished(cfg, out, previous, env.is_main)
    num_frames, size, norm, image = cfg.frames, cfg.img_size, {}, None
    if cfg.weights:  # clips follow the checkpoint unless the options say otherwise
        num_frames = num_frames or ckpt.get("num_frames")
        img = ckpt.get("img_size")
        size = size or (img if isinstance(img, int) or img is None else img[0])
    sampler, size = clip_settings(spec, num_frames, cfg.stride, cfg.sampling, size)
    if cfg.init:  # read once: the crop follows the image backbone's resolution unless --img-size says otherwise
        image = load_image_backbone(cfg.init, cfg.img_size)
        if not cfg.img_size:
            img = image[0].config.img_size
            size = img if isinstance(img, int) else img[0]
        init_pre = image[1].get("preprocess")
        if init_pre:  # a published backbone: its normalisation, recorded with the run (checkpoint_extra's clip)
            norm = {"mean": tuple(init_pre["mean"]), "std": tuple(init_pre["std"])}
            if env.is_main:
                print(f"--init: {init_pre['format']} backbone, preprocessing from {init_pre['source']}: "
                      f"mean {init_pre['mean']}, std {init_pre['std']}, crop {size}"
                      + "".join(f"; {n}" for n in init_pre["notes"]))
    model, init_label, followed = build_model(cfg, len(spec.classes), sampler.num_frames, size, image=image)
    del image
    # what its rows call the model: the registry name only where --model-arg / --init / --weights kept its architecture
    label = model_label(getattr(model, "model_name", None) or cfg.model, model.config)
    if followed and env.is_main:
        print(f"--init: {cfg.model} follows the image checkpoint's config: {followed}")
    if cfg.weights:
        pre = model.pretrained_cfg.preprocess
        norm = {"mean": tuple(pre["mean"]), "std": tuple(pre["std"])}
    train_set, train_issues = build_dataset(spec, "train", True, sampler=sampler, size=size, backend=cfg.backend,
                                            bad_items=cfg.bad_items, seed=cfg.seed,
                                            transform=ClipTransform(size=size, **norm))
    val_set, val_issues = build_dataset(spec, "val", False, parse_views(cfg.val_views), sampler, size, cfg.backend,
                                        cfg.bad_items, cfg.seed, transform=ClipTransform(size=size, **norm))
    for issue in (train_issues + val_issues) if env.is_main else []:
        warnings.warn(f"skipping annotation: {issue}", stacklevel=2)
    if len(train_set) == 0:
        raise TrainingStopped(f"{cfg.data}: no training videos in the train split ({len(train_issues)} annotation "
                              "line(s) skipped): nothing to train on, no checkpoint written")

    model.to(env.device)
    net = DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda" else None) \
        if env.distributed else model
    train_sampler = DistributedSampler(train_set, env.world_size, env.rank, shuffle=True, seed=cfg.seed)
    pin = env.device.type == "cuda"
    train_loader = make_loader(train_set, cfg.batch_size, cfg.num_workers, train_sampler, pin)
    val_loader = make_loader(val_set, cfg.batch_size, cfg.num_workers,
                             ShardSampler(len(val_set), env.rank, env.world_size), pin)
    core = TrainingCore(model, cfg, len(train_loader), env.device, warmup_from=1e-3)
    criterion = nn.CrossEntropyLoss(reduction="sum", label_smoothing=cfg.label_smoothing)

    log = EpochLog(out, "train") if env.is_main else None
    start_epoch, train_time = 0, 0.0
    bad_seen: Set[str] = set()
    fallback_seen: Set[str] = set()  # files PyAV decoded after decord / torchcodec failed on them

    # one identity for the run, written into its state and its checkpoint alike: a state copied in
    # from another run is refused on --resume instead of continuing with that run's schedule
    run_id = str((previous or {}).get("run_id") or uuid.uuid4().hex)

    def checkpoint_extra(epochs_done: int) -> Dict[str, Any]:
        return {"model": label, "init": init_label, "data": str(cfg.data), "epoch": epochs_done, "run_id": run_id,
                "classes": list(spec.classes),  # eval matches a dataset's classes to the head by name
                "train_time_s": round(train_time, 2),
                "clip": {"num_frames": sampler.num_frames, "stride": sampler.stride, "mode": sampler.mode,
                         "size": size, **{k: list(v) for k, v in norm.items()}},
                "train_config": dataclasses.asdict(cfg)}

    if cfg.resume and (out / TRAIN_STATE).exists():
        # the state holds the model weights of its epoch with the optimizer's: a kill between writing
        # the state and the checkpoint cannot pair one epoch's weights with another's optimizer
        _check_same_run(out, previous)
        start_epoch, info, _ = core.load(out / TRAIN_STATE)
        train_time, init_label = float(info.get("train_time_s", 0.0)), info.get("init", init_label)
        bad_seen = set(info.get("bad_files", []))
        run_id = str(info.get("run_id") or run_id)
        if env.is_main:
            print(f"resuming {out} after epoch {start_epoch}")
            dropped = log.drop_after(start_epoch)
            if dropped:
                print(f"dropping {dropped} train.csv row(s) after epoch {start_epoch} (their epoch is redone)")
            if previous is None or int(previous.get("epoch", 0)) != start_epoch:  # killed before the checkpoint
                save_checkpoint(model, out / CHECKPOINT, checkpoint_extra(start_epoch))
            _log_missing_row(log, start_epoch, info.get("row"))  # killed between the checkpoint and its row
    elif env.is_main:
        if cfg.resume:
            dropped = log.drop_after(0)  # rows of a run killed before its first state: their epochs are redone
            if dropped:
                print(f"dropping {dropped} train.csv row(s) with no training state (their epochs are redone)")
        log.store.write_environment(str(env.device), {"train_config": json.dumps(dataclasses.asdict(cfg))})

    row: Dict[str, Any] = {}
    for epoch in range(start_epoch, cfg.epochs):
        tic = time.perf_counter()
        net.train()
        train_set.set_epoch(epoch)
        train_sampler.set_epoch(epoch)
        sums = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, clips
        first_bad_step, step_in_epoch = None, 0
        fallbacks: List[str] = []
        bad: List[Tuple[str, str]] = []
        bar = progress(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", enabled=cfg.progress and env.is_main)
        for batch in bar:
            bad.extend((b.path, b.reason) for b in batch.bad)
            fallbacks.extend(batch.fallbacks)
            n_all = int(all_reduce_sum(torch.tensor([len(batch)], device=env.device)).item())
            if n_all == 0:
                continue  # every process's batch was bad
            if len(batch):
                clips, labels = batch.clips.to(env.device, non_blocking=True), batch.labels.to(env.device)
            else:  # join the gradient all-reduce with a zero contribution
                clips = torch.zeros(1, *model.input_size, device=env.device)
                labels = torch.zeros(1, dtype=torch.long, device=env.device)
            with core.autocast():
                logits = net(clips).float()
            loss_sum = criterion(logits, labels) * (1.0 if len(batch) else 0.0)
            if first_bad_step is None and not is_finite(loss_sum):
                first_bad_step = step_in_epoch + 1
            step_in_epoch += 1
            core.step(loss_sum * env.world_size / n_all)
            if len(batch):
                sums += torch.tensor([loss_sum.item(), (logits.argmax(1) == labels).sum().item(), len(batch)],
                                     dtype=torch.float64)
            bar.set_postfix(loss=f"{loss_sum.item() / max(1, len(batch)):.3f}")
        sums = all_reduce_sum(sums.to(env.device)).cpu()
        bad = all_gather_lists(bad)
        train_time += time.perf_counter() - tic
        counts, val_bad, val_fallbacks = evaluate(model, val_loader, len(spec.classes), env.device, cfg.precision)
        new_fallbacks = set(all_gather_lists(fallbacks) + val_fallbacks) - fallback_seen
        fallback_seen.update(new_fallbacks)
        for note in sorted(new_fallbacks) if env.is_main else []:
            warnings.warn(f"decoded with PyAV after the first decoder failed: {note}", stacklevel=2)
        if env.is_main:
            _warn_bad(bad + val_bad, bad_seen)
        val = summarize(counts, spec.label_groups())
        row = {"epoch": epoch + 1, "train_loss": float(sums[0] / sums[2]) if sums[2] else float("nan"),
               "train_acc": 100 * float(sums[1] / sums[2]) if sums[2] else float("nan"),
               **{f"val_{k}": v for k, v in val.items() if k != "num_videos"},
               "lr": core.lr, "epoch_time_s": round(time.perf_counter() - tic, 2),
               "train_time_s": round(train_time, 2), "skipped_items": len(bad_seen) + len(train_issues) + len(val_issues),
               "decoder_fallbacks": len(fallback_seen)}
        if sums[2] == 0:
            raise TrainingStopped(f"epoch {epoch + 1}: not one training clip could be decoded ({len(bad_seen)} bad "
                                  f"file(s), see the warnings); no checkpoint written for this epoch")
        finite = math.isfinite(row["train_loss"]) and params_finite(model)
        if not finite:  # nothing of a diverged epoch is recorded: no row, no state, no checkpoint
            kept = f"the checkpoint of epoch {epoch} is kept in {out}" if epoch > start_epoch or previous else \
                "no checkpoint was written"
            step = f", first at step {first_bad_step}" if first_bad_step is not None else ""
            raise TrainingStopped(f"training diverged at epoch {epoch + 1} (loss {row['train_loss']}{step}); {kept}. "
                                  "Try a lower --lr, --clip-grad 1.0 or --precision fp32")
        if env.is_main:  # state (weights, and the row), then checkpoint, then row: nothing of an epoch is
            # recorded before its checkpoint is, and a kill between any two is resumable (the row from the state)
            core.save(out / TRAIN_STATE, epoch + 1,
                      {"train_time_s": train_time, "init": init_label, "bad_files": sorted(bad_seen),
                       "run_id": run_id, "row": _json_row(row)})
            save_checkpoint(model, out / CHECKPOINT, checkpoint_extra(epoch + 1))
            log.append(row)
            print(f"epoch {epoch + 1}: loss {row['train_loss']:.4f} val top-1 {row['val_top1']:.1f}"
                  + "".join(f" {k} {v:.1f}" for k, v in row.items() if k.startswith("val_acc_")))
    if env.distributed:
        torch.distributed.barrier()  # the checkpoint is written before anyone reads it
    if cfg.eval_views:
        row["test"] = _test_evaluation(cfg, out)
    return row
