"""MViT's pooling attention on the shared kernel: pooling, relative position, residual pooling."""
import pytest
import torch
from _attention_helpers import both_kernels
from einops import rearrange

from vidbench.layers import Attention
from vidbench.models.mvit_pooling import PoolingAttention, TokenPool, pooled_grid, rel_pos_index


def test_attention_dim_out_widens_channels():
    attn = Attention(16, num_heads=4, dim_out=32).eval()
    assert attn.head_dim == 8 and attn.qkv.weight.shape == (96, 16) and attn.proj.weight.shape == (32, 32)
    x = torch.randn(2, 5, 16)
    a, b = both_kernels(lambda: attn(x))
    assert a.shape == (2, 5, 32)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="embed dim 30 is not divisible by num_heads 4"):
        Attention(16, num_heads=4, dim_out=30)


def test_pooled_grid_is_the_conv_output_size():
    assert pooled_grid((8, 56, 56), (3, 3, 3), (1, 8, 8)) == (8, 7, 7)
    assert pooled_grid((8, 28, 28), (3, 3, 3), (1, 8, 8)) == (8, 4, 4)  # rounds up, as the conv does
    assert pooled_grid((8, 7, 7), (3, 3, 3), (1, 1, 1)) == (8, 7, 7)


def test_token_pool_keeps_cls_out_of_the_conv():
    pool = TokenPool(head_dim=4, grid=(2, 4, 4), kernel=(3, 3, 3), stride=(1, 2, 2))
    x = torch.randn(3, 2, 1 + 2 * 16, 4)  # (B, heads, 1 + T*H*W, head_dim)
    out = pool(x)
    assert pool.grid_out == (2, 2, 2) and out.shape == (3, 2, 1 + 8, 4)
    torch.testing.assert_close(out[:, :, 0], pool.norm(x[:, :, 0]))  # cls: only the LayerNorm
    # one depthwise filter shared by all heads: head 1's tokens pooled as head 0's would be
    swapped = pool(x.flip(1))
    torch.testing.assert_close(swapped.flip(1), out)


def test_rel_pos_index_by_hand():
    assert rel_pos_index(2, 2).tolist() == [[1, 0], [2, 1]]
    # keys pooled 2x: key j sits at 2j on the query grid; table size 2 * 4 - 1 = 7
    assert rel_pos_index(4, 2).tolist() == [[2, 0], [3, 1], [4, 2], [5, 3]]
    assert rel_pos_index(2, 4).tolist() == [[3, 2, 1, 0], [5, 4, 3, 2]]


def _pool_attn(**kw):
    torch.manual_seed(0)
    return PoolingAttention(8, 16, 2, grid=(2, 4, 4), kernel_q=(3, 3, 3), stride_q=(1, 2, 2), kernel_kv=(3, 3, 3),
                            stride_kv=(1, 4, 4), **kw).eval()


@pytest.mark.parametrize("v2", [False, True])
def test_pooling_attention_shapes_and_paths_agree(v2):
    attn = _pool_attn(rel_pos=v2, residual_pool=v2)
    assert (attn.grid_q, attn.grid_kv) == ((2, 2, 2), (2, 1, 1))
    x = torch.randn(2, 1 + 32, 8)
    a, b = both_kernels(lambda: attn(x))
    assert a.shape == (2, 1 + 8, 16)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    if v2:
        assert attn.rel_pos_h.shape == (3, 8) and attn.rel_pos_t.shape == (3, 8)


def test_rel_pos_bias_and_residual_pooling_by_hand():
    """v2 = softmax(q k^T / sqrt(d) + bias) v + q on the pooled tokens, cls row without q and
    the cls row / column without relative position; bias[(t,y,x),(t',y',x')] = q . (R_t + R_h + R_w)."""
    attn = _pool_attn(rel_pos=True, residual_pool=True)
    x = torch.randn(2, 1 + 32, 8)
    q, k, v = attn._qkv(x)
    q, k, v = attn.pool_q(q), attn.pool_k(k), attn.pool_v(v)
    bias = attn.rel_pos_bias(q)
    assert bias.shape == (2, 2, 1 + 8, 1 + 2)
    assert not bias[:, :, 0].any() and not bias[:, :, :, 0].any()
    # query token (t=1, y=0, x=1) against key token (t=0, y=0, x=0)
    qi, kj = 1 + (1 * 4 + 0 * 2 + 1), 1 + 0
    rel = (attn.rel_pos_t[rel_pos_index(2, 2)[1, 0]] + attn.rel_pos_h[rel_pos_index(2, 1)[0, 0]]
           + attn.rel_pos_w[rel_pos_index(2, 1)[1, 0]])
    torch.testing.assert_close(bias[:, :, qi, kj], q[:, :, qi] @ rel)
    weights = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5 + bias, dim=-1)
    out = weights @ v
    out[:, :, 1:] += q[:, :, 1:]
    expected = attn.proj(rearrange(out, "b h n d -> b n (h d)"))
    torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)
