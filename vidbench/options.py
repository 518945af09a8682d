"""Job options declared once. Each runnable job (the bench sweep, train, pretrain, eval) is one
dataclass; its fields carry their help text, choices and deprecated spellings in metadata
(`option(...)`). The command-line flags (`vidbench.cli._options`) and the suite TOML sections
(`vidbench.suite.spec`) are generated from those fields, so an option has one name, one default
and one help text everywhere, and the results record the dataclass as it ran.

    @accepts_aliases
    @dataclass
    class MyJob:
        img_size: Optional[int] = option(None, help="crop side", aliases=[Alias("size")])

An old spelling (`Alias`) keeps working for one release as a keyword argument, a TOML key and a
flag, with a one-line deprecation warning naming the new one.

Every value is checked where it is defined: `check_fields` (called by the jobs' ``__post_init__``,
and by the CLI and the suite loader after building any options dataclass) refuses, in one line
naming the field, a float that is NaN or infinite, a number outside the field's bounds (``gt``,
``ge``, ``lt``, ``le``), a count below 1 (``positive``, Optional[int] fields and int lists), a
value outside ``choices``, and what the field's own ``check`` refuses (`check_device`: one device
vocabulary, available here). Checks between fields stay in the dataclass's ``__post_init__``.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
import typing
import warnings
from collections import abc as collections_abc
from dataclasses import MISSING, dataclass
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple

from .errors import ConfigError

__all__ = ["Alias", "option", "accepts_aliases", "canonical", "from_mapping", "field_types", "narrow",
           "precision_from_amp", "deprecation", "check_choice", "override", "check_fields", "check_device",
           "device_check", "DEVICES"]


@dataclass(frozen=True)
class Alias:
    """A deprecated spelling of a field, kept for one release.

    Args:
        name: the old field / TOML key name (its flag is --name with dashes).
        convert: old value -> new value, where the old option meant something else
            (``amp="none"`` is ``precision="fp32"``).
        const: the old flag took no value and meant this one (pretrain's ``--amp``: "bf16").
        choices: the values the old flag took.
        flag: the old name was a flag (kept as a hidden one).
        key: the old name was a field / TOML key (accepted as a keyword and a TOML key).
    """

    name: str
    convert: Optional[Callable[[Any], Any]] = None
    const: Any = None
    choices: Optional[Sequence[Any]] = None
    flag: bool = True
    key: bool = True


def option(default: Any = MISSING, *, help: str, default_factory: Any = MISSING, choices: Optional[Sequence[Any]] = None,
           flag: Optional[str] = None, aliases: Iterable[Alias] = (), cli: bool = True, required: bool = False,
           positive: bool = False, metavar: Optional[str] = None, parse: Optional[Any] = None,
           const: Any = None, gt: Optional[float] = None, ge: Optional[float] = None, lt: Optional[float] = None,
           le: Optional[float] = None, check: Optional[Callable[[str, Any], None]] = None) -> Any:
    """A dataclass field with its documentation.

    Args:
        help: one line for ``--help`` and the README (the default is appended by the CLI).
        choices: the values the field takes (checked by argparse; the dataclass checks too).
        flag: the flag's name where it is not the field's (``num_workers`` is ``--workers``).
        aliases: deprecated spellings (`Alias`).
        cli: False for fields the command sets itself (not a flag).
        required: a required flag (the dataclass default is a placeholder).
        positive: a count or size that must be >= 1 (Optional[int] fields and int lists always are).
        parse: the CLI's parser of a value (of each item, for lists) where the type's is not right.
        const: the value of the flag given bare (``--compile`` = ``--compile default``).
        gt, ge, lt, le: bounds of a number (each item of a list); floats are always finite.
        check: ``check(name, value)`` raises a ConfigError for a value the field cannot take.
    """
    meta = {"help": help, "choices": tuple(choices) if choices is not None else None, "flag": flag,
            "aliases": tuple(aliases), "cli": cli, "required": required, "positive": positive, "metavar": metavar,
            "parse": parse, "const": const, "bounds": {k: v for k, v in (("gt", gt), ("ge", ge), ("lt", lt), ("le", le))
                                                       if v is not None}, "check": check}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def deprecation(old: str, new: str, where: str = "") -> str:
    return f"{where}{old} is deprecated, use {new} (the old spelling goes in the next release)"


def _aliases(cls: type) -> Dict[str, Tuple[str, Alias]]:
    """old name -> (field name, Alias) for every keyword / TOML alias of `cls`."""
    out = {}
    for f in dataclasses.fields(cls):
        for alias in f.metadata.get("aliases", ()):
            if alias.key:
                out[alias.name] = (f.name, alias)
    return out


def canonical(cls: type, values: Mapping[str, Any], where: Optional[str] = None) -> Dict[str, Any]:
    """`values` with deprecated names replaced by the field names (values converted). `where`:
    warn (FutureWarning) with this prefix; None: silently (reading what an older version wrote)."""
    table = _aliases(cls)
    out = dict(values)
    for old in [k for k in values if k in table]:
        new, alias = table[old]
        value = out.pop(old)
        if new in values:
            raise ConfigError(f"{where or ''}give {new} or its old spelling {old}, not both")
        out[new] = alias.convert(value) if alias.convert else value
        if where is not None:
            warnings.warn(deprecation(old, new, where), FutureWarning, stacklevel=3)
    return out


def accepts_aliases(cls: type) -> type:
    """Let the dataclass `cls` take its deprecated keyword names too (put it above ``@dataclass``)."""
    if not _aliases(cls):
        return cls
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **canonical(cls, kwargs, f"{cls.__name__}: "))

    cls.__init__ = __init__
    return cls


def from_mapping(cls: type, values: Mapping[str, Any], where: str, exclude: Iterable[str] = ()) -> Any:
    """`cls` from a TOML table: unknown keys are an error naming `where` and the valid keys;
    deprecated keys are accepted with a warning."""
    exclude = set(exclude)
    names = {f.name for f in dataclasses.fields(cls) if f.init} - exclude
    values = canonical(cls, values, f"{where}: ")
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
    try:
        obj = cls(**values)
        check_fields(obj)
        return obj
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None


def field_types(cls: type) -> Dict[str, Any]:
    """Field name -> resolved annotation (the modules use ``from __future__ import annotations``)."""
    return typing.get_type_hints(cls)


def narrow(obj: Any, cls: type, **changes: Any) -> Any:
    """The `cls` part of a dataclass that extends it (a suite section -> the job's config)."""
    return cls(**{**{f.name: getattr(obj, f.name) for f in dataclasses.fields(cls) if f.init}, **changes})


def precision_from_amp(value: Any) -> str:
    """The old ``amp`` vocabulary in the one ``precision`` one: train / eval's "none" and
    pretrain's False are fp32, pretrain's True was bf16; "bf16" / "fp16" stay."""
    if value is True:
        return "bf16"
    if value is False or value is None or value == "none":
        return "fp32"
    return str(value)


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")


def override(cls: type, name: str, default: Any = MISSING, *, default_factory: Any = MISSING, **metadata: Any) -> Any:
    """Field `name` of `cls` again with another default (a subclass's own recipe: pretraining's
    batch of 256 where video training takes 16), its help and spellings kept; `metadata` replaces
    entries (aliases, help)."""
    base = next(f for f in dataclasses.fields(cls) if f.name == name)
    meta = {**base.metadata, **metadata}
    if default is MISSING and default_factory is MISSING:
        default, default_factory = base.default, base.default_factory
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# -- checking the values ---------------------------------------------------------------------------
_BOUNDS = {"gt": (">", lambda v, b: v > b), "ge": (">=", lambda v, b: v >= b), "lt": ("<", lambda v, b: v < b),
           "le": ("<=", lambda v, b: v <= b)}


def _unwrap(tp: Any) -> Tuple[Any, bool]:
    """(type, optional) of an annotation: Optional[X] -> (X, True)."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is typing.Union and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return tp, False


def _check_number(name: str, value: Any, tp: Any, meta: Mapping[str, Any], positive: bool) -> None:
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value}")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        if positive and value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")
    else:
        return
    for key, bound in (meta.get("bounds") or {}).items():
        sign, ok = _BOUNDS[key]
        if not ok(value, bound):
            raise ConfigError(f"{name} must be {sign} {bound:g}, got {value}")


def check_fields(obj: Any) -> None:
    """Check every `option` field of the dataclass `obj` against what it declares (see the module
    docstring); the first problem is a ConfigError naming the field and the value."""
    hints = field_types(type(obj))
    for f in dataclasses.fields(obj):
        meta = f.metadata
        if "help" not in meta:  # not declared with option()
            continue
        value = getattr(obj, f.name)
        tp, optional = _unwrap(hints[f.name])
        if value is None and (optional or f.default is None):
            continue
        choices = meta.get("choices")
        origin = typing.get_origin(tp)
        if origin in (list, tuple, collections_abc.Sequence) and isinstance(value, (list, tuple)):
            item_tp, item_optional = _unwrap((typing.get_args(tp) or (Any,))[0])
            for item in value:
                if item is None and item_optional:
                    continue
                if item_tp in (int, float) and not meta.get("parse"):
                    _check_number(f.name, item, item_tp, meta, positive=True)
                elif choices and item not in choices:
                    check_choice(f.name, item, choices)
        elif tp in (int, float):
            _check_number(f.name, value, tp, meta, positive=meta.get("positive", False) or optional)
        elif choices and not isinstance(value, bool):
            check_choice(f.name, value, choices)
        if meta.get("check") is not None:
            meta["check"](f.name, value)


# -- devices: one vocabulary for every command ----------------------------------------------------
DEVICES = ("cpu", "cuda", "cuda:N", "mps")
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


def check_device(value: Any, name: str = "device", auto: bool = True, meta: bool = False) -> str:
    """`value` if it is a device of this vocabulary (``auto``, where allowed: cuda where available,
    else cpu) that this machine has; else a ConfigError in one line. ``meta``: also the meta
    device (counting only)."""
    text = str(value)
    known = (("auto",) if auto else ()) + DEVICES  # meta (counting only) is not offered
    if text == "auto" and auto or text == "meta" and meta:
        return text
    if not _DEVICE.match(text):
        raise ConfigError(f"{name} must be one of {', '.join(known)}, got {text!r}")
    import torch

    if text.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            why = "this PyTorch is built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
            raise ConfigError(f"{name} {text}: CUDA is not available here ({why}); use cpu")
        index = int(text.partition(":")[2] or 0)
        if index >= count:
            raise ConfigError(f"{name} {text}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    elif text == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"{name} mps: the Apple MPS backend is not available here; use cpu")
    return text


def device_check(auto: bool = True, meta: bool = False) -> Callable[[str, Any], None]:
    """The `option` check of a device field (`check_device`)."""

    def check(name: str, value: Any) -> None:
        check_device(value, name, auto=auto, meta=meta)

    return check
