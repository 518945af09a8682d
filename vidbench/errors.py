"""User errors: wrong input that a command reports in one line (exit code 2, no traceback).

Anything else that escapes a command is a bug and keeps its traceback. `VIDBENCH_DEBUG=1` shows
the traceback of user errors too.
"""
from __future__ import annotations

import difflib
from typing import Callable, Iterable, Mapping, TypeVar

V = TypeVar("V")

__all__ = ["look_up", "UserError", "ConfigError", "UnknownNameError", "UnknownOptionError", "TrainingStopped", "USER_ERRORS",
           "message", "did_you_mean"]


class UserError(Exception):
    """Bad input (a file, an option, a value): the message names it and says what to do."""


class ConfigError(UserError, ValueError):
    """An option or config value that is not valid."""


class UnknownNameError(UserError, KeyError):
    """A name that is not there (a split, a method, a model pattern, a label); a KeyError too, for
    the callers that look names up."""


class UnknownOptionError(UserError, TypeError):
    """An option that a component does not take (a method's --opt key); a TypeError too, as an
    unexpected keyword argument is."""


class TrainingStopped(UserError, RuntimeError):
    """A training run (`vidbench train`, `pretrain`, fine-tuning, distillation) cannot go on:
    diverged, nothing to train on, options that differ on --resume; the message says why and
    what to change. A RuntimeError too, as the SSL loop's stop was before it was this one."""


# besides UserError: the file-system errors a wrong path or a busy output gives
USER_ERRORS = (UserError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


def message(exc: BaseException) -> str:
    """One line: the exception's own message (a KeyError's without the quotes repr adds)."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{exc.filename}: {exc.strerror or text}"
    return " ".join(text.split()) or type(exc).__name__


def look_up(table: Mapping[str, V], name: str, error: Callable[[str], Exception], what: str, hint: str,
            n: int = 5) -> V:
    """`table[name]`, else `error` naming the `what`, the close matches and `hint` (a registry's lookup)."""
    try:
        return table[name]
    except KeyError:
        raise error(f"unknown {what} {name!r}{did_you_mean(name, table, n=n)} ({hint})") from None


def did_you_mean(name: str, known: Iterable[str], n: int = 5) -> str:
    """"; did you mean a, b?" for the known names close to `name` (empty when none is close)."""
    close = difflib.get_close_matches(name, list(known), n=n, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""
