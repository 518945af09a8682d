"""Argument types shared by the commands: counts and sizes must be positive (0 is never "the
default"), and argparse names the option in its one-line error."""
from __future__ import annotations

import argparse
from typing import Any, Callable, List


def positive_int(text: str) -> int:
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
