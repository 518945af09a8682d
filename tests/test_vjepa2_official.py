"""The official V-JEPA 2 checkpoints (facebookresearch/vjepa2: vitl.pt, vitg-384.pt, ...; the probe
files ssv2-vitl-16x2x3.pt, ...) through `vidbench.weights` (formats/vjepa2_official.py).

The official package is not pip-installable (no setup on PyPI; its modules import `src.*` from a
checkout), so the files are written here in its layout: a perturbed Hugging Face V-JEPA 2 at a
tiny config (HF's port is the reference the model is equal to, tests/test_vjepa2.py), its
tensors renamed to the official modules' names (src/models/vision_transformer.py,
src/models/attentive_pooler.py, src/models/utils/modules.py: fused ``attn.qkv``, the cross
attention's fused ``xattn.kv``, k before v) under the official containers (app/vjepa/train.py
`save_checkpoint`: ``encoder`` / ``target_encoder`` / ``predictor`` with ``module.backbone.``
prefixes; evals/video_classification_frozen/eval.py: ``classifiers``, a list with ``module.``
prefixes), saved with torch.save.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from _weights_helpers import assert_same_logits, perturb_
from einops import rearrange

from vidbench.weights import WeightsError, find_published, load_pretrained
from vidbench.weights.formats.vjepa2_official import combine_official

transformers = pytest.importorskip("transformers", reason="transformers is in the test extra")
from transformers import VJEPA2Config, VJEPA2ForVideoClassification  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(crop_size=32, patch_size=8, frames_per_clip=8, tubelet_size=2, hidden_size=80, num_attention_heads=4,
            num_hidden_layers=2, num_pooler_layers=2, pred_hidden_size=24, pred_num_attention_heads=2,
            pred_num_hidden_layers=1, num_labels=5)
_HF_MODEL = "vjepa2_tiny"  # width 80, 4 heads: the heads are in no tensor's shape
_ENC = {"attention.proj.": "attn.proj.", "norm1.": "norm1.", "norm2.": "norm2.", "mlp.": "mlp."}
_POOL_BLOCK = {"self_attn.out_proj.": "attn.proj.", "layer_norm1.": "norm1.", "layer_norm2.": "norm2.", "mlp.": "mlp."}
_CROSS = {"layer_norm1.": "norm1.", "layer_norm2.": "norm2.", "mlp.": "mlp.", "cross_attn.q_proj.": "xattn.q."}


def _rename(rest: str, parts: dict) -> str:
    return next(new + rest[len(old):] for old, new in parts.items() if rest.startswith(old))


def _official(hf_state: dict) -> tuple:
    """An HF V-JEPA 2 state dict -> (the official encoder's state dict, the official probe's)."""
    enc, probe, fuse = {}, {}, {}
    for key, value in hf_state.items():
        key = key.removeprefix("vjepa2.")
        if key.startswith("predictor."):
            continue
        if m := re.match(r"encoder\.layer\.(\d+)\.attention\.(query|key|value)\.(weight|bias)$", key):
            fuse.setdefault(("enc", f"blocks.{m[1]}.attn.qkv.{m[3]}", "qkv"), {})[m[2][0]] = value
        elif m := re.match(r"encoder\.layer\.(\d+)\.(.+)$", key):
            enc[f"blocks.{m[1]}.{_rename(m[2], _ENC)}"] = value
        elif m := re.match(r"pooler\.self_attention_layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$", key):
            fuse.setdefault(("probe", f"pooler.blocks.{m[1]}.attn.qkv.{m[3]}", "qkv"), {})[m[2]] = value
        elif m := re.match(r"pooler\.self_attention_layers\.(\d+)\.(.+)$", key):
            probe[f"pooler.blocks.{m[1]}.{_rename(m[2], _POOL_BLOCK)}"] = value
        elif m := re.match(r"pooler\.cross_attention_layer\.cross_attn\.([kv])_proj\.(weight|bias)$", key):
            fuse.setdefault(("probe", f"pooler.cross_attention_block.xattn.kv.{m[2]}", "kv"), {})[m[1]] = value
        elif m := re.match(r"pooler\.cross_attention_layer\.(.+)$", key):
            probe[f"pooler.cross_attention_block.{_rename(m[1], _CROSS)}"] = value
        else:
            enc[{"encoder.embeddings.patch_embeddings.proj.weight": "patch_embed.proj.weight",
                 "encoder.embeddings.patch_embeddings.proj.bias": "patch_embed.proj.bias",
                 "encoder.layernorm.weight": "norm.weight", "encoder.layernorm.bias": "norm.bias"}.get(key)
                or {"pooler.query_tokens": "pooler.query_tokens", "classifier.weight": "linear.weight",
                    "classifier.bias": "linear.bias"}[key]] = value
    for (where, name, order), parts in fuse.items():
        {"enc": enc, "probe": probe}[where][name] = torch.cat([parts[c] for c in order])
    for name in [k for k in enc if k.startswith(("pooler.", "linear."))]:
        probe[name] = enc.pop(name)
    return enc, probe


def _backbone(state: dict, tokens: int = 0) -> dict:
    out = {f"module.backbone.{k}": v.clone() for k, v in state.items()}
    if tokens:  # the released files carry a position table the rope encoder does not use
        out["module.backbone.pos_embed"] = torch.zeros(1, tokens, 80)
    return out


def _pretrain_file(path: Path, target: dict, online: dict) -> Path:
    predictor = {"module.backbone.predictor_embed.weight": torch.randn(24, 80)}
    torch.save({"encoder": _backbone(online, 64), "target_encoder": _backbone(target, 64), "predictor": predictor,
                "opt": {"state": {}, "param_groups": []}, "scaler": None, "epoch": 10, "loss": 0.5,
                "batch_size": 8, "world_size": 1, "lr": 1e-4}, path)
    return path


def _probe_file(path: Path, probes: list) -> Path:
    torch.save({"classifiers": [{f"module.{k}": v for k, v in p.items()} for p in probes],
                "opt": [{"state": {}, "param_groups": []}], "scaler": [None], "epoch": 20, "batch_size": 4,
                "world_size": 1, "lr": 1e-3}, path)
    return path


def _clip(seed: int = 1) -> torch.Tensor:
    return torch.randn(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(seed))


def _hf_input(x: torch.Tensor) -> torch.Tensor:
    return rearrange(x, "b c t h w -> b t c h w")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple:
    """(HF classifier, pre-training file, probe file, online-encoder state): the file's `encoder`
    is another perturbation of the same model, so loading the wrong one shows."""
    torch.manual_seed(0)
    labels = {i: f"a{i}" for i in range(5)}
    hf = perturb_(VJEPA2ForVideoClassification(VJEPA2Config(**TINY, id2label=labels, label2id={v: k for k, v in
                                                                                              labels.items()})),
                  seed=0).eval()
    enc, probe = _official(hf.state_dict())
    online = {k: v + 0.05 * torch.randn_like(v) for k, v in enc.items()}
    tmp = tmp_path_factory.mktemp("vjepa2_official")
    return hf, _pretrain_file(tmp / "vitl.pt", enc, online), _probe_file(tmp / "ssv2-vitl-16x2x3.pt", [probe]), probe


def test_pretraining_file_loads_the_target_encoder(files, caplog) -> None:
    hf, path, _, _ = files
    with caplog.at_level("INFO", logger="vidbench.weights"):
        model = load_pretrained(path, model=_HF_MODEL)
    assert "encoder: `target_encoder`" in caplog.text and "`encoder`" in caplog.text
    # the choice is in the model's notes too (a result row's weights_notes), once
    assert [n for n in model.pretrained_cfg.notes if n.startswith("encoder:")] == [
        n for n in model.pretrained_cfg.notes if "target_encoder" in n] and len(model.pretrained_cfg.notes) == 1
    cfg = model.config
    assert model.pretrained_cfg.format == "vjepa2-official"
    assert (cfg.pooling, cfg.num_classes, cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.tubelet_size) == (
        "mean", 0, 80, 2, 4, (2, 8, 8))

    def ref(x):
        return hf.vjepa2(pixel_values_videos=_hf_input(x), skip_predictor=True).last_hidden_state.mean(1)

    diff = assert_same_logits(model, ref, _clip())
    print(f"vjepa2-official encoder (target_encoder): max |diff| {diff:.2e}")
    with torch.no_grad():
        online = load_pretrained(path, model=_HF_MODEL, format="vjepa2-official")
        state = torch.load(path, weights_only=True)
        state["target_encoder"] = state.pop("encoder")  # the online encoder alone: it differs
        torch.save(state, path.with_name("online.pt"))
        other = load_pretrained(path.with_name("online.pt"), model=_HF_MODEL)
        assert float((online(_clip()) - other(_clip())).abs().max()) > 1e-3
        torch.save({"encoder": state["target_encoder"]}, path.with_name("encoder_only.pt"))
        alone = load_pretrained(path.with_name("encoder_only.pt"), model=_HF_MODEL)
        assert alone.pretrained_cfg.notes == ["encoder: `encoder` (the file has no `target_encoder`)"]
        assert float((alone(_clip()) - other(_clip())).abs().max()) == 0


def test_probe_alone_is_refused_in_one_line(files) -> None:
    _, _, probe_path, _ = files
    with pytest.raises(WeightsError) as err:
        load_pretrained(probe_path, model=_HF_MODEL)
    assert "\n" not in str(err.value) and "no encoder" in str(err.value) and "combine_official" in str(err.value)
    assert "vidbench convert ENCODER.pt DST.safetensors --probe ssv2-vitl-16x2x3.pt" in str(err.value)


def test_combined_probe_matches_hf_logits(files, tmp_path) -> None:
    hf, path, probe_path, _ = files
    out = combine_official(path, probe_path, tmp_path / "probe.pt")
    default = load_pretrained(out, model=_HF_MODEL)
    cfg = default.config  # the official eval's probe: 16 heads, LayerNorm eps 1e-5
    assert (cfg.pooling, cfg.probe_depth, cfg.probe_heads, cfg.probe_norm_eps, cfg.num_classes) == (
        "attentive", 2, 16, 1e-5, 5)
    model = load_pretrained(out, model=_HF_MODEL, probe_heads=4, probe_norm_eps=1e-6)  # HF's pooler: the encoder's

    def ref(x):
        return hf(pixel_values_videos=_hf_input(x)).logits

    diff = assert_same_logits(model, ref, _clip())
    print(f"vjepa2-official probe (HF's probe heads / eps): max |diff| {diff:.2e}")
    with torch.no_grad():  # the official probe's heads and eps are another function of the same weights
        assert float((default(_clip()) - ref(_clip())).abs().max()) > 1e-4


def test_unknown_keys_and_several_probes_are_refused(files, tmp_path) -> None:
    _, path, _, probe = files
    state = torch.load(path, weights_only=True)
    state["target_encoder"]["module.backbone.blocks.0.attn.q_norm.weight"] = torch.ones(20)
    torch.save(state, tmp_path / "extra.pt")
    with pytest.raises(WeightsError, match=r"key not known .*blocks\.0\.attn\.q_norm\.weight") as err:
        load_pretrained(tmp_path / "extra.pt", model=_HF_MODEL)
    assert "\n" not in str(err.value)
    two = _probe_file(tmp_path / "two.pt", [probe, probe])
    assert load_pretrained(combine_official(path, two, tmp_path / "c.pt", probe_index=1), model=_HF_MODEL).num_classes == 5
    with pytest.raises(WeightsError, match="no `classifiers` list with a probe 2"):
        combine_official(path, two, tmp_path / "d.pt", probe_index=2)
    state = torch.load(path, weights_only=True)
    state["classifiers"] = [{f"module.{k}": v for k, v in probe.items()}] * 2
    torch.save(state, tmp_path / "both.pt")
    with pytest.raises(WeightsError, match="holds 2 attentive probes.*probe_index"):
        load_pretrained(tmp_path / "both.pt", model=_HF_MODEL)
    proj = {**probe, "pooler.cross_attention_block.xattn.proj.weight": torch.ones(80, 80)}
    torch.save({"target_encoder": state["target_encoder"], "classifiers": [proj]}, tmp_path / "proj.pt")
    with pytest.raises(WeightsError, match="xattn.proj"):
        load_pretrained(tmp_path / "proj.pt", model=_HF_MODEL)


def test_official_filenames_are_published() -> None:
    for name, model in (("vitl.pt", "vjepa2_vitl"), ("vith.pt", "vjepa2_vith"), ("vitg.pt", "vjepa2_vitg"),
                        ("vitg-384.pt", "vjepa2_vitg_384")):
        entry = find_published(Path(name))
        assert entry is not None and entry.model == model and entry.format == "vjepa2-official", name


def test_convert_cli_takes_the_encoder_and_its_probe(files, tmp_path, capsys) -> None:
    """`vidbench convert ENCODER.pt DST --probe PROBE.pt`: the classifier combine_official gives, in
    one command; the metadata names both files; the combined file is gone afterwards."""
    from vidbench.checkpoint import read_metadata
    from vidbench.cli import main

    _, path, probe_path, _ = files
    dst = tmp_path / "out" / "probe.safetensors"
    dst.parent.mkdir()
    assert main(["convert", str(path), str(dst), "--probe", str(probe_path), "--model", _HF_MODEL]) == 0
    assert f"{path} + {probe_path} (vjepa2-official) -> {dst}" in capsys.readouterr().out
    assert sorted(p.name for p in dst.parent.iterdir()) == ["probe.safetensors"]  # no temporary directory left
    converted = load_pretrained(dst)
    want = load_pretrained(combine_official(path, probe_path, tmp_path / "c.pt"), model=_HF_MODEL)
    assert converted.config.pooling == "attentive" and converted.num_classes == 5
    with torch.no_grad():
        assert torch.equal(converted(_clip()), want(_clip()))
    assert read_metadata(dst)[1]["converted_from"] == f"{path} + {probe_path} (classifiers[0])"


@pytest.mark.parametrize("extra,match", [
    (["--probe-index", "1"], "give --probe"),
    (["--probe", "PROBE", "--probe-index", "3"], "no `classifiers` list with a probe 3"),
    (["--probe", "PROBE", "--weights-format", "timm-vit"], "not --weights-format timm-vit"),
    (["--probe", "ENCODER"], "no `classifiers` list"),
    (["--probe", "MISSING"], "no such file"),
])
def test_convert_cli_probe_errors_are_one_line(files, tmp_path, capsys, extra, match) -> None:
    from vidbench.cli import main

    _, path, probe_path, _ = files
    names = {"PROBE": str(probe_path), "ENCODER": str(path), "MISSING": str(tmp_path / "nope.pt")}
    dst = tmp_path / "x.safetensors"
    assert main(["convert", str(path), str(dst), "--model", _HF_MODEL] + [names.get(a, a) for a in extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and re.search(match, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, no temporary directory left
