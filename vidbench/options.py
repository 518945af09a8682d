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
vocabulary, available here). The error carries the field (``.field``), so a command names the flag
the user typed (``--threads 100000 is more than ...``) and a suite TOML its key. Checks between
fields stay in the dataclass's ``__post_init__``.

The vocabulary: each concept a job may take (frames, img_size, batch_size, precision, device,
threads, weights, weights_format, attn_backend, the decoder backend, workers, seed, progress, the
dataset directory and split) is
one `Concept` below, with its default, choices, checks, help and old spellings; a job declares its
field with it (``frames: Optional[int] = FRAMES()``, a grid axis ``FRAMES.sweep()``), giving
its own help or default where its meaning is narrower. The text parsers every command and the
suite share (`positive_int`, `comma_list`, `parse_key_values`) live here too, on the bottom floor
(this module imports only `vidbench.errors` and `vidbench.layers`).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import math
import re
import typing
import warnings
from collections import abc as collections_abc
from dataclasses import MISSING, dataclass
from typing import Any, Callable, ContextManager, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch

from .errors import ConfigError
from .layers.attention import ATTN_BACKENDS

__all__ = ["Alias", "option", "accepts_aliases", "canonical", "from_mapping", "field_types", "narrow",
           "precision_from_amp", "deprecation", "check_choice", "override", "check_fields", "check_device",
           "device_check", "DEVICES", "positive_int", "comma_list", "parse_value", "parse_key_values", "Concept",
           "PRECISIONS", "PRECISION_DTYPES", "check_precision", "autocast", "DECODERS", "ATTN_BACKENDS", "FRAMES",
           "IMG_SIZE", "BATCH_SIZE", "PRECISION", "DEVICE", "THREADS", "WEIGHTS", "WEIGHTS_FORMAT", "ATTN_BACKEND",
           "DECODER", "WORKERS", "SEED", "PROGRESS", "BAD_ITEMS", "DATA", "SPLIT", "precision_option", "STRATEGIES", "SCALINGS",
           "STRATEGY", "NNODES", "NODE_RANK", "RDZV_ENDPOINT", "SCALING", "endpoint_check"]


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
        deprecated: False for a second spelling kept for good (check-data's ``--sampling-rate``,
            mmaction2's name of ``--stride``): a visible flag of the same option, no warning.
    """

    name: str
    convert: Optional[Callable[[Any], Any]] = None
    const: Any = None
    choices: Optional[Sequence[Any]] = None
    flag: bool = True
    key: bool = True
    deprecated: bool = True


def option(default: Any = MISSING, *, help: str, default_factory: Any = MISSING, choices: Optional[Sequence[Any]] = None,
           flag: Optional[str] = None, aliases: Iterable[Alias] = (), cli: bool = True, required: bool = False,
           positive: bool = False, metavar: Optional[str] = None, parse: Optional[Any] = None,
           const: Any = None, gt: Optional[float] = None, ge: Optional[float] = None, lt: Optional[float] = None,
           le: Optional[float] = None, check: Optional[Callable[[str, Any], None]] = None,
           positional: Optional[str] = None, group: Optional[str] = None, repeat: bool = False) -> Any:
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
        positional: a positional argument instead of a flag, with this argparse ``nargs``
            ("1", "?", "*", "+").
        group: the title of the ``--help`` section the flag is listed in.
        repeat: a list given by repeating the flag (``--split train --split val``), not a comma list.
    """
    meta = {"help": help, "choices": tuple(choices) if choices is not None else None, "flag": flag,
            "aliases": tuple(aliases), "cli": cli, "required": required, "positive": positive, "metavar": metavar,
            "parse": parse, "const": const, "bounds": {k: v for k, v in (("gt", gt), ("ge", ge), ("lt", lt), ("le", le))
                                                       if v is not None}, "check": check,
            "positional": positional, "group": group, "repeat": repeat}
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
        if where is not None and alias.deprecated:
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


# no integer option counts past this (sizes, counts, steps, seeds): beyond it a value is a typo, and 2**63
# overflowed torch in a traceback
MAX_INT = 2 ** 31 - 1


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
        if abs(value) > MAX_INT:
            raise ConfigError(f"{name} must be at most {MAX_INT:,}, got {value}")
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
        if "help" not in f.metadata:  # not declared with option()
            continue
        try:
            _check_field(f, getattr(obj, f.name), hints[f.name])
        except ConfigError as exc:
            exc.field = f.name  # the CLI names the flag instead (`vidbench.cli._options.config_from_args`)
            raise


def _check_field(f: dataclasses.Field, value: Any, hint: Any) -> None:
    """The checks of `check_fields` on one field's value; a ConfigError naming the field."""
    meta = f.metadata
    tp, optional = _unwrap(hint)
    if value is None and (optional or f.default is None):
        return
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
# threads or worker processes per CPU core above which a value is refused: a typo or a runaway value
# (10**12 threads overflowed torch; 40 forked decoders ran a 24 GiB machine out of memory), not a setting
PER_CORE_LIMIT = 4


def per_core_check(name: str, value: Any) -> None:
    """The `option` check of a thread or worker count: at most PER_CORE_LIMIT per usable core."""
    if value is None:
        return
    from .results import available_cpus  # machine facts live with the results (floor 1)

    cores = available_cpus()
    if int(value) > PER_CORE_LIMIT * cores:
        raise ConfigError(f"{name} {value} is more than {PER_CORE_LIMIT} per CPU core this process may use "
                          f"({cores} core(s)): at most {PER_CORE_LIMIT * cores}")


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


# -- text from the command line (and --opt / --model-arg items) -----------------------------------
def positive_int(text: str) -> int:
    """A count or size: >= 1 (0 is never "the default"); argparse names the flag in its error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def comma_list(cast: Callable[[str], Any]) -> Callable[[str], List[Any]]:
    """'1,2,4' -> [1, 2, 4] with each item through `cast`."""

    def parse(text: str) -> List[Any]:
        try:
            return [cast(item.strip()) for item in text.split(",") if item.strip()]
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise argparse.ArgumentTypeError(f"bad list {text!r}: {exc}") from None

    return parse


def parse_value(text: str) -> Any:
    """JSON (4, 0.1, true, [2, 8, 8], "x"), a comma list of those (2,8,8 -> (2, 8, 8)), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    if "," in text:
        return tuple(parse_value(part.strip()) for part in text.split(","))
    return text


def parse_key_values(items: Iterable[str], flag: str, value: Callable[[str], Any] = parse_value,
                     example: str = "depth=4, tubelet_size=2,8,8") -> Dict[str, Any]:
    """The one KEY=VALUE parser: ['depth=4', 'tubelet-size=2,8,8'] -> {'depth': 4, 'tubelet_size':
    (2, 8, 8)}; a key's dashes are underscores; each value through `value` (`parse_value`: JSON
    or a comma tuple; ``str``: the text, for a parser that knows the field's type)."""
    out = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} expects KEY=VALUE (e.g. {example}), got {item!r}")
        out[key.strip().replace("-", "_")] = value(text.strip())
    return out


# -- precision: the autocast dtype ------------------------------------------------------------------
PRECISION_DTYPES: Dict[str, Optional[torch.dtype]] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
PRECISIONS: Tuple[str, ...] = tuple(PRECISION_DTYPES)


def check_precision(precision: str, name: str = "precision") -> None:
    check_choice(name, precision, PRECISIONS)


def autocast(device: Any, precision: str) -> ContextManager:
    """fp32: no autocast; bf16 / fp16: torch.autocast on `device` (a torch.device or its text)."""
    check_precision(precision)
    dtype = PRECISION_DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


# -- the vocabulary ---------------------------------------------------------------------------------
DECODERS = ("decord", "torchcodec", "pyav")  # vidbench.data.videoio.BACKENDS (a test holds them equal)


@dataclass(frozen=True)
class Concept:
    """One option of the vocabulary: its field name, default, choices, help, deprecated spellings
    and checks (`option` keywords in `extra`: flag, positive, bounds, check). ``CONCEPT()`` is a
    job's field (the scalar form), ``CONCEPT.sweep()`` a grid axis (a list, each value one row);
    either takes the job's own ``help`` / default / `option` keywords where its meaning is narrower."""

    name: str
    help: str
    default: Any = None
    choices: Optional[Tuple[Any, ...]] = None
    aliases: Tuple[Alias, ...] = ()
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def _keywords(self, help: Optional[str], aliases: Optional[Iterable[Alias]], changes: Dict[str, Any]) -> Dict[str, Any]:
        return {"choices": self.choices, **self.extra, **changes, "help": self.help if help is None else help,
                "aliases": self.aliases if aliases is None else tuple(aliases)}

    def __call__(self, default: Any = MISSING, *, help: Optional[str] = None,
                 aliases: Optional[Iterable[Alias]] = None, **changes: Any) -> Any:
        """The concept as one value of a job (`option` with the concept's declarations)."""
        return option(self.default if default is MISSING else default, **self._keywords(help, aliases, changes))

    def sweep(self, default: Optional[Sequence[Any]] = None, *, help: Optional[str] = None,
              aliases: Optional[Iterable[Alias]] = None, **changes: Any) -> Any:
        """The concept as a grid axis: a list (a comma list on the command line, a TOML array),
        [the default] unless `default` is given."""
        values = [self.default] if default is None else list(default)
        keywords = self._keywords(help, aliases, changes)
        keywords.pop("positive", None)  # every int item of a list is a count (check_fields)
        keywords.pop("check", None)
        return option(default_factory=lambda: list(values), **keywords)


FRAMES = Concept("frames", "clip frames", None, aliases=(Alias("num_frames"),))
IMG_SIZE = Concept("img_size", "input side", None, aliases=(Alias("size"),))
BATCH_SIZE = Concept("batch_size", "clips per step", 1, extra={"positive": True})
PRECISION = Concept("precision", "autocast dtype: fp32 (no autocast), bf16, or fp16 (with a gradient scaler when "
                    "training)", "fp32", choices=PRECISIONS,
                    aliases=(Alias("amp", convert=precision_from_amp, choices=("none", "bf16", "fp16")),))
DEVICE = Concept("device", "auto (cuda where available), cpu, cuda, cuda:N or mps", "auto",
                 extra={"check": device_check()})
THREADS = Concept("threads", "torch intra-op threads [torch's]", None,
                  extra={"positive": True, "check": per_core_check})
WEIGHTS = Concept("weights", "published weights: a file or a Hugging Face directory (any supported format)", None)
WEIGHTS_FORMAT = Concept("weights_format", "force a weights format instead of detecting it", None)
ATTN_BACKEND = Concept("attn_backend", "attention kernel backend: auto (SDPA's choice), flash, efficient, cudnn, "
                       "math (SDPA restricted to one kernel), reference (explicit softmax), flex (FlexAttention)",
                       "auto", choices=ATTN_BACKENDS)
DECODER = Concept("backend", "video decoder [decord where installed, else torchcodec where FFmpeg loads, else pyav]",
                  None, choices=DECODERS)
WORKERS = Concept("num_workers", "DataLoader worker processes (per process under torchrun)", 0,
                  extra={"flag": "workers", "ge": 0, "check": per_core_check})
SEED = Concept("seed", "random seed", 0, extra={"ge": 0})
PROGRESS = Concept("progress", "progress bars", True)
BAD_ITEMS = Concept("bad_items", "unusable videos and annotation lines: skip (warn, count, report) or raise", "skip",
                    choices=("skip", "raise"))
DATA = Concept("data", "dataset directory (vidbench make-dataset's, or any with a manifest or split annotations)",
               None)
SPLIT = Concept("split", "the dataset split to read (train, val, test, or another the dataset names)", None)


def precision_option(default: str = "fp32", amp_flag_const: Optional[str] = None) -> Any:
    """`PRECISION` with its old ``amp`` spelling as the job had it: train / eval's ``--amp
    none|bf16|fp16``, or pretrain's bare ``--amp`` meaning bf16 (`amp_flag_const`)."""
    if amp_flag_const is None:
        return PRECISION(default)
    return PRECISION(default, aliases=[Alias("amp", convert=precision_from_amp, const=amp_flag_const)])


# -- several processes and machines (issue 25: sharded training rows, multi-node) ------------------
STRATEGIES = ("ddp", "fsdp")  # vidbench.bench.ddp / vidbench.bench.fsdp
SCALINGS = ("weak", "strong")


def endpoint_check(name: str, value: Any) -> None:
    """The `option` check of a rendezvous endpoint: HOST:PORT (torchrun's --rdzv-endpoint)."""
    if value is None:
        return
    host, sep, port = str(value).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{name} must be HOST:PORT (e.g. 10.0.0.1:29500), got {value!r}")


STRATEGY = Concept("strategy", "how the processes train: ddp (DistributedDataParallel: each holds the whole model, "
                   "gradients all-reduced) or fsdp (FSDP2 fully_shard per block: parameters, gradients and "
                   "optimizer state sharded over the processes)", "ddp", choices=STRATEGIES)
NNODES = Concept("nnodes", "machines the processes span (torchrun --nnodes); --nproc is per machine", 1,
                 extra={"positive": True})
NODE_RANK = Concept("node_rank", "this machine's rank, 0 to nnodes - 1 (torchrun --node-rank)", 0, extra={"ge": 0})
RDZV_ENDPOINT = Concept("rdzv_endpoint", "HOST:PORT of the c10d rendezvous every machine joins (torchrun "
                        "--rdzv-endpoint; needed with --nnodes > 1)", None, extra={"check": endpoint_check})
SCALING = Concept("scaling", "weak: the batch is per process (the global batch grows with the processes); strong: "
                  "the batch is the global batch, split over the processes", "weak", choices=SCALINGS)
