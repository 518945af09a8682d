"""Google's ViT `.npz` checkpoints (google-research/vision_transformer, including the AugReg
files, and big_vision): Flax parameter trees flattened to `/`-joined names.

Layouts read (the same facts timm's `_load_weights` encodes):

- names bare, or under `opt/target/` (older vision_transformer files) or `params/` (big_vision);
- blocks `Transformer/encoderblock_{i}/` each, or one stacked `Transformer/encoderblock/` with
  the depth as leading axis (big_vision's scanned encoder);
- in a block, vision_transformer's `LayerNorm_0`, `MultiHeadDotProductAttention_1`, `LayerNorm_2`,
  `MlpBlock_3`, or big_vision's `LayerNorm_0`, `MultiHeadDotProductAttention_0`, `LayerNorm_1`,
  `MlpBlock_0`;
- position embedding `Transformer/posembed_input/pos_embedding`, or big_vision's top-level
  `pos_embedding`, which has no row for the class token (big_vision adds the class token after the
  position embedding): a zero row is prepended, which computes the same.

Transforms: conv kernel (h, w, in, out) -> (out, in, h, w); Dense kernels (in, out) transposed;
query / key / value kernels (D, heads, head_dim) -> rows of timm's fused qkv (their biases
(heads, head_dim) flattened); the output kernel (heads, head_dim, D) -> (D, heads * head_dim).
The number of heads is read from the query kernel.

`pre_logits` (the tanh representation layer of the original ImageNet-21k checkpoints) is not in
vidbench's ViT. A head trained on top of it cannot be used without it, so such files are refused
unless the head is replaced anyway: `num_classes=` other than the file's (0 for features) drops
both layers, as the ViT paper does when fine-tuning ("we remove the whole head"), and so does a
file with `pre_logits` but no head. Hybrid (ResNet stem) and MAP-head files are refused.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from .._registry import Inferred, WeightsFormat, register_format
from ..source import Source
from ._util import count_indexed, flax_qkv
from .timm_vit import to_model_layout, vit_config, vit_name

log = logging.getLogger("vidbench.weights")

_PREFIXES = ("", "opt/target/", "params/")
_REFUSED = (("conv_root/", "a hybrid ResNet stem (R50+ViT)"), ("block1/", "a hybrid ResNet stem (R50+ViT)"),
            ("MAPHead_0/", "a MAP attention-pooling head (big_vision pool_type='map')"))


class _Layout:
    """Where things are in one file."""

    def __init__(self, source: Source):
        state = source.state
        self.prefix = next((p for p in _PREFIXES if f"{p}embedding/kernel" in state), None)
        if self.prefix is None:
            raise source.error("no embedding/kernel (bare, opt/target/ or params/) in the .npz")
        p = self.prefix
        self.stacked = f"{p}Transformer/encoderblock/LayerNorm_0/scale" in state
        big_vision = p == "params/" or f"{p}pos_embedding" in state or self.stacked
        self.mha, self.mlp, self.ln2 = (0, 0, 1) if big_vision else (1, 3, 2)
        self.pos_key = f"{p}pos_embedding" if f"{p}pos_embedding" in state else f"{p}Transformer/posembed_input/pos_embedding"
        if self.pos_key not in state:
            raise source.error(f"no learned position embedding ({self.pos_key}); fixed ones (big_vision "
                               "posemb='sincos2d') are not supported")
        if self.stacked:
            self.depth = int(state[f"{p}Transformer/encoderblock/LayerNorm_0/scale"].shape[0])
        else:
            self.depth = count_indexed((k[len(p):] for k in state if k.startswith(p)),
                                       r"Transformer/encoderblock_(\d+)/")

    def block(self, i: int) -> Tuple[str, Optional[int]]:
        """(key prefix of block i, index into stacked arrays or None)."""
        if self.stacked:
            return f"{self.prefix}Transformer/encoderblock/", i
        return f"{self.prefix}Transformer/encoderblock_{i}/", None


def sniff(source: Source) -> bool:
    if source.kind != "npz":
        return False
    state = source.state
    for p in _PREFIXES:
        kernel = state.get(f"{p}embedding/kernel")
        if kernel is not None and kernel.ndim == 4 and f"{p}Transformer/encoder_norm/scale" in state:
            return not any("Temporal" in k or "Spatial" in k for k in state)
    return False


def _get(source: Source, key: str, idx: Optional[int] = None) -> np.ndarray:
    try:
        value = source.state[key]
    except KeyError:
        raise source.error(f"missing {key!r}") from None
    if value.dtype.kind != "f":
        raise source.error(f"array {key!r} has dtype {value.dtype}, not floating point (bfloat16 saved as raw "
                           "bytes? convert the file to float32)")
    return np.asarray(value if idx is None else value[idx])


def _check(source: Source, layout: _Layout) -> None:
    for key in source.state:
        for marker, what in _REFUSED:
            if key[len(layout.prefix):].startswith(marker):
                raise source.error(f"key {key!r} shows {what}, which vidbench's ViT does not support")


def _num_classes(source: Source, layout: _Layout) -> int:
    bias = source.state.get(f"{layout.prefix}head/bias")
    return int(bias.shape[-1]) if bias is not None else 0


def infer(source: Source, model: Optional[str], overrides: Dict[str, Any]) -> Inferred:
    layout = _Layout(source)
    _check(source, layout)
    p = layout.prefix
    kernel = _get(source, f"{p}embedding/kernel")  # (h, w, in, out)
    width = int(kernel.shape[3])
    block, idx = layout.block(0)
    query = _get(source, f"{block}MultiHeadDotProductAttention_{layout.mha}/query/kernel", idx)  # (D, heads, hd)
    heads = int(query.shape[1])
    if overrides.get("num_heads") and int(overrides["num_heads"]) != heads:
        raise source.error(f"the checkpoint has {heads} heads (query kernel {tuple(query.shape)}), "
                           f"not num_heads={overrides['num_heads']}")
    num_classes = _num_classes(source, layout)
    if f"{p}pre_logits/kernel" in source.state and num_classes:
        wanted = overrides.get("num_classes")
        if wanted is None or int(wanted) == num_classes:
            raise source.error(
                f"has a pre_logits representation layer (Dense + tanh before its {num_classes}-class head), which "
                "vidbench's ViT does not have; load it with another num_classes (0 for features) to drop both "
                "layers, as the ViT paper does for fine-tuning")
    class_token = f"{p}cls" in source.state
    pos_tokens = int(_get(source, layout.pos_key).shape[-2])
    if class_token and int(round(pos_tokens ** 0.5)) ** 2 == pos_tokens:
        pos_tokens += 1  # big_vision: no position row for the class token; convert prepends a zero one
    pool = "token" if class_token else "avg"
    if overrides.get("global_pool") and overrides["global_pool"] != pool:
        raise source.error(f"the checkpoint pools by {pool!r} (class token: {class_token}), "
                           f"not global_pool={overrides['global_pool']!r}")
    mlp_hidden = int(_get(source, f"{block}MlpBlock_{layout.mlp}/Dense_0/kernel", idx).shape[-1])
    qkv_bias = f"{block}MultiHeadDotProductAttention_{layout.mha}/query/bias" in source.state
    cfg = vit_config(source, width, tuple(kernel.shape[:2]), pos_tokens, class_token, layout.depth, mlp_hidden,
                     qkv_bias, num_classes, int(kernel.shape[2]), heads, pool)
    return vit_name(source, model, width), cfg


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def google_vit_to_timm(source: Source) -> Dict[str, torch.Tensor]:
    """The .npz arrays in timm's (= vidbench's ViT) names and layouts; every array is used or
    refused (pre_logits is dropped, see the module docstring)."""
    layout = _Layout(source)
    _check(source, layout)
    p = layout.prefix
    used = set()

    def g(key: str, idx: Optional[int] = None) -> np.ndarray:
        used.add(key)
        return _get(source, key, idx)

    def has(key: str) -> bool:
        return key in source.state

    out: Dict[str, torch.Tensor] = {
        "patch_embed.proj.weight": _t(g(f"{p}embedding/kernel").transpose(3, 2, 0, 1)),  # (h,w,in,out) -> OIHW
        "norm.weight": _t(g(f"{p}Transformer/encoder_norm/scale")),
        "norm.bias": _t(g(f"{p}Transformer/encoder_norm/bias")),
    }
    if has(f"{p}embedding/bias"):
        out["patch_embed.proj.bias"] = _t(g(f"{p}embedding/bias"))
    pos = g(layout.pos_key)
    pos = pos.reshape(1, -1, pos.shape[-1])
    if has(f"{p}cls"):
        out["cls_token"] = _t(g(f"{p}cls").reshape(1, 1, -1))
        if int(round(pos.shape[1] ** 0.5)) ** 2 == pos.shape[1]:  # big_vision: no row for the class token
            pos = np.concatenate([np.zeros_like(pos[:, :1]), pos], axis=1)
    out["pos_embed"] = _t(pos)
    if _num_classes(source, layout):
        out["head.weight"] = _t(g(f"{p}head/kernel").T)
        out["head.bias"] = _t(g(f"{p}head/bias"))
    if has(f"{p}pre_logits/kernel"):
        used.update(k for k in source.state if k.startswith(f"{p}pre_logits/"))
        log.warning("%s: pre_logits (the representation layer before the head) dropped", source.path)
    for i in range(layout.depth):
        block, idx = layout.block(i)
        mha = f"{block}MultiHeadDotProductAttention_{layout.mha}/"
        mlp = f"{block}MlpBlock_{layout.mlp}/"
        o = f"blocks.{i}."
        out[o + "norm1.weight"] = _t(g(f"{block}LayerNorm_0/scale", idx))
        out[o + "norm1.bias"] = _t(g(f"{block}LayerNorm_0/bias", idx))
        out[o + "attn.qkv.weight"] = flax_qkv(*(g(f"{mha}{n}/kernel", idx) for n in ("query", "key", "value")))
        if has(f"{mha}query/bias"):
            out[o + "attn.qkv.bias"] = flax_qkv(*(g(f"{mha}{n}/bias", idx) for n in ("query", "key", "value")))
        proj = g(f"{mha}out/kernel", idx)  # (heads, head_dim, D)
        out[o + "attn.proj.weight"] = _t(proj.reshape(-1, proj.shape[-1]).T)
        out[o + "attn.proj.bias"] = _t(g(f"{mha}out/bias", idx))
        out[o + "norm2.weight"] = _t(g(f"{block}LayerNorm_{layout.ln2}/scale", idx))
        out[o + "norm2.bias"] = _t(g(f"{block}LayerNorm_{layout.ln2}/bias", idx))
        for r in range(2):
            out[o + f"mlp.fc{r + 1}.weight"] = _t(g(f"{mlp}Dense_{r}/kernel", idx).T)
            out[o + f"mlp.fc{r + 1}.bias"] = _t(g(f"{mlp}Dense_{r}/bias", idx))
    if not _num_classes(source, layout):
        used.update(k for k in source.state if k.startswith(f"{p}head/"))
    stray = sorted(set(source.state) - used)
    if stray:
        raise source.error(f"{len(stray)} array(s) not known to the ViT .npz converter (a ViT variant vidbench "
                           f"does not support?): {', '.join(stray[:6])}")
    return out


def convert(source: Source, model: Any) -> Dict[str, torch.Tensor]:
    return to_model_layout(google_vit_to_timm(source), model)


register_format(WeightsFormat(
    "google-vit-npz", "Google's ViT .npz (vision_transformer / AugReg / big_vision; no hybrid, no MAP head)",
    sniff, infer, convert, families=("vit",)))
