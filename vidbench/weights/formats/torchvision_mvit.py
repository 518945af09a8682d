"""torchvision's MViT state dicts (`mvit_v1_b`, `mvit_v2_s`; .pth files of
`MViT_V1_B_Weights` / `MViT_V2_S_Weights`). vidbench's MViT follows torchvision's module layout,
so the mapping is a handful of renames and the flat position tables reshaped to (1, N, C)."""
from __future__ import annotations

from typing import Any, Dict, Optional

from .._registry import Inferred, WeightsFormat, register_format
from ..source import Source
from ._util import pick_model, source_errors, square_side

_RENAMES = (
    ("conv_proj.", "patch_embed.proj."),
    (".attn.project.0.", ".attn.proj."),
    (".pool.weight", ".conv.weight"),
    (".norm_act.0.", ".norm."),
    (".mlp.0.", ".mlp.fc1."),
    (".mlp.3.", ".mlp.fc2."),
    (".project.", ".proj."),
    ("head.1.", "head."),
)
# torchvision's PositionalEncoding holds flat vectors / tables; vidbench's are (1, N, C)
_POSITIONS = {
    "pos_encoding.class_token": "cls_token",
    "pos_encoding.class_pos": "pos_embed_class",
    "pos_encoding.spatial_pos": "pos_embed_spatial",
    "pos_encoding.temporal_pos": "pos_embed_temporal",
}
_KEEP = ("conv_proj.", "head.1.", "blocks.", "norm.")


def torchvision_mvit_to_vidbench(state: Dict[str, Any]) -> Dict[str, Any]:
    """torchvision `MViT` state dict -> vidbench `MViT` state dict of the same config."""
    out: Dict[str, Any] = {}
    for key, value in state.items():
        if key in _POSITIONS:
            out[_POSITIONS[key]] = value.reshape(1, -1, value.shape[-1])
            continue
        if not key.startswith(_KEEP):
            raise ValueError(f"torchvision MViT key not known to vidbench's converter: {key}")
        for old, new in _RENAMES:
            key = key.replace(old, new)
        out[key] = value
    return out


def sniff(source: Source) -> bool:
    return source.kind in ("torch", "safetensors") and source.has("conv_proj.weight") and (
        source.has("pos_encoding.class_token") or source.has("blocks.0.attn.rel_pos_h"))


def infer(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    version = 2 if source.has("blocks.0.attn.rel_pos_h") else 1
    config: Dict[str, Any] = {"num_classes": source.shape("head.1.weight")[0], "version": version}
    stride_t = 2  # the cube stem's temporal stride (MViT-B and MViTv2-S)
    if version == 1:
        t = source.shape("pos_encoding.temporal_pos")[0]
        side = square_side(source.shape("pos_encoding.spatial_pos")[0], source, "pos_encoding.spatial_pos")
        config.update(num_frames=t * stride_t, img_size=side * 4)
        default = "mvit_b_32x3" if t * stride_t == 32 else "mvit_b_16x4"
    else:
        t = (source.shape("blocks.0.attn.rel_pos_t")[0] + 1) // 2
        side = (source.shape("blocks.0.attn.rel_pos_h")[0] + 1) // 2
        config.update(num_frames=t * stride_t, img_size=side * 4)
        default = "mvitv2_s_16x4"
    return pick_model(source, model, "mvit", default), config


convert = source_errors(torchvision_mvit_to_vidbench)


register_format(WeightsFormat("torchvision-mvit", "torchvision MViT v1/v2 state dict (mvit_v1_b, mvit_v2_s)",
                              sniff, infer, convert, families=("mvit",)))
