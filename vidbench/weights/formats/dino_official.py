"""DINO's full training checkpoints (facebookresearch/dino `main_dino.py`:
`dino_deitsmall16_pretrain_full_checkpoint.pth`, `dino_vitbase16_pretrain_full_checkpoint.pth`):
`{'student', 'teacher', 'optimizer', 'epoch', 'args', 'dino_loss'}`, each network a
`MultiCropWrapper` with the ViT under `backbone.` and the projection head (`DINOHead`) under
`head.`; the student is DDP-wrapped (`module.backbone.`), the ViT teacher is not (`backbone.`;
`module.backbone.` where it was wrapped).

The teacher's backbone is loaded, as DINO's own evaluation does (`--checkpoint_key teacher`,
`utils.load_pretrained_weights` strips `module.` and `backbone.`); the DINO head (projection MLP
and prototypes) is a pretraining part and is not loaded; any other key is refused. Below
`backbone.` the keys are timm's `VisionTransformer` names (DINO's vision_transformer.py), read by
formats.timm_vit. DINO's backbone-only files (`dino_deitsmall16_pretrain.pth`,
`dino_vitbase16_pretrain.pth`) are that same layout without prefix: formats.timm_vit reads them.
The `args` (an argparse.Namespace) are read as inert bookkeeping (weights/_training_pickle.py).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from ..source import Source
from ._util import DROP, rename_keys
from .timm_vit import register_rewrite

__all__ = ["dino_to_timm"]

StateDict = Dict[str, Any]
_BACKBONE = ("module.backbone.", "backbone.")
_HEAD = ("module.head.", "head.")


def _rename(key: str) -> Optional[str]:
    for prefix in _BACKBONE:
        if key.startswith(prefix):
            return key[len(prefix):]
    return DROP if key.startswith(_HEAD) else None


def dino_to_timm(state: StateDict) -> StateDict:
    """One network of a DINO checkpoint (teacher or student) -> its backbone in timm's names."""
    return rename_keys(state, _rename, "DINO")


def sniff(source: Source) -> bool:
    """A ViT (2-D patch embedding) under `backbone.` beside nothing but the DINO head (mmaction2's
    recognizers also put a backbone under `backbone.`, beside `cls_head.`)."""
    if source.kind != "torch" or not all(k.startswith(_BACKBONE + _HEAD) for k in source.state):
        return False
    return any(source.has(f"{p}blocks.0.attn.qkv.weight", f"{p}pos_embed", f"{p}patch_embed.proj.weight")
               and len(source.shape(f"{p}patch_embed.proj.weight")) == 4 for p in _BACKBONE)


register_rewrite("dino-official", "DINO full training checkpoint (teacher backbone; *_full_checkpoint.pth)", sniff,
                 dino_to_timm)
