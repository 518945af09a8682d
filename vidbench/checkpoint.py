"""Model checkpoints as safetensors: weights plus the model's registry name and config as JSON in
the file's metadata, so a checkpoint rebuilds its model without unpickling anything.

    save_checkpoint(model, "results/run/byol.safetensors", {"method": "byol", "epochs": 100})
    model, extra = load_checkpoint("results/run/byol.safetensors")

Image backbones (self-supervised pretraining) use the same format through `save_backbone`,
`load_backbone` and `read_backbone_meta`, which check that the model is an image ViT.

Any vidbench model works (image ViTs for `vidbench train --init`, trained video models for
`vidbench eval`). `extra` is any JSON-serialisable dict; the key ``"method"`` names how the
weights were obtained (an SSL method, "supervised", ...) and becomes the `init` column of results
of video models initialised from the checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch
from safetensors import safe_open
from safetensors.torch import load_model, save_model
from torch import nn

import vidbench.models as _models  # the classes a checkpoint names (not the root package: docs/architecture.md)

from .errors import UserError
from .models import create_model, model_entry
from .results import fsync_path, removing_on_error, writing

__all__ = ["FORMAT", "json_tuples", "load_backbone", "load_checkpoint", "read_backbone_meta", "read_metadata",
           "save_backbone", "save_checkpoint"]

FORMAT = "vidbench-checkpoint/1"


class CheckpointError(UserError, ValueError):
    """A checkpoint file that cannot be used: the message names the file and what is wrong."""
PathLike = Union[str, os.PathLike]


def json_tuples(value: Any) -> Any:
    """JSON lists back to tuples (configs use tuples for sizes)."""
    if isinstance(value, list):
        return tuple(json_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: json_tuples(v) for k, v in value.items()}
    return value


def save_checkpoint(model: nn.Module, path: PathLike, extra_metadata: Optional[Mapping[str, Any]] = None) -> Path:
    """Write `model`'s weights and what rebuilds it (registry name, config class, config)."""
    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        raise TypeError(f"{type(model).__name__} has no dataclass `config`: not a vidbench model")
    init_fields = {f.name for f in dataclasses.fields(config) if f.init}  # not derived ones (MViT's blocks)
    spec = {"name": getattr(model, "model_name", None), "class": type(model).__name__,
            "config_class": type(config).__name__,
            "config": {k: v for k, v in dataclasses.asdict(config).items() if k in init_fields}}
    metadata = {"format": FORMAT, "model": json.dumps(spec), "extra": json.dumps(dict(extra_metadata or {}))}
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with writing(path, "the previous checkpoint is intact"), removing_on_error(tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        save_model(model, str(tmp), metadata=metadata)
        fsync_path(tmp)
        os.replace(tmp, path)  # a crash never leaves a half-written checkpoint under the real name
    return path


def read_metadata(path: PathLike) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(model spec, extra metadata) of a checkpoint, without loading weights."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as err:  # safetensors raises its own error types for a file that is not one
        raise CheckpointError(f"{path}: not a safetensors file ({' '.join(str(err).split())})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a vidbench checkpoint (metadata format {meta.get('format')!r}, "
                              f"expected {FORMAT!r}; write one with vidbench.checkpoint.save_checkpoint, or "
                              "convert published weights with vidbench convert)")
    try:
        spec, extra = json.loads(meta["model"]), json.loads(meta.get("extra", "{}"))
    except KeyError:
        raise CheckpointError(f"{path}: vidbench checkpoint metadata lacks 'model' (the model's name and config)") from None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: vidbench checkpoint metadata is not JSON ({err})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict) or not isinstance(extra, dict):
        raise CheckpointError(f"{path}: vidbench checkpoint metadata 'model' must hold the model's 'config'")
    return spec, extra


def build_from_spec(spec: Mapping[str, Any], **overrides: Any) -> nn.Module:
    """The model a checkpoint describes (random weights), with config `overrides`."""
    config = {**json_tuples(spec["config"]), **overrides}
    if spec.get("name"):
        model_entry(spec["name"])  # a clear error for a name this version does not have
        return create_model(spec["name"], **config)
    model_cls, config_cls = getattr(_models, spec["class"], None), getattr(_models, spec["config_class"], None)
    if not (isinstance(model_cls, type) and issubclass(model_cls, nn.Module) and dataclasses.is_dataclass(config_cls)):
        raise ValueError(f"checkpoint model class {spec['class']!r} / config {spec['config_class']!r} "
                         "is not a vidbench model")
    return model_cls(config_cls(**config))


def load_checkpoint(path: PathLike) -> Tuple[nn.Module, Dict[str, Any]]:
    """Rebuild the model of a checkpoint and load its weights (strictly); returns (model, extra).

    The declared config is checked against the tensor shapes in the file's header on the meta
    device first, so a file whose metadata claims a huge model is refused before anything is
    allocated; non-finite weights are refused too."""
    spec, extra = read_metadata(path)
    try:
        with torch.device("meta"):
            probe = build_from_spec(spec)
    except (TypeError, ValueError, KeyError) as err:
        raise CheckpointError(f"{path}: its config does not build a model: {err.args[0] if err.args else err}") from None
    with safe_open(str(path), framework="pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    expected = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    if shapes != expected:
        missing, unexpected = sorted(set(expected) - set(shapes)), sorted(set(shapes) - set(expected))
        wrong = [f"{k} {shapes[k]} vs {expected[k]}" for k in sorted(set(shapes) & set(expected)) if shapes[k] != expected[k]]
        raise CheckpointError(f"{path}: weights do not fit the declared {spec.get('name') or spec.get('class')} config: "
                              f"missing {missing[:5]}, unexpected {unexpected[:5]}, shapes (file vs config) {wrong[:3]}")
    model = build_from_spec(spec)
    load_model(model, str(path), strict=True)
    bad = [n for n, p in model.state_dict().items() if p.is_floating_point() and not bool(torch.isfinite(p).all())]
    if bad:
        raise CheckpointError(f"{path}: non-finite weights (NaN or inf) in {len(bad)} tensor(s), e.g. {bad[0]}: "
                              "a diverged run; use an earlier checkpoint")
    return model, extra


def save_backbone(vit: nn.Module, path: PathLike, method: str, extra: Optional[Mapping[str, Any]] = None) -> Path:
    """`save_checkpoint` for an image ViT, with the method that trained it in ``extra["method"]``."""
    from .models.vit import VisionTransformer

    if not isinstance(vit, VisionTransformer):
        raise TypeError(f"save_backbone takes a VisionTransformer, got {type(vit).__name__}")
    return save_checkpoint(vit, path, {**dict(extra or {}), "method": str(method)})


def read_backbone_meta(path: PathLike) -> Dict[str, Any]:
    """{'method', 'model_name', 'config' (dict), 'extra' (dict)} of an image-backbone file, without
    loading weights; a checkpoint of anything but an image ViT is refused."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"backbone file not found: {path}")
    spec, extra = read_metadata(path)
    if spec.get("class") != "VisionTransformer":
        raise ValueError(f"{path}: holds a {spec.get('class')}, not an image ViT backbone")
    return {"method": extra.get("method", ""), "model_name": spec.get("name") or "", "config": spec["config"],
            "extra": extra}


def load_backbone(path: PathLike, map_location: str = "cpu") -> nn.Module:
    """The image ViT of a backbone file (weights loaded strictly); `model.ssl_method` and
    `model.ssl_extra` carry its metadata."""
    meta = read_backbone_meta(path)
    vit, extra = load_checkpoint(path)
    vit.model_name = meta["model_name"] or "vit"
    vit.ssl_method, vit.ssl_extra = meta["method"], extra
    return vit.to(map_location)
