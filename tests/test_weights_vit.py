"""Image ViT checkpoints: timm state dicts (.safetensors / .pth / .bin, hub directories) and
Google's .npz load into vidbench's ViT and frame-average models with timm's logits."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

timm = pytest.importorskip("timm", reason="timm is in the test extra: pip install -e .[test]")

from _weights_helpers import assert_same_logits, perturb_  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from timm.layers import resample_abs_pos_embed  # noqa: E402
from timm.models import save_for_hf  # noqa: E402
from timm.models.vision_transformer import _load_weights, checkpoint_filter_fn  # noqa: E402

from vidbench.checkpoint import save_checkpoint  # noqa: E402
from vidbench.models import create_model  # noqa: E402
from vidbench.weights import WeightsError, detect_format, list_published, load_pretrained, read_source  # noqa: E402
from vidbench.weights.formats.timm_vit import timm_vit_to_vidbench  # noqa: E402

SMALL = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=5)


def timm_vit(seed: int = 0, **kw):
    torch.manual_seed(seed)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, **{**SMALL, **kw})
    return perturb_(model, seed=seed).eval()


def images(n: int = 2, size: int = 32) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def ref():
    return timm_vit()


def _save(state, path):
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


# ---------------------------------------------------------------- timm state dicts and hub dirs


@pytest.mark.parametrize("name", ["model.safetensors", "vit.pth", "pytorch_model.bin"])
def test_timm_state_dict_files(tmp_path, ref, name):
    path = _save(ref.state_dict(), tmp_path / name)
    assert detect_format(read_source(path)).name == "timm-vit"
    ours = load_pretrained(path, model="vit_tiny", num_heads=3)
    cfg = ours.config
    assert (cfg.img_size, cfg.patch_size, cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.num_classes) == (
        32, 8, 48, 2, 3, 5)
    assert ours.pretrained_cfg.format == "timm-vit" and ours.pretrained_cfg.notes == []
    diff = assert_same_logits(ours, ref, images())
    print(f"timm {name}: max |diff| {diff:.2e}")


def test_heads_are_not_guessed_for_a_nonstandard_width(tmp_path, ref):
    path = _save(ref.state_dict(), tmp_path / "vit.pth")
    with pytest.raises(WeightsError, match="num_heads="):
        load_pretrained(path, model="vit_tiny")


@pytest.mark.parametrize("safe", [True, False])
def test_timm_hub_directory(tmp_path, ref, safe):
    labels = [f"class_{i}" for i in range(5)]
    save_for_hf(ref, tmp_path / "hub", model_config={"label_names": labels}, safe_serialization=safe)
    ours = load_pretrained(tmp_path / "hub")  # heads from config.json model_args
    info = ours.pretrained_cfg
    assert info.format == "timm-vit" and info.class_names == labels
    assert info.preprocess["mean"] == [0.5] * 3 and info.preprocess["std"] == [0.5] * 3
    assert (info.preprocess["crop_size"], info.preprocess["resize_size"]) == (32, 35)  # floor(32 / 0.9)
    assert info.preprocess_source.startswith("checkpoint config")
    diff = assert_same_logits(ours, ref, images())
    print(f"timm hub dir (safetensors={safe}): max |diff| {diff:.2e}")


def test_timm_hub_directory_without_model_args(tmp_path, ref):
    save_for_hf(ref, tmp_path / "hub", safe_serialization=True)
    config = json.loads((tmp_path / "hub" / "config.json").read_text())
    del config["model_args"]  # hub configs written before timm recorded them
    (tmp_path / "hub" / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="num_heads"):
        load_pretrained(tmp_path / "hub")
    assert_same_logits(load_pretrained(tmp_path / "hub", num_heads=3), ref, images())


def test_timm_class_token_without_position_row(tmp_path):
    ref = timm_vit(seed=3, no_embed_class=True)  # pos_embed covers the patches only
    path = _save(ref.state_dict(), tmp_path / "no_embed_class.safetensors")
    ours = load_pretrained(path, model="vit_tiny", num_heads=3)
    assert not ours.pos_embed.detach()[0, 0].any()
    assert_same_logits(ours, ref, images())


def test_timm_global_average_pool_without_class_token(tmp_path):
    ref = timm_vit(seed=2, class_token=False, global_pool="avg", fc_norm=False)
    path = _save(ref.state_dict(), tmp_path / "gap.safetensors")
    ours = load_pretrained(path, model="vit_tiny", num_heads=3)
    assert not ours.config.class_token and ours.config.global_pool == "avg"
    assert_same_logits(ours, ref, images())


@pytest.mark.parametrize("kwargs,key", [  # register tokens and layer scale load now: tests/test_ssl_backbones.py
    (dict(qk_norm=True), "k_norm.* qk norm"),
    (dict(pre_norm=True), "norm_pre"),
    (dict(global_pool="avg"), "fc_norm"),  # timm's avg pool normalises after the mean
])
def test_unsupported_timm_features_are_refused(tmp_path, kwargs, key):
    path = _save(timm_vit(**kwargs).state_dict(), tmp_path / "feature.safetensors")
    with pytest.raises(WeightsError, match=key) as err:
        load_pretrained(path, model="vit_tiny", num_heads=3)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("key", ["blocks.0.mlp.norm.weight", "fc_norm.weight", "norm_pre.weight",
                                 "blocks.1.attn.k_norm.weight"])
def test_converter_refuses_feature_keys(key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        timm_vit_to_vidbench({key: torch.zeros(1)})


def test_vidbench_checkpoint_is_not_taken_for_timm(tmp_path):
    model = create_model("vit_tiny", **SMALL)
    path = tmp_path / "ours.safetensors"
    save_checkpoint(model, path)
    assert detect_format(read_source(path)).name == "vidbench"


# ---------------------------------------------------------------- resizing and the frame average


@pytest.mark.parametrize("size", [48, 16])
def test_position_embedding_resized_as_timm(tmp_path, ref, size):
    path = _save(ref.state_dict(), tmp_path / "vit.safetensors")
    ours = load_pretrained(path, model="vit_tiny", num_heads=3, img_size=size)
    grid = size // 8
    want = resample_abs_pos_embed(ref.pos_embed.detach(), (grid, grid), num_prefix_tokens=1)
    diff = float((ours.pos_embed.detach() - want).abs().max())
    assert diff <= 1e-6, diff
    assert any("pos_embed resized 17 -> " in n for n in ours.pretrained_cfg.notes)
    theirs = timm.create_model("vit_tiny_patch16_224", pretrained=False, **{**SMALL, "img_size": size}).eval()
    theirs.load_state_dict(checkpoint_filter_fn(ref.state_dict(), theirs))  # timm's own resize on load
    logits = assert_same_logits(ours, theirs, images(size=size))
    print(f"resize 32 -> {size}: pos_embed max |diff| {diff:.2e}, logits {logits:.2e}")


def test_frame_average_from_image_checkpoint(tmp_path, ref):
    path = _save(ref.state_dict(), tmp_path / "vit.safetensors")
    ours = load_pretrained(path, model="vit_frameavg_tiny", num_frames=3, num_heads=3)
    assert type(ours).__name__ == "VideoFrameAverage" and ours.num_classes == 5
    video = torch.randn(2, 3, 3, 32, 32, generator=torch.Generator().manual_seed(3))

    def averaged(x):
        return torch.stack([ref(x[:, :, t]) for t in range(x.shape[2])]).mean(0)

    diff = assert_same_logits(ours, averaged, video)
    print(f"frame average: max |diff| {diff:.2e}")
    resized = load_pretrained(path, model="vit_frameavg_tiny", num_frames=2, num_heads=3, img_size=48)
    want = resample_abs_pos_embed(ref.pos_embed.detach(), (6, 6), num_prefix_tokens=1)
    assert float((resized.vit.pos_embed.detach() - want).abs().max()) <= 1e-6


# ---------------------------------------------------------------- Google's .npz


def to_google_npz(model, path, big_vision: bool = False, pre_logits: bool = False):
    """A timm ViT's weights in Google's layout: vision_transformer's (`encoderblock_{i}`,
    MultiHeadDotProductAttention_1, MlpBlock_3, LayerNorm_0/2) or big_vision's (`params/`, stacked
    `encoderblock`, MultiHeadDotProductAttention_0, MlpBlock_0, LayerNorm_0/1, top-level
    `pos_embedding` without a class-token row)."""
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    dim, heads = sd["pos_embed"].shape[-1], model.blocks[0].attn.num_heads
    p = "params/" if big_vision else ""
    mha, mlp, ln2 = ("MultiHeadDotProductAttention_0", "MlpBlock_0", "LayerNorm_1") if big_vision else (
        "MultiHeadDotProductAttention_1", "MlpBlock_3", "LayerNorm_2")
    out = {"embedding/kernel": sd["patch_embed.proj.weight"].transpose(2, 3, 1, 0),
           "embedding/bias": sd["patch_embed.proj.bias"],
           "Transformer/encoder_norm/scale": sd["norm.weight"], "Transformer/encoder_norm/bias": sd["norm.bias"]}
    pos = sd["pos_embed"]
    if "cls_token" in sd:
        out["cls"] = sd["cls_token"]
        if big_vision:
            assert not pos[:, 0].any(), "big_vision has no class-token position: zero it first"
            pos = pos[:, 1:]
    out["pos_embedding" if big_vision else "Transformer/posembed_input/pos_embedding"] = pos
    if "head.weight" in sd:
        out["head/kernel"], out["head/bias"] = sd["head.weight"].T, sd["head.bias"]
    if pre_logits:
        out["pre_logits/kernel"], out["pre_logits/bias"] = np.eye(dim, dtype=np.float32), np.zeros(dim, np.float32)
    blocks = []
    for i in range(len(model.blocks)):
        b = f"blocks.{i}."
        q, k, v = np.split(sd[b + "attn.qkv.weight"], 3)
        qb, kb, vb = np.split(sd[b + "attn.qkv.bias"], 3)
        blk = {"LayerNorm_0/scale": sd[b + "norm1.weight"], "LayerNorm_0/bias": sd[b + "norm1.bias"],
               f"{ln2}/scale": sd[b + "norm2.weight"], f"{ln2}/bias": sd[b + "norm2.bias"],
               f"{mha}/out/kernel": sd[b + "attn.proj.weight"].T.reshape(heads, dim // heads, dim),
               f"{mha}/out/bias": sd[b + "attn.proj.bias"]}
        for name, w, bias in (("query", q, qb), ("key", k, kb), ("value", v, vb)):
            blk[f"{mha}/{name}/kernel"] = w.T.reshape(dim, heads, dim // heads)
            blk[f"{mha}/{name}/bias"] = bias.reshape(heads, dim // heads)
        for r in range(2):
            blk[f"{mlp}/Dense_{r}/kernel"] = sd[b + f"mlp.fc{r + 1}.weight"].T
            blk[f"{mlp}/Dense_{r}/bias"] = sd[b + f"mlp.fc{r + 1}.bias"]
        blocks.append(blk)
    if big_vision:
        out.update({f"Transformer/encoderblock/{k}": np.stack([blk[k] for blk in blocks]) for k in blocks[0]})
    else:
        for i, blk in enumerate(blocks):
            out.update({f"Transformer/encoderblock_{i}/{k}": v for k, v in blk.items()})
    np.savez(path, **{p + k: np.ascontiguousarray(v) for k, v in out.items()})
    return path


def _timm_from_npz(path, **kw):
    fresh = timm.create_model("vit_tiny_patch16_224", pretrained=False, **{**SMALL, **kw}).eval()
    with torch.no_grad():
        _load_weights(fresh, str(path))
    return fresh


def test_google_npz(tmp_path, ref):
    path = to_google_npz(ref, tmp_path / "ViT-S_8.npz")
    writer = assert_same_logits(_timm_from_npz(path), ref, images())  # the writer, checked by timm's reader
    ours = load_pretrained(path, model="vit_tiny")  # heads from the query kernel
    assert ours.pretrained_cfg.format == "google-vit-npz" and ours.config.num_heads == 3
    diff = assert_same_logits(ours, ref, images())
    print(f"google npz: writer vs timm {writer:.2e}, load_pretrained vs timm {diff:.2e}")


def test_google_npz_big_vision_layout(tmp_path):
    gap = timm_vit(seed=4, class_token=False, global_pool="avg", fc_norm=False)
    path = to_google_npz(gap, tmp_path / "bv_gap.npz", big_vision=True)
    assert_same_logits(_timm_from_npz(path, class_token=False, global_pool="avg", fc_norm=False), gap, images())
    assert_same_logits(load_pretrained(path), gap, images())

    tok = timm_vit(seed=5)
    with torch.no_grad():
        tok.pos_embed[:, 0] = 0  # big_vision adds the class token after the position embedding
    path = to_google_npz(tok, tmp_path / "bv_tok.npz", big_vision=True)
    assert_same_logits(load_pretrained(path), tok, images())


def test_google_npz_pre_logits(tmp_path, ref):
    path = to_google_npz(ref, tmp_path / "i21k.npz", pre_logits=True)
    with pytest.raises(WeightsError, match="pre_logits") as err:
        load_pretrained(path)
    assert str(path) in str(err.value)
    features = load_pretrained(path, num_classes=0)  # head replaced: both layers dropped
    assert features.num_classes == 0
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(features(x), ref.forward_head(ref.forward_features(x), pre_logits=True),
                                   atol=1e-4, rtol=0)


def test_google_npz_refuses_unknown_arrays(tmp_path, ref):
    path = to_google_npz(ref, tmp_path / "odd.npz")
    arrays = dict(np.load(path))
    arrays["Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query_norm/scale"] = np.ones(16, np.float32)
    np.savez(path, **arrays)
    with pytest.raises(WeightsError, match="query_norm"):
        load_pretrained(path)


# ---------------------------------------------------------------- published entries


def test_published_entries_fit_image_models():
    entries = [w for w in list_published() if w.format in ("timm-vit", "google-vit-npz")]
    assert len(entries) >= 5
    for w in entries:
        assert w.num_frames == 1 and w.views == (1, 1) and w.classes == "imagenet1k"
        assert w.dataset == "ImageNet-1k val" and w.top1 is not None and w.source
        with torch.device("meta"):
            model = create_model(w.model, **w.overrides)
        assert model.config.img_size == w.crop_size, w.name


def test_published_entry_found_by_file_name(tmp_path, ref):
    from vidbench.weights import find_published

    entry = find_published(Path("/somewhere/ViT-B_16-224.npz"))
    assert entry.name == "vit_base.orig_in21k_ft_in1k_224_google" and entry.mean == (0.5, 0.5, 0.5)
    # a file that only borrows the name (here a tiny ViT) does not get the entry's metadata
    path = to_google_npz(ref, tmp_path / "ViT-B_16-224.npz")
    info = load_pretrained(path).pretrained_cfg
    assert info.published is None and info.preprocess_source == "model defaults"
