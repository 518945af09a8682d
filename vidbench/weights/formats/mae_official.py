"""MAE's pretraining checkpoints with their decoder (facebookresearch/mae `main_pretrain.py`
`checkpoint-N.pth`: `{'model', 'optimizer', 'epoch', 'scaler', 'args'}`; the demo's
`mae_visualize_vit_large.pth`): `MaskedAutoencoderViT`, the encoder in timm's `VisionTransformer`
names (`cls_token`, the fixed sin-cos `pos_embed`, `patch_embed.proj`, `blocks.N.*`, `norm`) beside
the decoder (`decoder_embed`, `mask_token`, `decoder_pos_embed`, `decoder_blocks.N.*`,
`decoder_norm`, `decoder_pred`).

The encoder is loaded, as MAE's fine-tuning and linear probing take it (`--finetune`: the
checkpoint's `model`, loaded non-strictly into `models_vit`); the decoder reconstructs pixels in
pretraining only and is not loaded (checked by name: any other key is refused). MAE's released
backbone files (`mae_pretrain_vit_base.pth`, `mae_pretrain_vit_large.pth`: `{'model': encoder}`)
have no decoder: formats.timm_vit reads them.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from ..source import Source
from ._util import DROP, rename_keys
from .timm_vit import register_rewrite

__all__ = ["mae_to_timm"]

StateDict = Dict[str, Any]
_DECODER = ("decoder_", "mask_token")


def _rename(key: str) -> Optional[str]:
    return DROP if key.startswith(_DECODER) else key


def mae_to_timm(state: StateDict) -> StateDict:
    """An MAE pretraining state dict -> its encoder in timm's names."""
    return rename_keys(state, _rename, "MAE")


def sniff(source: Source) -> bool:
    return (source.kind == "torch" and source.has("decoder_embed.weight", "patch_embed.proj.weight",
                                                  "blocks.0.attn.qkv.weight"))


register_rewrite("mae-official", "MAE pretraining checkpoint with decoder (checkpoint-N.pth; encoder loaded)", sniff,
                 mae_to_timm)
