"""Resizing position and time embeddings when a checkpoint's frames or image size differ from
the model's, the way each family's official code does it:

- ViT (timm, `resample_abs_pos_embed`): the patch grid bicubically, prefix tokens kept;
- TimeSformer (official `vit.py` forward): the spatial grid and the time embedding by nearest
  neighbour (`F.interpolate(mode="nearest")`);
- ViViT (scenic `interpolate_positional_embeddings`, linear zoom): the (T, H, W) grid
  trilinearly (Model 1, 3, 4), the spatial grid bilinearly and the temporal table linearly
  (Model 2);
- MViT v1: its separate spatial (bicubic, 2-D) and temporal (linear) tables. MViTv2's relative
  position tables are not resized: such checkpoints load at their own clip size.

Each resize returns a note that the loader logs and that results rows record.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..models import MViT, TimeSformer, VideoFrameAverage, VisionTransformer, ViViT, ViViTFactorisedEncoder
from .source import WeightsError

__all__ = ["resize_embeddings"]


def _square(n: int, what: str) -> int:
    side = int(round(math.sqrt(n)))
    if side * side != n:
        raise WeightsError(f"{what}: {n} tokens are not a square grid; cannot resize")
    return side


def _resample(table: torch.Tensor, size: Tuple[int, ...], mode: str) -> torch.Tensor:
    """(N, C) table on a grid of len(size) dims (row-major, the old grid inferred by the caller as
    `table` of shape (*old, C)) -> (prod(size), C)."""
    x = rearrange(table, "... c -> 1 c ...").float()
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    out = F.interpolate(x, size=size, mode=mode, **kwargs)
    return rearrange(out, "1 c ... -> (...) c").to(table.dtype)


def _grid2d(pos: torch.Tensor, prefix: int, new_tokens: int, mode: str, what: str,
            antialias: bool = False) -> torch.Tensor:
    """(1, prefix + h*w, C) -> (1, prefix + H*W, C) for square grids. `antialias=True` is timm's
    `resample_abs_pos_embed` (its default): torch's antialiased bicubic uses PIL's kernel (a = -0.5,
    widened when shrinking), not the a = -0.75 of plain bicubic, so it differs up and down."""
    old, new = _square(pos.shape[1] - prefix, what), _square(new_tokens - prefix, what)
    grid = pos[0, prefix:].reshape(old, old, -1)
    if antialias:
        x = rearrange(grid, "h w c -> 1 c h w").float()
        out = F.interpolate(x, size=(new, new), mode=mode, align_corners=False, antialias=True)
        resized = rearrange(out, "1 c h w -> (h w) c").to(pos.dtype)
    else:
        resized = _resample(grid, (new, new), mode)
    return torch.cat([pos[0, :prefix], resized])[None]


def _table1d(table: torch.Tensor, prefix: int, new_len: int, mode: str) -> torch.Tensor:
    """(1, prefix + t, C) -> (1, prefix + T, C)."""
    return torch.cat([table[0, :prefix], _resample(table[0, prefix:], (new_len - prefix,), mode)])[None]


def _vit(state, model, target, native) -> List[str]:
    # timm's checkpoint_filter_fn: resample_abs_pos_embed(bicubic, antialias=True), prefix tokens kept
    return _resize_key(state, target, "pos_embed",
                       lambda p, n: _grid2d(p, model.num_prefix_tokens, n, "bicubic", "pos_embed", antialias=True),
                       "bicubic, antialiased as timm")


def _frameavg(state, model, target, native) -> List[str]:
    return _resize_key(state, target, "vit.pos_embed",
                       lambda p, n: _grid2d(p, model.vit.num_prefix_tokens, n, "bicubic", "pos_embed", antialias=True),
                       "bicubic, antialiased as timm")


def _timesformer(state, model, target, native) -> List[str]:
    notes = _resize_key(state, target, "pos_embed", lambda p, n: _grid2d(p, 1, n, "nearest", "pos_embed"), "nearest")
    return notes + _resize_key(state, target, "time_embed", lambda p, n: _table1d(p, 0, n, "nearest"), "nearest")


def _vivit(state, model, target, native) -> List[str]:
    prefix = 1 if model.cls_token is not None else 0
    (t_old, s_old), (t_new, s_new) = native.patch_embed.grid, model.patch_embed.grid

    def resize(pos: torch.Tensor, n: int) -> torch.Tensor:
        h_old, h_new = _square(s_old, "pos_embed"), _square(s_new, "pos_embed")
        grid = pos[0, prefix:].reshape(t_old, h_old, h_old, -1)
        return torch.cat([pos[0, :prefix], _resample(grid, (t_new, h_new, h_new), "trilinear")])[None]

    return _resize_key(state, target, "pos_embed", resize, "trilinear")


def _vivit_fe(state, model, target, native) -> List[str]:
    notes = _resize_key(state, target, "pos_embed", lambda p, n: _grid2d(p, 1, n, "bilinear", "pos_embed"), "bilinear")
    return notes + _resize_key(state, target, "temporal_pos_embed", lambda p, n: _table1d(p, 1, n, "linear"), "linear")


def _mvit(state, model, target, native) -> List[str]:
    if model.config.version != 1:
        return []
    notes = _resize_key(state, target, "pos_embed_spatial", lambda p, n: _grid2d(p, 0, n, "bicubic", "pos_embed"),
                        "bicubic")
    return notes + _resize_key(state, target, "pos_embed_temporal", lambda p, n: _table1d(p, 0, n, "linear"),
                               "linear")


def _resize_key(state: Dict[str, torch.Tensor], target: Dict[str, Tuple[int, ...]], key: str,
                fn: Callable[[torch.Tensor, int], torch.Tensor], how: str) -> List[str]:
    if key not in state or key not in target or tuple(state[key].shape) == target[key]:
        return []
    old = tuple(state[key].shape)
    if len(old) != 3 or old[0] != 1 or old[2] != target[key][2]:
        return []  # not a resizable mismatch: the strict shape check reports it
    state[key] = fn(state[key], target[key][1])
    if tuple(state[key].shape) != target[key]:
        raise WeightsError(f"{key}: could not resize {old} to {target[key]}")
    return [f"{key} resized {old[1]} -> {target[key][1]} tokens ({how})"]


def _resizers() -> Dict[type, Callable]:
    return {VisionTransformer: _vit, VideoFrameAverage: _frameavg, TimeSformer: _timesformer, ViViT: _vivit,
            ViViTFactorisedEncoder: _vivit_fe, MViT: _mvit}


def resize_embeddings(state: Dict[str, torch.Tensor], model: nn.Module, native: nn.Module) -> List[str]:
    """Resize in place the position / time embeddings of `state` (which fits `native`, the model
    of the checkpoint's own config) to `model`'s token grid; both may live on the meta device.
    Returns what was resized."""
    target = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    fn = _resizers().get(type(model))
    return fn(state, model, target, native) if fn and type(native) is type(model) else []
