"""The MViT layout SlowFast, pytorchvideo and mmaction2 share (their blocks are SlowFast's; the
modules around them differ): renaming it to vidbench's names, inferring the config from the
shapes, and a `WeightsFormat` for a layout given its top-level renames. See slowfast_mvit.py for
the key table.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from ...models import create_model
from .._registry import Inferred, WeightsFormat
from ..source import Source
from ._util import converting, count_indexed, fuse_qkv, pick_model, source_errors, square_side

__all__ = ["SLOWFAST_TOP", "mvit_layout_to_vidbench", "layout_shapes", "infer_mvit", "mvit_format"]

SLOWFAST_TOP = {
    "patch_embed.proj.weight": "patch_embed.proj.weight",
    "patch_embed.proj.bias": "patch_embed.proj.bias",
    "cls_token": "cls_token",
    "pos_embed_spatial": "pos_embed_spatial",
    "pos_embed_temporal": "pos_embed_temporal",
    "pos_embed_class": "pos_embed_class",
    "norm.weight": "norm.weight",
    "norm.bias": "norm.bias",
    "head.projection.weight": "head.weight",
    "head.projection.bias": "head.bias",
}
# keys of SlowFast / pytorchvideo options vidbench's MViT does not have, and why
_UNSUPPORTED = {
    "pos_embed": "a joint position table (MVIT.SEP_POS_EMBED False); vidbench's MViT v1 has separate spatial, "
                 "temporal and class tables",
    "cls_positional_encoding.pos_embed": "a joint position table (sep_pos_embed False); vidbench's MViT v1 has "
                                         "separate spatial, temporal and class tables",
    "norm_stem.weight": "a LayerNorm after the stem (MVIT.NORM_STEM), which vidbench's MViT does not have",
}
_QKV = {"q": 0, "k": 1, "v": 2}
_BLOCK = re.compile(r"blocks\.(\d+)\.(.+)$")
_ATTN_SAME = {"qkv.weight", "qkv.bias", "proj.weight", "proj.bias", "rel_pos_h", "rel_pos_w", "rel_pos_t"}
_BLOCK_SAME = re.compile(r"(norm1|norm2|mlp\.fc1|mlp\.fc2|proj)\.(weight|bias)$")
_POOL_CONV = re.compile(r"blocks\.(\d+)\.attn\.pool_([qkv])\.conv\.weight$")


def _block_name(rest: str) -> Tuple[Optional[str], Optional[int], bool]:
    """A block-relative SlowFast / pytorchvideo name -> (vidbench name or None if unknown, index in
    [q; k; v] for a separate projection, whether it is pytorchvideo's duplicate alias)."""
    if _BLOCK_SAME.fullmatch(rest):
        return rest, None, False
    if not rest.startswith("attn."):
        return None, None, False
    attn = rest[len("attn."):]
    if attn in _ATTN_SAME:
        return rest, None, False
    if m := re.fullmatch(r"([qkv])\.(weight|bias)", attn):
        return f"attn.qkv.{m[2]}", _QKV[m[1]], False
    if m := re.fullmatch(r"pool_([qkv])\.weight", attn):
        return f"attn.pool_{m[1]}.conv.weight", None, False
    if m := re.fullmatch(r"norm_([qkv])\.(weight|bias)", attn):
        return f"attn.pool_{m[1]}.norm.{m[2]}", None, False
    # pytorchvideo >= 0.1.5 registers each pooling conv and norm a second time, under _AttentionPool
    if m := re.fullmatch(r"_attention_pool_([qkv])\.pool\.weight", attn):
        return f"attn.pool_{m[1]}.conv.weight", None, True
    if m := re.fullmatch(r"_attention_pool_([qkv])\.norm\.(weight|bias)", attn):
        return f"attn.pool_{m[1]}.norm.{m[2]}", None, True
    return None, None, False


def mvit_layout_to_vidbench(state: Dict[str, Any], top: Dict[str, str], what: str,
                            merge: Callable[[List[Any]], Any] = fuse_qkv) -> Dict[str, Any]:
    """A SlowFast-style MViT state dict -> vidbench names. `top`: the exact renames outside the
    blocks; `merge`: joins separate [q, k, v] projections (concatenation; a shape sum for `infer`).
    Raises ValueError naming the first key it does not know."""
    out: Dict[str, Any] = {}
    parts: Dict[str, Dict[int, Any]] = {}
    aliases: Dict[str, Any] = {}
    for key, value in state.items():
        if key in top:
            out[top[key]] = value
            continue
        if key in _UNSUPPORTED:
            raise ValueError(f"{what} key {key}: {_UNSUPPORTED[key]}")
        m = _BLOCK.match(key)
        name, part, alias = _block_name(m[2]) if m else (None, None, False)
        if name is None:
            raise ValueError(f"{what} key not known to vidbench's converter: {key}")
        name = f"blocks.{m[1]}.{name}"
        if part is not None:
            parts.setdefault(name, {})[part] = value
        elif alias:
            aliases[name] = value
        else:
            out[name] = value
    for name, got in parts.items():
        if name in out:
            raise ValueError(f"{what}: {name.rsplit('.', 2)[0]} has both a fused qkv and separate q / k / v projections")
        if sorted(got) != [0, 1, 2]:
            lacking = ", ".join("qkv"[i] for i in range(3) if i not in got)
            raise ValueError(f"{what}: {name.rsplit('.', 2)[0]} lacks the {lacking} projection")
        out[name] = merge([got[0], got[1], got[2]])
    for name, value in aliases.items():
        out.setdefault(name, value)
    return out


def layout_shapes(source: Source, top: Dict[str, str], what: str) -> Dict[str, Tuple[int, ...]]:
    """vidbench name -> shape, without touching the tensors."""
    shapes = {k: tuple(v.shape) for k, v in source.state.items()}
    with converting(source):
        return mvit_layout_to_vidbench(shapes, top, what, merge=lambda p: (sum(s[0] for s in p), *p[0][1:]))


def _depths(shapes: Dict[str, Tuple[int, ...]], n: int, version: int) -> Tuple[int, ...]:
    """Blocks per stage from where the width changes: the `proj` of a stage's last block (v1,
    widening in the MLP) or of its first block (v2, widening in the attention)."""
    at = [i for i in range(n) if f"blocks.{i}.proj.weight" in shapes]
    cuts = [i + 1 for i in at] if version == 1 else at
    edges = [0] + [c for c in cuts if 0 < c < n] + [n]
    return tuple(b - a for a, b in zip(edges, edges[1:]))


def infer_mvit(source: Source, model: Optional[str], overrides: Dict[str, Any],
               shapes: Dict[str, Tuple[int, ...]], what: str) -> Inferred:
    """Registry model and config of an MViT state dict in vidbench names (`shapes`: name -> shape)."""
    v2, v1 = "blocks.0.attn.rel_pos_h" in shapes, "pos_embed_spatial" in shapes
    if v1 and v2:
        raise source.error(f"{what} with both absolute position tables and relative positions: vidbench's MViT "
                           "has one or the other (v1 or v2)")
    if not (v1 or v2):
        raise source.error(f"{what} with neither pos_embed_spatial / pos_embed_temporal (v1) nor "
                           "blocks.0.attn.rel_pos_h (v2): not a layout vidbench's MViT can hold")
    version = 2 if v2 else 1
    tables = ("pos_embed_temporal",) if v1 else ("blocks.0.attn.rel_pos_w", "blocks.0.attn.rel_pos_t")
    for key in ("patch_embed.proj.weight", "head.weight", "cls_token") + tables:
        if key not in shapes:
            raise source.error(f"{what} without {key}")
    stem = shapes["patch_embed.proj.weight"]
    if len(stem) != 5:
        raise source.error(f"{what} with a 2-D stem {stem} (an image MViT): vidbench's MViT is a video model "
                           "with a Conv3d stem")
    n = count_indexed(shapes, r"blocks\.(\d+)\.")
    kernels: Dict[Tuple[int, ...], List[str]] = {}
    for key, shape in shapes.items():
        if m := _POOL_CONV.match(key):
            kernels.setdefault(tuple(shape[2:]), []).append(f"{m[1]}.pool_{m[2]}")
    if not kernels:
        raise source.error(f"{what} without pooling convolutions (MVIT.MODE avg / max?): vidbench's MViT pools "
                           "with depthwise convolutions (MODE conv)")
    if len(kernels) > 1:
        found = "; ".join(f"{k} in blocks.{', '.join(v[:4])}{' ...' if len(v) > 4 else ''}"
                          for k, v in sorted(kernels.items()))
        raise source.error(f"{what} with pooling kernels that differ between blocks ({found}): vidbench's MViT "
                           "uses one pool_kernel for q and k/v in every block (a config with POOL_KVQ_KERNEL)")
    no_kv = [str(i) for i in range(n) if f"blocks.{i}.attn.pool_k.conv.weight" not in shapes]
    if no_kv:
        raise source.error(f"{what} with blocks that do not pool keys / values ({', '.join(no_kv)}): vidbench's "
                           "MViT pools them in every block")
    head_dim = shapes["blocks.0.attn.pool_k.conv.weight"][0]
    found_cfg = dict(depths=_depths(shapes, n, version), embed_dim=stem[0], num_heads=max(stem[0] // head_dim, 1),
                     pool_kernel=next(iter(kernels)), patch_kernel=tuple(stem[2:]),
                     qkv_bias="blocks.0.attn.qkv.bias" in shapes)
    if v1:
        t = shapes["pos_embed_temporal"][1]
        side = square_side(shapes["pos_embed_spatial"][1], source, "pos_embed_spatial")
    else:  # block 0 pools no query: its tables span 2 * (T or H) - 1 offsets
        t = (shapes["blocks.0.attn.rel_pos_t"][0] + 1) // 2
        side = (shapes["blocks.0.attn.rel_pos_h"][0] + 1) // 2
    config: Dict[str, Any] = {"num_classes": shapes["head.weight"][0], "version": version}
    # MViTv2 by its block counts (S 1-2-11-2, B 2-3-16-3, L 2-6-36-4); MViT-B by its stride-2 frames
    default = _V2_BY_DEPTHS.get(found_cfg["depths"], "mvitv2_s_16x4") if v2 else (
        "mvit_b_32x3" if t * 2 == 32 else "mvit_b_16x4")
    name = pick_model(source, model, "mvit", default)
    with torch.device("meta"):
        ref = create_model(name, version=version).config
    stride = tuple(overrides.get("patch_stride") or ref.patch_stride)
    config.update(num_frames=t * stride[0], img_size=side * stride[1])
    config.update({k: v for k, v in found_cfg.items() if _differs(getattr(ref, k), v)})
    halvings = len(found_cfg["depths"]) - 1
    if not ref.odd_grids and any(n % (s * q**halvings) for n, s, q in zip(
            (config["num_frames"], config["img_size"]), stride, ref.stride_q)):
        config["odd_grids"] = True  # its grids do not halve exactly (SlowFast's and mmaction2's pooling rounds up)
    return name, config


_V2_BY_DEPTHS = {(1, 2, 11, 2): "mvitv2_s_16x4", (2, 3, 16, 3): "mvitv2_b_32x3", (2, 6, 36, 4): "mvitv2_l_40x3"}


def _differs(have: Any, want: Any) -> bool:
    if isinstance(have, (tuple, list)):
        return tuple(have) != tuple(want)
    return have != want


def mvit_format(name: str, description: str, sniff: Callable[[Source], bool], top: Dict[str, str], what: str,
                unwrap: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]] = None) -> WeightsFormat:
    """The `WeightsFormat` of an MViT layout: `top` renames the keys outside the blocks, `unwrap`
    turns the file's state dict into the layout (strips a wrapper's prefix), `what` names it in errors."""

    def infer(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
        view = dataclasses.replace(source, state=unwrap(source.state)) if unwrap else source
        return infer_mvit(source, model, overrides, layout_shapes(view, top, what), what)

    convert = source_errors(lambda state: mvit_layout_to_vidbench(unwrap(state) if unwrap else state, top, what))
    return WeightsFormat(name, description, sniff, infer, convert, families=("mvit",))
