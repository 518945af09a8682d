"""MViT v1 / v2: equal to torchvision's mvit_v1_b / mvit_v2_s through the weight converter, at
full size and on CPU-sized variants of both implementations; block layout derived from the
stage numbers; attention through the shared kernel; clear errors for clips it cannot take."""
import pytest
import torch

tv_mvit = pytest.importorskip("torchvision.models.video.mvit", reason="torchvision is in the test extra")

import vidbench.models.mvit_pooling as pool_attention  # noqa: E402
from vidbench.layers import fused_attn  # noqa: E402
from vidbench.models import create_model  # noqa: E402
from vidbench.weights.formats.torchvision_mvit import torchvision_mvit_to_vidbench  # noqa: E402


def _load_from(ref, name, **kw):
    ours = create_model(name, **kw).eval()
    ours.load_state_dict(torchvision_mvit_to_vidbench(ref.state_dict()), strict=True)
    return ours


@pytest.mark.parametrize("name,builder,params", [
    ("mvit_b_16x4", "mvit_v1_b", 36_610_672),
    ("mvitv2_s_16x4", "mvit_v2_s", 34_537_744),
])
def test_full_size_layout_equals_torchvision(name, builder, params):
    """Paper size on the meta device: every converted tensor lands on a vidbench tensor of the
    same shape, and the parameter counts agree exactly."""
    with torch.device("meta"):
        ref, ours = getattr(tv_mvit, builder)(weights=None), create_model(name)
    converted = {k: tuple(v.shape) for k, v in torchvision_mvit_to_vidbench(ref.state_dict()).items()}
    assert converted == {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters()) == params


def test_full_size_logits_equal_torchvision():
    """The one full-size forward CI affords (about 25 s of CPU on 2 cores): MViTv2-S, which has
    every mechanism (pooled q/k/v, relative position bias, residual pooling, widening in
    attention). MViT-B's mechanisms are checked at full size by layout above and on the tiny
    variants below; both were checked at full size while building this (max |diff| < 2e-6)."""
    ref = tv_mvit.mvit_v2_s(weights=None).eval()
    ours = _load_from(ref, "mvitv2_s_16x4")
    x = torch.randn(1, 3, 16, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-4, rtol=0)


def _tv_tiny(version):
    """torchvision's MViT with mvit_tiny's layout, written out block by block."""
    v1 = version == 1
    table = dict(
        num_heads=[1, 2, 4, 4, 8],
        input_channels=[24, 48, 96, 96, 192] if v1 else [24, 24, 48, 96, 96],
        output_channels=[48, 96, 96, 192, 192] if v1 else [24, 48, 96, 96, 192],
        kernel_q=[[], [3, 3, 3], [3, 3, 3], [], [3, 3, 3]] if v1 else [[3, 3, 3]] * 5,
        stride_q=[[], [1, 2, 2], [1, 2, 2], [], [1, 2, 2]] if v1 else
        [[1, 1, 1], [1, 2, 2], [1, 2, 2], [1, 1, 1], [1, 2, 2]],
        kernel_kv=[[3, 3, 3]] * 5,
        stride_kv=[[1, 4, 4], [1, 2, 2], [1, 1, 1], [1, 1, 1], [1, 1, 1]],
    )
    blocks = [tv_mvit.MSBlockConfig(**{k: v[i] for k, v in table.items()}) for i in range(5)]
    return tv_mvit.MViT((32, 32), 8, blocks, residual_pool=not v1, residual_with_cls_embed=False,
                        rel_pos_embed=not v1, proj_after_attn=not v1, num_classes=10).eval()


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("fused", [True, False])
def test_tiny_equals_torchvision(version, fused):
    ref = _tv_tiny(version)
    ours = _load_from(ref, "mvit_tiny", version=version)
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad(), fused_attn(fused):
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)


def test_mvit_b_block_layout():
    """MViT-B derived from (1, 2, 11, 2) blocks, widths 96.., heads 1..: torchvision's table."""
    with torch.device("meta"):
        blocks = create_model("mvit_b_16x4", drop_path_rate=0.2).config.blocks
    assert [b.num_heads for b in blocks] == [1, 2, 2] + [4] * 11 + [8, 8]
    assert [b.dim_in for b in blocks] == [96, 192, 192] + [384] * 11 + [768, 768]
    assert [b.dim_out for b in blocks] == [192, 192] + [384] * 11 + [768] * 3
    assert [i for i, b in enumerate(blocks) if b.stride_q == (1, 2, 2)] == [1, 3, 14]
    assert [b.kernel_q for b in blocks].count(None) == 13
    assert [b.stride_kv[1] for b in blocks] == [8, 4, 4] + [2] * 11 + [1, 1]
    assert [b.grid_in for b in (blocks[0], blocks[1], blocks[3], blocks[14])] == [
        (8, 56, 56), (8, 56, 56), (8, 28, 28), (8, 14, 14)]
    assert blocks[-1].grid_out == (8, 7, 7)
    assert blocks[-1].drop_path == pytest.approx(0.2) and blocks[0].drop_path == 0.0
    with torch.device("meta"):
        v2 = create_model("mvitv2_s_16x4").config.blocks
    assert [b.dim_in for b in v2] == [96, 96, 192, 192] + [384] * 11 + [768]
    assert all(b.kernel_q == (3, 3, 3) for b in v2)


@pytest.mark.parametrize("version", [1, 2])
def test_every_block_calls_the_shared_kernel(version, monkeypatch):
    """One kernel call per block; v2's relative position arrives as its (B, heads, Nq, Nk) bias."""
    calls = []
    kernel = pool_attention.scaled_dot_product

    def spy(q, k, v, bias=None, **kw):
        calls.append((q.shape, k.shape, None if bias is None else bias.shape))
        return kernel(q, k, v, bias=bias, **kw)

    monkeypatch.setattr(pool_attention, "scaled_dot_product", spy)
    model = create_model("mvit_tiny", version=version).eval()
    with torch.no_grad():
        model(torch.randn(2, *model.input_size))
    assert len(calls) == len(model.blocks)
    q_shape, k_shape, bias_shape = calls[0]
    assert q_shape == (2, 1, 1 + 4 * 8 * 8, 24) and k_shape == (2, 1, 1 + 4 * 2 * 2, 24)
    assert bias_shape == (None if version == 1 else (2, 1, 1 + 256, 1 + 16))


@pytest.mark.parametrize("version", [1, 2])
def test_traces_and_builds_on_meta(version):
    model = create_model("mvit_tiny", version=version).eval()
    x = torch.randn(1, *model.input_size)
    with torch.no_grad():
        traced = torch.jit.trace(model, x, check_trace=False)
        torch.testing.assert_close(traced(x), model(x))
    with torch.device("meta"):
        assert create_model("mvitv2_s_16x4").cls_token.is_meta


def test_tiny_layout_and_interface():
    model = create_model("mvit_tiny")
    assert model.input_size == (3, 8, 32, 32)
    assert [b.grid_out for b in model.config.blocks] == [(4, 8, 8), (4, 4, 4), (4, 2, 2), (4, 2, 2), (4, 1, 1)]
    assert model.num_features == 192
    model.reset_classifier(7)
    assert model(torch.randn(1, 3, 8, 32, 32)).shape == (1, 7)


def test_clips_it_cannot_take_are_named():
    with pytest.raises(ValueError, match="num_frames 15 is not a multiple of 2"):
        create_model("mvit_b_16x4", num_frames=15)
    with pytest.raises(ValueError, match=r"image height 80 is not a multiple of 32.*stem stride \(2, 4, 4\)"):
        create_model("mvitv2_s_16x4", img_size=80)
    with pytest.raises(ValueError, match="image width 48 is not a multiple of 32"):
        create_model("mvit_s_16x4", img_size=(64, 48))
    with pytest.raises(ValueError, match="built for 8 frames of 32x32, got 16 frames of 32x32"):
        create_model("mvit_tiny")(torch.randn(1, 3, 16, 32, 32))
    with pytest.raises(ValueError, match="expected 3 input channels, got 1"):
        create_model("mvit_tiny")(torch.randn(1, 1, 8, 32, 32))
    with pytest.raises(ValueError, match="version must be 1"):
        create_model("mvit_tiny", version=3)
    with pytest.raises(ValueError, match="pool_kernel must be odd"):
        create_model("mvit_tiny", pool_kernel=(2, 2, 2))
    with pytest.raises(ValueError, match=r"stem kernel \(3, 7, 7\) with padding \(0, 0, 0\) gives a \(3, 7, 7\)"):
        create_model("mvit_tiny", patch_padding=(0, 0, 0))
    with pytest.raises(TypeError, match="unknown option"):
        create_model("mvit_tiny", depth=3)


def test_no_image_initialisation_is_offered_and_the_stem_inflates():
    """The zoo has no image MViT: `from_image_backbone` is not offered (train --init says so), and a
    2-D stem of matching kernel inflates."""
    model = create_model("mvit_tiny")
    assert not hasattr(model, "from_image_backbone")
    weight, bias = torch.randn(24, 3, 7, 7), torch.randn(24)
    model.patch_embed.init_from_2d(weight, bias, "inflation")
    torch.testing.assert_close(model.patch_embed.proj.weight, weight[:, :, None].expand(-1, -1, 3, -1, -1) / 3)
    with pytest.raises(ValueError, match=r"does not fit the \(3, 7, 7\) kernel"):
        model.patch_embed.init_from_2d(torch.randn(24, 3, 8, 8), bias)


def test_converter_rejects_unknown_keys():
    with pytest.raises(ValueError, match="not known"):
        torchvision_mvit_to_vidbench({"pos_encoding.something": torch.zeros(1)})
