"""Rotary position embedding (vidbench.layers.rope): the interleaved-pair rotation against complex
multiplication, V-JEPA 2's 3-D split against Hugging Face's own functions, the hook on
`Attention.forward(rope=...)`, and fvcore's view of it."""
from __future__ import annotations

import pytest
import torch
from einops import rearrange

from vidbench.bench import count_flops
from vidbench.layers import Attention, attn_backend
from vidbench.layers.rope import Rope3D, RotaryTables, rope_1d, rope_angles, rope_tables, vjepa2_segment

pytestmark = pytest.mark.usefixtures("one_thread")


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_interleaved_layout_is_complex_rotation() -> None:
    """Channel pair (2j, 2j+1) as the complex number x_2j + i x_2j+1, times exp(i p theta^(-2j/d))."""
    n, d = 7, 12
    x = _randn(2, 3, n, d)
    pos = torch.arange(n) * 3
    got = rope_1d(pos, d)(x)
    angle = pos[:, None].double() * 10000.0 ** (-torch.arange(d // 2).double() * 2 / d)  # (N, d/2)
    z = torch.view_as_complex(x.double().reshape(2, 3, n, d // 2, 2).contiguous())
    want = torch.view_as_real(z * torch.polar(torch.ones_like(angle), angle)).reshape(2, 3, n, d).float()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.norm(dim=-1), x.norm(dim=-1), atol=1e-5, rtol=0)  # a rotation


def test_interleaved_logits_depend_on_offset_only() -> None:
    d = 8
    q, k = _randn(1, 1, 1, d, seed=1), _randn(1, 1, 1, d, seed=2)

    def logit(pq: int, pk: int) -> float:
        return float((rope_1d(torch.tensor([pq]), d)(q) * rope_1d(torch.tensor([pk]), d)(k)).sum())

    assert logit(5, 2) == pytest.approx(logit(13, 10), abs=1e-5)
    assert abs(logit(5, 2) - logit(5, 4)) > 1e-3


def test_vjepa2_layout_is_hugging_faces_rotate_queries_or_keys() -> None:
    """The released weights' layout: channel c turns by angle c mod d/2 (not a true pairwise
    rotation: norms change), exactly as HF's (and the official) `rotate_queries_or_keys`."""
    mod = pytest.importorskip("transformers.models.vjepa2.modeling_vjepa2")
    n, d = 9, 10
    x = _randn(2, 3, n, d, seed=3)
    pos = torch.arange(n) % 4
    torch.testing.assert_close(rope_1d(pos, d, layout="vjepa2")(x), mod.rotate_queries_or_keys(x, pos.float()),
                               atol=1e-5, rtol=0)
    assert (rope_1d(pos, d, layout="vjepa2")(x) - rope_1d(pos, d)(x)).abs().max() > 1e-2
    assert (rope_1d(pos, d, layout="vjepa2")(x).norm(dim=-1) - x.norm(dim=-1)).abs().max() > 1e-3


@pytest.mark.parametrize("head_dim", [20, 24, 64, 80])
def test_rope3d_is_hugging_faces_vjepa2_attention_rotation(head_dim: int) -> None:
    """The whole 3-D split (frame / row / column segments, unrotated rest) against HF's
    `VJEPA2RopeAttention.apply_rotary_embeddings` with its own position ids."""
    transformers = pytest.importorskip("transformers")
    mod = pytest.importorskip("transformers.models.vjepa2.modeling_vjepa2")
    t, side, patch = 3, 4, 8
    heads = 2
    config = transformers.VJEPA2Config(crop_size=side * patch, patch_size=patch, frames_per_clip=2 * t,
                                       hidden_size=head_dim * heads, num_attention_heads=heads)
    hf = mod.VJEPA2RopeAttention(config, config.hidden_size, heads)
    x = _randn(2, heads, t * side * side, head_dim, seed=4)
    want = hf.apply_rotary_embeddings(x, hf.get_position_ids(x.transpose(1, 2)))
    rope = Rope3D(head_dim, (t, side, side))
    torch.testing.assert_close(rope()(x), want, atol=1e-5, rtol=0)
    seg = vjepa2_segment(head_dim)
    assert rope.segment == seg == hf.d_dim and 3 * seg <= head_dim
    assert torch.equal(rope()(x)[..., 3 * seg:], x[..., 3 * seg:])  # the leftover channels are untouched


def test_rope3d_axes_are_frame_row_column() -> None:
    """A token's first segment depends on its frame only, the second on its row, the third on
    its column (time-major order)."""
    t, h, w, d = 2, 3, 4, 18
    tables = Rope3D(d, (t, h, w))()
    grid = rearrange(tables.cos, "(t h w) c -> t h w c", t=t, h=h, w=w)
    seg = vjepa2_segment(d)
    frame, row, col = grid[..., :seg], grid[..., seg:2 * seg], grid[..., 2 * seg:3 * seg]
    assert torch.equal(frame, frame[:, :1, :1].expand_as(frame)) and not torch.equal(frame[0], frame[1])
    assert torch.equal(row, row[:1, :, :1].expand_as(row)) and not torch.equal(row[:, 0], row[:, 1])
    assert torch.equal(col, col[:1, :1, :].expand_as(col)) and not torch.equal(col[..., 0, :], col[..., 1, :])


def test_attention_rotates_q_and_k_only() -> None:
    """`Attention.forward(rope=...)` == the kernel on rotated q, k and plain v, on both paths."""
    attn = Attention(24, num_heads=2).eval()
    x = _randn(2, 12, 24, seed=5)
    rope = Rope3D(12, (1, 3, 4))()
    q, k, v = attn._qkv(x)
    logits = (rope(q) @ rope(k).transpose(-2, -1)) * 12 ** -0.5
    want = attn.proj(rearrange(logits.softmax(-1) @ v, "b h n d -> b n (h d)"))
    with torch.no_grad():
        for backend in ("auto", "reference"):
            with attn_backend(backend):
                torch.testing.assert_close(attn(x, rope=rope), want, atol=1e-5, rtol=0)
        assert (attn(x, rope=rope) - attn(x)).abs().max() > 1e-3


def test_tables_refuse_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="even width"):
        rope_angles(torch.arange(3), 5)
    with pytest.raises(ValueError, match="exceed head_dim"):
        rope_tables([(torch.arange(3), 6), (torch.arange(3), 6)], 10)
    with pytest.raises(ValueError, match="applied to"):
        Rope3D(12, (1, 2, 2))()(torch.zeros(1, 1, 5, 12))
    with pytest.raises(ValueError, match="head_dim >= 6"):
        Rope3D(4, (1, 2, 2))
    with pytest.raises(ValueError, match="unknown rotary layout"):
        rope_1d(torch.arange(3), 4, layout="halves")
    with pytest.raises(ValueError, match="rotary tables"):
        RotaryTables(torch.zeros(3, 4), torch.zeros(3, 6))


def test_rope_buffers_are_not_weights_and_fvcore_counts_everything() -> None:
    """The tables are non-persistent buffers (no state-dict key); rotating q and k is elementwise
    work fvcore leaves out by convention, and no op of it is left uncounted."""
    from vidbench.models import create_model

    model = create_model("vjepa2_tiny")
    assert not any("rope" in k for k in model.state_dict())
    report = count_flops("vjepa2_tiny")
    assert report.uncounted_ops == {}
    assert {"aten::mul", "aten::add", "aten::flip"} <= set(report.elementwise_ops)
