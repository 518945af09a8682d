"""Let torch.jit tracing (which fvcore counts on) run on the meta device, so counting a
paper-size model costs a trace, not a forward pass.

Two things stop a plain trace on meta tensors:

1. Most meta kernels are Python functions (torch/_meta_registrations.py). While tracing, Python
   sees tensor sizes as traced tensors, so their shape checks (`torch._check(cond)`) fail. We
   re-register each Python meta kernel wrapped to run in a helper thread: tracing state is
   thread-local, so there the kernel sees plain ints. The tracer has already recorded the op
   before its kernel runs, so the graph is unchanged.
2. The tracer does not record `aten::convolution`; on CPU it records the `aten::_convolution`
   that convolution's kernel calls, but the meta kernel of convolution never calls it. We give
   convolution a meta kernel that calls `_convolution`, as the CPU kernel does.

The registrations live only inside the `meta_tracing()` context. tests/test_flops.py checks that
the meta trace counts exactly what a CPU trace counts for every tiny model.
"""
from __future__ import annotations

import contextlib
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, Callable, Dict, Iterator

import torch

__all__ = ["meta_tracing"]

_aten = torch.ops.aten
_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidbench-meta")
_LOCK = threading.RLock()


def _overload_name(op: torch._ops.OpOverload) -> str:
    base = op._schema.name.split("::", 1)[1]
    return base if op._overloadname == "default" else f"{base}.{op._overloadname}"


@lru_cache(maxsize=1)
def _python_meta_kernels() -> Dict[torch._ops.OpOverload, Callable[..., Any]]:
    """aten ops whose active Meta kernel is a Python function from torch._meta_registrations."""
    from torch._decomp import global_decomposition_table

    kernels = {}
    for op, fn in global_decomposition_table["meta"].items():
        if not isinstance(op, torch._ops.OpOverload) or op.namespace != "aten":
            continue
        active = [line for line in torch._C._dispatch_dump(f"aten::{_overload_name(op)}").splitlines()
                  if line.startswith("Meta:")]
        if active and "_meta_registrations" in active[0]:
            kernels[op] = fn
    return kernels


def _untraced(fn: Callable[..., Any]) -> Callable[..., Any]:
    def kernel(*args: Any, **kwargs: Any) -> Any:
        if torch._C._get_tracing_state() is None:
            return fn(*args, **kwargs)
        return _POOL.submit(fn, *args, **kwargs).result()  # no tracing state in that thread

    return kernel


def _convolution_via_underscore(*args: Any) -> torch.Tensor:
    # convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
    # -> _convolution(..., benchmark, deterministic, cudnn_enabled, allow_tf32), traced as on CPU
    return _aten._convolution.default(*args, False, False, True, True)


@contextlib.contextmanager
def meta_tracing() -> Iterator[None]:
    """Context in which `torch.jit.trace` (and so fvcore) works on meta tensors."""
    with _LOCK:  # the dispatcher registrations are process-wide
        lib = torch.library.Library("aten", "IMPL")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "overriding a previously registered kernel"
                for op, fn in _python_meta_kernels().items():
                    lib.impl(_overload_name(op), _untraced(fn), "Meta")
                lib.impl("convolution", _convolution_via_underscore, "Meta")
            yield
        finally:
            lib._destroy()  # the original kernels are active again
