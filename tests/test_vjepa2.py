"""V-JEPA 2: the encoder and the attentive-probe classifier against Hugging Face's `VJEPA2Model` /
`VJEPA2ForVideoClassification` (perturbed weights, both kernel paths, through directories saved
by `save_pretrained`), paper sizes on the meta device, fvcore's count, the one-kernel rule, the
converter's refusals and the published entries."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _paper_tables import PAPER
from _weights_helpers import assert_same_logits, perturb_
from einops import rearrange

import vidbench.layers.attention as attention_module
from vidbench.bench import count_flops
from vidbench.layers import fused_attn
from vidbench.models import create_model, model_entry
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
from transformers import VJEPA2Config, VJEPA2ForVideoClassification, VJEPA2Model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

# head_dim 20: three rotary segments of 6 channels and 2 channels left unrotated
TINY = dict(crop_size=32, patch_size=8, frames_per_clip=8, tubelet_size=2, hidden_size=80, num_attention_heads=4,
            num_hidden_layers=2, num_pooler_layers=2, pred_hidden_size=24, pred_num_attention_heads=2,
            pred_num_hidden_layers=1, num_labels=5)


def _config(**kw) -> VJEPA2Config:
    labels = {i: f"action_{i}" for i in range(TINY["num_labels"])}
    return VJEPA2Config(**{**TINY, "id2label": labels, "label2id": {v: k for k, v in labels.items()}, **kw})


def _clip(frames: int = 8, size: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


def _hf_input(x: torch.Tensor) -> torch.Tensor:
    return rearrange(x, "b c t h w -> b t c h w")  # HF takes (B, T, C, H, W)


def _save(hf: torch.nn.Module, path: Path) -> Path:
    hf.save_pretrained(path)
    transformers.VJEPA2VideoProcessor(crop_size=32).save_pretrained(path)  # short side int(32 * 256 / 224) = 36
    return path


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory) -> tuple:
    torch.manual_seed(0)  # HF's init draws from the global generator
    hf = perturb_(VJEPA2ForVideoClassification(_config()), seed=0).eval()
    return hf, _save(hf, tmp_path_factory.mktemp("vjepa2") / "cls")


def _hf_tokens(hf: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return hf.vjepa2(pixel_values_videos=_hf_input(x), skip_predictor=True).last_hidden_state


def test_hf_classifier_matches_hf_logits(classifier_dir) -> None:
    hf, path = classifier_dir
    model = load_pretrained(path)
    cfg, info = model.config, model.pretrained_cfg
    assert info.format == "hf-vjepa2" and type(model).__name__ == "VJEPA2"
    assert (cfg.pooling, cfg.probe_depth, cfg.probe_heads, cfg.norm_eps, cfg.num_classes) == ("attentive", 2, 4, 1e-6, 5)
    assert (cfg.num_frames, cfg.tubelet_size, cfg.embed_dim, cfg.num_heads, cfg.img_size) == (8, (2, 8, 8), 80, 4, 32)
    ref = lambda x: hf(pixel_values_videos=_hf_input(x)).logits  # noqa: E731
    x = _clip()
    diff = assert_same_logits(model, ref, x)
    print(f"hf-vjepa2 VJEPA2ForVideoClassification: max |diff| {diff:.2e}")
    with torch.no_grad():  # the comparison sees frame order and the rows / columns (the rotary positions)
        assert float((ref(x) - ref(x.flip(2))).abs().max()) > 1e-4
        assert float((ref(x) - ref(x.transpose(3, 4))).abs().max()) > 1e-4
    assert info.class_names == [f"action_{i}" for i in range(5)]
    assert info.preprocess_source == "checkpoint config (hf-vjepa2)"
    assert info.preprocess["mean"] == [0.485, 0.456, 0.406] and info.preprocess["crop_size"] == 32
    assert info.preprocess["resize_size"] == 36


def test_the_released_rope_layout_is_needed(classifier_dir) -> None:
    """V-JEPA 2's frequency layout (each angle vector repeated, not interleaved) is what the
    weights were trained with: the textbook layout gives other tokens (by 100x the tolerance), so
    the comparison sees the rotary positions."""
    hf, path = classifier_dir
    x = _clip()
    tokens = _hf_tokens(hf, x)
    with torch.no_grad():
        assert float((load_pretrained(path).forward_features(x) - tokens).abs().max()) < 1e-4
        assert float((load_pretrained(path, rope_layout="interleaved").forward_features(x) - tokens).abs().max()) > 1e-2


def test_fewer_frames_match_hf(classifier_dir) -> None:
    """Positions come from the input's own grid: a 4-frame clip through the 8-frame checkpoint
    equals HF's model (which takes any frame count) on the same clip."""
    hf, path = classifier_dir
    model = load_pretrained(path, num_frames=4)
    assert_same_logits(model, lambda x: hf(pixel_values_videos=_hf_input(x)).logits, _clip(frames=4))


def test_hf_encoder_loads_mean_pooled(tmp_path: Path) -> None:
    """`VJEPA2Model` (encoder + predictor): the encoder loads with no head; forward_features is
    HF's last_hidden_state on both kernel paths; the pooled features are its mean."""
    hf = perturb_(VJEPA2Model(_config()), seed=7).eval()
    model = load_pretrained(_save(hf, tmp_path / "encoder"))
    assert model.num_classes == 0 and model.config.pooling == "mean" and model.pool is None
    x = _clip()
    with torch.no_grad():
        hidden = hf(pixel_values_videos=_hf_input(x), skip_predictor=True).last_hidden_state
        for fused in (True, False):
            with fused_attn(fused):
                diff = float((model.forward_features(x) - hidden).abs().max())
            assert diff <= 1e-4, (fused, diff)
    print(f"hf-vjepa2 VJEPA2Model: max |diff| {diff:.2e}")
    assert_same_logits(model, lambda _: hidden.mean(1), x)


def test_attentive_probe_on_a_released_encoder() -> None:
    """The probe on top of the encoder is HF's pooler + classifier on the encoder's tokens."""
    hf = perturb_(VJEPA2ForVideoClassification(_config(num_pooler_layers=3)), seed=11).eval()
    source = Source(Path("hf-dir"), "hf-dir", hf.state_dict(), config=hf.config.to_dict())
    fmt = get_format("hf-vjepa2")
    name, config = fmt.infer(source, None, {})
    model = create_model(name, **config)
    model.load_state_dict(fmt.convert(source, model))
    x = _clip(seed=4)
    with torch.no_grad():
        tokens = hf.vjepa2(pixel_values_videos=_hf_input(x), skip_predictor=True).last_hidden_state
        torch.testing.assert_close(model.forward_head(tokens, pre_logits=True), hf.pooler(tokens), atol=1e-5, rtol=0)
    assert_same_logits(model, lambda x: hf(pixel_values_videos=_hf_input(x)).logits, x)


SIZES = [("vjepa2_vitl", {}), ("vjepa2_vith", dict(hidden_size=1280, num_hidden_layers=32)),
         ("vjepa2_vitg", dict(hidden_size=1408, num_hidden_layers=40, num_attention_heads=22, mlp_ratio=48 / 11)),
         ("vjepa2_vitg_384", dict(hidden_size=1408, num_hidden_layers=40, num_attention_heads=22, mlp_ratio=48 / 11,
                                  crop_size=384))]


@pytest.mark.parametrize("name,hf_kw", SIZES, ids=[n for n, _ in SIZES])
def test_paper_sizes_on_meta_device(name: str, hf_kw: dict) -> None:
    """The registry's encoders count exactly HF's encoder (the predictor excluded) and the
    published figure within its rounding; HF's classifier at that size converts to the same
    shapes as the registry model with the probe."""
    with torch.device("meta"):
        hf_encoder = VJEPA2Model(VJEPA2Config(**hf_kw)).encoder
        hf = VJEPA2ForVideoClassification(VJEPA2Config(**hf_kw, num_labels=174))
        ours = create_model(name)
        probe = create_model(name, pooling="attentive", num_classes=174)
    counted = sum(p.numel() for p in ours.parameters())
    assert counted == sum(p.numel() for p in hf_encoder.parameters()) == PAPER[name]["code_params"]
    assert counted == pytest.approx(PAPER[name]["params"], rel=PAPER[name]["params_rel_tol"])
    hf_classifier = sum(p.numel() for n, p in hf.named_parameters() if not n.startswith("vjepa2.predictor."))
    assert sum(p.numel() for p in probe.parameters()) == hf_classifier
    fmt = get_format("hf-vjepa2")
    source = Source(Path("vjepa2-meta"), "hf-dir", hf.state_dict(), config=hf.config.to_dict())
    assert fmt.sniff(source)
    inferred, config = fmt.infer(source, None, {})
    assert model_entry(inferred).family == "vjepa2" and config["pooling"] == "attentive"
    state = fmt.convert(source, probe)
    check_fit(state, probe, "meta")
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in probe.state_dict().items()}


def test_flops_count_every_matmul() -> None:
    """fvcore on ViT-L/16 at 64x256 (8192 tokens): nothing with arithmetic uncounted, and the
    total is the hand count of the tubelet conv, the linear layers and attention (q k^T and the
    weighted sum), plus LayerNorm at fvcore's 5 per element. 5787.4 GMACs per view."""
    report = count_flops("vjepa2_vitl")
    assert report.device == "meta" and report.uncounted_ops == {}
    n, c, depth = 32 * 16 * 16, 1024, 24
    conv = n * c * 3 * 2 * 16 * 16
    block = n * (4 * c * c + 2 * c * 4 * c) + 2 * n * n * c
    norms = (2 * depth + 1) * 5 * n * c
    assert report.macs == pytest.approx(conv + depth * block + norms, rel=1e-4)
    assert round(report.macs / 1e9, 1) == 5787.4


def test_one_kernel_call_per_block_and_probe(monkeypatch) -> None:
    calls = []
    kernel = attention_module.scaled_dot_product

    def counting(*args, **kwargs):
        calls.append(tuple(args[0].shape))
        return kernel(*args, **kwargs)

    monkeypatch.setattr(attention_module, "scaled_dot_product", counting)
    import vidbench.layers.attention_pool as pool_module

    monkeypatch.setattr(pool_module, "scaled_dot_product", counting)
    model = create_model("vjepa2_tiny").eval()
    with torch.no_grad():
        model(torch.randn(1, *model.input_size))
    cfg = model.config
    assert len(calls) == cfg.depth + cfg.probe_depth + 1
    assert calls[:-1] == [(1, 4, 4 * 4 * 4, 20)] * (cfg.depth + cfg.probe_depth)  # joint over the 64 tokens
    assert calls[-1] == (1, 4, 1, 20)  # the learned query


def test_hf_configs_vidbench_cannot_run_are_refused() -> None:
    hf = VJEPA2ForVideoClassification(_config())
    fmt = get_format("hf-vjepa2")
    for change, word in (({"hidden_act": "gelu_new"}, "hidden_act"), ({"num_pooler_layers": 3}, "num_pooler_layers"),
                         ({"crop_size": [32, 48]}, "square")):
        source = Source(Path("hf-dir"), "hf-dir", hf.state_dict(), config={**hf.config.to_dict(), **change})
        with pytest.raises(WeightsError, match=word):
            fmt.infer(source, None, {})
    state = {**hf.state_dict(), "pooler.extra.weight": torch.zeros(1)}
    source = Source(Path("hf-dir"), "hf-dir", state, config=hf.config.to_dict())
    model = create_model("vjepa2_tiny", **fmt.infer(source, None, {})[1])
    with pytest.raises(WeightsError, match="pooler.extra.weight"):
        fmt.convert(source, model)
    source = Source(Path("hf-dir"), "hf-dir", {k: v for k, v in hf.state_dict().items() if "key" not in k},
                    config=hf.config.to_dict())
    with pytest.raises(WeightsError, match="lacks the k part"):
        fmt.convert(source, model)


def test_published_entries() -> None:
    entry = find_published(Path("models--facebook--vjepa2-vitl-fpc16-256-ssv2"))
    assert entry is not None and entry.model == "vjepa2_vitl_probe" and entry.format == "hf-vjepa2"
    assert (entry.num_frames, entry.sampling_rate, entry.views, entry.top1, entry.crop_size) == (16, 4, (2, 3), 73.7, 256)
    entries = [w for w in list_published() if w.format == "hf-vjepa2"]
    assert {w.files[0] for w in entries} == {
        "vjepa2-vitl-fpc64-256", "vjepa2-vith-fpc64-256", "vjepa2-vitg-fpc64-256", "vjepa2-vitg-fpc64-384",
        "vjepa2-vitl-fpc16-256-ssv2", "vjepa2-vitl-fpc32-256-diving48", "vjepa2-vitg-fpc64-384-ssv2",
        "vjepa2-vitg-fpc32-384-diving48"}
    for w in entries:
        with torch.device("meta"):
            model = create_model(w.model, **w.overrides)
        assert model.input_size == (3, w.num_frames, w.crop_size, w.crop_size)
        assert (model.config.pooling == "attentive") == (w.top1 is not None)


def test_config_refusals() -> None:
    for kw, word in ((dict(pooling="max"), "unknown pooling"), (dict(rope_layout="halves"), "unknown rope_layout"),
                     (dict(probe_heads=3), "divisible by probe_heads"), (dict(norm_eps=0.0), "norm_eps must be > 0"), (dict(probe_norm_eps=0.0), "epsilons must be > 0"),
                     (dict(embed_dim=20, num_heads=4), "head_dim >= 6")):
        with pytest.raises(ValueError, match=word):
            create_model("vjepa2_tiny", **kw)
    official = create_model("vjepa2_tiny", probe_heads=2, probe_norm_eps=1e-5)  # the official probe's choices
    assert official.pool.attn.num_heads == official.pool_blocks[0].attn.num_heads == 2
    assert official.pool.norm1.eps == official.pool_blocks[0].norm1.eps == 1e-5 and official.norm.eps == 1e-6
