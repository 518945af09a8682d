"""Command-line flags generated from a job's dataclass (`vidbench.options`): one flag per field,
named after it (``img_size`` -> ``--img-size``, or the field's ``flag``), with its help text, its
default in brackets and its type:

    bool                 --x (default False) / --no-x (default True); Optional[bool]: both
    int, Optional[int]   counts and sizes through positive_int (Optional ones and ``positive``)
    float, str           as they are; ``choices`` from the field's metadata
    List[...]            a comma list ('1,2,4'), each item typed as above
    Dict[str, Any]       KEY=VALUE, repeatable (values JSON, or comma lists as tuples; the field's
                         ``parse``: each value's parser instead)
    ``positional``       a positional argument (its ``nargs``); ``group``: a --help section;
                         ``repeat``: a list given by repeating the flag

Flags the user does not give are absent from the namespace, so `config_from_args` leaves the
dataclass defaults in place (one default, the dataclass's). Deprecated spellings (`Alias`) are
hidden flags that print one line naming the new flag and store into the same field.

This is the one place that calls ``add_argument``: every command's flags come from its job
dataclass through `add_options` (`add_version` adds ``vidbench --version``).
"""
from __future__ import annotations

import argparse
import collections.abc
import dataclasses
import sys
import typing
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import ConfigError
from ..options import Alias, check_fields, comma_list, deprecation, field_types, parse_key_values, positive_int

__all__ = ["add_options", "add_deprecated_flag", "add_version", "config_from_args", "flag_name", "parse_key_values"]


def flag_name(f: dataclasses.Field) -> str:
    return "--" + (f.metadata.get("flag") or f.name).replace("_", "-")


def _unwrap(tp: Any) -> Tuple[Any, bool]:
    """(type, optional) of an annotation: Optional[X] -> (X, True)."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is typing.Union and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return tp, False


def _choice(cast: Callable[[str], Any], choices: Optional[Sequence[Any]]) -> Callable[[str], Any]:
    if not choices:
        return cast

    def parse(text: str) -> Any:
        value = cast(text)
        if value not in choices:
            raise argparse.ArgumentTypeError(f"invalid choice {value!r} (choose from {', '.join(map(str, choices))})")
        return value

    return parse


def _scalar(tp: Any, positive: bool) -> Callable[[str], Any]:
    tp, optional = _unwrap(tp)
    if tp is int:
        return positive_int if positive or optional else int
    if tp is float:
        return float
    return str


def _default_text(f: dataclasses.Field) -> str:
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    if default is None or default == "" or default == {} or isinstance(default, bool) or f.metadata.get("required"):
        return ""
    if isinstance(default, (list, tuple)):
        return "" if all(v is None for v in default) else f" [{','.join(map(str, default))}]"
    return f" [{default}]"


class _Deprecated(argparse.Action):
    """A deprecated spelling: one line on stderr naming the new flag, then the new flag's value."""

    def __init__(self, option_strings: List[str], dest: str, new: str = "", convert: Optional[Callable] = None,
                 const: Any = None, **kwargs: Any):
        self.new, self.convert = new, convert
        super().__init__(option_strings, dest, nargs=0 if const is not None else None, const=const, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        value = self.const if self.nargs == 0 else values
        value = self.convert(value) if self.convert and self.nargs != 0 else value
        new = f"{self.new} {value}" if self.convert or self.nargs == 0 else self.new  # the meaning changed spelling
        print(f"{parser.prog}: {deprecation(option_string, new)}", file=sys.stderr)
        setattr(namespace, self.dest, value)


def add_deprecated_flag(parser: Any, old: str, *, dest: str, new: str, type: Optional[Callable[[str], Any]] = None,
                        convert: Optional[Callable[[Any], Any]] = None, const: Any = None,
                        choices: Optional[Sequence[Any]] = None) -> None:
    """A hidden flag `old` that stores into `dest` (whose flag is `new`) and says so on stderr.
    `const`: the old flag took no value and meant this one; `convert`: old value -> new value."""
    kwargs: Dict[str, Any] = {"const": const} if const is not None else {"type": type, "choices": choices,
                                                                        "convert": convert}
    parser.add_argument(old, dest=dest, action=_Deprecated, new=new, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS, **kwargs)


def _add_alias(parser: Any, f: dataclasses.Field, alias: Alias, new: str, field_type: Callable[[str], Any]) -> None:
    add_deprecated_flag(parser, "--" + alias.name.replace("_", "-"), dest=f.name, new=new,
                        type=None if alias.convert else field_type, convert=alias.convert, const=alias.const,
                        choices=alias.choices)


def add_options(parser: Any, cls: type, *, exclude: Iterable[str] = (), first: Sequence[str] = (),
                exclusive: Sequence[str] = (), exclusive_required: bool = False, group: Optional[str] = None) -> None:
    """Add a flag for every field of `cls` (except `exclude` and fields with ``cli=False``) to
    `parser` (a parser or an argument group), `first` leading; `exclusive`: fields that form one
    mutually exclusive group (required with `exclusive_required`); `group`: the --help section of
    the fields that name none."""
    hints = field_types(cls)
    exclude = set(exclude)
    fields = [f for f in dataclasses.fields(cls) if f.init and f.name not in exclude and f.metadata.get("cli", True)]
    fields.sort(key=lambda f: first.index(f.name) if f.name in first else len(first))
    both_ways = parser.add_mutually_exclusive_group(required=exclusive_required) if exclusive else None
    sections: Dict[str, Any] = {g.title: g for g in getattr(parser, "_action_groups", ())}
    for f in fields:
        meta = f.metadata
        if meta.get("positional"):
            _add_positional(parser, f, hints[f.name])
            continue
        flag, help_text = flag_name(f), meta.get("help", "") + _default_text(f)
        tp, optional = _unwrap(hints[f.name])
        title = meta.get("group") or group
        if title and title not in sections:
            sections[title] = parser.add_argument_group(title)
        target = both_ways if f.name in exclusive else sections[title] if title else parser
        common: Dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        synonyms = ["--" + a.name.replace("_", "-") for a in meta.get("aliases", ()) if a.flag and not a.deprecated]
        old = [a for a in meta.get("aliases", ())
               if a.flag and a.deprecated and a.const is None and a.convert is None]
        if old:
            help_text += f" (deprecated alias: {', '.join('--' + a.name.replace('_', '-') for a in old)})"
        field_type: Callable[[str], Any] = str
        if tp is bool and optional:
            both = target.add_mutually_exclusive_group() if target is parser else target
            both.add_argument(flag, action="store_const", const=True, help=help_text, **common)
            both.add_argument(f"--no-{flag[2:]}", action="store_const", const=False, help=f"not {flag}", **common)
        elif tp is bool:
            if f.default:
                target.add_argument(f"--no-{flag[2:]}", action="store_false", help=f"no {help_text}", **common)
            else:
                target.add_argument(flag, action="store_true", help=help_text, **common)
        elif typing.get_origin(tp) in (list, tuple, collections.abc.Sequence) and meta.get("repeat"):
            (item,) = typing.get_args(tp)[:1]
            field_type = meta.get("parse") or _scalar(item, positive=True)
            target.add_argument(flag, action="append", type=field_type, choices=meta.get("choices"),
                                metavar=meta.get("metavar"), help=help_text, **common)
        elif typing.get_origin(tp) in (list, tuple, collections.abc.Sequence):
            (item,) = typing.get_args(tp)[:1]
            item_type = meta.get("parse") or _scalar(item, positive=True)
            field_type = comma_list(_choice(item_type, meta.get("choices")))
            target.add_argument(flag, type=field_type, metavar=meta.get("metavar") or "LIST", help=help_text, **common)
        elif typing.get_origin(tp) in (dict, typing.Dict):
            target.add_argument(flag, action="append", metavar=meta.get("metavar") or "KEY=VALUE", help=help_text,
                                **common)
        else:
            field_type = meta.get("parse") or _scalar(hints[f.name], meta.get("positive", False))
            metavar = meta.get("metavar") or (None if meta.get("choices") else flag[2:].upper().replace("-", "_"))
            bare = {"nargs": "?", "const": meta["const"]} if meta.get("const") is not None else {}
            target.add_argument(flag, *synonyms, type=field_type, choices=meta.get("choices"), metavar=metavar,
                                required=meta.get("required", False), help=help_text, **bare, **common)
        for alias in meta.get("aliases", ()):
            if alias.flag and alias.deprecated:
                _add_alias(parser, f, alias, flag, field_type)


def _add_positional(parser: Any, f: dataclasses.Field, tp: Any) -> None:
    """A positional argument (``positional``: its nargs); one not given keeps the dataclass default."""
    meta = f.metadata
    nargs = meta["positional"]
    item, _ = _unwrap(tp)
    if typing.get_origin(item) in (list, tuple, collections.abc.Sequence):
        item = typing.get_args(item)[0]
    kwargs: Dict[str, Any] = {} if nargs == "1" else {"nargs": nargs}
    if nargs in ("?", "*"):
        kwargs["default"] = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    parser.add_argument(f.name, type=meta.get("parse") or _scalar(item, meta.get("positive", False)),
                        choices=meta.get("choices"), metavar=meta.get("metavar"), help=meta.get("help"), **kwargs)


def add_version(parser: argparse.ArgumentParser, version: str) -> None:
    """``--version``: print `version` and exit."""
    parser.add_argument("--version", action="version", version=version)


def config_from_args(cls: type, args: argparse.Namespace, **fixed: Any) -> Any:
    """`cls` from the flags given (absent ones keep the dataclass defaults) and `fixed` values,
    every field checked against what it declares (`vidbench.options.check_fields`: NaN, bounds,
    devices), so a bad value is one line before any work, whatever the command."""
    hints = field_types(cls)
    values: Dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init or not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        if typing.get_origin(_unwrap(hints[f.name])[0]) in (dict, typing.Dict):
            value = parse_key_values(value, flag_name(f), **({"value": f.metadata["parse"]}
                                                             if f.metadata.get("parse") else {}))
        values[f.name] = value
    try:
        config = cls(**{**values, **fixed})
        check_fields(config)
    except ConfigError as exc:
        raise _naming_the_flag(exc, cls) from None
    return config


def _naming_the_flag(exc: ConfigError, cls: type) -> ConfigError:
    """`exc` with the field it names (``threads 100000 is more than ...``, set by `check_fields`)
    spelled as the flag the user typed (``--threads 100000 ...``); other errors as they are."""
    field = next((f for f in dataclasses.fields(cls) if f.name == getattr(exc, "field", None)), None)
    text = str(exc)
    if field is None or not field.metadata.get("cli", True) or field.metadata.get("positional") \
            or not text.startswith(field.name + " "):
        return exc
    return ConfigError(flag_name(field) + text[len(field.name):])
