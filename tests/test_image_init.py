"""`from_image_backbone` pins down the papers' initialisation rules: on a clip whose frames are
all the same image, an image-initialised model returns the image ViT's logits."""
import pytest
import torch

from vidbench.models import create_model

TINY_VIT = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=4, num_classes=6)


def _static_clip(image, frames):
    return image[:, :, None].expand(-1, -1, frames, -1, -1).contiguous()


def _perturb(model):
    """Random non-zero values everywhere, so a wrong init rule cannot hide behind zeros."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    return model


@pytest.mark.parametrize("attention_type", ["divided", "space_only"])
def test_timesformer_from_vit_returns_vit_logits(attention_type):
    vit = _perturb(create_model("vit_tiny", **TINY_VIT)).eval()
    video = _perturb(create_model("timesformer_tiny", attention_type=attention_type, num_frames=4, time_embed_std=0.0,
                                  **TINY_VIT))
    video.from_image_backbone(vit).eval()
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(video(_static_clip(image, 4)), vit(image), atol=1e-4, rtol=0)
    if attention_type == "divided":
        assert not video.time_embed.any()
        assert all(not b.temporal_fc.weight.any() for b in video.blocks)


@pytest.mark.parametrize("init", ["central_frame", "inflation"])
def test_vivit_model3_from_gap_vit_returns_vit_logits(init):
    vit = _perturb(create_model("vit_tiny", class_token=False, global_pool="avg", **TINY_VIT)).eval()
    kw = {k: v for k, v in TINY_VIT.items() if k != "patch_size"}
    video = _perturb(create_model("vivit_m3_tiny", num_frames=4, tubelet_size=(2, 8, 8), temporal_pos_std=0.0, **kw))
    video.from_image_backbone(vit, init=init).eval()
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(video(_static_clip(image, 4)), vit(image), atol=1e-4, rtol=0)
    assert all(not p.any() for b in video.blocks for p in b.attn_time.parameters())


@pytest.mark.parametrize("name,kw", [("timesformer_tiny", {}), ("vivit_m3_tiny", {"temporal_pos_std": 0.5})])
def test_order_aware_temporal_init_survives_image_init(name, kw):
    """What the image model lacks starts as in a freshly built model: an order-aware temporal init
    (timesformer_tiny's time_embed_std=0.5, ViViT's temporal_pos_std option) survives
    `from_image_backbone`, so a clip and its reversal give different logits at once."""
    vit = create_model("vit_tiny", img_size=32, patch_size=8, depth=4, num_heads=3, num_classes=10,
                       **({"class_token": False, "global_pool": "avg"} if name == "vivit_m3_tiny" else {})).eval()
    video = create_model(name, **kw).from_image_backbone(vit).eval()
    if name == "timesformer_tiny":
        assert 0.4 < float(video.time_embed.std()) < 0.6
    else:
        t, s = video.patch_embed.grid
        assert 0.4 < float(video.pos_embed[0].reshape(t, s, -1).mean(1).std()) < 0.6
    clip = torch.randn(1, *video.input_size)
    with torch.no_grad():
        assert not torch.allclose(video(clip), video(clip.flip(2)), atol=1e-4)


def test_frame_average_from_vit_returns_vit_logits():
    vit = _perturb(create_model("vit_tiny", **TINY_VIT)).eval()
    video = create_model("vit_frameavg_tiny", num_frames=3, **TINY_VIT).from_image_backbone(vit).eval()
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(video(_static_clip(image, 3)), vit(image), atol=1e-5, rtol=0)


def test_frame_average_averages_frame_logits():
    model = create_model("vit_frameavg_tiny").eval()
    clip = torch.randn(2, *model.input_size)
    with torch.no_grad():
        per_frame = torch.stack([model.head(model.vit.forward_head(model.vit.forward_features(clip[:, :, t]), pre_logits=True))
                                 for t in range(clip.shape[2])], 1)
        torch.testing.assert_close(model(clip), per_frame.mean(1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["vivit_m1_tiny", "vivit_m2_tiny", "vivit_m4_tiny", "vtn_tiny"])
def test_other_models_take_image_weights(name):
    heads = 4 if name == "vivit_m4_tiny" else 3
    vit = create_model("vit_tiny", img_size=32, patch_size=8, depth=4, num_heads=heads, num_classes=10)
    video = create_model(name)
    video.from_image_backbone(vit)
    blocks = video.backbone.blocks if name == "vtn_tiny" else video.blocks
    torch.testing.assert_close(blocks[0].attn.qkv.weight, vit.blocks[0].attn.qkv.weight)
    if name != "vtn_tiny":  # central frame: the 2-D filter at t // 2
        torch.testing.assert_close(video.patch_embed.proj.weight[:, :, 1], vit.patch_embed.proj.weight)
        assert not video.patch_embed.proj.weight[:, :, 0].any()


def test_mismatched_backbone_is_a_clear_error():
    vit = create_model("vit_tiny", img_size=32, patch_size=8, depth=2, num_classes=10)
    with pytest.raises(ValueError, match="depth=4 vs image depth=2"):
        create_model("timesformer_tiny").from_image_backbone(vit)


def test_timesformer_from_scratch_starts_with_every_temporal_fc_zero():
    """As the reference code behaves (its loop counts the ModuleList as the first 'Block')."""
    model = create_model("timesformer_tiny", time_embed_std=0.0)  # the reference's time embedding
    assert all(not b.temporal_fc.weight.any() and not b.temporal_fc.bias.any() for b in model.blocks)
    assert not model.time_embed.any() and model.pos_embed.std() > 0
    x = torch.randn(1, *model.input_size)
    assert torch.allclose(model.eval()(x), model(x.flip(2)), atol=1e-5)  # hence blind to frame order
    from vidbench.models.timesformer import TimeSformerConfig

    assert TimeSformerConfig().time_embed_std == 0.0  # the paper-size configs keep the reference's zero
    tiny = create_model("timesformer_tiny").eval()  # the CPU config starts order-aware
    assert 0.4 < float(tiny.time_embed.std()) < 0.6
    assert not torch.allclose(tiny(x), tiny(x.flip(2)), atol=1e-3)


@pytest.mark.parametrize("name", ["vivit_m1_tiny", "vivit_m2_tiny", "vivit_m3_tiny", "vivit_m4_tiny"])
def test_vivit_temporal_position_init(name):
    """Paper init (the default, temporal_pos_std=0): every position embedding ~N(0, 0.02).
    temporal_pos_std=0.5 adds a per-time part at that scale, shared by a time index's positions."""
    torch.manual_seed(0)
    paper = create_model(name)
    assert paper.config.temporal_pos_std == 0.0
    offset = create_model(name, temporal_pos_std=0.5)
    if name == "vivit_m2_tiny":
        assert float(paper.temporal_pos_embed.std()) < 0.03
        assert 0.4 < float(offset.temporal_pos_embed[0, 1:].std()) < 0.6
        assert float(offset.temporal_pos_embed[0, 0].std()) < 0.03  # the temporal cls position: no offset
        return
    t, s = offset.patch_embed.grid
    prefix = 1 if offset.cls_token is not None else 0
    for model, lo, hi in ((paper, 0.0, 0.03), (offset, 0.4, 0.6)):
        pos = model.pos_embed[0, prefix:].detach().reshape(t, s, -1)
        per_time = pos.mean(dim=1)  # the spatial ~N(0, 0.02) parts average out over s positions
        assert lo < float(per_time.std()) < hi
        assert float((pos - per_time[:, None]).std()) < 0.03  # the spatial part keeps the paper's scale
