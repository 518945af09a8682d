"""Every self-supervised method by name, with its config dataclass and default heads."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Mapping, Type

from torch import nn

from ..errors import ConfigError, UnknownNameError, UnknownOptionError
from .arb import ARB, ARBConfig
from .base import SSLMethod
from .byol import BYOL, BYOLConfig
from .contrastive import Contrastive, ContrastiveConfig
from .instdisc import InstDisc, InstDiscConfig
from .simclr import SimCLR, SimCLRConfig
from .wmse import WMSE, WMSEConfig

__all__ = ["METHODS", "method_config", "build_method", "parse_method_options", "check_batch"]

_CONFIGS: Dict[str, Type] = {
    "byol": BYOLConfig, "simclr": SimCLRConfig, "simclr_v2": SimCLRConfig, "wmse": WMSEConfig, "arb": ARBConfig,
    "instdisc": InstDiscConfig, "contrastive": ContrastiveConfig,
}
_DEFAULTS: Dict[str, Dict[str, Any]] = {"simclr_v2": {"proj_layers": 3}}
METHODS = tuple(_CONFIGS)


def _check(name: str) -> None:
    if name not in _CONFIGS:
        raise UnknownNameError(f"unknown self-supervised method {name!r}; known: {', '.join(METHODS)}")


def method_config(name: str, **options: Any):
    """The config dataclass of `name` with its defaults and `options`; unknown options are an
    error listing the valid ones."""
    _check(name)
    cls = _CONFIGS[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise UnknownOptionError(f"{name}: unknown option(s) {', '.join(unknown)}; valid options: {', '.join(sorted(fields))}")
    config = cls(**{**_DEFAULTS.get(name, {}), **options})
    _check_values(name, config)
    return config


# every integer a method takes is a count or a width (heads, views, negatives, groups, iterations)
MAX_COUNT = 2 ** 24


def _check_values(name: str, config: Any) -> None:
    """Refuse what no method can take, naming the option: an integer outside [1, MAX_COUNT] (a
    0-wide head, a 2**63-wide one that overflows torch), a float that is not finite."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and not 1 <= value <= MAX_COUNT:
            raise ConfigError(f"{name}: option {f.name} must be in [1, {MAX_COUNT:,}], got {value}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name}: option {f.name} must be a finite number, got {value}")


def check_batch(config: Any, batch_size: int) -> None:
    """Refuse a batch size the method's config cannot train on (W-MSE: below its whitening
    sub-batch), before any data is read."""
    check = getattr(config, "check_batch", None)
    if check is not None:
        check(batch_size)


def build_method(name: str, backbone: nn.Module, num_images: int = 0, config: Any = None) -> SSLMethod:
    """The method `name` around `backbone` with its default heads (sized from
    `backbone.num_features` and the config). `num_images` sizes InstDisc's memory bank."""
    _check(name)
    config = config if config is not None else method_config(name)
    if name == "instdisc":
        if num_images < 2:
            raise ValueError(f"instdisc needs the dataset size for its memory bank, got num_images={num_images}")
        return InstDisc.build(backbone, num_images, config)
    cls = {"byol": BYOL, "simclr": SimCLR, "simclr_v2": SimCLR, "wmse": WMSE, "arb": ARB, "contrastive": Contrastive}[name]
    return cls.build(backbone, config)


def parse_method_options(name: str, items: Mapping[str, str]) -> Dict[str, Any]:
    """String values (from the command line) converted to the config fields' types."""
    _check(name)
    fields = {f.name: f for f in dataclasses.fields(_CONFIGS[name])}
    out: Dict[str, Any] = {}
    for key, value in items.items():
        if key not in fields:
            raise UnknownOptionError(f"{name}: unknown option {key!r}; valid options: {', '.join(sorted(fields))}")
        default = fields[key].default
        try:
            if isinstance(default, bool):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                out[key] = value.lower() in ("true", "1")
            elif isinstance(default, int):
                out[key] = int(value)
            else:
                out[key] = float(value)
        except ValueError:
            raise ConfigError(f"{name}: option {key}={value!r} is not a valid {type(default).__name__}") from None
    return out
