"""Meta's Hiera checkpoints (facebookresearch/hiera, the `hiera-transformer` package) in the
layouts it writes:

- the `.pth` files of its model zoo (dl.fbaipublicfiles.com/hiera/hiera_base_16x224.pth, ...),
  which `torch.load` reads as ``{"model_state": {...}}`` (what the package's `pretrained_model`
  loader indexes), or a plain `torch.save(model.state_dict())` of a `hiera.Hiera`;
- its Hugging Face Hub directories (facebook/hiera_base_16x224.mae_k400_ft_k400, ...), which
  `Hiera.save_pretrained(dir, config=model.config)` writes: `model.safetensors` and a config.json
  of the `Hiera` constructor's arguments (no `model_type`: not transformers' `HieraModel`).

The layout is vidbench's `Hiera` module for module (models/hiera.py) except the head:
`head.projection.*` -> `head.*`. The video models only: a 2-D stem (the image models) is refused,
and so is an MAE pre-training checkpoint (`mask_token`, `decoder_*`, `encoder_norm`: it has no
classifier head and its encoder ends in `encoder_norm`; vidbench loads the fine-tuned ones).

Config: a Hub directory's config.json gives every field (`stages` -> depths, `head_dropout` ->
head_drop_rate; `norm_layer` must be LayerNorm). A `.pth` holds none. From the shapes: width,
stem kernel and channels, the token grid (spatial and temporal position tables -> frames and
image size at the stem's stride), depths (a stage starts where a block has `proj`), MLP ratio,
classes. Not in any shape, so taken from the requested model (`model=`), else from the published
config of the same width and depths (Hiera-B / B+ / L / H at 16x224), else from
hiera_base_16x224: heads (`num_heads=` overrides), q_pool, q_stride, mask unit size and which
stages use it, stem stride and padding.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Optional

import torch

from ...models import create_model, list_models
from .._registry import Inferred, WeightsFormat, register_format
from ..source import Source
from ._util import count_indexed, pick_model, rename_keys, source_errors, square_side

_BLOCK = re.compile(r"blocks\.\d+\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2|proj)\.(weight|bias)$")
_TOP = ("patch_embed.proj.weight", "patch_embed.proj.bias", "pos_embed", "pos_embed_spatial", "pos_embed_temporal",
        "norm.weight", "norm.bias")
_MAE = ("mask_token", "encoder_norm.weight", "decoder_pos_embed")
_FIELDS_FROM_MODEL = ("num_heads", "q_pool", "q_stride", "mask_unit_size", "mask_unit_attn", "patch_stride",
                      "patch_padding", "dim_mul", "head_mul")


def rename(key: str) -> Optional[str]:
    """The official name of a tensor -> vidbench's (None: unknown)."""
    if key.startswith("head.projection."):
        return "head." + key[len("head.projection."):]
    return key if key in _TOP or _BLOCK.match(key) else None


def official_to_vidbench(state: Dict[str, Any]) -> Dict[str, Any]:
    return rename_keys(state, rename, "official Hiera")


_STAGE_START = re.compile(r"blocks\.\d+\.proj\.weight$")


def _hub_config(source: Source) -> Optional[Dict[str, Any]]:
    """The constructor arguments a Hub directory (or `vidbench compare`) gives with the tensors."""
    config = source.config or {}
    return config if "stages" in config and "mask_unit_size" in config and "model_type" not in config else None


def sniff(source: Source) -> bool:
    """A 3-D stem, plain blocks (fused qkv) with a widening `proj` at stage starts, no cls token and
    no pooling convolutions or relative positions (what tells it from SlowFast's MViT, which shares
    the stem and position names). An image Hiera (2-D stem) is left to the formats that claim
    2-D stems; forced with format="hiera-official", it is refused with a message."""
    keys = source.state
    if source.kind == "hf-dir":
        layout = _hub_config(source) is not None
    elif source.kind == "safetensors":
        layout = not source.metadata.get("format")  # vidbench's own files say so in their metadata
    else:
        layout = source.kind == "torch" and source.container in ("model_state", None)
    return (layout and source.has("patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "blocks.0.norm1.weight")
            and len(source.shape("patch_embed.proj.weight")) == 5
            and (source.has("pos_embed_spatial") or source.has("pos_embed"))
            and not source.has("cls_token") and any(_STAGE_START.match(k) for k in keys)
            and not any(".attn.pool_" in k or ".attn.norm_q" in k or "rel_pos" in k for k in keys))


def _model_config(name: str) -> Any:
    with torch.device("meta"):
        return create_model(name).config


def _published_match(dim: int, depths: tuple) -> Optional[str]:
    for name in list_models(family="hiera"):
        cfg = _model_config(name)
        if cfg.embed_dim == dim and tuple(cfg.depths) == depths and not name.endswith("_tiny"):
            return name
    return None


def infer(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    if any(source.has(k) for k in _MAE):
        raise source.error("an MAE pre-training checkpoint (mask_token / decoder / encoder_norm): vidbench loads "
                           "the fine-tuned Hiera classifiers (mae_k400_ft_k400), not the pre-training model")
    stem = source.shape("patch_embed.proj.weight")
    if len(stem) != 5:
        raise source.error(f"a {len(stem) - 2}-D Hiera stem {stem}: vidbench registers the video models "
                           "(3-D stem) only, not the image ones")
    dim, in_chans, kernel = stem[0], stem[1], tuple(stem[2:])
    depth = count_indexed(source.state, r"blocks\.(\d+)\.")
    starts = [0] + [i for i in range(depth) if source.has(f"blocks.{i}.proj.weight")] + [depth]
    depths = tuple(b - a for a, b in zip(starts, starts[1:]))
    name = pick_model(source, model, "hiera", _published_match(dim, depths) or "hiera_base_16x224")
    base = _model_config(name)
    config: Dict[str, Any] = {f: getattr(base, f) for f in _FIELDS_FROM_MODEL}
    hub = _hub_config(source)
    stride = tuple(overrides.get("patch_stride") or (hub or {}).get("patch_stride") or base.patch_stride)
    config["patch_stride"] = stride
    if source.has("pos_embed_spatial"):
        frames = source.shape("pos_embed_temporal")[1]
        side = square_side(source.shape("pos_embed_spatial")[1], source, "pos_embed_spatial")
        config["sep_pos_embed"] = True
    else:  # one table over all tokens: the frames come from config.json, the user or the model
        frames = ((hub or {}).get("input_size", [None])[0] or overrides.get("num_frames", base.num_frames)) // stride[0]
        side = square_side(source.shape("pos_embed")[1] // frames, source, "pos_embed")
        config["sep_pos_embed"] = False
    hidden = source.shape("blocks.0.mlp.fc1.weight")[0]
    config.update(embed_dim=dim, in_chans=in_chans, patch_kernel=kernel, depths=depths, mlp_ratio=hidden / dim,
                  num_frames=frames * stride[0], img_size=side * stride[1],
                  num_classes=source.shape("head.projection.weight")[0] if source.has("head.projection.weight") else 0)
    if int(dim * config["mlp_ratio"]) != hidden:
        raise source.error(f"MLP width {hidden} is not a ratio vidbench's Mlp reproduces for width {dim}")
    if hub is not None:
        config.update(_from_hub(source, hub, config))
    if overrides.get("num_heads"):
        config["num_heads"] = int(overrides["num_heads"])
    return name, config


# config.json names -> vidbench's, for the fields no tensor shape holds
_HUB_FIELDS = {"num_heads": "num_heads", "q_pool": "q_pool", "q_stride": "q_stride", "mask_unit_size": "mask_unit_size",
               "mask_unit_attn": "mask_unit_attn", "dim_mul": "dim_mul", "head_mul": "head_mul",
               "patch_stride": "patch_stride", "patch_padding": "patch_padding", "sep_pos_embed": "sep_pos_embed",
               "drop_path_rate": "drop_path_rate", "head_dropout": "head_drop_rate",
               "head_init_scale": "head_init_scale"}


def _from_hub(source: Source, hub: Dict[str, Any], shapes: Dict[str, Any]) -> Dict[str, Any]:
    """The config.json's fields, checked against what the tensors say."""
    if hub.get("norm_layer", "LayerNorm") != "LayerNorm":
        raise source.error(f"norm_layer {hub['norm_layer']!r}: vidbench's Hiera has LayerNorm (eps 1e-6) only")
    size = tuple(hub.get("input_size", ()))
    if len(size) != 3:
        raise source.error(f"input_size {list(size)}: vidbench registers the video models (T, H, W) only")
    out = {new: tuple(hub[old]) if isinstance(hub[old], list) else hub[old]
           for old, new in _HUB_FIELDS.items() if old in hub}
    said = {"depths": tuple(hub["stages"]), "embed_dim": hub.get("embed_dim"), "num_frames": size[0],
            "img_size": size[1], "num_classes": hub.get("num_classes")}
    held = {k: shapes[k] for k in said}
    wrong = [f"{k} {said[k]} (tensors: {held[k]})" for k in said if said[k] is not None and said[k] != held[k]]
    if size[1] != size[2] or wrong:
        raise source.error("config.json does not match its tensors: " + ", ".join(wrong or [f"input_size {list(size)}"]))
    return out


convert = source_errors(official_to_vidbench)

register_format(WeightsFormat(
    "hiera-official", "Meta's Hiera video models: model-zoo .pth ({'model_state': ...}) or state dict (heads from "
    "the matching config or model=), Hub directory (config.json + model.safetensors)", sniff, infer, convert, families=("hiera",)))
