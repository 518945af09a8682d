"""Resizing position and time embeddings when a checkpoint's frames or image size differ from
the model's, the way each family's official code does it:

- ViT (timm, `resample_abs_pos_embed`): the patch grid bicubically, prefix tokens kept; a
  DINOv2 release (format dinov2-official) as its hub model interpolates at every forward
  (`interpolate_pos_encoding`): bicubic with the scale factor (side + 0.1) / old side and no
  antialiasing (`interpolate_offset=0.1`), or, for the register models, to the side with
  antialiasing (`interpolate_antialias=True, interpolate_offset=0`: the same as timm's);
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
from typing import Callable, Dict, List, Optional, Tuple

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


def _dinov2_offset(pos: torch.Tensor, prefix: int, new_tokens: int) -> torch.Tensor:
    """DINOv2's `interpolate_pos_encoding` with interpolate_offset=0.1, antialias off: bicubic with
    the scale factor (new + 0.1) / old (not new / old: the scale sets the sampling positions)."""
    old, new = _square(pos.shape[1] - prefix, "pos_embed"), _square(new_tokens - prefix, "pos_embed")
    grid = rearrange(pos[0, prefix:].reshape(old, old, -1), "h w c -> 1 c h w").float()
    scale = float(new + 0.1) / old
    out = F.interpolate(grid, scale_factor=(scale, scale), mode="bicubic", antialias=False)
    if tuple(out.shape[-2:]) != (new, new):
        raise WeightsError(f"pos_embed: DINOv2's interpolation gave {tuple(out.shape[-2:])}, not {(new, new)}")
    return torch.cat([pos[0, :prefix], rearrange(out, "1 c h w -> (h w) c").to(pos.dtype)])[None]


def _vit_pos(state, target, key: str, vit: nn.Module, fmt: Optional[str]) -> List[str]:
    prefix = 1 if vit.cls_token is not None else 0  # the class token's row; registers have none
    if fmt == "dinov2-official" and not vit.config.reg_tokens:
        return _resize_key(state, target, key, lambda p, n: _dinov2_offset(p, prefix, n),
                           "bicubic, scale (side + 0.1) / side, as DINOv2's interpolate_pos_encoding")
    # timm's checkpoint_filter_fn: resample_abs_pos_embed(bicubic, antialias=True), prefix tokens kept;
    # DINOv2's register models interpolate the same way (antialias=True, to the size)
    how = "bicubic, antialiased as DINOv2-reg's interpolate_pos_encoding" if fmt == "dinov2-official" \
        else "bicubic, antialiased as timm"
    return _resize_key(state, target, key,
                       lambda p, n: _grid2d(p, prefix, n, "bicubic", "pos_embed", antialias=True), how)


def _vit(state, model, target, native, fmt=None) -> List[str]:
    return _vit_pos(state, target, "pos_embed", model, fmt)


def _frameavg(state, model, target, native, fmt=None) -> List[str]:
    return _vit_pos(state, target, "vit.pos_embed", model.vit, fmt)


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


def resize_embeddings(state: Dict[str, torch.Tensor], model: nn.Module, native: nn.Module,
                      fmt: Optional[str] = None) -> List[str]:
    """Resize in place the position / time embeddings of `state` (which fits `native`, the model
    of the checkpoint's own config) to `model`'s token grid; both may live on the meta device.
    `fmt`: the checkpoint's format, where its authors' code resizes its own way (dinov2-official).
    Returns what was resized."""
    target = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    fn = _resizers().get(type(model))
    if not fn or type(native) is not type(model):
        return []
    return fn(state, model, target, native, fmt) if fn in (_vit, _frameavg) else fn(state, model, target, native)
