"""SlowFast MViT v1 / MViTv2 checkpoints (.pyth: {"model_state": ..., "epoch", "optimizer_state", "cfg"}).

SlowFast's `MViT` (slowfast/models/video_model_builder.py, attention.py) keys, and vidbench's:

    patch_embed.proj.*                        patch_embed.proj.*
    cls_token, pos_embed_{spatial,temporal,class} (1, N, C; v1)   the same names and shapes
    blocks.N.norm1.*, norm2.*, mlp.fc1.*, mlp.fc2.*, proj.*       the same
    blocks.N.attn.qkv.*   (MVIT.SEPARATE_QKV False; MViTv2 and the MODEL_ZOO MViT-B 16x4, whose
                           fused layout SlowFast issue 475 reports)  blocks.N.attn.qkv.*
    blocks.N.attn.{q,k,v}.* (SlowFast from July 2021 to MViTv2, pytorchvideo)  concatenated
                           [q; k; v] along the output rows: the order `qkv(x).reshape(B, N, 3,
                           heads, head_dim)` of both SlowFast and vidbench reads them in
    blocks.N.attn.pool_{q,k,v}.weight         blocks.N.attn.pool_{q,k,v}.conv.weight
    blocks.N.attn.norm_{q,k,v}.*              blocks.N.attn.pool_{q,k,v}.norm.*
    blocks.N.attn.proj.*, attn.rel_pos_{h,w,t} (v2)                the same
    norm.*                                    norm.*
    head.projection.*                         head.*

The math is the same module for module (pooling after the q/k/v projection, MVIT.POOL_FIRST
False as in every released config; v2's residual pooling skips the cls token in both).
SlowFast's test-time head ends in a softmax, vidbench returns logits.

What vidbench's MViT cannot hold is refused by name: a joint `pos_embed` table
(SEP_POS_EMBED False), a 2-D stem, and pooling kernels that differ between blocks (configs
without POOL_KVQ_KERNEL, e.g. SlowFast's MVIT_B_32x3_CONV: 24 blocks, K/V kernels derived from
the strides), or blocks without K/V pooling. The structure a checkpoint shows (block count per
stage, widths, heads, pooling kernel, stem kernel, qkv bias) becomes config overrides where it
differs from the registry model's; strides, which no tensor records, come from the model.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from ...models import create_model
from .._registry import Inferred, PublishedWeights, WeightsFormat, register_format, register_published
from ..source import Source
from ._util import count_indexed, pick_model, square_side

__all__ = ["slowfast_mvit_to_vidbench", "mvit_layout_to_vidbench", "infer_mvit"]

_SLOWFAST_TOP = {
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
                            merge: Callable[[List[Any]], Any] = lambda parts: torch.cat(parts, 0)) -> Dict[str, Any]:
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


def slowfast_mvit_to_vidbench(state: Dict[str, Any]) -> Dict[str, Any]:
    """SlowFast `MViT` state dict (the .pyth's "model_state") -> vidbench `MViT` state dict."""
    return mvit_layout_to_vidbench(state, _SLOWFAST_TOP, "SlowFast MViT")


def _shapes(source: Source, top: Dict[str, str], what: str) -> Dict[str, Tuple[int, ...]]:
    """vidbench name -> shape, without touching the tensors."""
    shapes = {k: tuple(v.shape) for k, v in source.state.items()}
    try:
        return mvit_layout_to_vidbench(shapes, top, what,
                                       merge=lambda p: (sum(s[0] for s in p), *p[0][1:]))
    except ValueError as err:
        raise source.error(str(err)) from None


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
    default = "mvitv2_s_16x4" if v2 else ("mvit_b_32x3" if t * 2 == 32 else "mvit_b_16x4")  # MViT-B's stride 2
    name = pick_model(source, model, "mvit", default)
    with torch.device("meta"):
        ref = create_model(name, version=version).config
    stride = tuple(overrides.get("patch_stride") or ref.patch_stride)
    config.update(num_frames=t * stride[0], img_size=side * stride[1])
    config.update({k: v for k, v in found_cfg.items() if _differs(getattr(ref, k), v)})
    return name, config


def _differs(have: Any, want: Any) -> bool:
    if isinstance(have, (tuple, list)):
        return tuple(have) != tuple(want)
    return have != want


def sniff(source: Source) -> bool:
    return (source.kind in ("torch", "safetensors") and source.has("patch_embed.proj.weight", "cls_token")
            and source.has("head.projection.weight")
            and any(k.startswith("blocks.") and ".attn.pool_" in k for k in source.state))


def infer(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    return infer_mvit(source, model, overrides, _shapes(source, _SLOWFAST_TOP, "SlowFast MViT"), "SlowFast MViT")


def convert(source: Source, model: Any) -> Dict[str, Any]:
    try:
        return slowfast_mvit_to_vidbench(source.state)
    except ValueError as err:
        raise source.error(str(err)) from None


register_format(WeightsFormat(
    "slowfast-mvit", "SlowFast MViT v1 / MViTv2 .pyth (model_state; fused qkv or separate q/k/v)",
    sniff, infer, convert, families=("mvit",)))

# Published in SlowFast's MODEL_ZOO.md (Kinetics-400 table) and projects/mvitv2/README.md; test
# protocol from the configs and slowfast/datasets/kinetics.py: 1 spatial crop -> short side
# TRAIN_JITTER_SCALES[0] = 256, centre crop TEST_CROP_SIZE = 224; DATA.MEAN / STD 0.45 / 0.225.
# The zoo's MViTv1 B-Conv 32x3 (model_zoo/mvit/k400.pyth, 80.4 / 94.8) is not listed: its config
# (Kinetics/MVIT_B_32x3_CONV) is 24 blocks with stride-derived K/V kernels, which vidbench's MViT
# does not build (the checkpoint is refused by name).
_SF = dict(format="slowfast-mvit", crop_size=224, resize_size=256, mean=(0.45, 0.45, 0.45),
           std=(0.225, 0.225, 0.225), views=(5, 1))
register_published(
    PublishedWeights("mvit_b_16x4.k400_slowfast", "mvit_b_16x4", files=("K400_MVIT_B_16x4_CONV.pyth",),
                     source="SlowFast MODEL_ZOO.md: MViTv1 B-Conv 16x4, config Kinetics/MVIT_B_16x4_CONV "
                            "(Google Drive file 194gJinVejq6A1FmySNKQ8vAN5-FOY-QL)",
                     paper="SlowFast MODEL_ZOO.md (K400, 1 x 5 views; FLOPs not listed there)",
                     num_frames=16, sampling_rate=4, top1=78.4, top5=93.5, gmacs=None, **_SF),
    PublishedWeights("mvitv2_s_16x4.k400_slowfast", "mvitv2_s_16x4",
                     files=("MViTv2_S_16x4_k400_f302660347.pyth",),
                     source="SlowFast projects/mvitv2/README.md and MODEL_ZOO.md: MViTv2-S 16x4, config "
                            "Kinetics/MVITv2_S_16x4 (dl.fbaipublicfiles.com/pyslowfast/model_zoo/mvitv2/"
                            "pysf_video_models/MViTv2_S_16x4_k400_f302660347.pyth)",
                     paper="MViTv2 (CVPR 2022); SlowFast projects/mvitv2 README: 64 GFLOPs x 1 x 5, 34.5M",
                     num_frames=16, sampling_rate=4, top1=81.0, top5=94.6, gmacs=64.0, **_SF),
)
