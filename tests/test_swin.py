"""Video Swin: equal to torchvision's SwinTransformer3d through the weight converters (torchvision
and official layouts) on clips where windows pad, shift and shrink; full-size layout, parameter
counts and GMACs against the published numbers; the shared kernel in every block."""
import re
from math import prod
from pathlib import Path

import pytest
import torch
from _weights_helpers import assert_same_logits, perturb_

tv_swin = pytest.importorskip("torchvision.models.video.swin_transformer", reason="torchvision is in the test extra")

import vidbench  # noqa: E402
import vidbench.models.swin as swin  # noqa: E402
from vidbench.bench import count_flops  # noqa: E402
from vidbench.models import create_model, model_entry  # noqa: E402
from vidbench.weights import WeightsError, detect_format, find_published, get_format, list_published  # noqa: E402
from vidbench.weights.formats.torchvision_swin3d import (  # noqa: E402
    torchvision_swin3d_to_vidbench,
    videoswin_official_to_vidbench,
)
from vidbench.weights.source import Source  # noqa: E402

FULL = [("swin3d_t", "swin3d_t", 28_158_070), ("swin3d_s", "swin3d_s", 49_816_678),
        ("swin3d_b", "swin3d_b", 88_048_984)]


def _tv_tiny():
    """torchvision's SwinTransformer3d with swin3d_tiny's layout, every weight perturbed."""
    ref = tv_swin.SwinTransformer3d([2, 4, 4], 24, [2, 2, 2, 2], [1, 2, 4, 8], [2, 3, 3], stochastic_depth_prob=0.0,
                                    num_classes=10)
    return perturb_(ref).eval()


def _official_layout(state):
    """A torchvision state dict written the way the official mmaction2 checkpoints name it."""
    out = {}
    for key, value in state.items():
        if key.startswith("head."):
            out["cls_head.fc_cls." + key[5:]] = value
            continue
        if m := re.match(r"features\.(\d+)\.(.+)$", key):
            idx, rest = int(m.group(1)), m.group(2)
            rest = rest.replace(".mlp.0.", ".mlp.fc1.").replace(".mlp.3.", ".mlp.fc2.")
            key = f"layers.{idx // 2}.blocks.{rest}" if idx % 2 == 0 else f"layers.{idx // 2}.downsample.{rest}"
        out["backbone." + key] = value
    return {"state_dict": out, "meta": {}}


@pytest.mark.parametrize("clip", [(8, 32, 32), (7, 30, 34)])
@pytest.mark.parametrize("layout", ["torchvision-swin3d", "videoswin-official"])
def test_tiny_logits_equal_torchvision(tmp_path, layout, clip):
    """8x32x32: stages 1-2 pad to whole windows and shift on every axis, stages 3-4 shrink the
    window in H and W (the quirky index slice) and shift in time only. 7x30x34 also pads the
    clip to whole patches, a non-square grid, and a stage shrunk in H but not W."""
    ref = _tv_tiny()
    path = tmp_path / "swin_tiny.pth"
    torch.save(ref.state_dict() if layout == "torchvision-swin3d" else _official_layout(ref.state_dict()), path)
    frames, h, w = clip
    ours = vidbench.create_model("swin3d_tiny", weights=str(path), num_frames=frames, img_size=(h, w))
    assert ours.pretrained_cfg.format == layout and ours.pretrained_cfg.notes == []
    assert assert_same_logits(ours, ref, torch.randn(2, 3, *clip)) <= 1e-4


def test_tiny_windows_shifts_and_padding():
    stages = create_model("swin3d_tiny").config.stages
    assert [s.grid for s in stages] == [(4, 8, 8), (4, 4, 4), (4, 2, 2), (4, 1, 1)]
    assert [s.blocks[1].window for s in stages] == [(2, 3, 3), (2, 3, 3), (2, 2, 2), (2, 1, 1)]
    assert [s.blocks[1].shift for s in stages] == [(1, 1, 1), (1, 1, 1), (1, 0, 0), (1, 0, 0)]
    assert [s.blocks[0].padded_grid for s in stages[:2]] == [(4, 9, 9), (4, 6, 6)]
    assert not any(s.blocks[0].shifted for s in stages)
    with torch.device("meta"):
        t = create_model("swin3d_t").config.stages
    assert [s.grid for s in t] == [(16, 56, 56), (16, 28, 28), (16, 14, 14), (16, 7, 7)]
    assert t[3].blocks[1].window == (8, 7, 7) and t[3].blocks[1].shift == (4, 0, 0)
    assert [s.merge_from for s in t] == [None, (16, 56, 56), (16, 28, 28), (16, 14, 14)]


@pytest.mark.parametrize("name,builder,params", FULL)
def test_full_size_layout_equals_torchvision(name, builder, params):
    """Paper size on the meta device: every converted tensor lands on a vidbench tensor of the
    same shape, parameter counts agree exactly, and the shapes alone say which model it is."""
    with torch.device("meta"):
        ref, ours = getattr(tv_swin, builder)(), create_model(name)
    converted = {k: tuple(v.shape) for k, v in torchvision_swin3d_to_vidbench(ref.state_dict()).items()}
    assert converted == {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters()) == params
    assert model_entry(name).meta.params == params
    for fmt, state in (("torchvision-swin3d", ref.state_dict()),
                       ("videoswin-official", _official_layout(ref.state_dict())["state_dict"])):
        source = Source(Path(f"{name}.pth"), "torch", state)
        assert detect_format(source).name == fmt
        inferred, config = get_format(fmt).infer(source, None, {})
        assert inferred == name
        assert config["window_size"] == (8, 7, 7) and config["depths"] == ours.config.depths
        assert config["num_heads"] == ours.config.num_heads and config["num_classes"] == 400


def test_full_size_weights_equal_torchvision_at_32x64():
    """swin3d_t's full-size weights on a 32x64 clip (1/12 of 32x224's work): 8x7x7 windows pad
    (16 -> 21, 8 -> 14) and shift in T, H and W in stages 1-2; stages 3-4 (4x4, 2x2) shrink the
    window in H and W and shift in time only. The 32x224 forward (~11 s per model on 2 cores) was
    checked by hand: max |diff| 1.0e-6 on the fused path, 0 on the reference path."""
    ref = perturb_(tv_swin.swin3d_t().eval())
    ours = create_model("swin3d_t", img_size=64).eval()
    ours.load_state_dict(torchvision_swin3d_to_vidbench(ref.state_dict()), strict=True)
    stages = ours.config.stages
    assert [s.blocks[1].shift for s in stages] == [(4, 3, 3)] * 2 + [(4, 0, 0)] * 2
    assert stages[0].blocks[0].padded_grid == (16, 21, 21) and stages[3].blocks[0].window == (8, 2, 2)
    assert assert_same_logits(ours, ref, torch.randn(1, 3, 32, 64, 64)) <= 1e-4


def test_gmacs_match_paper_and_torchvision():
    """fvcore on the meta device: the README's 87.9 GFLOPs per 32x224 view (paper: 88) within
    ModelMeta's tolerance, nothing uncounted; without LayerNorm at 16x224 it is torchvision's
    `_ops` to the digit."""
    report = count_flops("swin3d_t")
    meta = model_entry("swin3d_t").meta
    assert report.gmacs == pytest.approx(meta.gmacs, rel=meta.gmacs_tol)
    assert report.uncounted_ops == {}
    sixteen = count_flops("swin3d_t", num_frames=16)
    assert (sixteen.macs - sixteen.by_operator["layer_norm"]) / 1e9 == pytest.approx(43.882, abs=5e-4)


def test_every_block_calls_the_shared_kernel(monkeypatch):
    calls = []
    kernel = swin.scaled_dot_product

    def spy(q, k, v, bias=None, **kw):
        calls.append((tuple(q.shape), None if bias is None else tuple(bias.shape)))
        return kernel(q, k, v, bias=bias, **kw)

    monkeypatch.setattr(swin, "scaled_dot_product", spy)
    model = create_model("swin3d_tiny").eval()
    with torch.no_grad():
        model(torch.randn(2, *model.input_size))
    # unshifted blocks: one call; shifted blocks: one call per clip and chunk of windows
    assert len(calls) == 4 + 2 * 4
    # stage 1: a 4x9x9 padded grid in 2x3x3 windows: 18 windows of 18 tokens, 1 head of 24;
    # (clips x windows) as the batch where the bias broadcasts over it (the fused CPU kernel takes
    # 4-D only); with the per-window shift mask, each clip's windows with their own bias
    assert calls[0] == ((36, 1, 18, 24), (1, 18, 18))  # relative position bias only
    assert calls[1] == calls[2] == ((18, 1, 18, 24), (18, 1, 18, 18))  # plus the shift mask per window


def test_shifted_windows_are_chunked_without_changing_the_output(monkeypatch):
    """Outside training a shifted block's per-window bias is made a few windows at a time
    (WINDOW_BIAS_BYTES): one window per call gives the same logits as all of a clip's windows at
    once, and the same gradients where the bias needs none (frozen position tables); with a bias
    that needs a gradient, one call per clip."""
    torch.manual_seed(0)
    model = create_model("swin3d_tiny").train()
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.05)
    x = torch.randn(2, *model.input_size)
    calls = []
    kernel = swin.scaled_dot_product
    monkeypatch.setattr(swin, "scaled_dot_product", lambda *a, **kw: calls.append(1) or kernel(*a, **kw))

    def run(grad: bool):
        calls.clear()
        model.zero_grad()
        with torch.set_grad_enabled(grad):
            out = model(x)
        if grad:
            out.square().sum().backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        return out.detach(), grads, len(calls)

    whole, _, whole_calls = run(grad=False)
    monkeypatch.setattr(swin, "WINDOW_BIAS_BYTES", 1)  # one window per call
    chunked, _, chunked_calls = run(grad=False)
    shifted = [b for stage in model.config.stages for b in stage.blocks if b.shifted]
    windows = sum(prod(p // w for p, w in zip(b.padded_grid, b.window)) for b in shifted)  # 18 in stage 1
    assert (whole_calls, chunked_calls) == (4 + 2 * len(shifted), 4 + 2 * windows)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-5)

    tables = [p for n, p in model.named_parameters() if n.endswith("relative_position_bias_table")]
    _, _, trained_calls = run(grad=True)
    assert trained_calls == whole_calls  # the bias needs a gradient: one call per clip
    for t in tables:
        t.requires_grad_(False)
    _, frozen_chunked, frozen_chunked_calls = run(grad=True)
    monkeypatch.setattr(swin, "WINDOW_BIAS_BYTES", 16 << 40)
    _, frozen_whole, _ = run(grad=True)
    assert frozen_chunked_calls == chunked_calls
    for a, b in zip(frozen_chunked, frozen_whole):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_shift_mask_is_minus_100_between_regions():
    blk = create_model("swin3d_tiny").config.stages[0].blocks[1]
    regions = swin.shift_regions(blk)  # (18 windows, 18 tokens)
    assert regions.shape == (18, 18)
    assert regions[0].unique().numel() == 1  # an inner window holds one region
    assert regions[-1].unique().numel() == 8  # the corner window mixes 2 x 2 x 2 regions


def test_interface_and_errors():
    model = create_model("swin3d_tiny")
    assert model.input_size == (3, 8, 32, 32) and model.num_features == 192
    assert not hasattr(model, "from_image_backbone")
    model.reset_classifier(7)
    assert model(torch.randn(1, 3, 8, 32, 32)).shape == (1, 7)
    with pytest.raises(ValueError, match="built for 8 frames of 32x32, got 16 frames"):
        model(torch.randn(1, 3, 16, 32, 32))
    with pytest.raises(ValueError, match="width 24 is not divisible by 5 heads"):
        create_model("swin3d_tiny", num_heads=(5, 2, 4, 8))
    with pytest.raises(ValueError, match="window_size must be three positive sizes"):
        create_model("swin3d_tiny", window_size=(7, 7))
    with pytest.raises(TypeError, match="unknown option"):
        create_model("swin3d_tiny", depth=3)


def test_converters_reject_unknown_keys_and_other_families(tmp_path):
    with pytest.raises(ValueError, match="not known"):
        torchvision_swin3d_to_vidbench({"features.0.0.attn.something_new": torch.zeros(1)})
    with pytest.raises(ValueError, match="not known"):
        videoswin_official_to_vidbench({"backbone.absolute_pos_embed": torch.zeros(1)})
    path = tmp_path / "swin_tiny.pth"
    torch.save(_tv_tiny().state_dict(), path)
    with pytest.raises(WeightsError, match="holds a swin checkpoint, not a mvit model"):
        vidbench.create_model("mvit_tiny", weights=str(path))


def test_published_entries():
    entries = {e.name: e for e in list_published() if e.format in ("torchvision-swin3d", "videoswin-official")}
    assert len(entries) == 9
    tv_t = find_published(Path("swin3d_t-7615ae03.pth"))
    assert tv_t.name == "swin3d_t.k400_torchvision" and tv_t.top1 == 77.715 and tv_t.views == (12, 1)
    official = find_published(Path("swin_tiny_patch244_window877_kinetics400_1k.pth"))
    assert official.model == "swin3d_t" and (official.top1, official.views, official.resize_size) == (78.8, (4, 3), 224)
    for entry in entries.values():
        assert entry.num_frames == 32 and entry.sampling_rate == 2 and model_entry(entry.model).family == "swin"
