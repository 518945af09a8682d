"""One registry for every model: `register_model`, `create_model`, `list_models`.

A model is registered by a factory function taking config overrides as keyword arguments.
Published figures (params, GMACs per view, input size, source) travel with each entry as a
`ModelMeta` contract that tests and the harness recompute.
"""
from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, TypeVar

import torch
from torch import nn

from ..errors import UserError, look_up

__all__ = [
    "ModelMeta",
    "register_model",
    "create_model",
    "list_models",
    "model_entry",
    "build_config",
    "model_label",
]


@dataclass(frozen=True)
class ModelMeta:
    """Published numbers for a registry entry (None where no paper gives one).

    params: parameter count (an exact integer where the reference code gives one).
    gmacs: multiply-adds per view at batch 1, in billions (the papers' "FLOPs").
    gmacs_tol: relative tolerance the reproduction is held to.
    input_size: (C, T, H, W) for video, (C, H, W) for images.
    source: where the numbers come from.
    """

    params: Optional[float] = None
    gmacs: Optional[float] = None
    gmacs_tol: float = 0.01
    params_tol: float = 0.01
    input_size: Optional[Tuple[int, ...]] = None
    source: str = ""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    fn: Callable[..., nn.Module]
    meta: ModelMeta


_REGISTRY: Dict[str, ModelEntry] = {}


def register_model(family: str, meta: Optional[ModelMeta] = None) -> Callable:
    """Decorator: register `fn(**overrides) -> nn.Module` under its function name."""

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelEntry(name, family, fn, meta or ModelMeta())
        return fn

    return decorator


def list_models(pattern: Optional[str] = None, family: Optional[str] = None) -> List[str]:
    """Sorted registry names, optionally filtered by a shell-style pattern and family."""
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    if family:
        names = [n for n in names if _REGISTRY[n].family == family]
    return names


def model_entry(name: str) -> ModelEntry:
    """The registry entry for `name`; unknown names raise a KeyError listing close matches."""
    return look_up(_REGISTRY, name, UnknownModelError, "model", f"vidbench list shows all {len(_REGISTRY)}")


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model. Overrides set config fields (num_classes, num_frames, img_size,
    patch_size / tubelet_size, depth, embed_dim, num_heads, drop rates, ...); None values are
    dropped so command-line defaults never clobber a model's own.

    Published weights are a floor above the registry: `vidbench.create_model(name, weights=path)`
    (`vidbench.weights.create_model`) builds the model from the checkpoint.
    """
    entry = model_entry(name)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "weights" in overrides or "weights_format" in overrides:
        raise ModelOptionError(f"{name}: weights are loaded by vidbench.create_model (vidbench.weights), "
                               "not by the registry's vidbench.models.create_model")
    try:
        model = entry.fn(**overrides)
    except ValueError as err:  # a config value the model cannot take (sizes that do not divide, ...)
        if not overrides or isinstance(err, UserError):
            raise
        raise ModelConfigError(f"{name} with {_show(overrides)}: {err}") from err
    model.model_name = name
    return model


def _show(overrides: Dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in overrides.items())


C = TypeVar("C")


class UnknownModelError(UserError, KeyError):
    """A registry name that does not exist (the message lists close matches)."""


class ModelOptionError(UserError, TypeError):
    """A model option the config does not have, or a value of the wrong type."""


class ModelConfigError(UserError, ValueError):
    """Model options whose values the model cannot take (sizes that do not divide, ...)."""


def _check_type(name: str, key: str, value: Any, default: Any, annotation: Any) -> None:
    """Overrides of a plainly typed field (int, float, bool, str, tuple) must have that type;
    fields annotated with a Union, Optional or Any take what their config validates."""
    text = str(annotation)
    if default is None or value is None or any(w in text for w in ("Union", "Optional", "Any", "|")):
        return
    ok = True
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, tuple):
        ok = isinstance(value, (tuple, list, int))
    if not ok:
        raise ModelOptionError(f"{name}: option {key}={value!r} should be a {type(default).__name__} "
                               f"(like its default {default!r})")


def build_config(cls: Type[C], name: str, defaults: Dict[str, Any], overrides: Dict[str, Any]) -> C:
    """`cls(**defaults, **overrides)` with a clear error for options the config does not have and
    for values of the wrong type."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ModelOptionError(f"{name}: unknown option(s) {', '.join(unknown)}; valid options: "
                               f"{', '.join(sorted(fields))}")
    merged = {**defaults, **overrides}
    for key, value in overrides.items():
        f = fields[key]
        default = defaults[key] if key in defaults else (f.default if f.default is not dataclasses.MISSING else None)
        _check_type(name, key, value, default, f.type)
    return cls(**merged)


# fields that do not change what a model is called: its input, head size and regularisation
_LABEL_IGNORES = ("num_classes", "num_frames", "img_size")


def model_label(name: str, config: Any) -> str:
    """What a results row calls a model: `name` where `config` (a model config dataclass) has
    that registry model's architecture, else its family with the fields that differ from it, in
    the config's field order, e.g. ``timesformer(embed_dim=48, depth=2, num_heads=2)`` (a 48-wide
    checkpoint is not the paper's timesformer_base). Input size, class count and drop rates are
    not part of the name (rows record them apart)."""
    with torch.device("meta"):
        default = create_model(name).config
    mine, paper = dataclasses.asdict(config), dataclasses.asdict(default)
    diff = [f"{k}={_compact(v)}" for k, v in mine.items()
            if k not in _LABEL_IGNORES and "drop" not in k and paper.get(k) != v]
    return name if not diff else f"{model_entry(name).family}({', '.join(diff)})"


def _compact(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(map(str, value)) if all(isinstance(v, int) for v in value) else str(list(value))
    return f"{value:g}" if isinstance(value, float) else str(value)
