"""The one attention kernel: fused and reference paths agree; factorised axes do what they say,
and so do the papers' own attentions on it (ViViT Model 4's split heads, VTN's Longformer window:
more of it in test_vtn.py)."""
import threading
from functools import partial

import pytest
import torch
from _attention_helpers import both_kernels
from einops import rearrange
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import vidbench.layers.attention as attention_module
from vidbench.layers import (
    Attention,
    BlockConfig,
    attn_backend,
    default_attn_backend,
    fused_attn,
    make_blocks,
    scaled_dot_product,
    set_attn_backend,
    use_fused_attn,
)
from vidbench.models.vivit import SplitHeadAttention
from vidbench.models.vtn import LongformerSelfAttention


@pytest.mark.parametrize("bias_kind", [None, "float", "bool"])
def test_kernel_fused_matches_reference(bias_kind):
    q, k, v = (torch.randn(2, 3, 7, 16) for _ in range(3))
    bias = None
    if bias_kind == "float":
        bias = torch.randn(2, 3, 7, 7)
    elif bias_kind == "bool":
        bias = torch.rand(7, 7) > 0.3
        bias.fill_diagonal_(True)
    a, b = both_kernels(lambda: scaled_dot_product(q, k, v, bias=bias))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_kernel_reference_is_softmax_formula():
    q, k, v = (torch.randn(1, 2, 5, 4) for _ in range(3))
    expected = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1) @ v
    with fused_attn(False):
        torch.testing.assert_close(scaled_dot_product(q, k, v), expected)


def test_global_switch_and_context_manager():
    before = use_fused_attn()
    with fused_attn(not before):
        assert use_fused_attn() is (not before)
    assert use_fused_attn() is before


class _Ops(TorchDispatchMode):
    """The aten ops a computation runs."""

    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def _runs_fused(attn: Attention) -> bool:
    """Whether a forward of `attn` runs torch's fused attention (else the reference softmax)."""
    ops = _Ops()
    with torch.no_grad(), ops:
        attn(torch.randn(1, 6, 16))
    fused = any("scaled_dot_product" in name for name in ops.names)
    assert fused != ("_softmax" in ops.names), ops.names
    return fused


def test_backend_is_fixed_per_module_when_built(monkeypatch):
    """timm's `self.fused_attn = use_fused_attn()`: a module keeps the backend it was built with;
    an `attn_backend` block overrides it while the block runs; `set_attn_backend` is the default
    of modules built afterwards only; the environment variable is the default's source."""
    monkeypatch.setattr(attention_module, "_DEFAULT", "auto")
    auto = Attention(16, num_heads=2).eval()
    with attn_backend("reference"):
        built_inside = Attention(16, num_heads=2).eval()
    explicit = Attention(16, num_heads=2, attn_backend="reference").eval()
    assert (auto.attn_backend, built_inside.attn_backend, explicit.attn_backend) == ("auto", "reference", "reference")
    assert _runs_fused(auto) and not _runs_fused(built_inside) and not _runs_fused(explicit)
    with attn_backend("auto"):  # the scope wins over the module's own
        assert _runs_fused(explicit)
    with fused_attn(False):
        assert not _runs_fused(auto)
    set_attn_backend("reference")
    assert default_attn_backend() == "reference" and Attention(16, num_heads=2).attn_backend == "reference"
    assert _runs_fused(auto)  # built before: keeps its own
    monkeypatch.setenv("VIDBENCH_ATTN_BACKEND", "math")
    assert attention_module._initial_backend() == "math"
    monkeypatch.setenv("VIDBENCH_ATTN_BACKEND", "fast")
    with pytest.raises(ValueError, match="unknown attention backend 'fast'"):
        attention_module._initial_backend()
    with pytest.raises(ValueError, match="unknown attention backend"):
        Attention(16, num_heads=2, attn_backend="fast")


def test_backend_scope_is_local_to_its_thread():
    """A benchmark's `attn_backend` block changes nothing for code running in another thread."""
    attn = Attention(16, num_heads=2, attn_backend="auto").eval()
    seen = []
    inside, done = threading.Event(), threading.Event()

    def other():
        inside.wait()
        seen.append(_runs_fused(attn))
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with attn_backend("reference"):
        inside.set()
        done.wait(30)
        assert not _runs_fused(attn)
    thread.join()
    assert seen == [True]


@pytest.mark.parametrize("axis", ["joint", "space", "time", "split", "window"])
def test_attention_axes_fused_matches_reference(axis):
    if axis == "split":
        attn, kw = SplitHeadAttention(32, num_heads=4), dict(grid=(3, 5))
    elif axis == "window":
        attn, kw = LongformerSelfAttention(32, num_heads=4, window=4, num_global_tokens=1), {}
    else:
        attn, kw = Attention(32, num_heads=4), dict(axis=axis, grid=(3, 5))
    attn.eval()
    x = torch.randn(2, 3 * 5, 32)
    a, b = both_kernels(lambda: attn(x, **kw))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_attention_bias_fused_matches_reference():
    attn = Attention(32, num_heads=4).eval()
    x = torch.randn(2, 9, 32)
    bias = torch.randn(1, 4, 9, 9)
    a, b = both_kernels(lambda: attn(x, bias=bias))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_space_axis_is_per_frame_attention():
    attn = Attention(16, num_heads=2).eval()
    x = torch.randn(2, 3 * 4, 16)
    out = attn(x, axis="space", grid=(3, 4))
    per_frame = attn(rearrange(x, "b (t s) c -> (b t) s c", t=3))
    torch.testing.assert_close(out, rearrange(per_frame, "(b t) s c -> b (t s) c", t=3))


def test_time_axis_is_per_position_attention():
    attn = Attention(16, num_heads=2).eval()
    x = torch.randn(2, 3 * 4, 16)
    out = attn(x, axis="time", grid=(3, 4))
    per_pos = attn(rearrange(x, "b (t s) c -> (b s) t c", t=3))
    torch.testing.assert_close(out, rearrange(per_pos, "(b s) t c -> b (t s) c", s=4))


def test_split_heads_match_manual_computation():
    """Model 4: first half of the heads over time, second half over space, one projection."""
    torch.manual_seed(1)
    attn = SplitHeadAttention(16, num_heads=4).eval()
    t, s = 3, 4
    x = torch.randn(2, t * s, 16)
    q, k, v = rearrange(attn.qkv(x), "b n (three h d) -> three b h n d", three=3, h=4)

    def softmax_attn(q, k, v):
        return torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, -1) @ v

    qt, kt, vt = (rearrange(z[:, :2], "b h (t s) d -> b h s t d", t=t) for z in (q, k, v))
    qs, ks, vs = (rearrange(z[:, 2:], "b h (t s) d -> b h t s d", t=t) for z in (q, k, v))
    out_t = rearrange(softmax_attn(qt, kt, vt), "b h s t d -> b h (t s) d")
    out_s = rearrange(softmax_attn(qs, ks, vs), "b h t s d -> b h (t s) d")
    expected = attn.proj(rearrange(torch.cat([out_t, out_s], 1), "b h n d -> b n (h d)"))
    torch.testing.assert_close(attn(x, grid=(t, s)), expected, atol=1e-5, rtol=1e-5)


def test_attention_dropout_only_in_training():
    attn = Attention(16, num_heads=2, attn_drop=0.5)
    x = torch.randn(2, 8, 16)
    attn.eval()
    torch.testing.assert_close(attn(x), attn(x))
    ref = Attention(16, num_heads=2, attn_drop=0.0).eval()
    ref.load_state_dict(attn.state_dict())
    torch.testing.assert_close(attn(x), ref(x))
    attn.train()
    for enable in (True, False):
        with fused_attn(enable):
            assert not torch.allclose(attn(x), ref(x))


def test_attention_errors():
    attn = Attention(16, num_heads=2)
    with pytest.raises(ValueError, match="13 tokens but grid"):
        attn(torch.randn(1, 13, 16), axis="space", grid=(3, 4))
    with pytest.raises(ValueError, match="unknown attention axis"):
        attn(torch.randn(1, 12, 16), axis="split")  # ViViT Model 4's: models/vivit.py
    with pytest.raises(ValueError, match="even number of heads"):
        SplitHeadAttention(18, num_heads=3)
    with pytest.raises(ValueError, match="13 tokens but grid"):
        SplitHeadAttention(16, num_heads=2)(torch.randn(1, 13, 16), grid=(3, 4))
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        Attention(10, num_heads=3)


def test_block_config_builds_every_part():
    """One BlockConfig describes a block; make_blocks gives each its stochastic depth."""
    cfg = BlockConfig(16, 2, mlp_ratio=2.0, qkv_bias=False, attn_drop=0.1, norm_eps=1e-12,
                      act_layer=partial(nn.GELU, approximate="tanh"), attn_layer=SplitHeadAttention)
    blocks = make_blocks(cfg, depth=3, drop_path_rate=0.2)
    assert [b.drop_path1.drop_prob for b in blocks] == pytest.approx([0.0, 0.1, 0.2])
    assert all(norm.eps == 1e-12 for b in blocks for norm in (b.norm1, b.norm2))
    attn = blocks[0].attn
    assert isinstance(attn, SplitHeadAttention) and attn.qkv.bias is None and attn.attn_drop == 0.1
    assert blocks[0].mlp.fc1.out_features == 32 and blocks[0].mlp.act.approximate == "tanh"
    x = torch.randn(2, 3 * 4, 16)
    assert blocks.eval()[0](x, grid=(3, 4)).shape == x.shape


def _softcapped_formula(q, k, v, cap, bias=None):
    logits = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    logits = cap * torch.tanh(logits / cap)
    if bias is not None:
        logits = logits + bias
    return logits.softmax(-1) @ v


@pytest.mark.parametrize("with_bias", [False, True])
def test_softcap_flex_and_reference_equal_the_formula(with_bias):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 17, 8, generator=g) * 4 for _ in range(3))  # large logits: the cap bites
    bias = torch.randn(3, 17, 17, generator=g) if with_bias else None
    want = _softcapped_formula(q, k, v, 5.0, bias)
    uncapped = scaled_dot_product(q, k, v, bias=bias, backend="reference")
    assert (uncapped - want).abs().max() > 1e-2  # the cap changes the answer here
    for backend in ("reference", "flex", "auto", "math"):
        got = scaled_dot_product(q, k, v, bias=bias, backend=backend, softcap=5.0)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_softcap_routes_past_sdpa(monkeypatch):
    """Eager calls take the reference path (eager flex materialises the scores too, at more cost),
    flex where it is asked for; compiled calls take flex (a fused kernel there)."""
    assert attention_module.softcap_backend("auto") == "reference"
    assert attention_module.softcap_backend("math") == "reference"
    assert attention_module.softcap_backend("flex") == "flex"
    assert attention_module.softcap_backend("reference") == "reference"
    assert attention_module.softcap_backend("flex", dropout_p=0.1) == "reference"  # flex has no dropout
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert attention_module.softcap_backend("auto") == attention_module.softcap_backend("math") == "flex"
    assert attention_module.softcap_backend("reference") == "reference"
    assert attention_module.softcap_backend("auto", dropout_p=0.1) == "reference"
    with pytest.raises(ValueError, match="softcap must be > 0"):
        scaled_dot_product(*(torch.randn(1, 1, 2, 4) for _ in range(3)), softcap=0.0)


def test_attention_softcap_and_rope_hooks():
    torch.manual_seed(0)
    attn = Attention(16, num_heads=2, softcap=3.0).eval()
    x = torch.randn(2, 6, 16) * 5
    q, k, v = attn._qkv(x)
    want = attn._project(_softcapped_formula(q, k, v, 3.0))
    torch.testing.assert_close(attn(x), want, atol=1e-5, rtol=1e-5)
    # rope: any function of (B, heads, N, head_dim) applied to q and k, not v
    flip = lambda t: -t  # noqa: E731  (q.k unchanged by negating both)
    torch.testing.assert_close(attn(x, rope=flip), attn(x))
    swap = lambda t: t.flip(-1)  # noqa: E731  (q.k unchanged: the same permutation of both)
    torch.testing.assert_close(attn(x, rope=swap), attn(x), atol=1e-5, rtol=1e-5)
    half = lambda t: t * 0.5  # noqa: E731  (q.k quartered: a different answer)
    assert (attn(x, rope=half) - attn(x)).abs().max() > 1e-3
    grid = (2, 3)
    out = attn(x, axis="space", grid=grid, rope=half)
    assert out.shape == x.shape


def test_softcap_trains_on_the_cpu():
    """torch's CPU flex has no backward: a soft-capped call that needs gradients takes the reference."""
    q = torch.randn(1, 2, 5, 4, requires_grad=True)
    assert attention_module.softcap_backend("flex", q=q) == "reference"
    with torch.no_grad():
        assert attention_module.softcap_backend("flex", q=q) == "flex"
    scaled_dot_product(q, q, q, softcap=2.0).sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()
