"""`load_pretrained`: any supported checkpoint -> the registry model it holds, weights loaded strictly.

The path from file to model, in order (nothing large is allocated before step 5):

1. `read_source` reads the tensors without running code;
2. the format is detected from the key layout (or forced with `format=`);
3. the format infers the registry model and the config the checkpoint was trained with (its own
   config where it has one, else the tensor shapes), and that model is built on the meta device;
4. the tensors are converted to vidbench's names, position / time embeddings are resized to the
   requested frames and image size, a head of another class count is dropped (re-initialised),
   and names and shapes are checked against the meta model: every missing key, unexpected key
   and shape mismatch is named;
5. only then is the real model built, loaded with `strict=True`, checked finite and put in eval
   mode, with a `WeightsInfo` as `model.pretrained_cfg`.
"""
from __future__ import annotations

import dataclasses
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from torch import nn

from ..models import create_model as build_model
from ..models import model_entry, model_label
from ._registry import PublishedWeights, detect_format, find_published, get_format
from .classes import label_set
from .resize import resize_embeddings
from .source import PathLike, Source, WeightsError, read_source

__all__ = ["WeightsInfo", "create_model", "load_pretrained", "check_fit", "inspect_weights"]

log = logging.getLogger("vidbench.weights")

# what a model gets when neither a published entry nor the checkpoint says otherwise
DEFAULT_PREPROCESS = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "sampling_rate": None,
                      "crop_size": None, "resize_size": None, "views": None}


@dataclass
class WeightsInfo:
    """What `model.pretrained_cfg` carries after `load_pretrained`.

    preprocess: mean, std, num_frames, sampling_rate, crop_size, resize_size, views (None where
        unknown: the dataset's and the command's defaults apply); `preprocess_source` says where
        it came from ("published entry", "checkpoint config", "model defaults").
    """

    path: str
    format: str
    model: str
    config: Dict[str, Any]
    published: Optional[PublishedWeights] = None
    class_names: Optional[List[str]] = None
    preprocess: Dict[str, Any] = field(default_factory=dict)
    preprocess_source: str = "model defaults"
    notes: List[str] = field(default_factory=list)

    label: str = ""  # `model_label`: the registry name where the config is that model's, else family(fields)

    @property
    def name(self) -> str:
        return self.published.name if self.published else Path(self.path).name

    def row(self) -> Dict[str, Any]:
        """Columns a results row records about the weights."""
        pub = self.published
        return {"weights": self.name, "weights_path": self.path, "weights_format": self.format,
                "weights_source": pub.source if pub else "", "published_top1": pub.top1 if pub else None,
                "published_views": f"{pub.views[0]}x{pub.views[1]}" if pub else "",
                "preprocess": self.preprocess_source, "weights_notes": "; ".join(self.notes)}

    def as_json(self) -> Dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "published"}
        out["published"] = self.published.name if self.published else None
        return out


def check_fit(state: Dict[str, torch.Tensor], model: nn.Module, where: str) -> None:
    """Raise a WeightsError naming every missing key, unexpected key and shape mismatch."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {expected[k]}"
                  for k in sorted(set(state) & set(expected)) if tuple(state[k].shape) != expected[k]]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} key(s): {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} key(s): {', '.join(unexpected[:8])}"
                        f"{' ...' if len(unexpected) > 8 else ''}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {'; '.join(mismatched[:6])}")
    if problems:
        raise WeightsError(f"{where}: weights do not fit {getattr(model, 'model_name', type(model).__name__)}: "
                           + " | ".join(problems))


def _meta_model(name: str, config: Dict[str, Any], path: Path) -> nn.Module:
    try:
        with torch.device("meta"):
            return build_model(name, **config)
    except (TypeError, ValueError, KeyError) as err:
        msg = err.args[0] if err.args else err
        raise WeightsError(f"{path}: the checkpoint's config does not build {name}: {msg}") from None


def _to_tensors(state: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    return {k: v if isinstance(v, torch.Tensor) else torch.from_numpy(v.copy()) for k, v in state.items()}


def _preprocess(source: Source, fmt: Any, published: Optional[PublishedWeights], num_frames: int
                ) -> Tuple[Dict[str, Any], str]:
    out = dict(DEFAULT_PREPROCESS, num_frames=num_frames)
    if published is not None:
        d = published.as_dict()
        out.update({k: d[k] for k in ("mean", "std", "sampling_rate", "crop_size", "resize_size", "views")})
        if published.num_frames > 1 or num_frames <= 1:  # an image entry loaded into a video model keeps its frames
            out["num_frames"] = published.num_frames
        return out, f"published entry {published.name}"
    found = fmt.preprocess(source) if fmt.preprocess else {}
    if found:
        out.update(found)
        return out, f"checkpoint config ({fmt.name})"
    return out, "model defaults"


def _entry_fits(published: PublishedWeights, name: str, native: nn.Module) -> bool:
    """A file named like a published checkpoint is that checkpoint only if it holds the same model
    at the same input (an image ViT's entry also fits its frame average)."""
    if name not in (published.model, published.model.replace("vit_", "vit_frameavg_", 1)):
        return False
    size = native.input_size  # an image entry's own size where its checkpoint is not at the test crop (DINOv2: 518)
    own = published.overrides.get("img_size", published.crop_size)
    return size[-1] in (published.crop_size, own) and (published.num_frames == 1 or size[1] == published.num_frames)


def _looks_like(source: Source, asked: str) -> str:
    """What auto-detection makes of a file, for the error of a forced format that does not fit it."""
    try:
        found = detect_format(source).name
    except WeightsError as err:
        return "no known format recognises it" if "no known checkpoint layout" in str(err) else str(err).split(": ", 1)[-1]
    if found == asked:
        return f"auto-detection also says {found}"
    return f"it looks like {found} (auto-detected: drop --weights-format / format=)"


@contextmanager
def _forced_format(source: Source, fmt: Any, forced: Optional[str]) -> Iterator[None]:
    """A format forced with `format=` / --weights-format that does not fit the file: one line naming
    the file, the format asked for, what it lacked and what auto-detection says the file is
    (a bare missing key was the whole message before)."""
    if not forced:
        yield
        return
    try:
        yield
    except KeyError as err:
        key = err.args[0] if err.args else "?"
        raise WeightsError(f"{source.path}: not a {fmt.name} checkpoint (asked for with --weights-format): no key "
                           f"{key!r}; {_looks_like(source, fmt.name)}") from None
    except WeightsError as err:
        hint = _looks_like(source, fmt.name)
        if hint.startswith("auto-detection also"):
            raise
        raise WeightsError(f"{str(err).splitlines()[0]} (format {fmt.name} was asked for with --weights-format; "
                           f"{hint})") from None


def inspect_weights(path: PathLike, model: Optional[str] = None, format: Optional[str] = None,
                    **overrides: Any) -> Tuple[Source, Any, str, Dict[str, Any]]:
    """(source, format, registry name, checkpoint config) of a checkpoint, without building it
    (on the meta device only): the tensors are checked against the config the file declares
    (every name and shape) and for NaN / inf, as `load_pretrained` checks them, so every command
    taking --weights (bench, flops, train, eval, convert) refuses the same files."""
    source, fmt, name, config = _inspect(path, model, format, **overrides)
    _checked_state(source, fmt, format, name, config)
    return source, fmt, name, config


def _checked_state(source: Source, fmt: Any, format: Optional[str], name: str, config: Dict[str, Any]
                   ) -> Tuple[nn.Module, Dict[str, torch.Tensor]]:
    """The checkpoint's tensors as vidbench names them, checked against the model its config
    declares (built on the meta device: nothing allocated) and for non-finite values."""
    native = _meta_model(name, config, source.path)
    with _forced_format(source, fmt, format):
        state = _to_tensors(fmt.convert(source, native))
    check_fit(state, native, str(source.path))  # the file against its own declared config, before any allocation
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise WeightsError(f"{source.path}: non-finite values (NaN or inf) in {len(bad)} tensor(s): "
                           f"{', '.join(bad[:5])}")
    return native, state


def _inspect(path: PathLike, model: Optional[str] = None, format: Optional[str] = None,
             **overrides: Any) -> Tuple[Source, Any, str, Dict[str, Any]]:
    path = Path(path)
    source = read_source(path)
    fmt = get_format(format) if format else detect_format(source)
    with _forced_format(source, fmt, format):
        name, config = fmt.infer(source, model, overrides)
    if model is not None and model != name:
        want, have = model_entry(model), model_entry(name)
        if want.family != have.family:
            raise WeightsError(f"{path}: holds a {have.family} checkpoint ({name}), not {model} ({want.family})")
        name = model
    return source, fmt, name, config


def load_pretrained(path: PathLike, model: Optional[str] = None, format: Optional[str] = None,
                    **overrides: Any) -> nn.Module:
    """Load a checkpoint in any supported format into the registry model it holds.

    Args:
        path: a checkpoint file or a Hugging Face model directory.
        model: registry name; needed for formats without a config (official .pyth, timm and
            torchvision state dicts) where the shapes alone are ambiguous, and checked otherwise.
        format: force a format (`vidbench.weights.list_formats()`) instead of detecting it.
        overrides: config overrides. `num_frames` / `img_size` resize the position and time
            embeddings; `num_classes` different from the checkpoint's drops its head (a new one
            is initialised, for fine-tuning).

    Returns the model in eval mode, on the CPU, with `model.pretrained_cfg` a `WeightsInfo`.
    """
    path = Path(path)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    source, fmt, name, ckpt_config = _inspect(path, model, format, **overrides)
    native, state = _checked_state(source, fmt, format, name, ckpt_config)
    config = {**ckpt_config, **overrides}
    target = _meta_model(name, config, path) if overrides else native
    notes = resize_embeddings(state, target, native, fmt.name)
    new_head: Dict[str, torch.Tensor] = {}  # the target's own head, where the checkpoint's is dropped
    head_keys = [k for k in state if k.startswith("head.")]
    if getattr(native, "num_classes", 0) != getattr(target, "num_classes", 0) and head_keys:
        for k in head_keys:
            del state[k]
        new_head = {k: v for k, v in target.state_dict().items() if k.startswith("head.")}
        notes.append(f"head dropped: checkpoint has {native.num_classes} classes, model {target.num_classes} "
                     "(new head initialised)")
    check_fit({**state, **new_head}, target, str(path))  # every name and shape, so the load below is exact
    net = build_model(name, **config)
    net.load_state_dict(state, strict=not new_head)
    published = find_published(path, source)
    if published is not None and not _entry_fits(published, name, native):
        log.warning("%s: named like %s (%s, %dx%d) but holds %s at %s: its published metadata is not used", path,
                    published.name, published.model, published.num_frames, published.crop_size, name,
                    "x".join(map(str, native.input_size)))
        published = None
    preprocess, pre_source = _preprocess(source, fmt, published, getattr(net.config, "num_frames", None) or 1)
    if "num_frames" in overrides:
        preprocess["num_frames"] = overrides["num_frames"]
    if "img_size" in overrides:
        preprocess["crop_size"] = overrides["img_size"]
    names = fmt.class_names(source) if fmt.class_names else None
    if names is None and published is not None:
        names = label_set(published.classes)
    if names is not None and not len(names) == native.num_classes == net.num_classes:
        names = None  # names of another head, or of the head that was dropped
    for note in notes:
        log.warning("%s: %s", path, note)
    net.eval()
    net.pretrained_cfg = WeightsInfo(str(path), fmt.name, name, config, published, names, preprocess, pre_source,
                                     source.notes + notes, model_label(name, net.config))
    return net


def create_model(name: str, weights: Optional[PathLike] = None, weights_format: Optional[str] = None,
                 **overrides: Any) -> nn.Module:
    """`vidbench.models.create_model`, and published weights (`vidbench.create_model` is this one).

    weights: a checkpoint file or Hugging Face directory in any format this package reads; the
        model is then built with the checkpoint's config (overrides on top), loaded strictly and
        returned in eval mode (`load_pretrained`).
    weights_format: force a format instead of detecting it.
    """
    if weights is None:
        return build_model(name, **overrides)
    return load_pretrained(weights, model=name, format=weights_format, **overrides)
