"""Video Swin Transformer state dicts: torchvision's (`swin3d_t/s/b`, .pth files of
`Swin3D_*_Weights`) as format "torchvision-swin3d", and the official Video-Swin-Transformer
release (mmaction2 checkpoints, `{"state_dict": ...}` with `backbone.` and `cls_head.fc_cls.`
keys) as "videoswin-official". vidbench's Swin follows torchvision's module layout, so both are
a handful of renames; the `relative_position_index` buffers are dropped (vidbench derives them).

Neither layout records the clip size (Swin has no position embedding): the model is built at the
registry's 32x224 unless `num_frames` / `img_size` are given, which need no resizing.
"""
from __future__ import annotations

import re
from itertools import product
from typing import Any, Callable, Dict, Optional, Tuple

from .._registry import Inferred, WeightsFormat, register_format
from ..source import Source
from ._util import DROP, count_indexed, pick_model, rename_keys, source_errors

_BLOCK_RENAMES = ((".mlp.0.", ".mlp.fc1."), (".mlp.3.", ".mlp.fc2."))
_BLOCK_LEAF = re.compile(r"(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(weight|bias)$"
                         r"|attn\.relative_position_bias_table$")
_TOP = {"patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias", "head.weight", "head.bias"}
DEFAULT_WINDOW = (8, 7, 7)


def _common(key: str) -> Optional[str]:
    if key.startswith("patch_embed.norm."):
        return "patch_norm." + key[len("patch_embed.norm."):]
    return key if key in _TOP else None


def torchvision_swin3d_to_vidbench(state: Dict[str, Any]) -> Dict[str, Any]:
    """torchvision `SwinTransformer3d` state dict -> vidbench `SwinTransformer3d` of the same config:
    `features.{2i}.{j}` -> `stages.{i}.blocks.{j}`, `features.{2i+1}` (patch merging) ->
    `stages.{i+1}.downsample`, `mlp.0/3` -> `mlp.fc1/fc2`, `patch_embed.norm` -> `patch_norm`."""

    def name(key: str) -> Optional[str]:
        if key.endswith("relative_position_index"):
            return DROP
        new = _common(key)
        if new is None and (m := re.match(r"features\.(\d+)\.(.+)$", key)):
            idx, rest = int(m.group(1)), m.group(2)
            if idx % 2 == 0 and (b := re.match(r"(\d+)\.(.+)$", rest)):
                new = f"stages.{idx // 2}.blocks.{b.group(1)}.{b.group(2)}"
                for old, repl in _BLOCK_RENAMES:
                    new = new.replace(old, repl)
                new = new if _BLOCK_LEAF.search(new) else None
            elif idx % 2 == 1 and rest.split(".")[0] in ("reduction", "norm"):
                new = f"stages.{idx // 2 + 1}.downsample.{rest}"
        return new

    return rename_keys(state, name, "torchvision Swin3D")


def videoswin_official_to_vidbench(state: Dict[str, Any]) -> Dict[str, Any]:
    """Official Video-Swin-Transformer (mmaction2 `SwinTransformer3D` + `I3DHead`) state dict ->
    vidbench: `backbone.` stripped, `layers.{i}.blocks.{j}` -> `stages.{i}.blocks.{j}`,
    `layers.{i}.downsample` -> `stages.{i+1}.downsample`, `cls_head.fc_cls` -> `head`."""

    def name(key: str) -> Optional[str]:
        if key.endswith("relative_position_index"):
            return DROP
        if key.startswith("cls_head.fc_cls."):
            return "head." + key[len("cls_head.fc_cls."):]
        if not key.startswith("backbone."):
            return None
        inner = key[len("backbone."):]
        new = _common(inner)
        if new is None and (m := re.match(r"layers\.(\d+)\.(blocks\.\d+\..+|downsample\..+)$", inner)):
            stage, rest = int(m.group(1)), m.group(2)
            new = f"stages.{stage}.{rest}" if rest.startswith("blocks.") else f"stages.{stage + 1}.{rest}"
            new = new if "downsample" in new or _BLOCK_LEAF.search(new) else None
        return new

    return rename_keys(state, name, "official Video Swin")


def _window(source: Source, table: str, index: str) -> Tuple[int, int, int]:
    """(Wt, Wh, Ww) from the table's (2Wt-1)(2Wh-1)(2Ww-1) rows and, where stored, the
    index's Wt*Wh*Ww; ties go to square windows, then to torchvision's (8, 7, 7)."""
    rows = source.shape(table)[0]
    tokens = source.shape(index)[0] if source.has(index) else None
    odd = [d for d in range(1, rows + 1, 2) if rows % d == 0]
    found = [((t + 1) // 2, (h + 1) // 2, (rows // (t * h) + 1) // 2) for t, h in product(odd, odd)
             if rows % (t * h) == 0 and (rows // (t * h)) % 2 == 1]
    if tokens is not None:
        found = [w for w in found if w[0] * w[1] * w[2] == tokens]
    found = sorted(set(found), key=lambda w: (w[1] != w[2], w != DEFAULT_WINDOW, abs(w[1] - 7), w))
    if not found:
        raise source.error(f"{table}: {rows} rows are not a (2Wt-1)(2Wh-1)(2Ww-1) relative position table")
    return found[0]


def _infer(source: Source, model: Optional[str], prefix: str, stage_key: Callable[[int], str],
           head: str) -> Inferred:
    proj = source.shape(prefix + "patch_embed.proj.weight")  # (C, in_chans, pt, ph, pw)
    depths = []
    while (n := count_indexed(source.state, re.escape(prefix + stage_key(len(depths))) + r"(\d+)\.norm1\.weight$")):
        depths.append(n)
    if not depths:
        raise source.error("no Swin blocks found")
    first = prefix + stage_key(0) + "0."
    heads = [source.shape(prefix + stage_key(s) + "0.attn.relative_position_bias_table")[1] for s in range(len(depths))]
    mlp = next(k for k in (first + "mlp.0.weight", first + "mlp.fc1.weight") if source.has(k))
    config: Dict[str, Any] = {
        "embed_dim": proj[0], "in_chans": proj[1], "patch_size": tuple(proj[2:]), "depths": tuple(depths),
        "num_heads": tuple(heads), "num_classes": source.shape(head)[0],
        "window_size": _window(source, first + "attn.relative_position_bias_table",
                               first + "attn.relative_position_index"),
        "mlp_ratio": source.shape(mlp)[0] / proj[0], "qkv_bias": source.has(first + "attn.qkv.bias"),
        "patch_norm": source.has(prefix + "patch_embed.norm.weight"),
    }
    default = "swin3d_b" if proj[0] == 128 else "swin3d_s" if sum(depths) > 12 else "swin3d_t"
    return pick_model(source, model, "swin", default), config


def sniff_torchvision(source: Source) -> bool:
    return (source.kind in ("torch", "safetensors") and source.has("patch_embed.proj.weight", "head.weight")
            and len(source.shape("patch_embed.proj.weight")) == 5
            and source.has("features.0.0.attn.relative_position_bias_table"))


def infer_torchvision(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    return _infer(source, model, "", lambda s: f"features.{2 * s}.", "head.weight")


def sniff_official(source: Source) -> bool:
    return (source.kind in ("torch", "safetensors") and source.has("backbone.patch_embed.proj.weight")
            and len(source.shape("backbone.patch_embed.proj.weight")) == 5
            and source.has("backbone.layers.0.blocks.0.attn.relative_position_bias_table", "cls_head.fc_cls.weight")
            and not any(re.match(r"backbone\.norm\d+\.", k) for k in source.state))  # mmaction2 1.x: norm3


def infer_official(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    return _infer(source, model, "backbone.", lambda s: f"layers.{s}.blocks.", "cls_head.fc_cls.weight")


register_format(WeightsFormat("torchvision-swin3d", "torchvision Video Swin state dict (swin3d_t, swin3d_s, swin3d_b)",
                              sniff_torchvision, infer_torchvision, source_errors(torchvision_swin3d_to_vidbench),
                              families=("swin",)))
register_format(WeightsFormat("videoswin-official", "official Video-Swin-Transformer release (its mmaction2 0.x fork: final norm backbone.norm)",
                              sniff_official, infer_official, source_errors(videoswin_official_to_vidbench),
                              families=("swin",)))
