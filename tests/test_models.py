"""Every registry entry: output shape, every parameter gets a gradient, fused == reference.

Paper-size entries run with their structure intact but shrunk (one block, tiny frames and
images; MViT one block per stage, so every stage boundary still pools and widens) so the whole
registry stays cheap on a 2-core CPU; tiny entries run as registered.
"""
import pytest
import torch

from vidbench.layers import fused_attn
from vidbench.models import create_model, list_models


def _shrink(name: str) -> dict:
    if name.endswith("_tiny"):
        return {}
    if name.startswith("mvit"):
        stages = 3 if name.startswith("mvit_s") else 4
        return dict(depths=(1,) * stages, embed_dim=16, img_size=32, num_frames=4, num_classes=5)
    if name.startswith("swin3d"):  # two blocks per stage so every stage has a shifted block
        return dict(depths=(2,) * 4, embed_dim=16, num_heads=(1, 2, 4, 8), window_size=(2, 3, 3), img_size=32,
                    num_frames=4, num_classes=5)
    if name.startswith("hiera"):  # one block per stage: every stage start pools and widens
        return dict(depths=(1,) * 4, embed_dim=16, img_size=32, num_frames=4, num_classes=5)
    kw = dict(depth=1, num_classes=5)
    if name.startswith("vit_frameavg"):
        kw.update(img_size=32, num_frames=2)
    elif name.startswith("vit"):  # DINOv2's patch 14: 2 x 2 tokens
        kw.update(img_size=28 if "dinov2" in name else 32)
    elif name.startswith("vivit"):
        kw.update(img_size=32, num_frames=4, temporal_depth=1) if "m2" in name else kw.update(img_size=32, num_frames=4)
    elif name.startswith("timesformer"):
        kw.update(img_size=32, num_frames=2)
    elif name.startswith("vtn"):
        kw.update(img_size=32, num_frames=3, temporal_depth=2)
    elif name.startswith("videomae"):  # VideoMAE V2-g's patch 14: 2 x 2 tokens
        kw.update(img_size=28 if "v2" in name else 32, num_frames=4)
    elif name.startswith("videoprism"):  # patch 18: 2 x 2 tokens per frame
        kw.update(img_size=36, num_frames=4, temporal_depth=1)
    elif name.startswith("vjepa2"):
        kw.update(img_size=32, num_frames=4, probe_depth=1)
    return kw


def _build(name: str):
    with torch.device("cpu"):
        return create_model(name, **_shrink(name))


def _input(model, batch=2):
    return torch.randn(batch, *model.input_size)


VIDEO_AND_IMAGE = list_models()


@pytest.mark.parametrize("name", VIDEO_AND_IMAGE)
def test_forward_shape(name):
    model = _build(name).eval()
    x = _input(model)
    with torch.no_grad():
        out = model(x)
        feats = model.forward_features(x)
        pooled = model.forward_head(feats, pre_logits=True)
    assert out.shape == (2, model.num_classes)
    assert pooled.shape == (2, model.num_features)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", VIDEO_AND_IMAGE)
def test_every_parameter_gets_a_gradient(name):
    model = _build(name).train()
    with torch.no_grad():  # re-randomise so zero-initialised layers (temporal fc) pass gradient on
        for p in model.parameters():
            p.normal_(0, 0.05)
    model(_input(model)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == _DEAD_BY_DESIGN(model), f"no gradient reaches: {missing}"


def _DEAD_BY_DESIGN(model):
    """VTN (as Longformer): the head reads the cls row, which the last layer computes with its
    global projections only, so that layer's local qkv cannot reach the output.
    MViT (as torchvision's): the head reads the cls row; in the last block the query-pooling conv
    and the relative-position tables act only on the other rows (the cls query skips the conv
    and has no relative position), so they cannot reach the output."""
    if model.__class__.__name__ == "VTN":
        last = len(model.temporal_layers) - 1
        return [f"temporal_layers.{last}.attn.qkv.weight", f"temporal_layers.{last}.attn.qkv.bias"]
    if model.__class__.__name__ == "MViT":
        last = f"blocks.{len(model.blocks) - 1}.attn."
        return [n for n, _ in model.named_parameters()
                if n.startswith(last) and (".pool_q.conv." in n or ".rel_pos_" in n)]
    return []


@pytest.mark.parametrize("name", VIDEO_AND_IMAGE)
def test_fused_matches_reference_attention(name):
    model = _build(name).eval()
    x = _input(model)
    with torch.no_grad():
        with fused_attn(True):
            a = model(x)
        with fused_attn(False):
            b = model(x)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["vtn_tiny", "swin3d_tiny"])
def test_grad_checkpointing_is_a_flag_over_the_blocks(name):
    """`set_grad_checkpointing` sets the model's flag (and that of the block runners inside it:
    Swin's stages, VTN's image backbone); the forward checks it and recomputes every block in the
    backward pass; no block's `forward` is replaced, and without gradients nothing is recomputed."""
    model = _build(name).train()
    blocks = model.checkpoint_blocks()
    runs = []
    for blk in blocks:
        blk.register_forward_pre_hook(lambda module, args: runs.append(module))  # a recompute may stop early
    model.set_grad_checkpointing(True)
    assert model.grad_checkpointing
    assert all(m.grad_checkpointing for m in model.modules() if hasattr(m, "run_block"))
    assert not any("forward" in blk.__dict__ for blk in blocks)
    model(_input(model)).sum().backward()
    assert len(runs) == 2 * len(blocks)  # forward, then recomputed in the backward pass
    runs.clear()
    with torch.no_grad():
        model(_input(model))
    assert len(runs) == len(blocks)
    model.set_grad_checkpointing(False)
    assert not any(m.grad_checkpointing for m in model.modules() if hasattr(m, "run_block"))
    model(_input(model)).sum().backward()
    assert len(runs) == 2 * len(blocks)
