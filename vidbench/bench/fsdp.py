"""FSDP2 for the multi-process bench (`vidbench bench --strategy fsdp`): the model sharded with
`torch.distributed.fsdp.fully_shard`, one unit per transformer block (the blocks activation
checkpointing runs, `checkpoint_blocks()`) and then the root (the embeddings, norms and head
that remain), as torchtitan does. Parameters, gradients and AdamW's state live as shards, 1/N of
each tensor per process (dim 0, the last shards padded or empty); a block's parameters are
all-gathered before its forward and again before its backward (`reshard_after_forward`), and
its gradients reduce-scattered after it.

Mixed precision is FSDP's `MixedPrecisionPolicy`: ``--precision bf16`` / ``fp16`` all-gathers
and computes with parameters in that dtype (the input cast to it by the root), reduces gradients
in fp32 and keeps the sharded parameters and optimizer state in fp32; the step runs without
autocast, as torchtitan's FSDP runs do. So every op computes in the low dtype, norms and softmax
included, where the one-process and DDP rows' autocast keeps some in fp32. (Autocast on top of
bf16 parameters is not an option on CPU: an fp32 activation meeting a bf16 LayerNorm weight is
refused there, as in MViT.) fp16 keeps a gradient scaler (torch.amp.GradScaler unscales the
DTensor shards).
Activation checkpointing (``--grad-checkpointing on``) combines with it: each checkpointed block
is an FSDP unit whose recomputation gathers its parameters again.

What each process holds is counted exactly from the tensors (`state_sizes`): the local shards of
the parameters (`DTensor.to_local()`), of their gradients and of the optimizer state; the
activations autograd saves for backward are counted in one more step (`saved_tensor_bytes`)."""
from __future__ import annotations

from typing import Callable, Dict, Optional

import torch
from torch import nn

from ..errors import ConfigError
from ..options import PRECISION_DTYPES

__all__ = ["fsdp_missing", "shard_model", "state_sizes", "saved_tensor_bytes"]

MIB = 2**20


def fsdp_missing() -> Optional[str]:
    """Why this torch cannot run FSDP2 (None where it can: torch >= 2.6 has fully_shard, on gloo
    as on NCCL)."""
    try:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard  # noqa: F401
    except ImportError as exc:
        return f"this torch ({torch.__version__}) has no torch.distributed.fsdp.fully_shard (FSDP2): {exc}"
    return None


def shard_model(model: nn.Module, precision: str = "fp32") -> nn.Module:
    """`model` sharded in place over the running process group: fully_shard on each block of
    `model.checkpoint_blocks()` then on the root, with the precision's MixedPrecisionPolicy
    (parameters in bf16 / fp16, gradients reduced in fp32; fp32: none). Returns `model`."""
    why = fsdp_missing()
    if why:
        raise ConfigError(why)
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    blocks = model.checkpoint_blocks() if hasattr(model, "checkpoint_blocks") else []
    if not blocks:
        raise ConfigError(f"{type(model).__name__} lists no blocks (checkpoint_blocks): FSDP would shard it as one "
                          "unit, gathering every parameter at once")
    dtype = PRECISION_DTYPES[precision]
    policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32) if dtype else MixedPrecisionPolicy()
    for block in blocks:
        fully_shard(block, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    return model


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if hasattr(t, "to_local") else t


def _bytes(t: torch.Tensor) -> int:
    t = _local(t)
    return t.numel() * t.element_size()


def state_sizes(model: nn.Module, optimizer: Optional[torch.optim.Optimizer]) -> Dict[str, float]:
    """MiB this process holds of the parameters, their gradients (as they are after a step) and
    the optimizer state: the local shards of DTensors (FSDP), the whole tensors otherwise (one
    process, DDP; DDP's all-reduce buckets, another copy of the gradients, are not included)."""
    params = list(model.parameters())
    out = {"param_mb": sum(_bytes(p) for p in params) / MIB,
           "grad_mb": sum(_bytes(p.grad) for p in params if p.grad is not None) / MIB,
           "optimizer_state_mb": None}
    if optimizer is not None:
        out["optimizer_state_mb"] = sum(_bytes(v) for state in optimizer.state.values() for v in state.values()
                                        if isinstance(v, torch.Tensor)) / MIB
    return out


def saved_tensor_bytes(forward: Callable[[], None], model: nn.Module) -> int:
    """Bytes of the distinct storages autograd saves for backward while `forward` runs: the
    activations held until the backward. The storages of `model`'s parameters as they are when a
    tensor is saved (whole, or a block's all-gathered ones under FSDP), and views of them (a
    linear layer saves its weight transposed), are left out; autocast's low-precision copies of
    the weights are counted (they are held for backward too).

    A storage is known by its StorageImpl (``_cdata``), not by its data address: FSDP frees a
    block's all-gathered parameters after its forward (resizing their storage to 0, which the
    saved weight views keep alive) and the next activations are allocated at those addresses, so
    counting by address skipped them (videomae_tiny: 5.03 of 6.51 MB)."""
    seen: Dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = _local(t).untyped_storage()
        key = storage._cdata  # alive while autograd holds `t`, so never another storage's
        if storage.data_ptr() and key not in seen:
            weights = {_local(p).untyped_storage()._cdata for p in model.parameters()}
            seen[key] = 0 if key in weights else storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward()
    return sum(seen.values())
