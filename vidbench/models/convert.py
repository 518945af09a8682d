"""Weight converters from reference implementations into vidbench's models (kept out of the
model files). Each takes a state dict and returns one that `load_state_dict` accepts strictly."""
from __future__ import annotations

from typing import Dict

import torch

StateDict = Dict[str, torch.Tensor]

# timm keys that carry no weights in vidbench's ViT (identity modules in timm's default config)
_TIMM_VIT_SKIP = ("fc_norm.", "head_drop.", "norm_pre.", "patch_drop.", "rope.")


def timm_vit_to_vidbench(state: StateDict) -> StateDict:
    """timm `VisionTransformer` (class token, no register tokens, no layer scale) -> vidbench
    `VisionTransformer`. The module layout was chosen to match timm, so this checks for
    unsupported features and drops timm's identity modules."""
    out: StateDict = {}
    for key, value in state.items():
        if key.startswith(_TIMM_VIT_SKIP):
            continue
        if key.startswith("reg_token") or ".ls1." in key or ".ls2." in key or "attn.q_norm" in key:
            raise ValueError(f"timm ViT feature not supported by vidbench's ViT: {key}")
        out[key.replace(".mlp.norm.", ".mlp.norm_unused.")] = value
    return out
