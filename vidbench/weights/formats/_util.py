"""Helpers the format modules share: counting numbered blocks, reading one dimension, checking
a requested model against what a checkpoint holds."""
from __future__ import annotations

import re
from typing import Iterable, Optional

from ...models import list_models, model_entry
from ..source import Source

__all__ = ["count_indexed", "pick_model", "square_side"]


def count_indexed(keys: Iterable[str], pattern: str) -> int:
    """1 + the largest N of keys matching `pattern`, a regex with one `(\\d+)` group (0 if none)."""
    regex = re.compile(pattern)
    found = [int(m.group(1)) for k in keys if (m := regex.match(k))]
    return max(found) + 1 if found else 0


def square_side(n: int, source: Source, what: str) -> int:
    side = int(round(n ** 0.5))
    if side * side != n:
        raise source.error(f"{what}: {n} tokens are not a square grid")
    return side


def pick_model(source: Source, requested: Optional[str], family: str, default: str) -> str:
    """`requested` if given (checked to be of `family`), else `default`."""
    if requested is None:
        return default
    entry = model_entry(requested)
    if entry.family != family:
        raise source.error(f"holds a {family} checkpoint, not a {entry.family} model ({requested}); "
                           f"{family} models: {', '.join(list_models(family=family))}")
    return requested
