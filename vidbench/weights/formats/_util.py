"""Helpers the format modules share: renaming keys, fusing separate q / k / v projections into
vidbench's one `qkv`, turning a converter's ValueError into the file's error, counting numbered
blocks, reading one dimension, checking a requested model against what a checkpoint holds."""
from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterable, Iterator, Mapping, Optional, Sequence

import torch

from ...models import list_models, model_entry
from ..source import Source

__all__ = ["DROP", "rename_keys", "converting", "count_indexed", "flax_qkv", "fuse_qkv", "pick_model", "renamed", "source_errors", "square_side",
           "unprefixed"]

StateDict = Dict[str, Any]


def unprefixed(key: str, prefix: str) -> str:
    """`key` without a leading `prefix` (unchanged where it has none)."""
    return key[len(prefix):] if key.startswith(prefix) else key


def renamed(name: str, parts: Mapping[str, str]) -> Optional[str]:
    """`name` with the first of `parts`' old prefixes it starts with replaced by the new one
    (None where none matches): a block-relative key in a checkpoint's names -> vidbench's."""
    for old, new in parts.items():
        if name.startswith(old):
            return new + name[len(old):]
    return None


DROP = ""  # what a `rename_keys` rename returns for a key the model rebuilds itself (not kept)


def rename_keys(state: StateDict, rename: Callable[[str], Optional[str]], what: str) -> StateDict:
    """Every key of `state` renamed by `rename` (values kept): None is a key the converter does not
    know, a ValueError naming it and `what` (the layout); `DROP` leaves the key out."""
    out: StateDict = {}
    for key, value in state.items():
        new = rename(key)
        if new is None:
            raise ValueError(f"{what} key not known to vidbench's converter: {key}")
        if new != DROP:
            out[new] = value
    return out


def fuse_qkv(parts: Sequence[Any]) -> torch.Tensor:
    """Separate q, k, v projections (weights (out, in) or biases (out,), tensors or arrays, in
    that order) -> the rows of vidbench's fused `qkv` (`rearrange(..., "(three h d)")`)."""
    return torch.cat([torch.as_tensor(p) for p in parts], dim=0)


def flax_qkv(q: Any, k: Any, v: Any) -> torch.Tensor:
    """Flax `DenseGeneral` q / k / v kernels (D, heads, head_dim) or biases (heads, head_dim), the
    layout of Google's ViT and of scenic -> vidbench's fused qkv weight (3 * heads * head_dim, D),
    head-major within each of q, k, v, or bias (3 * heads * head_dim,)."""
    if q.ndim == 3:
        return fuse_qkv([x.reshape(x.shape[0], -1).T for x in (q, k, v)])
    return fuse_qkv([x.reshape(-1) for x in (q, k, v)])


@contextmanager
def converting(source: Source) -> Iterator[None]:
    """Around a state-dict converter: its ValueError naming an unknown or unsupported key becomes
    the file's one-line error (`source.error`)."""
    try:
        yield
    except ValueError as err:
        raise source.error(str(err)) from None


def source_errors(fn: Callable[[StateDict], StateDict]) -> Callable[[Source, Any], StateDict]:
    """A format's `convert` from a state-dict converter that needs no model (`converting`)."""

    def convert(source: Source, model: Any) -> StateDict:
        with converting(source):
            return fn(source.state)

    return convert


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
