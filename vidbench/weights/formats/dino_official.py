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

import dataclasses
from typing import Any, Dict, Optional

from .._registry import Inferred, WeightsFormat, register_format
from ..source import Source
from . import timm_vit
from ._util import DROP, converting, rename_keys

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


def _as_timm(source: Source) -> Source:
    with converting(source):
        return dataclasses.replace(source, state=dino_to_timm(source.state))


def sniff(source: Source) -> bool:
    return source.kind == "torch" and any(source.has(f"{p}blocks.0.attn.qkv.weight", f"{p}pos_embed")
                                          for p in _BACKBONE)


def infer(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    return timm_vit.infer(_as_timm(source), model, overrides)


def convert(source: Source, model: Any) -> StateDict:
    return timm_vit.convert(_as_timm(source), model)


register_format(WeightsFormat(
    "dino-official", "DINO full training checkpoint (teacher backbone; *_full_checkpoint.pth)", sniff, infer, convert,
    families=("vit",)))
