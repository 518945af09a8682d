"""timm `VisionTransformer` state dicts (`.safetensors`, `.pth`, `.bin`) and timm's Hugging Face
hub directories (`config.json` with `"architecture"` beside `model.safetensors` / `pytorch_model.bin`).

vidbench's ViT keeps timm's module names, so the mapping is the identity for the plain ViT
(class token or global average pool, fused qkv, LayerNorm, GELU MLP), with layer scale
(`blocks.N.ls1.gamma`, timm's `init_values`) and register tokens (`reg_token`, DINOv2-reg). timm
features vidbench's ViT does not have are refused by the key that shows them (qk norm, pre-norm,
fc_norm, attention pooling, ...), never dropped: dropping weights changes the function.
A class token without a position row (timm `no_embed_class=True`, timm's DINOv2-reg) gets a zero
row, which computes the same; register tokens with position rows (`no_embed_class=False`) get
their rows added to the tokens (vidbench's registers come after the position embedding), which
also computes the same. Loading into `vit_frameavg_*` puts the backbone under `vit.` and keeps
the head as `head.`.

The same layout is what several self-supervised releases publish, so they load here too: DINO's
backbone files (`dino_deitsmall16_pretrain.pth`, `dino_vitbase16_pretrain.pth`: no head) and
MAE's encoder files (`mae_pretrain_vit_base.pth`: `{'model': ...}`, no head). Their full training
checkpoints have formats of their own (dino-official, mae-official), as MoCo v3's and DINOv2's
releases have (mocov3-official, dinov2-official).

What the shapes give: width, depth, patch size, image size (from the position-embedding grid),
class token, MLP ratio, qkv bias, input channels, classes. What they do not: the number of heads
(`num_heads=`, else the hub config's `model_args`, else the requested model's when its width
matches, else the width's standard: 192 -> 3, 384 -> 6, 768 -> 12, 1024 / 1280 -> 16) and, with a
class token, the pooling (`global_pool=`, else the hub config's, else "token").
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from ...checkpoint import FORMAT as VIDBENCH_FORMAT
from ...models import VideoFrameAverage, create_model
from .._registry import Inferred, WeightsFormat, register_format
from ..source import Source
from ._util import converting, count_indexed, pick_model, square_side

__all__ = ["timm_vit_to_vidbench", "to_model_layout", "vit_config", "vit_name", "STANDARD_HEADS", "unsupported_feature",
           "layer_parts", "default_heads", "infer", "convert", "register_rewrite"]

StateDict = Dict[str, Any]

# ViT widths and their heads in the ViT / DeiT papers (Ti, S, B, L, H)
STANDARD_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16}
_DEFAULT_NAMES = {192: "vit_tiny", 384: "vit_small", 768: "vit_base"}

# keys that show a timm feature vidbench's ViT lacks: (regex, what it is)
_UNSUPPORTED: Tuple[Tuple[str, str], ...] = (
    (r"^dist_token$|^head_dist\.", "a distillation token (DeiT distilled)"),
    (r"\.attn\.(q_norm|k_norm)\.", "qk norm (qk_norm=True)"),
    (r"\.attn\.norm\.", "an attention-output norm (scale_attn_norm=True)"),
    (r"\.mlp\.norm\.", "an MLP hidden norm (scale_mlp_norm=True)"),
    (r"\.mlp\.fc1_[gx]\.", "a gated (SwiGLU) MLP"),
    (r"^norm_pre\.", "a pre-norm after the patch embedding (pre_norm=True, CLIP)"),
    (r"^patch_embed\.norm\.", "a norm in the patch embedding"),
    (r"^patch_embed\.backbone\.", "a hybrid CNN stem"),
    (r"^fc_norm\.", "fc_norm on the pooled features (timm's 'avg' pooling normalises after the mean; "
                    "vidbench's 'avg' pools the final norm's tokens)"),
    (r"^attn_pool\.", "attention pooling (global_pool='map')"),
)
# timm model_args (hub config.json) that change the function, and the values vidbench's ViT computes;
# features that bring weights (fc_norm, reg_tokens, ...) are also caught by their keys
_ARGS_ALLOWED: Dict[str, Tuple[Any, ...]] = {
    "pre_norm": (False,), "final_norm": (True,),
    "qk_norm": (False,), "scale_attn_norm": (False,), "scale_mlp_norm": (False,),
    "proj_bias": (True,), "patch_bias": (True,), "pos_embed": ("learn",), "act_layer": (None, "gelu"),
    "norm_layer": (None, "layernorm"), "mlp_layer": (None,), "block_fn": (None,), "attn_layer": (None,),
    "embed_layer": (None,), "use_rot_pos_emb": (False,),
}
_TEMPORAL = re.compile(r"time_embed|temporal|pos_embed_spatial")
# keys of layouts that have formats of their own: DINOv2's release (mask_token, register_tokens)
# and a full MAE pretraining checkpoint (its decoder)
_OTHER_LAYOUT = re.compile(r"^mask_token$|^register_tokens$|^decoder_")


def unsupported_feature(key: str) -> Optional[str]:
    """What timm feature a key shows that vidbench's ViT lacks, or None."""
    for pattern, what in _UNSUPPORTED:
        if re.search(pattern, key):
            return what
    return None


def _no_embed_class(state: StateDict) -> bool:
    """timm's no_embed_class=True: a class token but no position row for it (pos_embed holds the
    patch grid only; the class token is concatenated after the position embedding is added)."""
    if "cls_token" not in state or "pos_embed" not in state:
        return False
    tokens = int(state["pos_embed"].shape[1])
    return math.isqrt(tokens) ** 2 == tokens


def timm_vit_to_vidbench(state: StateDict) -> StateDict:
    """timm `VisionTransformer` state dict -> vidbench `VisionTransformer` state dict (same config).

    The names agree; this refuses what vidbench's ViT cannot compute (ValueError naming the key
    and the feature). Identity modules in timm (head_drop, patch_drop, ...) carry no weights.
    With `no_embed_class=True` (no position row for the class token) a zero row is prepended,
    which computes the same in vidbench's ViT (position embedding added after the class token)."""
    for key in sorted(state):
        what = unsupported_feature(key)
        if what:
            raise ValueError(f"timm ViT feature not supported by vidbench's ViT: {key} ({what})")
    out = dict(state)
    pos = state["pos_embed"]
    if _no_embed_class(state):
        out["pos_embed"] = torch.cat([torch.zeros_like(pos[:, :1]), pos], dim=1)
    elif "reg_token" in state:  # no_embed_class=False: rows for cls + registers + patches; fold the registers' in
        cls, regs = (1 if "cls_token" in state else 0), int(state["reg_token"].shape[1])
        out["reg_token"] = state["reg_token"] + pos[:, cls:cls + regs]
        out["pos_embed"] = torch.cat([pos[:, :cls], pos[:, cls + regs:]], dim=1)
    return out


def _pos_rows(state: StateDict) -> int:
    """Position rows of the converted state (`timm_vit_to_vidbench`): class token + patches."""
    rows = int(state["pos_embed"].shape[1])
    if _no_embed_class(state):
        return rows + 1
    return rows - (int(state["reg_token"].shape[1]) if "reg_token" in state else 0)


def vit_name(source: Source, model: Optional[str], width: int) -> str:
    """The registry ViT a checkpoint of `width` loads into: `model` if given (checked to be a ViT),
    else the paper size of that width (base for other widths)."""
    return pick_model(source, model, "vit", _DEFAULT_NAMES.get(width, "vit_base"))


def to_model_layout(state: StateDict, model: Any) -> StateDict:
    """A ViT state dict in vidbench's `VisionTransformer` names -> the names of `model`: the same
    for a ViT, the backbone under `vit.` and the head as `head.` for `VideoFrameAverage`."""
    if isinstance(model, VideoFrameAverage):
        return {k if k.startswith("head.") else f"vit.{k}": v for k, v in state.items()}
    return dict(state)


def _model_args(source: Source) -> Dict[str, Any]:
    args = (source.config or {}).get("model_args")
    return dict(args) if isinstance(args, dict) else {}


def _check_model_args(source: Source) -> None:
    for key, value in _model_args(source).items():
        if key in _ARGS_ALLOWED and (value.lower() if isinstance(value, str) else value) not in _ARGS_ALLOWED[key]:
            raise source.error(f"config.json model_args {key}={value!r}: a timm ViT feature vidbench's ViT does "
                               "not support")


def _check_keys(source: Source) -> None:
    for key in sorted(source.state):
        what = unsupported_feature(key)
        if what:
            raise source.error(f"key {key!r} shows {what}, which vidbench's ViT does not support")


def sniff(source: Source) -> bool:
    if source.kind not in ("torch", "safetensors", "hf-dir"):
        return False
    if source.kind == "hf-dir" and not (source.config or {}).get("architecture"):
        return False
    if source.metadata.get("format") == VIDBENCH_FORMAT:
        return False
    if not source.has("patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "pos_embed"):
        return False
    if len(source.shape("patch_embed.proj.weight")) != 4:
        return False
    return not any(_TEMPORAL.search(k) or _OTHER_LAYOUT.search(k) for k in source.state)


def default_heads(width: int, model: Optional[str], overrides: Dict[str, Any], source: Source) -> int:
    """`num_heads=`, else the hub config's model_args, else the requested model's (same width),
    else the width's standard; an error where none applies."""
    if overrides.get("num_heads"):
        return int(overrides["num_heads"])
    if _model_args(source).get("num_heads"):
        return int(_model_args(source)["num_heads"])
    if model is not None:
        with torch.device("meta"):
            cfg = create_model(model).config
        if cfg.embed_dim == width:
            return int(cfg.num_heads)
    if width in STANDARD_HEADS:
        return STANDARD_HEADS[width]
    raise source.error(f"the number of heads is not in any tensor shape and width {width} has no standard one "
                       f"({', '.join(f'{w}: {h}' for w, h in STANDARD_HEADS.items())}); pass num_heads=")


def vit_config(source: Source, width: int, patch: Tuple[int, int], pos_tokens: int,
               class_token: bool, depth: int, mlp_hidden: int, qkv_bias: bool, num_classes: int, in_chans: int,
               heads: int, global_pool: str) -> Dict[str, Any]:
    """A vidbench ViTConfig's fields from what a checkpoint shows (shared with google-vit-npz)."""
    if patch[0] != patch[1]:
        raise source.error(f"non-square patches {patch} are not supported")
    side = square_side(pos_tokens - (1 if class_token else 0), source, "pos_embed")
    if int(width * (mlp_hidden / width)) != mlp_hidden:
        raise source.error(f"MLP width {mlp_hidden} is not reproducible from embed_dim {width} by a ratio")
    if width % heads:
        raise source.error(f"width {width} is not divisible by num_heads={heads}")
    if global_pool == "token" and not class_token:
        raise source.error("global_pool='token' needs a class token, and the checkpoint has none")
    return {"img_size": side * patch[0], "patch_size": patch[0], "in_chans": in_chans, "num_classes": num_classes,
            "embed_dim": width, "depth": depth, "num_heads": heads, "mlp_ratio": mlp_hidden / width,
            "qkv_bias": qkv_bias, "class_token": class_token, "global_pool": global_pool}


def infer(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    _check_keys(source)
    _check_model_args(source)
    config = source.config or {}
    width = source.shape("pos_embed")[-1]
    class_token = source.has("cls_token")
    pos_tokens = _pos_rows(source.state)  # convert prepends a zero class row / folds register rows in
    if not source.has("norm.weight"):
        raise source.error("no final norm.weight (timm final_norm=False), which vidbench's ViT does not support")
    pool = overrides.get("global_pool") or _model_args(source).get("global_pool") or config.get("global_pool")
    pool = pool or ("token" if class_token else "avg")
    if pool not in ("token", "avg"):
        raise source.error(f"global_pool={pool!r}: vidbench's ViT pools by 'token' or 'avg'")
    state = source.state
    cfg = vit_config(source, width, source.shape("patch_embed.proj.weight")[2:], pos_tokens, class_token,
                     count_indexed(state, r"blocks\.(\d+)\."), source.shape("blocks.0.mlp.fc1.weight")[0],
                     source.has("blocks.0.attn.qkv.bias"),
                     source.shape("head.weight")[0] if source.has("head.weight") else 0,
                     source.shape("patch_embed.proj.weight")[1], default_heads(width, model, overrides, source),
                     pool)
    cfg.update(layer_parts(source, _model_args(source).get("init_values")))
    return vit_name(source, model, width), cfg


def layer_parts(source: Source, init_values: Any = None) -> Dict[str, Any]:
    """init_values and reg_tokens of a state in timm's names: layer scale where `blocks.0.ls1.gamma`
    is (its init value does not change the function: the gammas are loaded; `init_values` if the
    source says it, else timm's 1e-5), the number of register tokens of `reg_token`."""
    out: Dict[str, Any] = {}
    if source.has("blocks.0.ls1.gamma"):
        out["init_values"] = float(init_values) if init_values else 1e-5
    if source.has("reg_token"):
        out["reg_tokens"] = int(source.shape("reg_token")[1])
    return out


def convert(source: Source, model: Any) -> StateDict:
    with converting(source):
        state = timm_vit_to_vidbench(source.state)
    return to_model_layout(state, model)


def preprocess(source: Source) -> Dict[str, Any]:
    """mean, std, test crop and resize from a hub config's pretrained_cfg (timm's eval transform:
    resize the short side to floor(crop / crop_pct), centre crop)."""
    cfg = (source.config or {}).get("pretrained_cfg")
    if not isinstance(cfg, dict):
        return {}
    out: Dict[str, Any] = {}
    if cfg.get("mean") and cfg.get("std"):
        out.update(mean=[float(v) for v in cfg["mean"]], std=[float(v) for v in cfg["std"]])
    size = cfg.get("input_size")
    if isinstance(size, (list, tuple)) and len(size) == 3:
        out["crop_size"] = int(size[-1])
        crop_pct = cfg.get("crop_pct")
        if crop_pct:
            out["resize_size"] = int(math.floor(int(size[-1]) / float(crop_pct)))
        out["views"] = "1x1"
    return out


def class_names(source: Source) -> Optional[List[str]]:
    names = (source.config or {}).get("label_names")
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        return list(names)
    if isinstance(names, dict):
        try:
            ordered = sorted((int(k), str(v)) for k, v in names.items())
        except (TypeError, ValueError):
            return None
        if [i for i, _ in ordered] == list(range(len(ordered))):
            return [n for _, n in ordered]
    return None


def register_rewrite(name: str, description: str, sniff: Callable[[Source], bool],
                     to_timm: Callable[[StateDict], StateDict], heads: Optional[Dict[int, int]] = None) -> WeightsFormat:
    """Register a format whose layout is timm's under other names (DINO's and MoCo v3's training
    checkpoints, MAE's with its decoder): `to_timm` rewrites its state dict into timm's names (a
    ValueError naming a key it refuses); inference and conversion are this format's on the result.
    `heads`: the release's heads by width, where they are not the width's standard ones."""

    def as_timm(source: Source) -> Source:
        with converting(source):
            return dataclasses.replace(source, state=to_timm(source.state))

    def infer_rewritten(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
        timm = as_timm(source)
        width = int(timm.shape("pos_embed")[-1])
        if heads and width in heads and model is None and not overrides.get("num_heads"):
            overrides = {**overrides, "num_heads": heads[width]}
        return infer(timm, model, overrides)

    def convert_rewritten(source: Source, model: Any) -> StateDict:
        return convert(as_timm(source), model)

    return register_format(WeightsFormat(name, description, sniff, infer_rewritten, convert_rewritten,
                                         families=("vit",)))


register_format(WeightsFormat(
    "timm-vit", "timm VisionTransformer state dict (.safetensors/.pth/.bin) or timm hub directory",
    sniff, infer, convert, families=("vit",), preprocess=preprocess, class_names=class_names))
