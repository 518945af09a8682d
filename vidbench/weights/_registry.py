"""The registry of checkpoint formats and of the published checkpoints they know.

A format is a small module that registers a `WeightsFormat`: how to recognise its files
(`sniff`), which registry model and config a file holds (`infer`), and how to map its tensors to
vidbench's names (`convert`). Published checkpoints are `PublishedWeights` entries (what
torchvision's `Weights` enums and timm's `pretrained_cfg` carry), matched by file or directory name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from torch import nn

from ..errors import look_up
from .source import Source, WeightsError

__all__ = ["WeightsFormat", "PublishedWeights", "register_format", "register_published", "get_format",
           "list_formats", "detect_format", "find_published", "list_published", "StateDict", "Inferred"]

StateDict = Dict[str, Any]
# (registry model name, config overrides) a checkpoint holds
Inferred = Tuple[str, Dict[str, Any]]


@dataclass(frozen=True)
class WeightsFormat:
    """Args:
        name: the value of `format=` / `--weights-format`.
        description: one line for the README table and `vidbench convert --help`.
        sniff: `sniff(source) -> bool`, cheap, on key names and file kind only.
        infer: `infer(source, model, overrides) -> (registry name, config overrides)`: from the
            checkpoint's own config, else from `model` and the tensor shapes. `model` is the
            requested registry name or None; `overrides` the user's config overrides.
        convert: `convert(source, model) -> state dict` in vidbench's names, given the model
            (built on the meta device) whose config says how to reshape.
        families: the model families it produces.
        preprocess, class_names: optional hooks, see the fields.
    """

    name: str
    description: str
    sniff: Callable[[Source], bool]
    infer: Callable[[Source, Optional[str], Dict[str, Any]], Inferred]
    convert: Callable[[Source, nn.Module], StateDict]
    families: Tuple[str, ...] = ()
    # optional: preprocessing the checkpoint itself declares (HF preprocessor config, vidbench
    # metadata): a dict with any of mean, std, num_frames, sampling_rate, crop_size, resize_size, views
    preprocess: Optional[Callable[[Source], Dict[str, Any]]] = None
    # optional: the class names in head order (HF id2label, vidbench metadata)
    class_names: Optional[Callable[[Source], Optional[List[str]]]] = None


@dataclass(frozen=True)
class PublishedWeights:
    """A published checkpoint and how it is evaluated (timm `pretrained_cfg`, torchvision `Weights.meta`).

    Args:
        name: vidbench's id for it, e.g. "timesformer_base.k400_official".
        model: registry model it loads into; `overrides`: config it needs (frames, size, classes).
        format: the `WeightsFormat` name.
        files: file or directory names it is published as (matched case-insensitively).
        source: where it is published; `paper`: the table its numbers come from.
        num_frames, sampling_rate: clip frames and the stride between them (in source frames).
        crop_size, resize_size: test crop and the short side resized to before cropping.
        mean, std: input normalisation on [0, 1] pixels.
        views: (temporal clips, spatial crops) of the published test protocol.
        top1, top5: published accuracy in percent with those views; `dataset`: on which set.
        gmacs: published multiply-adds per view (None where not published).
        classes: label set name ("kinetics400", "imagenet1k", ...).
    """

    name: str
    model: str
    format: str
    files: Tuple[str, ...]
    source: str
    paper: str = ""
    overrides: Dict[str, Any] = field(default_factory=dict)
    num_frames: int = 8
    sampling_rate: int = 1
    crop_size: int = 224
    resize_size: int = 256
    mean: Tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: Tuple[float, float, float] = (0.225, 0.225, 0.225)
    views: Tuple[int, int] = (1, 1)
    top1: Optional[float] = None
    top5: Optional[float] = None
    gmacs: Optional[float] = None
    dataset: str = "Kinetics-400 val"
    classes: str = "kinetics400"

    def as_dict(self) -> Dict[str, Any]:
        return {"weights": self.name, "weights_source": self.source, "weights_paper": self.paper,
                "num_frames": self.num_frames, "sampling_rate": self.sampling_rate, "crop_size": self.crop_size,
                "resize_size": self.resize_size, "mean": list(self.mean), "std": list(self.std),
                "views": f"{self.views[0]}x{self.views[1]}", "published_top1": self.top1,
                "published_top5": self.top5, "published_gmacs": self.gmacs, "published_dataset": self.dataset}


_FORMATS: Dict[str, WeightsFormat] = {}
_PUBLISHED: Dict[str, PublishedWeights] = {}


def register_format(fmt: WeightsFormat) -> WeightsFormat:
    if fmt.name in _FORMATS:
        raise ValueError(f"weights format {fmt.name!r} is registered twice")
    _FORMATS[fmt.name] = fmt
    return fmt


def register_published(*entries: PublishedWeights) -> None:
    for entry in entries:
        if entry.name in _PUBLISHED:
            raise ValueError(f"published weights {entry.name!r} are registered twice")
        _PUBLISHED[entry.name] = entry


def list_formats() -> List[str]:
    return list(_FORMATS)


def get_format(name: str) -> WeightsFormat:
    return look_up(_FORMATS, name, WeightsError, "weights format", f"known: {', '.join(_FORMATS)}", n=3)


def detect_format(source: Source) -> WeightsFormat:
    """The one registered format whose `sniff` accepts the source; a clear error otherwise."""
    hits = [f for f in _FORMATS.values() if f.sniff(source)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        sample = ", ".join(sorted(source.state)[:6])
        raise WeightsError(f"{source.path}: no known checkpoint layout recognised (a {source.kind} file with keys "
                           f"{sample}, ...); known formats: {', '.join(_FORMATS)}; force one with --weights-format")
    raise WeightsError(f"{source.path}: matches several formats ({', '.join(f.name for f in hits)}); "
                       "choose one with --weights-format")


def list_published(model: Optional[str] = None) -> List[PublishedWeights]:
    return [w for w in _PUBLISHED.values() if model is None or w.model == model]


def find_published(path: Path, source: Optional[Source] = None) -> Optional[PublishedWeights]:
    """The published entry a file or directory is: by its name, by a Hugging Face cache folder
    (``models--org--name/snapshots/<hash>``), or by a timm hub config's ``architecture.tag``.

    A config's ``_name_or_path`` is not used: a model fine-tuned from a published one keeps it."""
    names = {path.name.lower()}
    names |= {part.split("--")[-1].lower() for part in path.resolve().parts if part.startswith("models--")}
    config = source.config if source is not None and source.config else {}
    tag = (config.get("pretrained_cfg") or {}).get("tag") if isinstance(config.get("pretrained_cfg"), dict) else None
    if config.get("architecture") and tag:
        names.add(f"{config['architecture']}.{tag}".lower())
    for entry in _PUBLISHED.values():
        if names & {f.lower() for f in entry.files}:
            return entry
    return None
