"""An independent FLOP count to hold fvcore's against: torch's FlopCounterMode (dispatch-level,
2 FLOPs per multiply-add, so halved here), with the one attention kernel it lacks registered.

FlopCounterMode counts mm/addmm/bmm/convolution and the CUDA attention kernels, but not
`_scaled_dot_product_flash_attention_for_cpu`, so a fused-attention forward on CPU loses the
attention matmuls; on the meta device SDPA decomposes into counted bmm's. It counts no
LayerNorm, while fvcore counts 5 per element (4 without affine): with `norms=True` (default) the
same rule is registered here so that the totals compare (it matters for narrow models: 2% of
mvit_tiny); the matmul, convolution and attention counts stay independent of fvcore's.
With `norms=False` this is torch's plain count, the convention of torchvision's GFLOPS metadata.
"""
from __future__ import annotations

from math import prod
from typing import Any, Dict, Optional, Sequence, Union

import torch
from torch import nn

from ..models import create_model
from .flops import _input_size, sdpa_macs

__all__ = ["flop_counter_macs", "flop_counter_by_operator", "NORM_OP"]

_aten = torch.ops.aten
NORM_OP = "aten.native_layer_norm"


def _cpu_flash_flops(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return 2 * sdpa_macs(query_shape, key_shape, value_shape)


def _layer_norm_flops(input_shape: Any, normalized_shape: Any, weight_shape: Any = None, *args: Any,
                      out_shape: Any = None, **kwargs: Any) -> int:
    return 2 * prod(input_shape) * (5 if weight_shape is not None else 4)  # fvcore's rule, in FLOPs


def flop_counter_by_operator(
    model: Union[str, nn.Module],
    input_size: Optional[Sequence[int]] = None,
    *,
    device: Optional[Union[str, torch.device]] = None,
    **overrides: Any,
) -> Dict[str, int]:
    """Multiply-adds per operator (FlopCounterMode's FLOPs halved) of one view at batch 1, with
    fvcore's LayerNorm rule under "aten.native_layer_norm". Registry names are built on the meta
    device unless `device` says otherwise."""
    from torch.utils.flop_counter import FlopCounterMode  # here: importing it imports triton (0.2 s a process)

    if isinstance(model, str):
        with torch.device(device or "meta"):
            model = create_model(model, **overrides)
    elif overrides:
        raise TypeError(f"flop_counter_by_operator: overrides {sorted(overrides)} only apply to registry names")
    size = _input_size(model, input_size)
    param = next(model.parameters(), None)
    x = torch.zeros(1, *size, device=param.device if param is not None else device or "cpu")
    was_training = model.training
    model.eval()
    mapping = {_aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_flops,
               _aten.native_layer_norm: _layer_norm_flops}
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
            model(x)
    finally:
        model.train(was_training)
    flops = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    odd = {op: n for op, n in flops.items() if n % 2}
    if odd:
        raise AssertionError(f"FlopCounterMode returned odd FLOP counts {odd}: not 2 per multiply-add")
    return {op: n // 2 for op, n in flops.items()}


def flop_counter_macs(
    model: Union[str, nn.Module],
    input_size: Optional[Sequence[int]] = None,
    *,
    device: Optional[Union[str, torch.device]] = None,
    norms: bool = True,
    **overrides: Any,
) -> int:
    """Total of `flop_counter_by_operator`; `norms=False` leaves LayerNorm out (torch's and
    torchvision's convention)."""
    by_op = flop_counter_by_operator(model, input_size, device=device, **overrides)
    return sum(n for op, n in by_op.items() if norms or op != NORM_OP)
