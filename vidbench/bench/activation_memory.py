"""Activation memory of a training step, counted on the meta device: the bytes of every tensor
autograd keeps for backward during one training-mode forward at batch 1, fp32, plus the output.
That is what activation checkpointing would trade for recomputation; the weights, gradients and
optimizer state come on top (`params`).

How it is counted:

- A training-mode forward runs under `torch.autograd.graph.saved_tensors_hooks`; the pack hook
  sees every tensor an autograd node saves (activations, but also weights, the input clip and
  small index tensors).
- Saved tensors are deduplicated by **storage**, not by tensor: q, k and v are views of one qkv
  projection, and a node may save a view of a tensor another node saved whole. Meta tensors have
  no data pointer, but views of one tensor share one StorageImpl, whose address
  (`untyped_storage()._cdata`) identifies it on meta as on CPU. Each storage counts once with its
  full size (`nbytes()`); the hook holds every saved tensor until the count is done, so no address
  is reused meanwhile. The storages of the model's parameters and buffers are left out (they are
  the model, not activations); the input clip, which convolutions save, is counted.
- Attention: `attention="fused"` (vidbench's default path, `F.scaled_dot_product_attention`)
  counts what the fused kernel saves: q, k, v, the output, the log-sum-exp per row and the
  additive bias if there is one, never the (Nq x Nk) attention matrix. On meta tensors torch
  would silently pick its *math* backend, which materialises and saves the attention matrix, so
  here each call asks `torch._fused_sdp_choice` what the CPU would pick for the same shapes,
  dtypes, strides and mask (on stand-ins that allocate one row) and, when that is the flash
  kernel, calls its meta function `aten::_scaled_dot_product_flash_attention_for_cpu`.
  CUDA's flash and memory-efficient kernels save the same tensors (plus an RNG seed and offset,
  and a log-sum-exp padded to 32 rows). `attention="reference"` counts vidbench's reference path
  (`fused_attn(False)`), which saves the softmax matrix: the cost without a fused kernel.
  `ActivationCount.sdpa_backends` says which backend each attention call was counted with.

tests/test_scaling_study.py checks that the meta count equals the same count with real tensors on
the CPU, on tiny models of every attention pattern.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend
from torch.overrides import TorchFunctionMode

from ..layers import fused_attn as fused_attn_ctx
from ..layers import use_fused_attn
from .flops import resolve_model

__all__ = ["ActivationCount", "ATTENTION_PATHS", "activation_bytes", "count_activations"]

ATTENTION_PATHS = ("fused", "reference")
MIB = 2**20


@dataclass
class ActivationCount:
    """One count: `bytes` held for backward (distinct storages, weights excluded) plus the output."""

    model: str
    input_size: tuple  # per clip: (C, T, H, W)
    bytes: int
    storages: int  # distinct storages counted
    attention: str  # "fused" or "reference": the path counted
    device: str
    sdpa_backends: Dict[str, int] = field(default_factory=dict)  # fused path: calls per SDPA backend

    @property
    def mib(self) -> float:
        return self.bytes / MIB


def _stand_in(t: torch.Tensor) -> torch.Tensor:
    """A CPU tensor of t's shape, dtype, last-dim stride and requires_grad that allocates one row
    (zero strides elsewhere): enough for torch's backend selection, which reads no values."""
    last = max(int(t.stride(-1)), 1)
    row = torch.empty(t.shape[-1] * last, dtype=t.dtype, requires_grad=t.requires_grad)
    return row[::last].expand(t.shape)


class _SdpaAsOnCpu(TorchFunctionMode):
    """Route `F.scaled_dot_product_attention` on meta tensors to the backend the CPU would pick,
    and record the backend of every call (on any device)."""

    def __init__(self) -> None:
        super().__init__()
        self.backends: Counter = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
        call = {**dict(zip(names, args)), **kwargs}
        q, k, v, mask = call["query"], call["key"], call["value"], call.get("attn_mask")
        choice_args = dict(attn_mask=mask, dropout_p=call.get("dropout_p", 0.0), is_causal=call.get("is_causal", False),
                           scale=call.get("scale"), enable_gqa=call.get("enable_gqa", False))
        if q.device.type != "meta":
            self.backends[SDPBackend(torch._fused_sdp_choice(q, k, v, **choice_args)).name.lower()] += 1
            return func(*args, **kwargs)
        if mask is not None:
            choice_args["attn_mask"] = _stand_in(mask)
        choice = SDPBackend(torch._fused_sdp_choice(_stand_in(q), _stand_in(k), _stand_in(v), **choice_args))
        self.backends[choice.name.lower()] += 1
        if choice != SDPBackend.FLASH_ATTENTION:
            return func(*args, **kwargs)  # the math backend, as on the CPU
        if mask is not None and mask.dtype == torch.bool:  # as the composite op converts it
            mask = torch.zeros((), dtype=q.dtype, device=q.device).masked_fill(~mask, float("-inf"))
        out, _ = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q, k, v, choice_args["dropout_p"], choice_args["is_causal"], attn_mask=mask, scale=choice_args["scale"])
        return out


def count_activations(
    model: Union[str, nn.Module],
    input_size: Optional[Sequence[int]] = None,
    *,
    attention: Optional[str] = None,
    device: Optional[Union[str, torch.device]] = None,
    **overrides: Any,
) -> ActivationCount:
    """Count a training step's activation memory for one clip (batch 1, fp32).

    Args:
        model: a registry name (built with `overrides` on `device`, default meta) or a module
            (counted where its parameters are).
        input_size: (C, T, H, W) per clip; default: the model's `input_size`.
        attention: "fused" or "reference" (see the module docstring); default: the global setting.
        device: where to build a registry model ("meta": no memory, no compute).
    """
    if attention is None:
        attention = "fused" if use_fused_attn() else "reference"
    if attention not in ATTENTION_PATHS:
        raise ValueError(f"attention must be one of {ATTENTION_PATHS}, got {attention!r}")
    name, model = resolve_model(model, device or "meta", overrides, "count_activations")
    size = tuple(int(s) for s in (input_size if input_size is not None else model.input_size))
    param = next(model.parameters(), None)
    dev = param.device if param is not None else torch.device(device or "meta")
    state = {t.untyped_storage()._cdata for t in list(model.parameters()) + list(model.buffers())}
    kept: Dict[int, torch.Tensor] = {}  # storage address -> a tensor on it (keeps it alive)

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = t.untyped_storage()._cdata
        if key not in state:
            kept.setdefault(key, t)
        return t

    was_training = model.training
    model.train()
    sdpa = _SdpaAsOnCpu()
    try:
        with fused_attn_ctx(attention == "fused"), torch.enable_grad(), sdpa, \
                torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(torch.zeros(1, *size, device=dev))
        kept.setdefault(out.untyped_storage()._cdata, out)
        total = sum(t.untyped_storage().nbytes() for t in kept.values())
    finally:
        model.train(was_training)
    return ActivationCount(model=name, input_size=size, bytes=int(total), storages=len(kept), attention=attention,
                           device=str(dev), sdpa_backends=dict(sdpa.backends) if attention == "fused" else {})


def activation_bytes(model: Union[str, nn.Module], input_size: Optional[Sequence[int]] = None, **kwargs: Any) -> int:
    """`count_activations(...).bytes`: activation bytes of one training step at batch 1, fp32."""
    return count_activations(model, input_size, **kwargs).bytes
