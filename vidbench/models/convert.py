"""Weight converters from reference implementations into vidbench's models (kept out of the
model files). Each takes a state dict and returns one that `load_state_dict` accepts strictly.
The timm ViT converter lives in `vidbench.weights.formats.timm_vit` (`timm_vit_to_vidbench`)."""
from __future__ import annotations

from typing import Dict

import torch

StateDict = Dict[str, torch.Tensor]

# torchvision MViT module names -> vidbench's (everything else keeps its name)
_TV_MVIT_RENAMES = (
    ("conv_proj.", "patch_embed.proj."),
    (".attn.project.0.", ".attn.proj."),
    (".pool.weight", ".conv.weight"),
    (".norm_act.0.", ".norm."),
    (".mlp.0.", ".mlp.fc1."),
    (".mlp.3.", ".mlp.fc2."),
    (".project.", ".proj."),
    ("head.1.", "head."),
)
# torchvision's PositionalEncoding holds flat vectors/tables; vidbench's are (1, N, C)
_TV_MVIT_POSITIONS = {
    "pos_encoding.class_token": "cls_token",
    "pos_encoding.class_pos": "pos_embed_class",
    "pos_encoding.spatial_pos": "pos_embed_spatial",
    "pos_encoding.temporal_pos": "pos_embed_temporal",
}
_TV_MVIT_KEEP = ("blocks.", "norm.")


def torchvision_mvit_to_vidbench(state: StateDict) -> StateDict:
    """torchvision `MViT` (`mvit_v1_b`, `mvit_v2_s`) -> vidbench `MViT` of the same config."""
    out: StateDict = {}
    for key, value in state.items():
        if key in _TV_MVIT_POSITIONS:
            out[_TV_MVIT_POSITIONS[key]] = value.reshape(1, -1, value.shape[-1])
            continue
        if not key.startswith(("conv_proj.", "head.1.") + _TV_MVIT_KEEP):
            raise ValueError(f"torchvision MViT key not known to vidbench's converter: {key}")
        for old, new in _TV_MVIT_RENAMES:
            key = key.replace(old, new)
        out[key] = value
    return out
