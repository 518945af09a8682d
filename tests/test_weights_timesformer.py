"""TimeSformer checkpoints: Hugging Face directories and official .pyth files load into vidbench's
TimeSformer with the same logits as the Hugging Face model, for every attention type."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

import pytest
import torch
from _weights_helpers import assert_same_logits, perturb_
from einops import rearrange

from vidbench.models import create_model
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
from transformers import TimesformerConfig, TimesformerForVideoClassification, TimesformerModel  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

HF_TYPES = {"divided": "divided_space_time", "joint": "joint_space_time", "space_only": "space_only"}
TINY = dict(image_size=32, patch_size=8, num_frames=4, hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
            intermediate_size=192, num_labels=5)
PREPROCESSOR = {"image_processor_type": "VideoMAEImageProcessor", "image_mean": [0.45, 0.45, 0.45],
                "image_std": [0.225, 0.225, 0.225], "crop_size": {"height": 32, "width": 32},
                "size": {"shortest_edge": 36}}


def _hf(attention: str, seed: int = 0) -> TimesformerForVideoClassification:
    labels = {i: f"action_{i}" for i in range(TINY["num_labels"])}
    cfg = TimesformerConfig(**TINY, attention_type=HF_TYPES[attention], id2label=labels,
                            label2id={v: k for k, v in labels.items()})
    torch.manual_seed(seed)
    return perturb_(TimesformerForVideoClassification(cfg), seed=seed).eval()


def _save_hf(model: TimesformerForVideoClassification, path: Path) -> Path:
    model.save_pretrained(path)
    (path / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR))
    return path


def _hf_logits(model: TimesformerForVideoClassification):
    """HF's forward on vidbench's (B, C, T, H, W) layout."""
    return lambda x: model(pixel_values=rearrange(x, "b c t h w -> b t c h w")).logits


def _hf_space_only_official(model: TimesformerForVideoClassification):
    """HF's modules with the official space-only pooling (tokens averaged over frames, then the
    norm); HF's own forward classifies each frame instead."""
    def run(x: torch.Tensor) -> torch.Tensor:
        h = model.timesformer.embeddings(rearrange(x, "b c t h w -> b t c h w"))  # (B*T, 1 + S, C)
        for layer in model.timesformer.encoder.layer:
            h = layer(h)[0]
        h = rearrange(h, "(b t) n c -> b t n c", t=x.shape[2]).mean(dim=1)
        return model.classifier(model.timesformer.layernorm(h)[:, 0])
    return run


# test-side key map: HF names -> official facebookresearch/TimeSformer names (vit.py's modules)
_HF_LAYER_TO_OFFICIAL = [
    ("layernorm_before", "norm1"), ("attention.attention.qkv", "attn.qkv"), ("attention.output.dense", "attn.proj"),
    ("layernorm_after", "norm2"), ("intermediate.dense", "mlp.fc1"), ("output.dense", "mlp.fc2"),
    ("temporal_layernorm", "temporal_norm1"), ("temporal_attention.attention.qkv", "temporal_attn.qkv"),
    ("temporal_attention.output.dense", "temporal_attn.proj"), ("temporal_dense", "temporal_fc"),
]
_HF_TOP_TO_OFFICIAL = [
    ("timesformer.embeddings.cls_token", "model.cls_token"),
    ("timesformer.embeddings.position_embeddings", "model.pos_embed"),
    ("timesformer.embeddings.time_embeddings", "model.time_embed"),
    ("timesformer.embeddings.patch_embeddings.projection.weight", "model.patch_embed.proj.weight"),
    ("timesformer.embeddings.patch_embeddings.projection.bias", "model.patch_embed.proj.bias"),
    ("timesformer.layernorm.weight", "model.norm.weight"), ("timesformer.layernorm.bias", "model.norm.bias"),
    ("classifier.weight", "model.head.weight"), ("classifier.bias", "model.head.bias"),
]


def _key_map(depth: int) -> Dict[str, str]:
    out = dict(_HF_TOP_TO_OFFICIAL)
    for i in range(depth):
        for hf, off in _HF_LAYER_TO_OFFICIAL:
            for p in ("weight", "bias"):
                out[f"timesformer.encoder.layer.{i}.{hf}.{p}"] = f"model.blocks.{i}.{off}.{p}"
    return out


def hf_to_official(state: Dict[str, torch.Tensor], depth: int) -> Dict[str, torch.Tensor]:
    keys = _key_map(depth)
    missing = sorted(set(state) - set(keys))
    assert not missing, f"HF keys without an official name: {missing}"
    return {keys[k]: v for k, v in state.items()}


def official_to_hf(state: Dict[str, torch.Tensor], depth: int) -> Dict[str, torch.Tensor]:
    inverse = {v: k for k, v in _key_map(depth).items()}
    return {inverse[k]: v for k, v in state.items()}


def _clip(frames: int = 4, size: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("attention", ["divided", "joint", "space_only"])
def test_hf_directory_matches_hf_logits(tmp_path: Path, attention: str) -> None:
    hf = _hf(attention)
    model = load_pretrained(_save_hf(hf, tmp_path / f"hf-{attention}"))
    assert model.pretrained_cfg.format == "hf-timesformer" and model.config.attention_type == attention
    x = _clip()
    ref = _hf_space_only_official(hf) if attention == "space_only" else _hf_logits(hf)
    diff = assert_same_logits(model, ref, x)
    print(f"hf {attention}: max |diff| {diff:.2e}")
    if attention != "space_only":  # the comparison sees frame order: reversing time moves the logits
        with torch.no_grad():
            assert float((ref(x) - ref(x.flip(2))).abs().max()) > 1e-3
    if attention == "space_only":  # on identical frames HF's per-frame logits are the clip's
        same = x[:, :, :1].expand_as(x).contiguous()
        with torch.no_grad():
            per_frame = rearrange(_hf_logits(hf)(same), "(b t) k -> b t k", t=4)
            assert torch.allclose(model(same), per_frame[:, 0], atol=1e-4)
    info = model.pretrained_cfg
    assert info.class_names == [f"action_{i}" for i in range(5)]
    assert info.preprocess_source == "checkpoint config (hf-timesformer)"
    assert info.preprocess["mean"] == [0.45] * 3 and info.preprocess["crop_size"] == 32
    assert info.preprocess["resize_size"] == 36


def test_hf_backbone_without_classifier(tmp_path: Path) -> None:
    """A `TimesformerModel` directory: no head, forward gives the final-norm cls token."""
    hf = TimesformerModel(TimesformerConfig(**{**TINY, "num_labels": 2}))
    perturb_(hf, seed=7).eval()
    hf.save_pretrained(tmp_path / "backbone")
    model = load_pretrained(tmp_path / "backbone")
    assert model.num_classes == 0 and model.pretrained_cfg.class_names is None
    assert_same_logits(model, lambda x: hf(pixel_values=rearrange(x, "b c t h w -> b t c h w")).last_hidden_state[:, 0],
                       _clip())


def test_key_map_round_trips() -> None:
    state = _hf("divided").state_dict()
    official = hf_to_official(state, depth=2)
    assert len(official) == len(state) == len(set(official))
    back = official_to_hf(official, depth=2)
    assert back.keys() == state.keys() and all(back[k] is state[k] for k in state)


@pytest.mark.parametrize("attention", ["divided", "joint", "space_only"])
def test_official_pyth_matches_hf_logits(tmp_path: Path, attention: str) -> None:
    hf = _hf(attention, seed=3)
    path = tmp_path / f"TimeSformer_{attention}_tiny.pyth"
    torch.save({"model_state": hf_to_official(hf.state_dict(), depth=2), "epoch": 15}, path)
    frames = {"num_frames": 4} if attention == "space_only" else {}  # space-only files hold nothing per frame
    model = load_pretrained(path, model="timesformer_tiny", **frames)  # heads: timesformer_tiny's 3
    assert model.pretrained_cfg.format == "timesformer-official"
    cfg = model.config
    assert (cfg.attention_type, cfg.num_frames, cfg.img_size, cfg.patch_size, cfg.embed_dim, cfg.depth,
            cfg.num_classes) == (attention, 4, 32, 8, 48, 2, 5)
    ref = _hf_space_only_official(hf) if attention == "space_only" else _hf_logits(hf)
    diff = assert_same_logits(model, ref, _clip())
    print(f"official {attention}: max |diff| {diff:.2e}")


def test_paper_size_on_meta_device() -> None:
    """TimeSformer-B (HF defaults: 8x224, 400 labels) converts to timesformer_base's exact shapes
    and parameter count, with no real tensor allocated."""
    with torch.device("meta"):
        hf = TimesformerForVideoClassification(TimesformerConfig(num_labels=400))
        ours = create_model("timesformer_base")
    hf_params = sum(p.numel() for p in hf.parameters())
    fmt = get_format("hf-timesformer")
    source = Source(Path("timesformer-meta"), "hf-dir", hf.state_dict(), config=hf.config.to_dict())
    assert fmt.sniff(source)
    name, config = fmt.infer(source, None, {})
    assert name == "timesformer_base"
    with torch.device("meta"):
        native = create_model(name, **config)
    state = fmt.convert(source, native)
    check_fit(state, native, "meta")
    want = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in state.items()} == want
    assert all(v.is_meta for v in state.values())
    assert sum(v.numel() for v in state.values()) == hf_params == sum(p.numel() for p in ours.parameters())
    assert abs(hf_params / 121.4e6 - 1) < 0.01  # paper: 121.4M (code: 121,566,352 with the 400-class head)
    # the same tensors in the official layout: shapes give everything, heads default to 768 // 64
    official = Source(Path("TimeSformer_divST_8x32_224_K400.pyth"), "torch",
                      hf_to_official(hf.state_dict(), depth=12), container="model_state")
    ofmt = get_format("timesformer-official")
    assert ofmt.sniff(official) and not fmt.sniff(official) and not ofmt.sniff(source)
    oname, oconfig = ofmt.infer(official, None, {})
    assert oname == "timesformer_base" and oconfig["num_heads"] == 12 and oconfig["attention_type"] == "divided"
    assert ofmt.infer(official, "timesformer_tiny", {})[1]["num_heads"] == 12  # tiny's 3 heads are for width 192
    assert ofmt.infer(official, None, {"num_heads": 16})[1]["num_heads"] == 16
    assert {k: tuple(v.shape) for k, v in ofmt.convert(official, native).items()} == want


def test_more_frames_and_pixels_resize_like_hf(tmp_path: Path) -> None:
    """A 4-frame 32px checkpoint at 8 frames, 48 px: time and position embeddings resized by
    nearest neighbour, as HF (and the official forward) do at run time."""
    hf = _hf("joint", seed=5)
    model = load_pretrained(_save_hf(hf, tmp_path / "joint"), num_frames=8, img_size=48)
    notes = model.pretrained_cfg.notes
    assert any("time_embed resized 4 -> 8" in n for n in notes), notes
    assert any("pos_embed resized 17 -> 37" in n for n in notes), notes
    assert model.pretrained_cfg.preprocess["num_frames"] == 8
    assert_same_logits(model, _hf_logits(hf), _clip(frames=8, size=48))


def test_divided_checkpoint_resized_to_more_frames(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pyth"
    torch.save({"model_state": hf_to_official(_hf("divided").state_dict(), depth=2)}, path)
    model = load_pretrained(path, model="timesformer_tiny", num_frames=6)
    assert model.config.num_frames == 6 and model.time_embed.shape == (1, 6, 48)
    assert any("time_embed resized 4 -> 6 tokens (nearest)" in n for n in model.pretrained_cfg.notes)
    assert model(_clip(frames=6)).shape == (2, 5)


def test_timesformer_checkpoint_into_vivit_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "TimeSformer_divST_tiny.pyth"
    torch.save({"model_state": hf_to_official(_hf("divided").state_dict(), depth=2)}, path)
    with pytest.raises(WeightsError, match=r"TimeSformer_divST_tiny\.pyth.*timesformer.*vivit_m1_tiny"):
        load_pretrained(path, model="vivit_m1_tiny")


def test_hf_config_vidbench_cannot_run_is_refused() -> None:
    hf = _hf("divided")
    for change, word in (({"hidden_act": "gelu_new"}, "hidden_act"), ({"layer_norm_eps": 1e-12}, "layer_norm_eps")):
        source = Source(Path("hf-dir"), "hf-dir", hf.state_dict(), config={**hf.config.to_dict(), **change})
        with pytest.raises(WeightsError, match=word):
            get_format("hf-timesformer").infer(source, None, {})


def test_published_entries() -> None:
    base = find_published(Path("/ckpt/TimeSformer_divST_8x32_224_K400.pyth"))
    assert base is not None and base.model == "timesformer_base" and (base.top1, base.top5) == (77.9, 93.2)
    assert (base.num_frames, base.sampling_rate, base.views, base.mean) == (8, 32, (1, 3), (0.45, 0.45, 0.45))
    large = find_published(Path("TimeSformer_divST_96x4_224_K400.pyth"))
    assert large is not None and (large.model, large.num_frames, large.sampling_rate) == ("timesformer_large", 96, 4)
    hr = find_published(Path("models/timesformer-hr-finetuned-k400"))
    assert hr is not None and (hr.format, hr.crop_size, hr.resize_size) == ("hf-timesformer", 448, 448)
    assert {w.format for w in list_published("timesformer_hr")} == {"hf-timesformer", "timesformer-official"}
