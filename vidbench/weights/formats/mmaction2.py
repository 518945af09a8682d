"""mmaction2 (1.x) recognizer checkpoints: `{"state_dict": ..., "meta": ...}` (mmengine's
`save_checkpoint`; training checkpoints `epoch_N.pth` also hold the message hub and optimizer,
read without running code by `_training_pickle.py`), keys `backbone.*` and `cls_head.fc_cls.*`.

Four backbones, each a handful of renames onto a layout another format already converts:

- `TimeSformer` (all three `attention_type`s) -> the official TimeSformer layout: mmcv's
  `nn.MultiheadAttention` `attn.in_proj_{weight,bias}` / `attn.out_proj` are `qkv` / `proj`
  ([q; k; v] rows in both). Divided blocks: `attentions.0` is the temporal attention (`norm`,
  `attn`, `temporal_fc`), `attentions.1` the spatial one, `ffns.0.norm` the pre-MLP norm;
  joint / space-only blocks: `norms.0`, `attentions.0`, `norms.1`, `ffns.0`; the MLP is
  `ffns.0.layers.0.0` / `ffns.0.layers.1`. `patch_embed.projection` is a Conv2d.
- `SwinTransformer3D` -> the official Video Swin layout: the same keys, but the final norm is
  `norm3` (the norm of stage 3, `out_indices=(3,)`) instead of `norm`.
- `MViT` (MViTv2 S / B / L) -> SlowFast's MViTv2 layout: `patch_embed.projection` is `proj`,
  the final norm `norm3`, the head `cls_head.fc_cls`; blocks are SlowFast's names.
- `VisionTransformer` of the VideoMAE / VideoMAE V2 configs (`vit_mae.py`) -> vidbench's VideoMAE:
  `attn.q_bias` / `attn.v_bias` become the fused qkv bias with a zero k third, the MLP is mmcv's
  FFN (`mlp.layers.0.0` / `mlp.layers.1`), `fc_norm` (mean pooling) or `norm` (first token). Its
  `pos_embed` is a saved buffer: it must be the sinusoid table vidbench rebuilds (checked, then
  dropped; a learned table, `use_learnable_pos_emb=True`, is refused; a file without it is taken
  at the configs' 16 frames unless `num_frames=` says otherwise), and layer scale
  (`gamma_1` / `gamma_2`, `init_values > 0`) is refused: vidbench's VideoMAE has none.

The state dict records no heads count (TimeSformer, VideoMAE): `num_heads=` if given, else the
registry model of that width / depth, else `embed_dim // 64`. Swin and MViT heads are in their
tensor shapes. Clip size: TimeSformer from `time_embed` / `pos_embed`, MViT from its relative
position tables, VideoMAE from the number of positions at 224 px (or at `img_size=`); Swin has
no position table and is built at the registry's 32x224 unless told otherwise.

Class names: `meta["dataset_meta"]["classes"]` (mmengine) or `meta["CLASSES"]` (mmcv 1.x) where
the checkpoint has them (mmaction2's video datasets usually save none). Preprocessing: the
published entry's, else what `meta["cfg"]` (the config text mmengine saves) says: the
`data_preprocessor` mean / std and the test pipeline's SampleFrames / Resize / crops.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Dict, List, Optional, Tuple

import torch

from ...models.videomae import sinusoid_table
from .._registry import Inferred, WeightsFormat, register_format
from ..source import Source
from . import timesformer_official, torchvision_swin3d
from ._mvit import SLOWFAST_TOP, infer_mvit, layout_shapes, mvit_layout_to_vidbench
from ._util import converting, count_indexed, fuse_qkv, rename_keys, square_side
from .videomaev2_official import encoder_config, heads, size_model

__all__ = ["mmaction2_family", "mmaction2_to_timesformer_official", "mmaction2_to_videoswin_official",
           "mmaction2_to_slowfast_mvit", "mmaction2_videomae_to_vidbench"]

_HEAD = {"cls_head.fc_cls.weight": "head", "cls_head.fc_cls.bias": "head"}
_TS_LAYER = re.compile(r"backbone\.transformer_layers\.layers\.(\d+)\.(.+)$")
# mmaction2 block-relative name -> official TimeSformer module (divided / joint and space-only)
_TS_DIVIDED = {"attentions.0.norm": "temporal_norm1", "attentions.0.attn.in_proj": "temporal_attn.qkv",
               "attentions.0.attn.out_proj": "temporal_attn.proj", "attentions.0.temporal_fc": "temporal_fc",
               "attentions.1.norm": "norm1", "attentions.1.attn.in_proj": "attn.qkv",
               "attentions.1.attn.out_proj": "attn.proj", "ffns.0.norm": "norm2",
               "ffns.0.layers.0.0": "mlp.fc1", "ffns.0.layers.1": "mlp.fc2"}
_TS_JOINT = {"norms.0": "norm1", "attentions.0.attn.in_proj": "attn.qkv", "attentions.0.attn.out_proj": "attn.proj",
             "norms.1": "norm2", "ffns.0.layers.0.0": "mlp.fc1", "ffns.0.layers.1": "mlp.fc2"}
_TS_TOP = {"cls_token", "pos_embed", "time_embed", "norm.weight", "norm.bias"}
_VMAE_BLOCK = {"norm1": "norm1", "norm2": "norm2", "attn.qkv": "attn.qkv", "attn.proj": "attn.proj",
               "mlp.layers.0.0": "mlp.fc1", "mlp.layers.1": "mlp.fc2"}
_VMAE_NAMES = {"stem": "backbone.patch_embed.projection.weight", "blocks": "backbone.blocks.",
               "fc1": "backbone.blocks.0.mlp.layers.0.0.weight", "fc_norm": "backbone.fc_norm.weight",
               "norm": "backbone.norm.weight", "q_bias": "backbone.blocks.0.attn.q_bias"}


def mmaction2_family(state: Dict[str, Any]) -> Optional[str]:
    """Which mmaction2 backbone a state dict holds, from its key names (None: none of the four)."""
    if "backbone.transformer_layers.layers.0.ffns.0.layers.0.0.weight" in state:
        return "timesformer"
    if "backbone.layers.0.blocks.0.attn.relative_position_bias_table" in state:
        return "swin"
    if "backbone.blocks.0.attn.rel_pos_h" in state or "backbone.blocks.0.attn.pool_q.weight" in state:
        return "mvit"
    if "backbone.blocks.0.attn.qkv.weight" in state and "backbone.blocks.0.mlp.layers.0.0.weight" in state:
        return "videomae"
    return None


def _split(key: str) -> Tuple[str, str]:
    """("in_proj", "weight") style split of a parameter name; mmcv's MultiheadAttention names its
    input projection `in_proj_weight` / `in_proj_bias`."""
    if key.endswith(("in_proj_weight", "in_proj_bias")):
        return key[: -len("_weight" if key.endswith("weight") else "_bias")], key.rsplit("_", 1)[1]
    module, _, leaf = key.rpartition(".")
    return module, leaf


def mmaction2_to_timesformer_official(state: Dict[str, Any]) -> Dict[str, Any]:
    """mmaction2 `TimeSformer` + `TimeSformerHead` -> official TimeSformer names (`model.*`)."""
    divided = "backbone.transformer_layers.layers.0.attentions.0.temporal_fc.weight" in state
    table = _TS_DIVIDED if divided else _TS_JOINT

    def name(key: str) -> Optional[str]:
        if key in _HEAD:
            return "model.head." + key.rsplit(".", 1)[1]
        if key.startswith("backbone.patch_embed.projection."):
            return "model.patch_embed.proj." + key.rsplit(".", 1)[1]
        if key.startswith("backbone.") and key[len("backbone."):] in _TS_TOP:
            return "model." + key[len("backbone."):]
        if m := _TS_LAYER.match(key):
            module, leaf = _split(m.group(2))
            if module in table and leaf in ("weight", "bias"):
                return f"model.blocks.{m.group(1)}.{table[module]}.{leaf}"
        return None

    return rename_keys(state, name, "mmaction2 TimeSformer")


def mmaction2_to_videoswin_official(state: Dict[str, Any]) -> Dict[str, Any]:
    """mmaction2 `SwinTransformer3D` (out_indices=(3,)) -> the official Video Swin names."""
    if "backbone.norm.weight" in state:
        raise ValueError("has both backbone.norm and backbone.norm3")
    stages = count_indexed(state, r"backbone\.layers\.(\d+)\.")
    last = f"backbone.norm{stages - 1}."
    out: Dict[str, Any] = {}
    for key, value in state.items():
        if key.startswith(last):
            out["backbone.norm." + key[len(last):]] = value
        elif re.match(r"backbone\.norm\d+\.", key):
            raise ValueError(f"{key}: a norm of an earlier stage (out_indices beyond the last stage): vidbench's "
                             "Swin classifies from the last stage only")
        else:
            out[key] = value
    return out


def mmaction2_to_slowfast_mvit(state: Dict[str, Any]) -> Dict[str, Any]:
    """mmaction2 `MViT` + `MViTHead` -> SlowFast MViT names (what slowfast_mvit converts)."""
    n = count_indexed(state, r"backbone\.blocks\.(\d+)\.")
    stages = [int(m.group(1)) for k in state if (m := re.match(r"backbone\.norm(\d+)\.weight$", k))]
    if len(stages) > 1:
        raise ValueError(f"final norms of several stages ({', '.join(f'norm{s}' for s in sorted(stages))}): "
                         "vidbench's MViT classifies from the last stage only")
    out: Dict[str, Any] = {}
    for key, value in state.items():
        if key in _HEAD:
            out["head.projection." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("backbone.patch_embed.projection."):
            out["patch_embed.proj." + key.rsplit(".", 1)[1]] = value
        elif stages and key.startswith(f"backbone.norm{stages[0]}."):
            out["norm." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("backbone."):
            out[key[len("backbone."):]] = value
        else:
            raise ValueError(f"mmaction2 MViT key not known to vidbench's converter: {key}")
    if n and "norm.weight" not in out:
        raise ValueError("no final norm (backbone.norm3)")
    return out


def mmaction2_videomae_to_vidbench(state: Dict[str, Any]) -> Dict[str, Any]:
    """mmaction2 `VisionTransformer` (VideoMAE configs) + `TimeSformerHead` -> vidbench VideoMAE
    names. `backbone.pos_embed` is left out (checked against the sinusoid table in `infer`)."""
    out: Dict[str, Any] = {}
    biases: Dict[str, Dict[str, Any]] = {}
    for key, value in state.items():
        name = key[len("backbone."):] if key.startswith("backbone.") else None
        new = None
        if key in _HEAD:
            new = "head." + key.rsplit(".", 1)[1]
        elif name == "pos_embed":
            continue
        elif name is not None and name.startswith("patch_embed.projection."):
            new = "patch_embed.proj." + name.rsplit(".", 1)[1]
        elif name in ("norm.weight", "norm.bias", "fc_norm.weight", "fc_norm.bias"):
            new = name
        elif name is not None and (m := re.match(r"blocks\.(\d+)\.(.+)$", name)):
            rest = m.group(2)
            if rest in ("gamma_1", "gamma_2"):
                raise ValueError(f"{key}: layer scale (init_values > 0), which vidbench's VideoMAE does not have")
            if rest in ("attn.q_bias", "attn.v_bias"):
                biases.setdefault(m.group(1), {})[rest[5]] = value
                continue
            module, leaf = _split(rest)
            if module in _VMAE_BLOCK and leaf in ("weight", "bias"):
                new = f"blocks.{m.group(1)}.{_VMAE_BLOCK[module]}.{leaf}"
        if new is None:
            raise ValueError(f"mmaction2 VideoMAE (VisionTransformer) key not known to vidbench's converter: {key}")
        out[new] = value
    for i, got in biases.items():
        if set(got) != {"q", "v"}:
            raise ValueError(f"block {i}: a q bias without a v bias or the reverse")
        q = torch.as_tensor(got["q"])
        out[f"blocks.{i}.attn.qkv.bias"] = fuse_qkv([q, torch.zeros_like(q), got["v"]])  # VideoMAE has no k bias
    return out


def _shape_state(source: Source, fn: Any) -> Source:
    """`source` with its keys renamed by `fn`, on the shapes only (for `infer`)."""
    shapes = {k: torch.empty(tuple(v.shape), device="meta") for k, v in source.state.items()}
    with converting(source):
        return dataclasses.replace(source, state=fn(shapes))


def sniff(source: Source) -> bool:
    stem = ("backbone.patch_embed.proj.weight", "backbone.patch_embed.projection.weight")
    if source.kind not in ("torch", "safetensors") or not any(source.has(k) for k in stem):
        return False
    family = mmaction2_family(source.state)
    if family == "swin":  # the official Video Swin release ends in backbone.norm (videoswin-official)
        return any(re.match(r"backbone\.norm\d+\.weight$", k) for k in source.state)
    return family is not None


def _infer_videomae(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    config = encoder_config(source, _VMAE_NAMES)  # the official VideoMAE V2 modules under mmaction2's names
    dim, (tube, patch, _) = config["embed_dim"], config["tubelet_size"]
    side = (overrides.get("img_size") or 224) // patch
    frames = overrides.get("num_frames")
    if not source.has("backbone.pos_embed"):  # a fixed table mmaction2 rebuilds: its configs' 16 x 224 if not told
        frames = frames or 16
    else:
        table = source.state["backbone.pos_embed"]
        n = table.shape[1]
        if n % (side * side) == 0:
            frames = n // (side * side) * tube
        elif frames and n % (frames // tube) == 0:
            side = square_side(n // (frames // tube), source, "backbone.pos_embed")
        else:
            raise source.error(f"backbone.pos_embed has {n} positions, which is no whole number of {side}x{side} "
                               "frames (give img_size= or num_frames=)")
        want = sinusoid_table(n, dim)
        if tuple(table.shape) != tuple(want.shape) or not torch.allclose(torch.as_tensor(table).float(), want,
                                                                         atol=1e-5):
            raise source.error("backbone.pos_embed is not the fixed sinusoid table (a learned table, "
                               "use_learnable_pos_emb=True?): vidbench's VideoMAE has fixed positions only")
    config.update(img_size=side * patch, num_frames=frames, num_heads=heads(model, dim, config["depth"], overrides),
                  num_classes=source.shape("cls_head.fc_cls.weight")[0] if source.has("cls_head.fc_cls.weight") else 0)
    return size_model(source, model, dim, config["depth"]), config


def infer(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    family = mmaction2_family(source.state)
    if family == "timesformer":
        renamed = _shape_state(source, mmaction2_to_timesformer_official)
        name, config = timesformer_official.infer(renamed, model, overrides)
        return name, config
    if family == "swin":
        return torchvision_swin3d.infer_official(_shape_state(source, mmaction2_to_videoswin_official), model,
                                                 overrides)
    if family == "mvit":
        renamed = _shape_state(source, mmaction2_to_slowfast_mvit)
        what = "mmaction2 MViT"
        return infer_mvit(renamed, model, overrides, layout_shapes(renamed, SLOWFAST_TOP, what), what)
    if family == "videomae":
        return _infer_videomae(source, model, overrides)
    raise source.error("an mmaction2 checkpoint of a backbone vidbench does not convert (TimeSformer, "
                       "SwinTransformer3D, MViT and the VideoMAE VisionTransformer are)")


def convert(source: Source, model: Any) -> Dict[str, Any]:
    family = mmaction2_family(source.state)
    with converting(source):
        if family == "timesformer":
            official = mmaction2_to_timesformer_official(source.state)
            return timesformer_official.official_to_vidbench(official, model.config.attention_type == "divided")
        if family == "swin":
            return torchvision_swin3d.videoswin_official_to_vidbench(mmaction2_to_videoswin_official(source.state))
        if family == "mvit":
            return mvit_layout_to_vidbench(mmaction2_to_slowfast_mvit(source.state), SLOWFAST_TOP, "mmaction2 MViT")
        if family == "videomae":
            return mmaction2_videomae_to_vidbench(source.state)
    raise source.error("not an mmaction2 checkpoint of a backbone vidbench converts")


def class_names(source: Source) -> Optional[List[str]]:
    meta = source.meta or {}
    found = (meta.get("dataset_meta") or {}).get("classes") if isinstance(meta.get("dataset_meta"), dict) else None
    found = found if found is not None else meta.get("CLASSES")
    if isinstance(found, (list, tuple)) and found and all(isinstance(c, str) for c in found):
        return list(found)
    return None


def _numbers(text: str) -> List[float]:
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", text)]


def cfg_preprocess(text: str) -> Dict[str, Any]:
    """Mean / std of the `data_preprocessor` and the test pipeline's sampling, resize and crops from
    an mmengine config dumped as text (`meta["cfg"]`); only what is found."""
    out: Dict[str, Any] = {}
    at = re.search(r"data_preprocessor\s*=\s*dict\(", text)
    if at:
        for key in ("mean", "std"):
            m = re.compile(key + r"\s*=\s*\[([^\]]*)\]").search(text, at.end())
            values = _numbers(m.group(1)) if m else []
            if len(values) == 3:
                out[key] = [v / 255.0 if max(values) > 1.0 else v for v in values]
    at = re.search(r"^test_pipeline\s*=\s*\[", text, re.M)
    if at:
        end = re.compile(r"^\]", re.M).search(text, at.end())
        pipe = text[at.end(): end.start() if end else len(text)]
        ints = {k: int(m.group(1)) for k in ("clip_len", "frame_interval", "num_clips", "crop_size")
                if (m := re.search(k + r"\s*=\s*(\d+)", pipe))}
        if "clip_len" in ints:
            out["num_frames"] = ints["clip_len"]
        if "frame_interval" in ints:
            out["sampling_rate"] = ints["frame_interval"]
        if "crop_size" in ints:
            out["crop_size"] = ints["crop_size"]
        if m := re.search(r"type='Resize',\s*scale=\(\s*-1,\s*(\d+)\s*\)", pipe):
            out["resize_size"] = int(m.group(1))
        crops = 10 if "TenCrop" in pipe else 3 if "ThreeCrop" in pipe else 1
        if "num_clips" in ints:
            out["views"] = f"{ints['num_clips']}x{crops}"
    return out


def preprocess(source: Source) -> Dict[str, Any]:
    text = (source.meta or {}).get("cfg")
    return cfg_preprocess(text) if isinstance(text, str) else {}


register_format(WeightsFormat(
    "mmaction2", "mmaction2 recognizer checkpoint ({'state_dict', 'meta'}; backbone.* / cls_head.*: TimeSformer, "
    "SwinTransformer3D, MViT, VideoMAE VisionTransformer; mmengine epoch_N.pth too)",
    sniff, infer, convert, families=("timesformer", "swin", "mvit", "videomae"), preprocess=preprocess,
    class_names=class_names))
