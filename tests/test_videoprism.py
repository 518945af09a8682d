"""VideoPrism: the model against Hugging Face's (perturbed weights, both kernel paths, the logit cap
biting), HF checkpoints through vidbench.weights, the published sizes, the kernel calls per stage,
multiply-adds and the published entries."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _paper_tables import PAPER
from _weights_helpers import assert_same_logits, perturb_
from einops import rearrange

import vidbench.layers.attention as attention_module
from vidbench.bench import count_flops
from vidbench.layers import attn_backend
from vidbench.models import create_model
from vidbench.weights import Source, check_fit, find_published, get_format, list_published, load_pretrained

transformers = pytest.importorskip("transformers", reason="transformers is in the test extra")
from transformers import (  # noqa: E402
    VideoPrismClipModel,
    VideoPrismConfig,
    VideoPrismForVideoClassification,
    VideoPrismTextConfig,
    VideoPrismVisionConfig,
    VideoPrismVisionModel,
)

pytestmark = pytest.mark.usefixtures("one_thread")

# 4 frames of 32 x 32, 8 x 8 patches (16 per frame); a cap of 2 so that it bites on these logits
TINY = dict(image_size=32, num_frames=4, tubelet_size=[1, 8, 8], hidden_size=48, num_attention_heads=3,
            intermediate_size=96, num_spatial_layers=2, num_temporal_layers=2, attn_logit_softcapping=2.0)


def _config(**kw) -> VideoPrismVisionConfig:
    return VideoPrismVisionConfig(**{**TINY, **kw})


def _perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    # a larger scale than the default so the attention logits reach the cap; every LayerNorm offset,
    # per_dim_scale and the pooling query leave their zero init
    perturb_(model, seed=seed, scale=0.3)
    return model.eval()


def _clip(frames: int = 4, size: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


def _hf_input(x: torch.Tensor) -> torch.Tensor:
    return rearrange(x, "b c t h w -> b t c h w")  # HF takes (B, T, C, H, W)


def _hf_logits(hf: VideoPrismForVideoClassification, x: torch.Tensor) -> torch.Tensor:
    return hf(pixel_values_videos=_hf_input(x)).logits.squeeze(1)  # HF's logits are (B, 1, classes)


def test_hf_classifier_matches_hf_logits(tmp_path: Path) -> None:
    """VideoPrismForVideoClassification saved with save_pretrained, loaded through vidbench.weights:
    logits within 1e-4 on the flex (soft cap as a score_mod) and the reference kernel paths."""
    labels = {i: f"action_{i}" for i in range(5)}
    hf = _perturbed(VideoPrismForVideoClassification(_config(num_labels=5, id2label=labels,
                                                             label2id={v: k for k, v in labels.items()})))
    hf.save_pretrained(tmp_path / "hf")
    model = load_pretrained(tmp_path / "hf")
    cfg, info = model.config, model.pretrained_cfg
    assert info.format == "hf-videoprism" and type(model).__name__ == "VideoPrism"
    assert (cfg.pool, cfg.pool_dim, cfg.softcap, cfg.norm_eps, cfg.act_layer) == ("attention", 96, 2.0, 1e-6, "gelu")
    assert (cfg.num_frames, cfg.patch_size, cfg.embed_dim, cfg.depth, cfg.temporal_depth, cfg.num_classes) == \
        (4, 8, 48, 2, 2, 5)
    x = _clip()
    diff = assert_same_logits(model, lambda v: _hf_logits(hf, v), x)
    with torch.no_grad():
        for backend in ("reference", "flex"):
            with attn_backend(backend):
                print(f"hf-videoprism classifier, {backend}: max |diff| "
                      f"{float((model(x) - _hf_logits(hf, x)).abs().max()):.2e}")
        assert float((_hf_logits(hf, x) - _hf_logits(hf, x.flip(2))).abs().max()) > 1e-3  # frame order seen
    assert diff <= 1e-4
    assert info.class_names == [f"action_{i}" for i in range(5)]
    assert info.preprocess["mean"] == [0.0, 0.0, 0.0] and info.preprocess["std"] == [1.0, 1.0, 1.0]
    assert info.preprocess["crop_size"] == info.preprocess["resize_size"] == 32


def test_the_cap_bites_and_the_model_applies_it() -> None:
    """The comparison above would not see a missing cap unless the cap changes the output: here
    HF without the cap (a cap of 1e6) differs, and vidbench equals HF with and without it."""
    capped = _perturbed(VideoPrismVisionModel(_config()), seed=2)
    loose = VideoPrismVisionModel(_config(attn_logit_softcapping=1e6)).eval()
    loose.load_state_dict(capped.state_dict())
    fmt = get_format("hf-videoprism")
    x = _clip()
    with torch.no_grad():
        want, free = (m(pixel_values_videos=_hf_input(x)).last_hidden_state for m in (capped, loose))
        assert float((want - free).abs().max()) > 1e-2
        for hf, ref, cap in ((capped, want, 2.0), (loose, free, 1e6)):
            ours = create_model("videoprism_tiny", img_size=32, num_frames=4, patch_size=8, embed_dim=48, depth=2,
                                temporal_depth=2, num_heads=3, mlp_ratio=2.0, softcap=cap, pool="mean",
                                num_classes=0).eval()
            ours.load_state_dict(fmt.convert(Source(Path("mem"), "hf-dir", hf.state_dict()), ours))
            for backend in ("reference", "flex"):
                with attn_backend(backend):
                    diff = float((ours.forward_features(x) - ref).abs().max())
                assert diff <= 1e-4, (cap, backend, diff)


def test_hf_vision_model_loads_as_the_encoder(tmp_path: Path) -> None:
    """`VideoPrismVisionModel` (the released encoders' class): no head, nothing random:
    forward_features is HF's last_hidden_state, forward its mean over the tokens."""
    hf = _perturbed(VideoPrismVisionModel(_config()), seed=7)
    hf.save_pretrained(tmp_path / "encoder")
    model = load_pretrained(tmp_path / "encoder")
    assert model.num_classes == 0 and model.config.pool == "mean" and model.pool is None
    x = _clip()
    with torch.no_grad():
        hidden = hf(pixel_values_videos=_hf_input(x)).last_hidden_state
    for backend in ("reference", "flex"):
        with attn_backend(backend), torch.no_grad():
            torch.testing.assert_close(model.forward_features(x), hidden, atol=1e-4, rtol=0)
    assert_same_logits(model, lambda _: hidden.mean(1), x)


def test_clip_model_loads_its_vision_encoder(tmp_path: Path, caplog) -> None:
    """`VideoPrismClipModel` (the LvT checkpoints): the vision encoder loads, the auxiliary layers,
    the contrastive pooler and the text tower do not (a warning says so)."""
    text = VideoPrismTextConfig(vocab_size=50, hidden_size=48, intermediate_size=96, num_hidden_layers=1,
                                num_attention_heads=3, max_position_embeddings=8)
    vision = _config(num_auxiliary_layers=1)
    clip = _perturbed(VideoPrismClipModel(VideoPrismConfig(vision_config=vision.to_dict(), text_config=text.to_dict())),
                      seed=3)
    clip.save_pretrained(tmp_path / "lvt")
    with caplog.at_level("WARNING", logger="vidbench.weights"):
        model = load_pretrained(tmp_path / "lvt")
    assert "vision encoder only" in caplog.text and "text_model" in caplog.text
    assert model.num_classes == 0
    x = _clip()
    with torch.no_grad():
        hidden = clip.video_model.vision_model(pixel_values_videos=_hf_input(x)).last_hidden_state
        torch.testing.assert_close(model.forward_features(x), hidden, atol=1e-4, rtol=0)


def test_layer_norm_offsets_are_converted() -> None:
    """HF's LayerNorm computes with weight + 1 (its init is zero): the converter writes the scale."""
    hf = VideoPrismForVideoClassification(_config(num_labels=3))
    state = get_format("hf-videoprism").convert(Source(Path("mem"), "hf-dir", hf.state_dict()), None)
    norms = [k for k in state if k.endswith(".weight") and "norm" in k.split(".")[-2]]
    assert len(norms) == 2 * 4 + 3 and all(torch.equal(state[k], torch.ones(48)) for k in norms)


def test_paper_sizes_on_meta_device() -> None:
    """Published encoder sizes (README: B 114M, L 354M) against HF's VisionModel counted on the meta
    device: vidbench's encoder (num_classes=0) equals HF's exactly; with HF's head (pool attention,
    400 classes) it equals VideoPrismForVideoClassification; the registry's default (mean pool, a
    400-class linear) is within the README's rounding; the HF state dict converts to the shapes."""
    sizes = {"videoprism_base": dict(),
             "videoprism_large": dict(num_frames=8, hidden_size=1024, num_spatial_layers=24, num_attention_heads=16,
                                      intermediate_size=4096)}
    fmt = get_format("hf-videoprism")
    for name, kw in sizes.items():
        with torch.device("meta"):
            hf = VideoPrismVisionModel(VideoPrismVisionConfig(**kw))
            hf_cls = VideoPrismForVideoClassification(VideoPrismVisionConfig(num_labels=400, **kw))
            encoder, default = create_model(name, num_classes=0), create_model(name)
            with_head = create_model(name, pool="attention")
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        assert count(encoder) == count(hf) and count(with_head) == count(hf_cls)
        assert count(hf) == pytest.approx(PAPER[name]["params"], rel=0.01)
        assert count(default) == pytest.approx(PAPER[name]["params"], rel=PAPER[name]["params_rel_tol"])
        source = Source(Path(name), "hf-dir", hf_cls.state_dict(), config=hf_cls.config.to_dict())
        assert fmt.sniff(source)
        found, config = fmt.infer(source, None, {})
        assert found == name and config["pool"] == "attention" and config["num_classes"] == 400
        with torch.device("meta"):
            native = create_model(found, **config)
        state = fmt.convert(source, native)
        check_fit(state, native, "meta")
        assert {k: tuple(v.shape) for k, v in state.items()} == \
            {k: tuple(v.shape) for k, v in with_head.state_dict().items()}
    assert (count(hf), count(encoder)) == (353_965_056, 353_965_056)  # the last: L


def test_gmacs_per_view_are_counted_whole() -> None:
    """fvcore's count per view at the published inputs, every op with arithmetic counted (the
    reference path: see test_the_fused_count_traces_on_the_reference_path)."""
    counted = {"videoprism_base": 487.18, "videoprism_large": 750.11}
    for name, gmacs in counted.items():
        report = count_flops(name, fused=False)
        assert report.device == "meta" and report.uncounted_ops == {}
        assert report.gmacs == pytest.approx(gmacs, abs=0.01)
    tiny = count_flops("videoprism_tiny", fused=False)
    assert tiny.uncounted_ops == {} and tiny.elementwise_ops.get("aten::softplus") == 1


def test_the_fused_count_traces_on_the_reference_path() -> None:
    """flex cannot run under fvcore's trace nor on the meta device: soft-capped calls take the
    reference path there (softcap_backend)."""
    assert count_flops("videoprism_tiny").macs == count_flops("videoprism_tiny", fused=False).macs


def test_one_kernel_call_per_block_per_stage(monkeypatch) -> None:
    """The spatial blocks attend within a frame (B*T sequences of H'*W' tokens), the temporal ones
    within a position (B*H'*W' sequences of T), both with the cap; the pooler once, uncapped, at
    HF's width (mlp width / heads = 128 per head)."""
    calls = []
    kernel = attention_module.scaled_dot_product

    def counting(q, *args, **kwargs):
        calls.append((tuple(q.shape), kwargs.get("softcap")))
        return kernel(q, *args, **kwargs)

    monkeypatch.setattr(attention_module, "scaled_dot_product", counting)
    import vidbench.models.videoprism as videoprism_module
    monkeypatch.setattr(videoprism_module, "scaled_dot_product", counting)
    model = create_model("videoprism_tiny").eval()  # 8 frames of 32 x 32, patch 8: 16 tokens per frame
    with torch.no_grad():
        model(torch.randn(1, *model.input_size))
    assert calls == [((8, 3, 16, 32), 50.0)] * 2 + [((16, 3, 8, 32), 50.0)] * 2 + [((1, 3, 1, 128), None)]


def test_trains_on_cpu() -> None:
    """Gradients through the capped kernel on the CPU (the reference path: CPU flex has no backward)."""
    model = create_model("videoprism_tiny").train()
    loss = model(torch.randn(2, *model.input_size)).logsumexp(1).mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert float(model.pool.per_dim_scale.grad.abs().sum()) > 0


def test_published_entries() -> None:
    entries = {w.name: w for w in list_published() if w.format == "hf-videoprism"}
    assert set(entries) == {"videoprism_base.public_v1_hf", "videoprism_large.public_v1_hf",
                            "videoprism_base.lvt_public_v1_hf", "videoprism_large.lvt_public_v1_hf"}
    hub = Path("/cache/hub/models--google--videoprism-base-f16r288/snapshots/0123abcd")
    base = find_published(hub)
    assert base.name == "videoprism_base.public_v1_hf" and base.num_frames == 16
    large = find_published(Path("videoprism-large-f8r288"))
    assert large.model == "videoprism_large" and large.num_frames == 8
    for w in entries.values():
        assert (w.crop_size, w.resize_size, w.mean, w.std, w.top1, w.gmacs) == (288, 288, (0, 0, 0), (1, 1, 1), None,
                                                                             None)
        with torch.device("meta"):
            model = create_model(w.model, **w.overrides)
        assert model.input_size == (3, w.num_frames, 288, 288) and model.num_classes == 0


def test_rows_name_the_kernels_the_capped_calls_run() -> None:
    """Eagerly the 4 capped calls run the reference path and the pooler SDPA; compiled they run flex
    (inference; CPU training stays on the reference, CPU flex having no backward)."""
    from vidbench.bench.measure import attention_kernels

    model = create_model("videoprism_tiny").eval()
    x = torch.randn(1, *model.input_size)
    assert attention_kernels(model, x).endswith(", reference x4")
    assert attention_kernels(model, x, compiled=True).startswith("flex (soft-capped")
    assert attention_kernels(model, x, compiled=True, train=True).endswith(", reference x4")
