"""pytorchvideo MViT checkpoints (`create_multiscale_vision_transformers`; the hub's
`mvit_base_16x4` / `mvit_base_32x3` .pyth files, {"model_state": ...}).

pytorchvideo's blocks are SlowFast's (same names: separate `attn.q/k/v` by default, `attn.pool_q`,
`attn.norm_q`, ...; see `slowfast_mvit`); the modules around them differ:

    patch_embed.patch_model.*                 patch_embed.proj.*
    cls_positional_encoding.cls_token         cls_token
    cls_positional_encoding.pos_embed_{spatial,temporal,class}   pos_embed_{spatial,temporal,class}
    norm_embed.*                              norm.*
    head.proj.*                               head.*

pytorchvideo >= 0.1.5 also saves each pooling conv and norm a second time, as
`attn._attention_pool_{q,k,v}.{pool,norm}.*` (the same tensors): they are read when the plain
names are absent and dropped otherwise. A leading `model.` (SlowFast's `PTVMViT` wrapper,
configs/Kinetics/pytorchvideo) is stripped. pytorchvideo's MViT has no relative positions, so
these are v1 checkpoints. Its `residual_pool` and `pool_first` options leave no trace in the
weights and are read as off, as in the hub models.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from .._registry import Inferred, PublishedWeights, WeightsFormat, register_format, register_published
from ..source import Source
from .slowfast_mvit import _shapes, infer_mvit, mvit_layout_to_vidbench

__all__ = ["pytorchvideo_mvit_to_vidbench"]

_TOP = {
    "patch_embed.patch_model.weight": "patch_embed.proj.weight",
    "patch_embed.patch_model.bias": "patch_embed.proj.bias",
    "cls_positional_encoding.cls_token": "cls_token",
    "cls_positional_encoding.pos_embed_spatial": "pos_embed_spatial",
    "cls_positional_encoding.pos_embed_temporal": "pos_embed_temporal",
    "cls_positional_encoding.pos_embed_class": "pos_embed_class",
    "norm_embed.weight": "norm.weight",
    "norm_embed.bias": "norm.bias",
    "head.proj.weight": "head.weight",
    "head.proj.bias": "head.bias",
}
_WHAT = "pytorchvideo MViT"


def _unprefixed(state: Dict[str, Any]) -> Dict[str, Any]:
    if state and all(k.startswith("model.") for k in state):
        return {k[len("model."):]: v for k, v in state.items()}
    return state


def pytorchvideo_mvit_to_vidbench(state: Dict[str, Any]) -> Dict[str, Any]:
    """pytorchvideo `MultiscaleVisionTransformers` state dict -> vidbench `MViT` state dict."""
    return mvit_layout_to_vidbench(_unprefixed(state), _TOP, _WHAT)


def sniff(source: Source) -> bool:
    state = _unprefixed(source.state)
    return (source.kind in ("torch", "safetensors") and "patch_embed.patch_model.weight" in state
            and "cls_positional_encoding.cls_token" in state
            and any(k.startswith("blocks.") and (".attn.pool_" in k or "._attention_pool_" in k) for k in state))


def infer(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    view = Source(source.path, source.kind, _unprefixed(source.state))
    return infer_mvit(source, model, overrides, _shapes(view, _TOP, _WHAT), _WHAT)


def convert(source: Source, model: Any) -> Dict[str, Any]:
    try:
        return pytorchvideo_mvit_to_vidbench(source.state)
    except ValueError as err:
        raise source.error(str(err)) from None


register_format(WeightsFormat(
    "pytorchvideo-mvit", "pytorchvideo MViT .pyth (hub mvit_base_16x4 / mvit_base_32x3; SlowFast PTVMViT)",
    sniff, infer, convert, families=("mvit",)))

# pytorchvideo docs/source/model_zoo.md, Kinetics-400 table ("Flops (G) x views": 1 crop x 5 clips).
# The zoo does not state the test resize; these files were trained with SlowFast's PTVMViT config
# (configs/Kinetics/pytorchvideo/MVIT_B_16x4_CONV), whose 1-crop test resizes the short side to
# 256 and centre-crops 224. Hub builders: pytorchvideo/models/hub/vision_transformers.py.
_PTV = dict(format="pytorchvideo-mvit", crop_size=224, resize_size=256, mean=(0.45, 0.45, 0.45),
            std=(0.225, 0.225, 0.225), views=(5, 1))
register_published(
    PublishedWeights("mvit_b_16x4.k400_pytorchvideo", "mvit_b_16x4", files=("MVIT_B_16x4.pyth",),
                     source="pytorchvideo model zoo: MViT-B 16x4 (hub mvit_base_16x4, "
                            "dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/MVIT_B_16x4.pyth)",
                     paper="pytorchvideo docs/source/model_zoo.md (70.80 GFLOPs x 1 x 5, 36.61M)",
                     num_frames=16, sampling_rate=4, top1=78.85, top5=93.85, gmacs=70.80, **_PTV),
    PublishedWeights("mvit_b_32x3.k400_pytorchvideo", "mvit_b_32x3", files=("MVIT_B_32x3_f294077834.pyth",),
                     source="pytorchvideo model zoo: MViT-B 32x3 (hub mvit_base_32x3, "
                            "dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/MVIT_B_32x3_f294077834.pyth)",
                     paper="pytorchvideo docs/source/model_zoo.md (170.37 GFLOPs x 1 x 5, 36.61M)",
                     num_frames=32, sampling_rate=3, top1=80.30, top5=94.69, gmacs=170.37, **_PTV),
)
