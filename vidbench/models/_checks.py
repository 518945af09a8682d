"""The values every model config takes, checked once for every family: each config's
``__post_init__`` calls `check_config` first, so a size of 0, a negative depth, a NaN rate or a
size with the wrong number of axes is refused (a ValueError naming the field and the value,
which `create_model` reports as a ModelConfigError and the weights loader as a WeightsError, in
one line) before any layer divides by it or silently reads it another way.

The rules go by field name (the families share their field names on purpose), and the number of
axes a size takes by the field's default: a tuple default takes exactly that many, an int one a
bare int; `img_size` also takes (h, w), `tubelet_size` also a bare int (a per-frame p x p patch).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Tuple

__all__ = ["check_config"]

# counts and sizes: every axis >= 1
POSITIVE = ("img_size", "num_frames", "in_chans", "embed_dim", "depth", "num_heads", "patch_size", "tubelet_size",
            "temporal_depth", "temporal_heads", "temporal_mlp_dim", "attention_window", "max_position_embeddings",
            "head_dim", "depths", "window_size", "patch_kernel", "patch_stride", "pool_kernel", "stride_q",
            "stride_kv")
# no size or count of a model reaches this (no video is 65,536 pixels wide, no model that wide or deep);
# past it a value is a typo, and tensors sized from it overflowed torch (img_size 10**12)
MAX_SIZE = 2 ** 16
NON_NEGATIVE = ("num_classes", "patch_padding")  # 0 classes: no head (pooled features)
# how many axes a size field takes where its default does not say (0: a bare int)
AXES = {"img_size": (0, 2), "tubelet_size": (0, 3), "depths": None, "num_heads": None}  # None: an int or any tuple
# floats: dropout probabilities in [0, 1); ratios and epsilons > 0; standard deviations >= 0
RATES = ("drop_rate", "attn_drop_rate", "drop_path_rate", "head_drop_rate", "fc_drop_rate", "temporal_drop_rate",
         "temporal_attn_drop_rate")
ABOVE_ZERO = ("mlp_ratio", "norm_eps", "fc_norm_eps")
# ratios that size a layer: no model comes near these (4 in ViT, 8 at most elsewhere); past them the
# hidden width is a typo that tried to allocate petabytes (mlp_ratio=10**12)
AT_MOST = {"mlp_ratio": 64.0}


def _axes(name: str, default: Any) -> Any:
    if name in AXES:
        return AXES[name]
    return (len(default),) if isinstance(default, tuple) else (0,)


_AXES_TEXT = {0: "a positive integer", 2: "two positive sizes (H, W)", 3: "three positive sizes (T, H, W)"}


def _describe(axes: Tuple[int, ...]) -> str:
    return " or ".join(_AXES_TEXT.get(n, f"{n} positive sizes") for n in axes)


def _check_ints(name: str, value: Any, axes: Any, low: int) -> None:
    many = isinstance(value, (tuple, list))
    items = tuple(value) if many else (value,)
    if axes is not None and (len(items) if many else 0) not in axes:
        raise ValueError(f"{name} must be {_describe(axes)}, got {value!r}")
    if (many and not items) or any(isinstance(v, bool) or not isinstance(v, int) for v in items):
        raise ValueError(f"{name} must be {'integers' if many else 'an integer'}, got {value!r}")
    if min(items) < low:
        raise ValueError(f"{name} must be >= {low}{' in every axis' if many else ''}, got {value!r}")
    if name in POSITIVE and max(items) > MAX_SIZE:
        raise ValueError(f"{name} must be at most {MAX_SIZE:,}{' in every axis' if many else ''}, got {value!r}")


def _check_float(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if name in RATES and not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    if name in ABOVE_ZERO and not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if name in AT_MOST and value > AT_MOST[name]:
        raise ValueError(f"{name} must be at most {AT_MOST[name]:g}, got {value:g}")


def check_config(cfg: Any) -> None:
    """Refuse the first field of the model config dataclass `cfg` that no model can take."""
    for f in dataclasses.fields(cfg):
        if not f.init:
            continue
        value = getattr(cfg, f.name)
        if value is None:  # "derive it" (patch_size, classifier, fc_norm_eps, tubelet_size)
            continue
        if f.name in POSITIVE or f.name in NON_NEGATIVE:
            _check_ints(f.name, value, _axes(f.name, f.default), 1 if f.name in POSITIVE else 0)
        elif isinstance(f.default, float) or f.name in ABOVE_ZERO:
            _check_float(f.name, value)
