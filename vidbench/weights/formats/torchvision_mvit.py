"""torchvision's MViT state dicts (`mvit_v1_b`, `mvit_v2_s`; .pth files of
`MViT_V1_B_Weights` / `MViT_V2_S_Weights`). vidbench's MViT follows torchvision's module layout,
so the mapping is a handful of renames and the flat position tables reshaped to (1, N, C)."""
from __future__ import annotations

from typing import Any, Dict, Optional

from .._registry import Inferred, PublishedWeights, WeightsFormat, register_format, register_published
from ..source import Source
from ._util import pick_model, square_side

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


def convert(source: Source, model: Any) -> Dict[str, Any]:
    try:
        return torchvision_mvit_to_vidbench(source.state)
    except ValueError as err:
        raise source.error(str(err)) from None


register_format(WeightsFormat("torchvision-mvit", "torchvision MViT v1/v2 state dict (mvit_v1_b, mvit_v2_s)",
                              sniff, infer, convert, families=("mvit",)))

_TV = dict(format="torchvision-mvit", num_frames=16, sampling_rate=4, crop_size=224, resize_size=256,
           mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225), views=(5, 1))
register_published(
    PublishedWeights("mvit_b_16x4.k400_torchvision", "mvit_b_16x4", files=("mvit_v1_b-dbeb1030.pth",),
                     source="torchvision MViT_V1_B_Weights.KINETICS400_V1 (ported from pytorchvideo)",
                     paper="torchvision meta; MViT (ICCV 2021) Table 4", top1=78.477, top5=93.582, gmacs=70.599, **_TV),
    PublishedWeights("mvitv2_s_16x4.k400_torchvision", "mvitv2_s_16x4", files=("mvit_v2_s-ae3be167.pth",),
                     source="torchvision MViT_V2_S_Weights.KINETICS400_V1 (ported from SlowFast)",
                     paper="torchvision meta; MViTv2 (CVPR 2022)", top1=80.757, top5=94.665, gmacs=64.224, **_TV),
)
