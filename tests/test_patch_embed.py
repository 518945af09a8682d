import pytest
import torch
import torch.nn.functional as F

from vidbench.layers import PatchEmbed, TubeletEmbed, inflate_patch_weight


def test_tubelet_shapes_and_time_major_order():
    emb = TubeletEmbed(img_size=32, num_frames=8, tubelet_size=(2, 8, 8), embed_dim=12)
    x = torch.randn(2, 3, 8, 32, 32)
    out = emb(x)
    assert out.shape == (2, 4 * 16, 12)
    assert emb.grid == (4, 16)
    # token (t=1, s=0) is the conv over frames 2..3 of the top-left patch
    direct = F.conv3d(x[:, :, 2:4, :8, :8], emb.proj.weight, emb.proj.bias).flatten(1)
    torch.testing.assert_close(out[:, 16], direct)


def test_per_frame_patch_embedding_is_t1_tubelet():
    emb3 = TubeletEmbed(img_size=16, num_frames=3, tubelet_size=(1, 8, 8), embed_dim=6)
    emb2 = PatchEmbed(img_size=16, patch_size=8, embed_dim=6)
    emb2.proj.weight.data.copy_(emb3.proj.weight[:, :, 0])
    emb2.proj.bias.data.copy_(emb3.proj.bias)
    x = torch.randn(2, 3, 3, 16, 16)
    out3 = emb3(x).reshape(2, 3, 4, 6)
    for t in range(3):
        torch.testing.assert_close(out3[:, t], emb2(x[:, :, t]), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("method", ["central_frame", "inflation"])
def test_init_from_2d_on_static_clip_equals_image_embedding(method):
    img = PatchEmbed(img_size=16, patch_size=8, embed_dim=6)
    emb = TubeletEmbed(img_size=16, num_frames=4, tubelet_size=(2, 8, 8), embed_dim=6)
    emb.init_from_2d(img.proj.weight, img.proj.bias, method)
    frame = torch.randn(1, 3, 16, 16)
    clip = frame[:, :, None].expand(1, 3, 4, 16, 16)
    out = emb(clip).reshape(1, 2, 4, 6)
    for t in range(2):
        torch.testing.assert_close(out[:, t], img(frame), atol=1e-5, rtol=1e-5)


def test_central_frame_uses_only_the_central_frame():
    w = torch.randn(6, 3, 8, 8)
    w3 = inflate_patch_weight(w, 3, "central_frame")
    assert torch.equal(w3[:, :, 1], w) and not w3[:, :, 0].any() and not w3[:, :, 2].any()
    w2 = inflate_patch_weight(w, 2, "central_frame")  # index t // 2 = 1, as in scenic
    assert torch.equal(w2[:, :, 1], w) and not w2[:, :, 0].any()
    torch.testing.assert_close(inflate_patch_weight(w, 4, "inflation").sum(2), w)


def test_random_init_leaves_weights():
    emb = TubeletEmbed(img_size=16, num_frames=2, tubelet_size=(2, 8, 8), embed_dim=6)
    before = emb.proj.weight.clone()
    emb.init_from_2d(torch.zeros(6, 3, 8, 8), torch.zeros(6), "random")
    assert torch.equal(before, emb.proj.weight)
    with pytest.raises(ValueError, match="unknown tubelet init"):
        emb.init_from_2d(torch.zeros(6, 3, 8, 8), torch.zeros(6), "sideways")


def test_indivisible_sizes_name_both_numbers():
    with pytest.raises(ValueError, match="frame count 7 is not divisible by the patch/tubelet size 2"):
        TubeletEmbed(img_size=32, num_frames=7, tubelet_size=(2, 8, 8))
    with pytest.raises(ValueError, match="image height 30 is not divisible by the patch/tubelet size 8"):
        TubeletEmbed(img_size=30, num_frames=8, tubelet_size=(2, 8, 8))
    with pytest.raises(ValueError, match="image width 20 is not divisible by the patch/tubelet size 16"):
        PatchEmbed(img_size=(32, 20), patch_size=16)


def test_overlapping_cube_stem():
    """MViT's cube stem: kernel 3x7x7, stride 2x4x4, padding 1x3x3 keeps T/2 x H/4 x W/4 tokens."""
    emb = TubeletEmbed(img_size=32, num_frames=8, tubelet_size=(2, 4, 4), embed_dim=6, kernel_size=(3, 7, 7),
                       padding=(1, 3, 3))
    assert emb.grid_size == (4, 8, 8) and emb.proj.weight.shape == (6, 3, 3, 7, 7)
    x = torch.randn(2, 3, 8, 32, 32)
    direct = F.conv3d(x, emb.proj.weight, emb.proj.bias, stride=(2, 4, 4), padding=(1, 3, 3))
    torch.testing.assert_close(emb(x), direct.flatten(2).transpose(1, 2))
    # an int padding pads every axis; the default stays kernel = stride, no padding
    assert TubeletEmbed(32, 8, (2, 4, 4), kernel_size=(3, 7, 7), padding=3).padding == (3, 3, 3)
    assert TubeletEmbed(32, 8, (2, 8, 8)).proj.padding == (0, 0, 0)
    with pytest.raises(ValueError, match="smaller than the stem kernel"):
        TubeletEmbed(8, 2, (2, 8, 8), kernel_size=(3, 16, 16))
