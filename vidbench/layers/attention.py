"""The one attention kernel every vidbench model uses.

`scaled_dot_product` is the kernel; its `backend` argument picks how it runs:

- ``auto`` (default): `F.scaled_dot_product_attention`, which picks its own kernel;
- ``flash``, ``efficient``, ``cudnn``, ``math``: the same call restricted to that SDPA kernel
  (`torch.nn.attention.sdpa_kernel`); a kernel that cannot run the call (cudnn on a CPU, say)
  raises torch's error;
- ``reference``: an explicit softmax(q k^T * scale + bias) v that materialises the attention
  matrix (the textbook computation, and the one to compare against);
- ``flex``: `torch.nn.attention.flex_attention`, the bias as a score_mod and a boolean mask as a
  mask_mod (block-sparse where the mask allows); eager unless the model is compiled.

Which backend, as timm's `fused_attn`: each `Attention` fixes its own when it is built
(``self.attn_backend = default_attn_backend()``, or the `attn_backend=` argument) and hands it to
the kernel on every call. The default comes from the environment variable VIDBENCH_ATTN_BACKEND
(read once, at import; `set_attn_backend` changes it for modules built afterwards). A benchmark
overrides it for a scope: ``with attn_backend("math"): model(x)`` runs every kernel call inside
the block on that backend, whatever its module was built with, and modules built inside the block
take it as their own. The scope is a `contextvars.ContextVar`: it ends with the block and is
local to its thread. `fused_attn(False)` / `set_fused_attn(False)` / `use_fused_attn()` /
VIDBENCH_FUSED_ATTN=0 are the older spelling of the reference backend (True: auto).

`Attention` is multi-head self-attention with a fused qkv projection. The factorisations several
models share are a reshape around the kernel with the axis given, never another attention class:

- ``axis="joint"``: all tokens attend to all tokens;
- ``axis="space"``: tokens attend within their frame, ``(B, T*S, C) -> (B*T, S, C)``;
- ``axis="time"``: tokens attend within their spatial position, ``(B, T*S, C) -> (B*S, T, C)``.

A mechanism of one paper lives in that paper's model file, subclasses `Attention` for its
projections and calls the same kernel: ViViT Model 4's split heads (models/vivit.py), VTN's
Longformer sliding window with global tokens (models/vtn.py), MViT's pooling attention
(models/mvit_pooling.py, MViT and MViTv2), Video Swin's window attention (models/swin.py).
tests/test_kernel_use.py checks that every registry model attends through `scaled_dot_product`.

An additive float bias or a boolean mask (True = attend) goes straight to the kernel: MViTv2's
relative positions, Swin's relative position and shift mask and VTN's band mask use it.

Two things the 2024-2026 encoders need are the kernel's too, so no model file re-implements them:

- logit soft-capping (``softcap=c``: logits -> c * tanh(logits / c) after scaling, before the bias;
  Gemma 2's and VideoPrism's cap). SDPA has no hook for it, so a call with a cap runs on
  FlexAttention's score_mod where flex is asked for or compiled and can run the call (no dropout;
  no CPU backward, trace or meta tensors), and on the reference path otherwise, eager calls
  included (`softcap_backend` says which); both are tested equal.
- rotary position embedding: `Attention.forward(..., rope=f)` applies ``f`` to q and k before the
  kernel (`vidbench.layers.rope`: 1-D tables and V-JEPA 2's 3-D time / height / width split).
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Callable, Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

__all__ = [
    "Attention",
    "scaled_dot_product",
    "use_fused_attn",
    "set_fused_attn",
    "fused_attn",
    "to_axis",
    "from_axis",
    "check_grid",
    "AXES",
    "ATTN_BACKENDS",
    "attn_backend",
    "default_attn_backend",
    "get_attn_backend",
    "set_attn_backend",
    "softcap_backend",
]

AXES = ("joint", "space", "time")

# backend name -> the SDPA kernel it restricts F.scaled_dot_product_attention to (None: not SDPA)
_SDPA_KERNELS = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                 "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}
ATTN_BACKENDS = ("auto", "flash", "efficient", "cudnn", "math", "reference", "flex")


def _check_backend(name: str) -> str:
    if name not in ATTN_BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; expected one of {', '.join(ATTN_BACKENDS)}")
    return name


def _initial_backend() -> str:
    if os.environ.get("VIDBENCH_ATTN_BACKEND"):
        return _check_backend(os.environ["VIDBENCH_ATTN_BACKEND"])
    return "reference" if os.environ.get("VIDBENCH_FUSED_ATTN", "1") in ("0", "false", "False") else "auto"


_DEFAULT = _initial_backend()  # what modules take when built outside any `attn_backend` block
_SCOPED: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("vidbench_attn_backend", default=None)


def default_attn_backend() -> str:
    """The backend a module built now takes: the enclosing `attn_backend` block's, else the
    default (VIDBENCH_ATTN_BACKEND, or `set_attn_backend`'s)."""
    return _SCOPED.get() or _DEFAULT


def get_attn_backend(backend: Optional[str] = None) -> str:
    """The backend a kernel call runs on: the enclosing `attn_backend` block's, else `backend`
    (the calling module's own), else the default."""
    return _SCOPED.get() or backend or _DEFAULT


def set_attn_backend(name: str) -> None:
    """The default backend of modules built from now on (timm's `set_fused_attn`); modules
    already built keep theirs. For a scope, use `attn_backend`."""
    global _DEFAULT
    _DEFAULT = _check_backend(name)


@contextlib.contextmanager
def attn_backend(name: str) -> Iterator[None]:
    """Context manager: every kernel call in the block runs on backend `name`, whatever its module
    was built with, and modules built in the block take `name` as their own."""
    token = _SCOPED.set(_check_backend(name))
    try:
        yield
    finally:
        _SCOPED.reset(token)


def use_fused_attn() -> bool:
    """Whether a kernel call without a backend of its own runs a fused kernel (any backend but the
    reference)."""
    return get_attn_backend() != "reference"


def set_fused_attn(enable: bool) -> None:
    """The fused (True: auto) or the reference (False) backend as the default of modules built
    from now on."""
    set_attn_backend("auto" if enable else "reference")


@contextlib.contextmanager
def fused_attn(enable: bool) -> Iterator[None]:
    """Context manager: run the enclosed code with the fused (auto) or the reference backend."""
    with attn_backend("auto" if enable else "reference"):
        yield


def _check_softcap(softcap: Optional[float]) -> Optional[float]:
    if softcap is not None and not softcap > 0:
        raise ValueError(f"softcap must be > 0, got {softcap}")
    return softcap


def softcap_backend(backend: Optional[str], dropout_p: float = 0.0, q: Optional[torch.Tensor] = None, *,
                    compiling: Optional[bool] = None, cpu_backward: Optional[bool] = None) -> str:
    """The backend a soft-capped call runs on (SDPA's kernels have no place for the cap): ``flex``
    (the cap as a score_mod) where the call asks for flex, or runs under `torch.compile` (where
    flex is a fused kernel), and FlexAttention can run it: no attention dropout; on the CPU, no
    backward through `q` (torch's CPU flex has none); not under `torch.jit.trace` (fvcore's
    counting) nor on the meta device. Else ``reference``: eager flex materialises the scores as
    the reference path does, at more cost (VideoPrism-B 16x288 inference, batch 1, 2 CPU threads,
    `vidbench bench --attn-backend auto,flex`: 8.0 s per clip on the reference, 9.0 s on eager flex,
    the same peak memory). `compiling` / `cpu_backward` answer for a call not running now (the
    bench's rows: `attention_kernels`); by default they are read from torch and `q`."""
    backend = get_attn_backend(backend)
    if cpu_backward is None:
        cpu_backward = q is not None and q.device.type == "cpu" and q.requires_grad and torch.is_grad_enabled()
    if compiling is None:
        compiling = torch.compiler.is_compiling()
    untraceable = torch.jit.is_tracing() or (q is not None and q.device.type == "meta")
    wanted = backend == "flex" or (backend != "reference" and compiling)
    if wanted and dropout_p == 0.0 and not cpu_backward and not untraceable:
        return "flex"
    return "reference"


def _flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: Optional[torch.Tensor], dropout_p: float,
          scale: Optional[float], softcap: Optional[float] = None) -> torch.Tensor:
    """The kernel on FlexAttention: (B, H, N, D) views of q, k, v; a float bias added by a
    score_mod, a boolean mask given as a block mask, a soft cap applied by the score_mod before
    the bias."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    if dropout_p > 0.0:
        raise ValueError("the flex attention backend has no attention dropout: set attn_drop=0 or use another backend")
    lead, (h, nq, d), nk = q.shape[:-3], q.shape[-3:], k.shape[-2]
    q4, k4, v4 = (t.reshape(-1, h, t.shape[-2], d) for t in (q, k, v))
    b = q4.shape[0]
    block_mask = added = None  # the mask's closure keeps its own tensor: flex calls it again for partial blocks
    if bias is not None:
        full = bias.expand(*lead, h, nq, nk).reshape(b, h, nq, nk)
        if bias.dtype == torch.bool:
            block_mask = create_block_mask(lambda bi, hi, qi, ki: full[bi, hi, qi, ki], b, h, nq, nk,
                                           device=q.device.type)
        else:
            added = full
    score_mod = None
    if added is not None or softcap is not None:
        def score_mod(score, bi, hi, qi, ki):  # noqa: ANN001, ANN202 (flex's signature)
            if softcap is not None:
                score = softcap * torch.tanh(score / softcap)
            return score if added is None else score + added[bi, hi, qi, ki]
    out = flex_attention(q4, k4, v4, score_mod=score_mod, block_mask=block_mask, scale=scale)
    return out.reshape(*lead, h, nq, d)


def scaled_dot_product(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    dropout_p: float = 0.0,
    scale: Optional[float] = None,
    backend: Optional[str] = None,
    softcap: Optional[float] = None,
) -> torch.Tensor:
    """softmax(cap(q k^T * scale) + bias) v over the last two dimensions.

    Args:
        q, k, v: (..., heads, N, head_dim) with the same leading dimensions (Nq may differ from Nk).
        bias: additive float bias, or boolean mask where True means "may attend"; broadcastable to
            (..., heads, Nq, Nk).
        dropout_p: dropout on the attention weights; callers pass 0 outside training.
        scale: defaults to head_dim ** -0.5.
        backend: one of ATTN_BACKENDS, the calling module's own (`Attention.attn_backend`); an
            enclosing `attn_backend` block overrides it, and None means the default.
        softcap: logit soft cap c > 0: logits -> c * tanh(logits / c) before the bias (None: no
            cap). Runs on `softcap_backend(backend, dropout_p, q)`: flex, or the reference path.
    """
    _check_softcap(softcap)
    backend = get_attn_backend(backend) if softcap is None else softcap_backend(backend, dropout_p, q)
    if bias is not None and bias.dim() < q.dim():
        # leading dimensions of 1 made explicit: torch's fused CPU kernel copies a bias of fewer
        # dimensions out to the full (B, heads, Nq, Nk) (301 MiB for Swin-T's first block at
        # 32x224), while a (1, heads, Nq, Nk) view broadcasts for free
        bias = bias.view((1,) * (q.dim() - bias.dim()) + tuple(bias.shape))
    if backend == "auto":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale)
    if backend in _SDPA_KERNELS:
        with sdpa_kernel(_SDPA_KERNELS[backend]):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale)
    if backend == "flex":
        return _flex(q, k, v, bias, dropout_p, scale, softcap)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    attn = (q * scale) @ k.transpose(-2, -1)  # (..., heads, Nq, Nk)
    if softcap is not None:
        attn = softcap * torch.tanh(attn / softcap)
    if bias is not None:
        if bias.dtype == torch.bool:
            attn = attn.masked_fill(~bias, float("-inf"))
        else:
            attn = attn + bias
    attn = attn.softmax(dim=-1)
    if dropout_p > 0.0:
        attn = F.dropout(attn, p=dropout_p)
    return attn @ v  # (..., heads, Nq, head_dim)


_AXIS_PATTERNS = {
    "space": ("b (t s) c -> (b t) s c", "(b t) s c -> b (t s) c"),
    "time": ("b (t s) c -> (b s) t c", "(b s) t c -> b (t s) c"),
}


def to_axis(x: torch.Tensor, axis: str, grid: Tuple[int, int]) -> torch.Tensor:
    """(B, T*S, C) tokens in time-major order -> sequences along `axis` ("space" or "time")."""
    t, s = grid
    return rearrange(x, _AXIS_PATTERNS[axis][0], t=t, s=s)


def from_axis(x: torch.Tensor, axis: str, grid: Tuple[int, int]) -> torch.Tensor:
    """Inverse of `to_axis`."""
    t, s = grid
    return rearrange(x, _AXIS_PATTERNS[axis][1], t=t, s=s)


def check_grid(x: torch.Tensor, axis: str, grid: Optional[Tuple[int, int]]) -> Tuple[int, int]:
    """(T, S) of a (B, T*S, C) token sequence, with a clear error where `grid` does not fit it."""
    if grid is None:
        raise ValueError(f"attention axis {axis!r} needs grid=(frames, tokens_per_frame)")
    t, s = grid
    if x.shape[1] != t * s:
        raise ValueError(
            f"attention axis {axis!r}: got {x.shape[1]} tokens but grid {tuple(grid)} has {t * s} "
            "(prefix tokens such as cls must be split off before factorised attention)"
        )
    return t, s


class Attention(nn.Module):
    """Multi-head self-attention with fused qkv, running on `scaled_dot_product`.

    Args:
        dim: input channels.
        num_heads: number of heads; `dim_out` must be divisible by it.
        qkv_bias: bias in the qkv projection.
        attn_drop: dropout on attention weights (training mode only).
        proj_drop: dropout after the output projection.
        dim_out: channels of q, k, v and of the output (default `dim`); MViTv2 widens the
            channels inside attention this way.
        attn_backend: the kernel's backend (ATTN_BACKENDS); default `default_attn_backend()`,
            fixed when the module is built. An `attn_backend` block overrides it while it runs.
        softcap: logit soft cap handed to the kernel (None: none).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        dim_out: Optional[int] = None,
        attn_backend: Optional[str] = None,
        softcap: Optional[float] = None,
    ) -> None:
        super().__init__()
        dim_out = dim if dim_out is None else dim_out
        if dim_out % num_heads != 0:
            raise ValueError(f"embed dim {dim_out} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim_out // num_heads
        self.attn_drop = attn_drop
        self.attn_backend = default_attn_backend() if attn_backend is None else _check_backend(attn_backend)
        self.softcap = _check_softcap(softcap)
        self.qkv = nn.Linear(dim, dim_out * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim_out, dim_out)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(
        self,
        x: torch.Tensor,
        axis: str = "joint",
        grid: Optional[Tuple[int, int]] = None,
        bias: Optional[torch.Tensor] = None,
        rope: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    ) -> torch.Tensor:
        """x: (B, N, dim) -> (B, N, dim_out). For axis space / time, N = T*S tokens in time-major
        order and grid = (T, S). `rope` (a `vidbench.layers.rope` module or any function of a
        (B', heads, N', head_dim) tensor) rotates q and k of the sequences the kernel sees."""
        if axis not in AXES:
            raise ValueError(f"unknown attention axis {axis!r}; expected one of {AXES}")
        extra = {} if rope is None else {"rope": rope}
        if axis == "joint":
            return self._attend(x, bias, **extra)
        grid = check_grid(x, axis, grid)
        return from_axis(self._attend(to_axis(x, axis, grid), bias, **extra), axis, grid)

    @property
    def dropout_p(self) -> float:
        """The kernel's attention dropout: `attn_drop` in training, 0 in eval."""
        return self.attn_drop if self.training else 0.0

    def _qkv(self, x: torch.Tensor, layer: Optional[nn.Linear] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v from the fused projection (`layer`, default `qkv`)."""
        qkv = rearrange((layer or self.qkv)(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        return qkv[0], qkv[1], qkv[2]  # each (B, heads, N, head_dim)

    def _project(self, out: torch.Tensor) -> torch.Tensor:
        return self.proj_drop(self.proj(rearrange(out, "b h n d -> b n (h d)")))  # (B, N, C)

    def _attend(self, x: torch.Tensor, bias: Optional[torch.Tensor],
                rope: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
        q, k, v = self._qkv(x)
        if rope is not None:
            q, k = rope(q), rope(k)
        return self._project(scaled_dot_product(q, k, v, bias=bias, dropout_p=self.dropout_p,
                                                backend=self.attn_backend, softcap=self.softcap))
