"""The one attention kernel: fused and reference paths agree; factorised axes do what they say."""
import pytest
import torch
from _attention_helpers import both_kernels
from einops import rearrange

from vidbench.layers import Attention, fused_attn, scaled_dot_product, use_fused_attn, window_mask


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


@pytest.mark.parametrize("axis", ["joint", "space", "time", "split", "window"])
def test_attention_axes_fused_matches_reference(axis):
    attn = Attention(32, num_heads=4, num_global_tokens=1 if axis == "window" else 0).eval()
    x = torch.randn(2, 3 * 5, 32)
    kw = dict(axis=axis, grid=(3, 5), window=4)
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
    attn = Attention(16, num_heads=4).eval()
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
    torch.testing.assert_close(attn(x, axis="split", grid=(t, s)), expected, atol=1e-5, rtol=1e-5)


def test_window_mask_shape():
    m = window_mask(6, window=4, num_global=1)
    assert m[0].all() and m[:, 0].all()  # global token sees and is seen by all
    assert m[3, 1] and m[3, 5] and not m[5, 2]  # |i - j| <= 2 otherwise
    # a window covering the whole sequence is full attention
    attn = Attention(16, num_heads=2, num_global_tokens=1).eval()
    x = torch.randn(1, 6, 16)
    windowed = attn(x, axis="window", window=64)
    assert windowed.shape == (1, 6, 16)
    torch.testing.assert_close(windowed[:, 1:], attn(x)[:, 1:], atol=1e-6, rtol=1e-6)


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
        attn(torch.randn(1, 12, 16), axis="diagonal")
    with pytest.raises(ValueError, match="even number of heads"):
        Attention(18, num_heads=3)(torch.randn(1, 12, 18), axis="split", grid=(3, 4))
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        Attention(10, num_heads=3)
