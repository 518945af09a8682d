"""ViViT checkpoints: Hugging Face directories (hf-vivit) and scenic Flax msgpack files
(scenic-vivit), loaded into vidbench's ViViT and compared with an independent forward.

- HF: a small VivitForVideoClassification with every weight perturbed, saved with
  save_pretrained, loaded with load_pretrained: same logits as HF on both attention kernels.
- scenic Model 1: the same weights written in scenic's Flax layout (a test-side writer of
  flax.serialization's msgpack format): same logits as HF (both use the tanh GELU), and as a
  numpy transcription of scenic's ViViT forward (scenic/projects/vivit/model.py).
- scenic Model 2 (factorised encoder): no Python implementation of scenic is installed; a random
  scenic-layout tree must land tensor for tensor where the documented transforms put it, and the
  logits must match the same numpy transcription of scenic's SpaceTimeViViT, be finite and depend
  on every parameter. The numpy forward is this file's reading of scenic's code, not scenic.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import msgpack
import numpy as np
import pytest
import torch
from _weights_helpers import assert_same_logits, perturb_

from vidbench.models import create_model
from vidbench.weights import Source, WeightsError, check_fit, find_published, load_pretrained, read_source
from vidbench.weights.formats import hf_vivit, scenic_vivit

transformers = pytest.importorskip("transformers")

FRAMES, SIZE, TUBELET, DIM, DEPTH, HEADS, MLP, CLASSES = 4, 32, (2, 8, 8), 48, 2, 3, 192, 5
LABELS = ["abseiling", "archery", "bowling", "cartwheeling", "juggling balls"]


# ---- a Flax msgpack writer (flax.serialization: ndarrays as ExtType 1 of packb((shape, dtype, bytes)))


def _pack(tree) -> bytes:
    def default(obj):
        if isinstance(obj, np.ndarray):
            arr = np.ascontiguousarray(obj)
            return msgpack.ExtType(1, msgpack.packb((list(arr.shape), arr.dtype.name, arr.tobytes()),
                                                    use_bin_type=True))
        raise TypeError(type(obj))

    return msgpack.packb(tree, default=default, use_bin_type=True)


def _write_checkpoint(path, params) -> None:
    """A flax.training.checkpoints file as scenic writes it: the TrainState with the parameters
    under optimizer/target (and an optimizer state holding arrays of the same names)."""
    momentum = {"embedding": {"kernel": {"momentum": np.zeros_like(params["embedding"]["kernel"])}}}
    state = {"global_step": 7, "optimizer": {"target": params, "state": {"step": 7, "param_states": momentum}}}
    path.write_bytes(_pack(state))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().numpy().copy()


def _block_from_hf(sd, i) -> dict:
    """One HF layer -> scenic's EncoderBlock tree (the inverse of convert_vivit_flax_to_pytorch.py)."""
    p = f"vivit.layers.{i}."
    D = sd[p + "attention.q_proj.weight"].shape[1]

    def qkv(name):
        w, b = _np(sd[p + f"attention.{name}.weight"]), _np(sd[p + f"attention.{name}.bias"])
        return {"kernel": w.T.reshape(D, HEADS, -1), "bias": b.reshape(HEADS, -1)}

    o = _np(sd[p + "attention.o_proj.weight"])
    return {
        "LayerNorm_0": {"scale": _np(sd[p + "layernorm_before.weight"]), "bias": _np(sd[p + "layernorm_before.bias"])},
        "MultiHeadDotProductAttention_0": {
            "query": qkv("q_proj"), "key": qkv("k_proj"), "value": qkv("v_proj"),
            "out": {"kernel": o.T.reshape(HEADS, -1, D), "bias": _np(sd[p + "attention.o_proj.bias"])},
        },
        "LayerNorm_1": {"scale": _np(sd[p + "layernorm_after.weight"]), "bias": _np(sd[p + "layernorm_after.bias"])},
        "MlpBlock_0": {
            "Dense_0": {"kernel": _np(sd[p + "mlp.fc1.weight"]).T, "bias": _np(sd[p + "mlp.fc1.bias"])},
            "Dense_1": {"kernel": _np(sd[p + "mlp.fc2.weight"]).T, "bias": _np(sd[p + "mlp.fc2.bias"])},
        },
    }


def scenic_m1_from_hf(hf) -> dict:
    sd = hf.state_dict()
    transformer = {f"encoderblock_{i}": _block_from_hf(sd, i) for i in range(DEPTH)}
    transformer["posembed_input"] = {"pos_embedding": _np(sd["vivit.embeddings.position_embeddings"])}
    transformer["encoder_norm"] = {"scale": _np(sd["vivit.layernorm.weight"]), "bias": _np(sd["vivit.layernorm.bias"])}
    return {
        "embedding": {"kernel": _np(sd["vivit.embeddings.patch_embeddings.projection.weight"]).transpose(2, 3, 4, 1, 0),
                      "bias": _np(sd["vivit.embeddings.patch_embeddings.projection.bias"])},
        "cls": _np(sd["vivit.embeddings.cls_token"]),
        "Transformer": transformer,
        "output_projection": {"kernel": _np(sd["classifier.weight"]).T, "bias": _np(sd["classifier.bias"])},
    }


def _random_block(rng, dim, heads, mlp) -> dict:
    r = lambda *s: (rng.standard_normal(s) * 0.1).astype(np.float32)  # noqa: E731
    hd = dim // heads
    ln = lambda: {"scale": 1 + r(dim), "bias": r(dim)}  # noqa: E731
    return {
        "LayerNorm_0": ln(),
        "MultiHeadDotProductAttention_0": {
            **{n: {"kernel": r(dim, heads, hd), "bias": r(heads, hd)} for n in ("query", "key", "value")},
            "out": {"kernel": r(heads, hd, dim), "bias": r(dim)},
        },
        "LayerNorm_1": ln(),
        "MlpBlock_0": {"Dense_0": {"kernel": r(dim, mlp), "bias": r(mlp)},
                       "Dense_1": {"kernel": r(mlp, dim), "bias": r(dim)}},
    }


def scenic_m2_random(seed=0, depth=2, temporal_depth=2) -> dict:
    """A scenic SpaceTimeViViT (factorised encoder) parameter tree with random values."""
    rng = np.random.default_rng(seed)
    r = lambda *s: (rng.standard_normal(s) * 0.1).astype(np.float32)  # noqa: E731
    t, s = FRAMES // TUBELET[0], (SIZE // TUBELET[1]) ** 2

    def encoder(n, tokens):
        enc = {f"encoderblock_{i}": _random_block(rng, DIM, HEADS, MLP) for i in range(n)}
        enc["posembed_input"] = {"pos_embedding": r(1, tokens, DIM)}
        enc["encoder_norm"] = {"scale": 1 + r(DIM), "bias": r(DIM)}
        return enc

    return {
        "embedding": {"kernel": r(*TUBELET, 3, DIM), "bias": r(DIM)},
        "cls_SpatialTransformer": r(1, 1, DIM),
        "cls_TemporalTransformer": r(1, 1, DIM),
        "SpatialTransformer": encoder(depth, 1 + s),
        "TemporalTransformer": encoder(temporal_depth, 1 + t),
        "output_projection": {"kernel": r(DIM, CLASSES), "bias": r(CLASSES)},
    }


# ---- scenic's ViViT forward, transcribed to numpy (float64) from scenic/projects/vivit/model.py


def _ln(x, p):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-6) * p["scale"] + p["bias"]


def _gelu(x):  # flax.linen.gelu = jax.nn.gelu(approximate=True)
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def _mha(x, p):  # flax MultiHeadDotProductAttention: DenseGeneral q/k/v, dot_product_attention, out
    q, k, v = (np.einsum("nld,dhk->nlhk", x, p[n]["kernel"]) + p[n]["bias"] for n in ("query", "key", "value"))
    logits = np.einsum("nqhk,nlhk->nhql", q / math.sqrt(q.shape[-1]), k)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w = w / w.sum(-1, keepdims=True)
    return np.einsum("nqhk,hkd->nqd", np.einsum("nhql,nlhk->nqhk", w, v), p["out"]["kernel"]) + p["out"]["bias"]


def _encoder(x, p):  # Encoder: learned_1d positions, EncoderBlocks, encoder_norm
    x = x + p["posembed_input"]["pos_embedding"]
    i = 0
    while f"encoderblock_{i}" in p:
        b = p[f"encoderblock_{i}"]
        x = x + _mha(_ln(x, b["LayerNorm_0"]), b["MultiHeadDotProductAttention_0"])
        m = b["MlpBlock_0"]
        y = _gelu(_ln(x, b["LayerNorm_1"]) @ m["Dense_0"]["kernel"] + m["Dense_0"]["bias"])
        x = x + y @ m["Dense_1"]["kernel"] + m["Dense_1"]["bias"]
        i += 1
    return _ln(x, p["encoder_norm"])


def _tubelets(x, p):  # temporal_encode '3d_conv': (n, t, h, w, c) -> (n, T', H', W', D)
    kt, kh, kw, c, d = p["embedding"]["kernel"].shape
    n, t, h, w, _ = x.shape
    x = x.reshape(n, t // kt, kt, h // kh, kh, w // kw, kw, c)
    return np.einsum("nTaHbWcC,abcCd->nTHWd", x, p["embedding"]["kernel"]) + p["embedding"]["bias"]


def _cls(x, token):
    return np.concatenate([np.broadcast_to(token, (x.shape[0], 1, x.shape[-1])), x], axis=1)


def scenic_forward(p, x):
    """x: (n, t, h, w, c) as scenic takes it. Model 1 (ViViT, token) or Model 2 (SpaceTimeViViT)."""
    p = {k: _as64(v) for k, v in p.items()}
    tok = _tubelets(x.astype(np.float64), p)
    n, t = tok.shape[:2]
    if "Transformer" in p:
        feats = _encoder(_cls(tok.reshape(n, -1, tok.shape[-1]), p["cls"]), p["Transformer"])[:, 0]
    else:
        frames = tok.reshape(n * t, -1, tok.shape[-1])
        spatial = _encoder(_cls(frames, p["cls_SpatialTransformer"]), p["SpatialTransformer"])[:, 0]
        temporal = _cls(spatial.reshape(n, t, -1), p["cls_TemporalTransformer"])
        feats = _encoder(temporal, p["TemporalTransformer"])[:, 0]
    return feats @ p["output_projection"]["kernel"] + p["output_projection"]["bias"]


def _as64(tree):
    return {k: _as64(v) for k, v in tree.items()} if isinstance(tree, dict) else tree.astype(np.float64)


# ---- fixtures


@pytest.fixture(scope="module")
def hf_model():
    torch.manual_seed(0)
    cfg = transformers.VivitConfig(image_size=SIZE, num_frames=FRAMES, tubelet_size=list(TUBELET), hidden_size=DIM,
                                   num_hidden_layers=DEPTH, num_attention_heads=HEADS, intermediate_size=MLP,
                                   num_labels=CLASSES, id2label=dict(enumerate(LABELS)))
    assert cfg.hidden_act == "gelu_fast"  # HF's default: the tanh approximation
    return perturb_(transformers.VivitForVideoClassification(cfg)).eval()


@pytest.fixture(scope="module")
def hf_dir(hf_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("hf") / "vivit-tiny"
    hf_model.save_pretrained(path)
    transformers.VivitImageProcessor().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clip():
    return torch.randn(2, 3, FRAMES, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def _hf_logits(hf):
    return lambda x: hf(pixel_values=x.permute(0, 2, 1, 3, 4)).logits  # vidbench (B, C, T, H, W) -> HF (B, T, C, H, W)


# ---- Hugging Face


def test_hf_directory_matches_hf_logits(hf_model, hf_dir, clip):
    model = load_pretrained(hf_dir)
    info = model.pretrained_cfg
    assert info.format == "hf-vivit" and model.config.act_layer == "gelu_tanh"
    assert model.config.attention_type == "joint" and model.num_classes == CLASSES
    diff = assert_same_logits(model, _hf_logits(hf_model), clip)
    print(f"hf-vivit max |diff| {diff:.3g}")
    assert info.class_names == LABELS
    # VivitImageProcessor's defaults: rescale to [-1, 1], then normalise by 0.5 / 0.5
    assert info.preprocess["mean"] == pytest.approx([0.75] * 3) and info.preprocess["std"] == pytest.approx([0.25] * 3)
    assert (info.preprocess["crop_size"], info.preprocess["resize_size"]) == (224, 256)


def test_exact_gelu_would_not_match_hf(hf_model, hf_dir, clip):
    """The activation is why act_layer exists: with vidbench's exact GELU the logits move by far
    more than the float error of the matching (tanh) model, even at this small weight scale."""
    with torch.no_grad():
        want = _hf_logits(hf_model)(clip)
        tanh, exact = (float((load_pretrained(hf_dir, act_layer=a)(clip) - want).abs().max())
                       for a in ("gelu_tanh", "gelu"))
    print(f"exact GELU vs HF max |diff| {exact:.3g} (tanh GELU {tanh:.3g})")
    assert exact > 30 * max(tanh, 1e-7), (exact, tanh)


def test_registry_paper_config_is_the_official_activation(hf_model, hf_dir, clip):
    """`vivit_m1_base` by name, with no act_layer given, is the official model: its GELU is the tanh
    form of scenic and HF, so HF's weights (converted, sizes shrunk) give HF's logits; with the
    exact form the registry name would be a different model (1e-3 off with trained weights)."""
    with torch.device("meta"):
        assert all(create_model(n).config.act_layer == "gelu_tanh"
                   for n in ("vivit_m1_base", "vivit_m2_base", "vivit_m3_base", "vivit_m4_base", "vivit_m2_large"))
    state = load_pretrained(hf_dir).state_dict()
    model = create_model("vivit_m1_base", img_size=SIZE, num_frames=FRAMES, tubelet_size=TUBELET, embed_dim=DIM,
                         depth=DEPTH, num_heads=HEADS, mlp_ratio=MLP / DIM, num_classes=CLASSES)
    model.load_state_dict(state)
    assert_same_logits(model, _hf_logits(hf_model), clip, atol=1e-5)


def test_hf_normalisation_equals_the_processor():
    """The mean / std on [0, 1] pixels reproduce VivitImageProcessor's own output."""
    proc = transformers.VivitImageProcessor(do_resize=False, do_center_crop=False)
    video = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    want = proc(list(video), return_tensors="np")["pixel_values"][0]  # (T, C, H, W)
    mean, std = hf_vivit.hf_pixel_normalisation(proc.to_dict())
    u = video.transpose(0, 3, 1, 2) / 255.0
    got = (u - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert hf_vivit.hf_pixel_normalisation({"do_normalize": False}) == ([0.5] * 3, [0.5] * 3)  # scenic's [-1, 1]


def test_hf_unsupported_activation_is_a_clear_error(hf_dir, tmp_path):
    bad = tmp_path / "relu-vivit"
    bad.mkdir()
    cfg = json.loads((hf_dir / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, "hidden_act": "relu"}))
    (bad / "model.safetensors").write_bytes((hf_dir / "model.safetensors").read_bytes())
    with pytest.raises(WeightsError, match=r"relu-vivit: hidden_act 'relu' is not supported"):
        load_pretrained(bad)


def test_hf_paper_size_on_meta_matches_vivit_m1_base():
    cfg = transformers.VivitConfig()  # ViViT-B/16x2, 32 x 224
    with torch.device("meta"):
        hf = transformers.VivitForVideoClassification(cfg)
    source = Source(Path("vivit-b"), "hf-dir", dict(hf.state_dict()), config=cfg.to_dict())
    name, config = hf_vivit.infer(source, None, {})
    assert name == "vivit_m1_base" and config["act_layer"] == "gelu_tanh"
    state = hf_vivit.convert(source, None)
    with torch.device("meta"):
        ours = create_model("vivit_m1_base", num_classes=cfg.num_labels)
        built = create_model(name, **config)
    check_fit(state, ours, "paper size")
    check_fit(state, built, "paper size")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(ours) == count(hf) == sum(v.numel() for v in state.values())


# ---- scenic


def test_scenic_model1_matches_hf_and_scenic_forward(hf_model, tmp_path, clip):
    params = scenic_m1_from_hf(hf_model)
    path = tmp_path / "checkpoint_7"  # flax.training.checkpoints' name: no suffix
    _write_checkpoint(path, params)
    model = load_pretrained(path, num_frames=FRAMES, img_size=SIZE)
    assert model.pretrained_cfg.format == "scenic-vivit" and model.config.act_layer == "gelu_tanh"
    assert model.config.num_frames == FRAMES and model.config.img_size == SIZE
    diff = assert_same_logits(model, _hf_logits(hf_model), clip)
    print(f"scenic-vivit M1 vs HF max |diff| {diff:.3g}")
    # the numpy transcription of scenic's forward agrees with HF (so it is a fair reference for Model 2)
    ref = scenic_forward(params, clip.permute(0, 2, 3, 4, 1).numpy())
    with torch.no_grad():
        want = _hf_logits(hf_model)(clip).double().numpy()
    assert np.abs(ref - want).max() < 1e-4
    assert model.pretrained_cfg.preprocess["mean"] == [0.5] * 3  # scenic's zero-centering


def test_scenic_model1_frames_need_a_hint(hf_model, tmp_path):
    path = tmp_path / "checkpoint"
    _write_checkpoint(path, scenic_m1_from_hf(hf_model))
    with pytest.raises(WeightsError, match=r"checkpoint: 32 position embeddings .* give num_frames"):
        load_pretrained(path)


def test_scenic_model2_tensors_land_where_documented(tmp_path):
    params = scenic_m2_random()
    path = tmp_path / "fe.msgpack"
    _write_checkpoint(path, params)
    model = load_pretrained(path)
    cfg = model.config
    assert type(model).__name__ == "ViViTFactorisedEncoder" and cfg.act_layer == "gelu_tanh"
    assert (cfg.embed_dim, cfg.depth, cfg.temporal_depth, cfg.num_heads, cfg.mlp_ratio) == (DIM, 2, 2, HEADS, 4.0)
    assert (cfg.num_frames, cfg.img_size, cfg.tubelet_size, cfg.num_classes) == (FRAMES, SIZE, TUBELET, CLASSES)

    def block(b):  # written out index by index, not with the converter's helpers
        a = b["MultiHeadDotProductAttention_0"]
        qkv = np.stack([a[n]["kernel"] for n in ("query", "key", "value")])  # (3, D, H, hd)
        return {
            "norm1.weight": b["LayerNorm_0"]["scale"], "norm1.bias": b["LayerNorm_0"]["bias"],
            "attn.qkv.weight": np.einsum("tdhk->thkd", qkv).reshape(3 * DIM, DIM),
            "attn.qkv.bias": np.stack([a[n]["bias"] for n in ("query", "key", "value")]).reshape(-1),
            "attn.proj.weight": np.einsum("hkd->dhk", a["out"]["kernel"]).reshape(DIM, DIM),
            "attn.proj.bias": a["out"]["bias"],
            "norm2.weight": b["LayerNorm_1"]["scale"], "norm2.bias": b["LayerNorm_1"]["bias"],
            "mlp.fc1.weight": np.einsum("io->oi", b["MlpBlock_0"]["Dense_0"]["kernel"]),
            "mlp.fc1.bias": b["MlpBlock_0"]["Dense_0"]["bias"],
            "mlp.fc2.weight": np.einsum("io->oi", b["MlpBlock_0"]["Dense_1"]["kernel"]),
            "mlp.fc2.bias": b["MlpBlock_0"]["Dense_1"]["bias"],
        }

    sp, tp = params["SpatialTransformer"], params["TemporalTransformer"]
    want = {
        "patch_embed.proj.weight": np.einsum("thwco->octhw", params["embedding"]["kernel"]),
        "patch_embed.proj.bias": params["embedding"]["bias"],
        "cls_token": params["cls_SpatialTransformer"], "pos_embed": sp["posembed_input"]["pos_embedding"],
        "temporal_cls_token": params["cls_TemporalTransformer"],
        "temporal_pos_embed": tp["posembed_input"]["pos_embedding"],
        "norm.weight": sp["encoder_norm"]["scale"], "norm.bias": sp["encoder_norm"]["bias"],
        "temporal_norm.weight": tp["encoder_norm"]["scale"], "temporal_norm.bias": tp["encoder_norm"]["bias"],
        "head.weight": params["output_projection"]["kernel"].T, "head.bias": params["output_projection"]["bias"],
    }
    for i in range(2):
        want.update({f"blocks.{i}.{k}": v for k, v in block(sp[f"encoderblock_{i}"]).items()})
        want.update({f"temporal_blocks.{i}.{k}": v for k, v in block(tp[f"encoderblock_{i}"]).items()})
    got = model.state_dict()
    assert set(got) == set(want)
    for k, v in want.items():
        assert torch.equal(got[k], torch.from_numpy(np.ascontiguousarray(v))), k


def test_scenic_model2_logits(tmp_path, clip):
    params = scenic_m2_random(seed=1)
    path = tmp_path / "vivit_fe"
    _write_checkpoint(path, params)
    model = load_pretrained(path)
    ref = scenic_forward(params, clip.permute(0, 2, 3, 4, 1).numpy())
    diff = assert_same_logits(model, lambda x: torch.from_numpy(ref).float(), clip)
    print(f"scenic-vivit M2 vs numpy scenic forward max |diff| {diff:.3g}")
    # finite, and every parameter (each spatial and temporal block) reaches the logits
    model.zero_grad()
    logits = model(clip)
    assert torch.isfinite(logits).all()
    logits.square().sum().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not dead, dead


# ---- requests that do not fit, and published entries


def test_wrong_model_names_the_file(hf_dir, tmp_path):
    with pytest.raises(WeightsError, match=r"vivit-tiny: holds a vivit checkpoint, not a timesformer model"):
        load_pretrained(hf_dir, model="timesformer_tiny")
    path = tmp_path / "fe_checkpoint"
    _write_checkpoint(path, scenic_m2_random())
    with pytest.raises(WeightsError, match=r"fe_checkpoint: holds a vivit checkpoint, not a timesformer model"):
        load_pretrained(path, model="timesformer_tiny")
    with pytest.raises(WeightsError, match=r"fe_checkpoint: holds a ViViT factorised_encoder checkpoint \(Model 2\), "
                                           r"but vivit_m1_tiny is ViViT joint"):
        load_pretrained(path, model="vivit_m1_tiny")


def test_published_entries_match_by_name(tmp_path):
    hf = find_published(tmp_path / "vivit-b-16x2-kinetics400")
    assert hf is not None and hf.format == "hf-vivit" and hf.model == "vivit_m1_base"
    assert (hf.num_frames, hf.sampling_rate, hf.views, hf.top1) == (32, 2, (4, 3), 79.9)
    for name, model, top1 in [("vivit_base_16x2_unfactorized_k400", "vivit_m1_base", 79.9),
                              ("vivit_base_16x2_fe_k400.msgpack", "vivit_m2_base", 78.4),
                              ("vivit_large_16x2_fe_k400", "vivit_m2_large", 80.3),
                              ("vivit_large_16x2_fe_k600", "vivit_m2_large", 81.6)]:
        entry = find_published(tmp_path / name)
        assert entry is not None and (entry.format, entry.model, entry.top1) == ("scenic-vivit", model, top1)
        assert entry.mean == (0.5, 0.5, 0.5) and entry.overrides["act_layer"] == "gelu_tanh"
    assert find_published(tmp_path / "checkpoint") is None  # the zoo's file name alone is ambiguous


def test_scenic_sniff_reads_only_scenic_trees(tmp_path):
    path = tmp_path / "other.msgpack"
    path.write_bytes(_pack({"params": {"Dense_0": {"kernel": np.zeros((2, 2), np.float32)}}}))
    assert not scenic_vivit.sniff(read_source(path))
    assert not hf_vivit.sniff(read_source(path))
