"""VideoMAE: the model against Hugging Face's (perturbed weights, both kernel paths), its
published sizes, the k-bias handling, image initialisation and the one-kernel rule."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from _paper_tables import PAPER
from _weights_helpers import assert_same_logits, perturb_
from einops import rearrange

import vidbench.layers.attention as attention_module
from vidbench.bench import count_flops
from vidbench.models import create_model, model_entry
from vidbench.models.videomae import sinusoid_table
from vidbench.weights import (
    Source,
    WeightsError,
    check_fit,
    find_published,
    get_format,
    list_published,
    load_pretrained,
)

transformers = pytest.importorskip("transformers", reason="transformers is in the test extra")
from transformers import (  # noqa: E402
    VideoMAEConfig,
    VideoMAEForPreTraining,
    VideoMAEForVideoClassification,
    VideoMAEModel,
)
from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=48, num_hidden_layers=2,
            num_attention_heads=3, intermediate_size=192, num_labels=5, decoder_hidden_size=24,
            decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=48)
PREPROCESSOR = {"image_processor_type": "VideoMAEImageProcessor", "image_mean": [0.485, 0.456, 0.406],
                "image_std": [0.229, 0.224, 0.225], "crop_size": {"height": 32, "width": 32},
                "size": {"shortest_edge": 36}}


def _config(**kw) -> VideoMAEConfig:
    labels = {i: f"action_{i}" for i in range(TINY["num_labels"])}
    return VideoMAEConfig(**{**TINY, "id2label": labels, "label2id": {v: k for k, v in labels.items()}, **kw})


def _perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    perturb_(model, seed=seed)  # every weight, q_bias and v_bias included (HF's table is no buffer)
    return model.eval()


def _clip(frames: int = 4, size: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


def _hf_input(x: torch.Tensor) -> torch.Tensor:
    return rearrange(x, "b c t h w -> b t c h w")  # HF takes (B, T, C, H, W)


@pytest.mark.parametrize("mean_pooling,qv_bias", [(True, True), (False, True), (True, False)])
def test_hf_classifier_matches_hf_logits(tmp_path: Path, mean_pooling: bool, qv_bias: bool) -> None:
    hf = _perturbed(VideoMAEForVideoClassification(_config(use_mean_pooling=mean_pooling, qv_bias=qv_bias)))
    hf.save_pretrained(tmp_path / "hf")
    (tmp_path / "hf" / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR))
    model = load_pretrained(tmp_path / "hf")
    cfg, info = model.config, model.pretrained_cfg
    assert info.format == "hf-videomae" and type(model).__name__ == "VideoMAE"
    assert (cfg.use_mean_pooling, cfg.qkv_bias, cfg.norm_eps, cfg.fc_norm_eps) == (mean_pooling, qv_bias, 1e-12, 1e-5)
    assert (cfg.num_frames, cfg.tubelet_size, cfg.embed_dim, cfg.num_heads, cfg.num_classes) == (4, (2, 8, 8), 48, 3, 5)
    ref = lambda x: hf(pixel_values=_hf_input(x)).logits  # noqa: E731
    x = _clip()
    diff = assert_same_logits(model, ref, x)
    print(f"hf-videomae mean_pooling={mean_pooling} qv_bias={qv_bias}: max |diff| {diff:.2e}")
    with torch.no_grad():  # the comparison sees frame order and token positions
        assert float((ref(x) - ref(x.flip(2))).abs().max()) > 1e-3
    if qv_bias:  # the converted k bias is zero, q / v come from q_bias / v_bias
        bias = model.blocks[0].attn.qkv.bias.detach()
        assert not bias[48:96].any() and bias[:48].abs().sum() > 0 and bias[96:].abs().sum() > 0
    assert info.class_names == [f"action_{i}" for i in range(5)]
    assert info.preprocess_source == "checkpoint config (hf-videomae)"
    assert info.preprocess["mean"] == [0.485, 0.456, 0.406] and info.preprocess["crop_size"] == 32
    assert info.preprocess["resize_size"] == 36


def test_hf_backbone_without_head(tmp_path: Path) -> None:
    """`VideoMAEModel` (mean pooling, so no norm after the blocks): forward_features is HF's
    last_hidden_state; the added identity fc_norm normalises the mean of the tokens."""
    hf = _perturbed(VideoMAEModel(_config()), seed=7)
    hf.save_pretrained(tmp_path / "backbone")
    model = load_pretrained(tmp_path / "backbone")
    assert model.num_classes == 0 and model.pretrained_cfg.class_names is None
    x = _clip()
    with torch.no_grad():
        hidden = hf(pixel_values=_hf_input(x)).last_hidden_state
    assert_same_logits(model, lambda _: F.layer_norm(hidden.mean(1), (48,), eps=1e-5), x)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), hidden, atol=1e-5, rtol=0)


def test_hf_pretraining_loads_its_encoder(tmp_path: Path, caplog) -> None:
    """`VideoMAEForPreTraining` as published (use_mean_pooling=False: a final norm): the encoder
    loads, the decoder does not (a warning says so)."""
    hf = _perturbed(VideoMAEForPreTraining(_config(use_mean_pooling=False)), seed=3)
    hf.save_pretrained(tmp_path / "pretrain")
    with caplog.at_level("WARNING", logger="vidbench.weights"):
        model = load_pretrained(tmp_path / "pretrain")
    assert "encoder only" in caplog.text
    assert model.num_classes == 0 and not model.config.use_mean_pooling
    x = _clip()
    with torch.no_grad():
        hidden = hf.videomae(pixel_values=_hf_input(x)).last_hidden_state
        torch.testing.assert_close(model.forward_features(x), hidden, atol=1e-5, rtol=0)
    assert_same_logits(model, lambda _: hidden[:, 0], x)


def test_more_frames_rebuild_the_sinusoid_table_like_hf(tmp_path: Path) -> None:
    hf = _perturbed(VideoMAEForVideoClassification(_config()), seed=5)
    hf.save_pretrained(tmp_path / "hf")
    model = load_pretrained(tmp_path / "hf", num_frames=8)
    hf8 = VideoMAEForVideoClassification(_config(num_frames=8)).eval()
    hf8.load_state_dict(hf.state_dict())  # positions are not weights
    assert_same_logits(model, lambda x: hf8(pixel_values=_hf_input(x)).logits, _clip(frames=8))


def test_sinusoid_table_is_hfs() -> None:
    torch.testing.assert_close(sinusoid_table(1568, 48), get_sinusoid_encoding_table(1568, 48), atol=1e-6, rtol=0)
    model = create_model("videomae_tiny")
    assert "pos_embed" not in model.state_dict() and not model.pos_embed.requires_grad


def test_paper_size_on_meta_device() -> None:
    """HF's VideoMAEConfig defaults (ViT-B, 16x224) with 400 labels convert to videomae_base's
    shapes; vidbench holds one zero k bias per block more than HF (depth x width)."""
    with torch.device("meta"):
        hf = VideoMAEForVideoClassification(VideoMAEConfig(num_labels=400))
        ours = create_model("videomae_base")
    fmt = get_format("hf-videomae")
    source = Source(Path("videomae-meta"), "hf-dir", hf.state_dict(), config=hf.config.to_dict())
    assert fmt.sniff(source)
    name, config = fmt.infer(source, None, {})
    assert name == "videomae_base" and config["norm_eps"] == 1e-12
    with torch.device("meta"):
        native = create_model(name, **config)
    state = fmt.convert(source, native)
    check_fit(state, native, "meta")
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    ours_params = sum(p.numel() for p in ours.parameters())
    hf_params = sum(p.numel() for p in hf.parameters())
    assert sum(v.numel() for v in state.values()) == ours_params == 86_544_016
    assert ours_params - hf_params == 12 * 768  # the zero k biases
    assert abs(hf_params / 87e6 - 1) < 0.01  # paper: 87M


def test_flops_match_the_paper() -> None:
    """VideoMAE-B 16x224: 180 GMACs per view (paper, mmaction2); fvcore's count is 180.49 (+0.27%:
    the papers' figure is rounded and fvcore adds LayerNorm at 5 per element, 0.14 G here)."""
    report = count_flops("videomae_base")
    assert report.device == "meta" and report.uncounted_ops == {}
    paper = PAPER["videomae_base"]  # 180 (the registry quotes it: tests/test_paper_sizes.py)
    assert report.macs / 1e9 == pytest.approx(paper["gmacs"], rel=paper["gmacs_rel_tol"])


def test_one_kernel_call_per_block(monkeypatch) -> None:
    calls = []
    kernel = attention_module.scaled_dot_product

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return kernel(*args, **kwargs)

    monkeypatch.setattr(attention_module, "scaled_dot_product", counting)
    model = create_model("videomae_tiny").eval()
    with torch.no_grad():
        model(torch.randn(1, *model.input_size))
    assert len(calls) == model.config.depth
    assert all(shape == (1, 3, 4 * 4 * 4, 64) for shape in calls)  # joint: all 64 tubelet tokens


def test_k_bias_is_inert() -> None:
    """A k bias adds q . b_k to a whole row of attention logits: softmax ignores it, so the
    trainable k third of the fused bias changes nothing and gets no gradient."""
    model = create_model("videomae_tiny").train()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    x = torch.randn(2, *model.input_size)
    model.eval()
    with torch.no_grad():
        before = model(x)
        for blk in model.blocks:
            blk.attn.qkv.bias[192:384].normal_(0, 1.0)
        torch.testing.assert_close(model(x), before, atol=1e-5, rtol=0)
    model(x).sum().backward()
    grad = model.blocks[0].attn.qkv.bias.grad
    assert grad[192:384].abs().max() < 1e-5 * grad[:192].abs().max()


def _static_clip(image: torch.Tensor, frames: int) -> torch.Tensor:
    return image[:, :, None].expand(-1, -1, frames, -1, -1).contiguous()


@pytest.mark.parametrize("init", ["central_frame", "inflation"])
def test_from_image_backbone_on_a_static_clip(init: str) -> None:
    """On a clip of identical frames a central-frame (or inflated) tubelet gives every temporal
    index the image's patch tokens. With VideoMAE's own positions (different sinusoids per time
    index) nothing more holds; with the image's positions at every time index, joint attention
    over T' copies of the same tokens is attention over one copy, so the block outputs are the
    image ViT's (class_token=False) at every time index, and the logits are the image ViT's
    modules applied VideoMAE's way: head(norm(mean of tokens))."""
    vit = create_model("vit_tiny", img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=6,
                       class_token=False, global_pool="avg")
    with torch.no_grad():
        for p in vit.parameters():
            p.normal_(0, 0.05)
    vit.eval()
    video = create_model("videomae_tiny", num_frames=4, embed_dim=48, depth=2, num_classes=6)
    video.from_image_backbone(vit, init=init).eval()
    assert not any(b.attn.qkv.bias[48:96].any() for b in video.blocks)  # VideoMAE has no k bias
    image = torch.randn(2, 3, 32, 32)
    clip = _static_clip(image, 4)
    with torch.no_grad():
        tokens = vit.patch_embed(image)  # (B, 16, C)
        torch.testing.assert_close(video.patch_embed(clip), tokens.repeat(1, 2, 1), atol=1e-5, rtol=0)
        video.pos_embed.copy_(vit.pos_embed.repeat(1, 2, 1))  # the image's positions at each time index
        x = tokens + vit.pos_embed
        for blk in vit.blocks:
            x = blk(x)
        torch.testing.assert_close(video.forward_features(clip), x.repeat(1, 2, 1), atol=1e-5, rtol=0)
        torch.testing.assert_close(video(clip), vit.head(vit.norm(x.mean(1))), atol=1e-5, rtol=0)


def test_image_backbone_must_fit() -> None:
    vit = create_model("vit_tiny", img_size=32, patch_size=8, depth=2, num_heads=3, num_classes=10)
    with pytest.raises(ValueError, match="depth=4 vs image depth=2"):
        create_model("videomae_tiny").from_image_backbone(vit)


def test_hf_configs_vidbench_cannot_run_are_refused() -> None:
    hf = VideoMAEForVideoClassification(_config())
    for change, word in (({"hidden_act": "gelu_new"}, "hidden_act"), ({"use_mean_pooling": False}, "use_mean_pooling")):
        source = Source(Path("hf-dir"), "hf-dir", hf.state_dict(), config={**hf.config.to_dict(), **change})
        with pytest.raises(WeightsError, match=word):
            get_format("hf-videomae").infer(source, None, {})


def test_published_entries() -> None:
    base = find_published(Path("models/videomae-base-finetuned-kinetics"))
    assert base is not None and base.model == "videomae_base" and base.format == "hf-videomae"
    assert (base.num_frames, base.sampling_rate, base.views, base.top1, base.gmacs) == (16, 4, (5, 3), 81.5, 180.0)
    entries = list_published()
    names = {w.model for w in entries if w.format == "hf-videomae"}
    assert names == {"videomae_small", "videomae_base", "videomae_large", "videomae_huge"}
    for w in entries:
        if w.format == "hf-videomae":
            with torch.device("meta"):
                model = create_model(w.model, **w.overrides)
            assert model.input_size == (3, w.num_frames, w.crop_size, w.crop_size)
            assert w.gmacs in (None, model_entry(w.model).meta.gmacs)
