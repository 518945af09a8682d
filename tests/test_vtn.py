"""VTN's Longformer attention: the banded sliding window equals the dense-masked one (functions,
layer and whole model, both kernel paths, perturbed weights, gradients included) and is counted
as what it computes: O(N * window) multiply-adds, not O(N**2)."""
import pytest
import torch
from _attention_helpers import both_kernels

from vidbench.bench import count_flops
from vidbench.bench.flops import sliding_window_macs
from vidbench.layers import fused_attn
from vidbench.models import create_model
from vidbench.models.vtn import (
    LongformerSelfAttention,
    band_mask,
    banded_window_attention,
    dense_window_attention,
    window_mask,
)


def test_window_mask_by_hand():
    m = window_mask(6, window=4, num_global=1)
    assert m[0].all() and m[:, 0].all()  # the global token sees and is seen by all
    assert m[3, 1] and m[3, 5] and not m[5, 2]  # |i - j| <= 2 otherwise


def test_band_mask_by_hand():
    """N = 6, one global token, window 4 (2 each side), chunks of 2: local queries 1..5 in three
    chunks (the last padded), keys [global 0] + band positions chunk start - 2 .. chunk end + 1."""
    m = band_mask(6, window=4, num_global=1, chunk=2)
    assert m.shape == (3, 2, 1 + 2 + 4)
    assert m[..., 0].all()  # every query sees the global token
    # chunk 0: queries 1, 2; band positions -1, 0, 1, 2, 3, 4 (-1: padding, 0: global, both out)
    assert m[0, 0, 1:].tolist() == [False, False, True, True, True, False]  # query 1: keys 1..3
    assert m[0, 1, 1:].tolist() == [False, False, True, True, True, True]  # query 2: keys 1..4
    # chunk 2: query 5 and a padding query 6; band positions 3..8 (6, 7, 8: past the end)
    assert m[2, 0, 1:].tolist() == [True, True, True, False, False, False]  # query 5: keys 3..5
    assert m[2, 1, 1:].tolist() == [False, True, True, True, True, True]  # padding row: its band 4..8, never empty


@pytest.mark.parametrize("n", [2, 5, 17, 40])
@pytest.mark.parametrize("window", [2, 3, 18])
@pytest.mark.parametrize("num_global", [0, 1, 2])
@pytest.mark.parametrize("chunk", [None, 1, 4])
def test_banded_equals_dense_masked(n, window, num_global, chunk):
    q, k, v = (torch.randn(2, 3, n, 8) for _ in range(3))
    for fused in (True, False):
        with fused_attn(fused):
            banded = banded_window_attention(q, k, v, window, num_global, chunk=chunk)
            dense = dense_window_attention(q, k, v, window, num_global)
        assert banded.shape == (2, 3, n - num_global, 8)
        torch.testing.assert_close(banded, dense, atol=1e-6, rtol=1e-5)


def _layer_pair(window, num_global, dim=24, heads=3):
    banded = LongformerSelfAttention(dim, heads, window, num_global_tokens=num_global)
    with torch.no_grad():
        for p in banded.parameters():
            p.normal_(0, 0.3)
    dense = LongformerSelfAttention(dim, heads, window, num_global_tokens=num_global, banded=False)
    dense.load_state_dict(banded.state_dict())
    return banded, dense


@pytest.mark.parametrize("n,window,num_global", [(33, 6, 1), (20, 18, 1), (9, 64, 0)])
def test_layer_banded_equals_dense_with_gradients(n, window, num_global):
    banded, dense = _layer_pair(window, num_global)
    for fused in (True, False):
        with fused_attn(fused):
            x = torch.randn(2, n, 24, requires_grad=True)
            out_b = banded(x)
            (grad_b,) = torch.autograd.grad(out_b.square().sum(), x)
            out_d = dense(x)
            (grad_d,) = torch.autograd.grad(out_d.square().sum(), x)
        torch.testing.assert_close(out_b, out_d, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(grad_b, grad_d, atol=1e-4, rtol=1e-4)
        assert torch.isfinite(grad_b).all()


def test_window_covering_the_sequence_is_full_attention():
    attn = LongformerSelfAttention(16, num_heads=2, window=64, num_global_tokens=1).eval()
    x = torch.randn(1, 6, 16)
    full = attn._project(torch.nn.functional.scaled_dot_product_attention(*attn._qkv(x)))
    torch.testing.assert_close(attn(x)[:, 1:], full[:, 1:], atol=1e-6, rtol=1e-6)


def test_vtn_banded_equals_dense_masked_model():
    """The whole model on 40 frames (the window of 4 covers a tenth of them), perturbed weights."""
    model = create_model("vtn_tiny", num_frames=40, img_size=16).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    x = torch.randn(2, *model.input_size)
    with torch.no_grad():
        banded = both_kernels(lambda: model(x))
        for layer in model.temporal_layers:
            layer.attn.banded = False
        dense = both_kernels(lambda: model(x))
    for b, d in zip(banded, dense):
        torch.testing.assert_close(b, d, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("banded", [True, False])
@pytest.mark.parametrize("fused", [True, False])
def test_flops_are_the_band_by_hand(banded, fused):
    """fvcore's count of the layer = projections + `sliding_window_macs` (both attention paths)."""
    n, dim, heads, window = 50, 24, 3, 6
    attn = LongformerSelfAttention(dim, heads, window, num_global_tokens=1, banded=banded)
    projections = n * dim * 3 * dim * 2 + n * dim * dim  # qkv, qkv_global, proj
    report = count_flops(attn, (n, dim), fused=fused)
    assert report.macs == projections + sliding_window_macs(n, window, 1, heads, dim // heads, banded=banded)
    assert report.uncounted_ops == {}


def test_banded_count_grows_linearly():
    """At VTN-B width (12 heads of 64, window 18): dense attention is quadratic in the frames,
    the band linear; at 1024 frames the band costs 28 / 1025 of the dense count, plus the cls row."""
    dense = [sliding_window_macs(n, 18, 1, 12, 64, banded=False) for n in (257, 1025)]
    band = [sliding_window_macs(n, 18, 1, 12, 64) for n in (257, 1025)]
    assert dense[1] / dense[0] == pytest.approx(16, rel=0.02)
    assert band[1] / band[0] == pytest.approx(4, rel=0.02)
    assert band[1] < dense[1] / 20


def test_vtn_base_count():
    """VTN-B at 16 frames: 17 temporal tokens, so the band (28 keys per query) is no smaller than
    the sequence; the temporal encoder's attention is 0.8 M of 281.77 G multiply-adds."""
    report = count_flops("vtn_base")
    assert report.uncounted_ops == {}
    attn = report.by_module["temporal_layers.0.attn"]
    assert attn - (17 * 768 * 2304 * 2 + 17 * 768 * 768) == sliding_window_macs(17, 18, 1, 12, 64)
    assert report.macs / 1e9 == pytest.approx(281.77, abs=0.01)
