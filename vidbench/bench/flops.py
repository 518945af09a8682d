"""FLOPs with fvcore, in the papers' convention: one multiply-add = one FLOP, per view at batch 1,
reported as GMACs.

fvcore has no handle for `aten::scaled_dot_product_attention` and silently counts it as zero
(about a quarter of ViT-B's work at 8x14x14 tokens); we register one for it and for every
backend op it can lower to. The reference attention path emits two matmuls that fvcore already
counts: both paths give the same total (tested over the registry).

Masked attention is counted as what the kernel computes, masked entries included: VTN's
Longformer window, computed banded (chunks of queries against their key band), counts
O(N * window), not the O(N**2) of dense attention under a mask; `sliding_window_macs` is that
count by hand (tests/test_vtn.py holds fvcore to it).

Ops fvcore has no handle for are sorted in two groups and carried in the report, never lost in
a log: elementwise / reduction ops that the papers' convention does not count (add, softmax,
gelu, ...), and everything else (`uncounted_ops`), which may hide real arithmetic and is shown
by `vidbench flops` and the `uncounted_ops` column of `vidbench bench`.
"""
from __future__ import annotations

import contextlib
import warnings
from collections import Counter
from dataclasses import dataclass, field
from math import prod
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

with warnings.catch_warnings():  # fvcore's import scripts a loss with torch.jit.script (deprecated)
    warnings.simplefilter("ignore", FutureWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import get_shape

from ..layers import fused_attn as fused_attn_ctx
from ..layers import use_fused_attn
from ..models import create_model
from .meta_trace import meta_tracing

__all__ = ["FlopReport", "count_flops", "sdpa_macs", "sliding_window_macs", "SDPA_OPS", "ELEMENTWISE_OPS",
           "flop_handles"]

# every attention op `scaled_dot_product` can put in a trace: the composite op (what torch.jit
# records) and the backend kernels it dispatches to (q, k, v are their first three inputs)
SDPA_OPS = (
    "aten::scaled_dot_product_attention",
    "aten::_scaled_dot_product_flash_attention",
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_efficient_attention",
    "aten::_scaled_dot_product_cudnn_attention",
    "aten::_scaled_dot_product_attention_math",
)

# elementwise and reduction ops (real but cheap arithmetic) and data movement that the papers'
# FLOP convention (and fvcore's) leaves out; listed in the report, not counted
ELEMENTWISE_OPS = frozenset(
    f"aten::{name}"
    for name in (
        "add add_ sub sub_ rsub mul mul_ div div_ neg abs exp log sqrt rsqrt pow reciprocal "
        "softmax log_softmax _softmax gelu silu sigmoid softplus tanh erf hardswish hardsigmoid leaky_relu "
        "mean sum amax amin le lt ne where __or__ logical_or bernoulli_ feature_dropout alpha_dropout "
        "max_pool1d max_pool2d max_pool3d max_pool2d_with_indices max_pool3d_with_indices "
        "avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d adaptive_avg_pool3d linalg_vector_norm norm cumsum "
        "fill_ zero_ clone repeat repeat_interleave tile expand_as pad flip embedding index_select triu tril "
        "new_ones unfold unflatten"
    ).split()
)


def sdpa_macs(q_shape: Sequence[int], k_shape: Sequence[int], v_shape: Sequence[int]) -> int:
    """Multiply-adds of softmax(q k^T) v: q k^T is (..., Nq, d) x (..., d, Nk) and the weighted
    sum is (..., Nq, Nk) x (..., Nk, dv). Leading dims follow q (keys broadcast)."""
    *lead, nq, d = q_shape
    nk, dv = k_shape[-2], v_shape[-1]
    return prod(lead) * nq * nk * (d + dv)


def sliding_window_macs(n: int, window: int, num_global: int, heads: int, head_dim: int, banded: bool = True,
                        chunk: Optional[int] = None) -> int:
    """Multiply-adds of the kernel calls of Longformer attention over N tokens (VTN,
    `models.vtn.LongformerSelfAttention`), projections excluded.

    The `num_global` global rows attend to all N keys: G * N pairs. The N - G local rows: banded,
    ceil((N - G) / chunk) chunks of `chunk` queries (default window // 2) against G global keys
    plus a band of chunk + 2 * (window // 2) keys, the padded and masked pairs included; dense
    (banded=False), N - G rows against all N keys. Each query-key pair costs head_dim for q . k
    and head_dim for the weighted sum of v.
    """
    h = window // 2
    local = n - num_global
    if banded:
        chunk = chunk or max(h, 1)
        pairs = -(-local // chunk) * chunk * (num_global + chunk + 2 * h)
    else:
        pairs = local * n
    return heads * (pairs + num_global * n) * 2 * head_dim


def _sdpa_handle(inputs: List[Any], outputs: List[Any]) -> int:
    return sdpa_macs(get_shape(inputs[0]), get_shape(inputs[1]), get_shape(inputs[2]))


def flop_handles() -> Dict[str, Any]:
    """The fvcore handles vidbench adds to fvcore's defaults."""
    return {name: _sdpa_handle for name in SDPA_OPS}


@dataclass
class FlopReport:
    """One fvcore count. `macs` is multiply-adds per view at batch 1 (the papers' "FLOPs")."""

    model: str
    input_size: Tuple[int, ...]  # per view: (C, T, H, W) or (C, H, W)
    params: int
    macs: int
    by_module: Dict[str, int]
    by_operator: Dict[str, int]
    elementwise_ops: Dict[str, int]  # op -> occurrences; not counted by convention
    uncounted_ops: Dict[str, int]  # op -> occurrences; no handle and not elementwise: look at these
    fused_attn: bool
    device: str
    analysis: Optional[FlopCountAnalysis] = field(default=None, repr=False, compare=False)

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9


def _input_size(model: nn.Module, input_size: Optional[Sequence[int]]) -> Tuple[int, ...]:
    if input_size is not None:
        return tuple(int(s) for s in input_size)
    size = getattr(model, "input_size", None)
    if size is None:
        raise ValueError(f"{type(model).__name__} has no input_size: pass input_size=(C, [T,] H, W)")
    return tuple(size)


def resolve_model(model: Union[str, nn.Module], device: Union[str, torch.device], overrides: Dict[str, Any],
                  caller: str) -> Tuple[str, nn.Module]:
    """(name, module) of what a counter was given: a registry name built on `device` with
    `overrides`, or a module taken as it is (overrides are then an error naming `caller`)."""
    if isinstance(model, str):
        with torch.device(device):
            return model, create_model(model, **overrides)
    if overrides:
        raise TypeError(f"{caller}: overrides {sorted(overrides)} only apply to registry names")
    return getattr(model, "model_name", type(model).__name__), model


def count_flops(
    model: Union[str, nn.Module],
    input_size: Optional[Sequence[int]] = None,
    *,
    device: Optional[Union[str, torch.device]] = None,
    fused: Optional[bool] = None,
    **overrides: Any,
) -> FlopReport:
    """Count a model's multiply-adds with fvcore for one view at batch 1.

    Args:
        model: a registry name (built with `overrides`, on the meta device unless `device` says
            otherwise) or a module (counted where its parameters are).
        input_size: per-view input (C, T, H, W) or (C, H, W); default: the model's `input_size`.
        device: where to build a registry model; "meta" (default) traces without computing.
        fused: attention path to trace (default: the current global setting).
        overrides: create_model options (num_frames, img_size, ...), registry names only.
    """
    name, model = resolve_model(model, device or "meta", overrides, "count_flops")
    size = _input_size(model, input_size)
    param = next(model.parameters(), None)
    dev = param.device if param is not None else torch.device(device or "cpu")
    x = torch.zeros(1, *size, device=dev)
    was_training = model.training
    model.eval()
    analysis = FlopCountAnalysis(model, x).set_op_handle(**flop_handles())
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    path = contextlib.nullcontext() if fused is None else fused_attn_ctx(fused)
    tracing = meta_tracing() if dev.type == "meta" else contextlib.nullcontext()
    try:
        with path, tracing, torch.no_grad():
            macs = int(analysis.total())
            used_fused = use_fused_attn()
            unsupported = Counter(analysis.unsupported_ops())
    except Exception as exc:
        if dev.type != "meta":
            raise
        raise RuntimeError(f"counting {name} on the meta device failed ({type(exc).__name__}: {exc}); "
                           "count_flops(..., device='cpu') traces a real forward instead") from exc
    finally:
        model.train(was_training)
    return FlopReport(
        model=name,
        input_size=size,
        params=sum(p.numel() for p in model.parameters()),
        macs=macs,
        by_module={k: int(v) for k, v in analysis.by_module().items()},
        by_operator={k: int(v) for k, v in analysis.by_operator().items()},
        elementwise_ops={k: v for k, v in sorted(unsupported.items()) if k in ELEMENTWISE_OPS},
        uncounted_ops={k: v for k, v in sorted(unsupported.items()) if k not in ELEMENTWISE_OPS},
        fused_attn=used_fused,
        device=str(dev),
        analysis=analysis,
    )
