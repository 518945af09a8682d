"""An independent FLOP count to hold fvcore's against: torch's FlopCounterMode (dispatch-level,
2 FLOPs per multiply-add, so halved here), with the one attention kernel it lacks registered.

FlopCounterMode counts mm/addmm/bmm/convolution and the CUDA attention kernels, but not
`_scaled_dot_product_flash_attention_for_cpu`, so a fused-attention forward on CPU loses the
attention matmuls; on the meta device SDPA decomposes into counted bmm's. It counts no
LayerNorm, which fvcore does (5 per element): the two agree within 1%, not exactly.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..models import create_model
from .flops import _input_size, sdpa_macs

__all__ = ["flop_counter_macs"]

_aten = torch.ops.aten


def _cpu_flash_flops(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return 2 * sdpa_macs(query_shape, key_shape, value_shape)


def flop_counter_macs(
    model: Union[str, nn.Module],
    input_size: Optional[Sequence[int]] = None,
    *,
    device: Optional[Union[str, torch.device]] = None,
    **overrides: Any,
) -> int:
    """Multiply-adds of one view at batch 1 by torch's FlopCounterMode (registry names are built
    on the meta device unless `device` says otherwise)."""
    if isinstance(model, str):
        with torch.device(device or "meta"):
            model = create_model(model, **overrides)
    size = _input_size(model, input_size)
    param = next(model.parameters(), None)
    x = torch.zeros(1, *size, device=param.device if param is not None else device or "cpu")
    was_training = model.training
    model.eval()
    mapping = {_aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_flops}
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
            model(x)
    finally:
        model.train(was_training)
    flops = counter.get_total_flops()
    if flops % 2:
        raise AssertionError(f"FlopCounterMode returned an odd FLOP count {flops}: not 2 per multiply-add")
    return flops // 2
