"""vidbench compare: each family against the other library's implementation on the same (perturbed,
converted) weights, rows in compare.csv, skipped rows for a missing library, no mixing of runs."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from vidbench.bench import compare as cmp
from vidbench.bench.compare import FAMILIES, CompareConfig, compare_family, run_compare
from vidbench.cli import main
from vidbench.errors import ConfigError
from vidbench.report import compare as cmp_report

pytestmark = pytest.mark.usefixtures("one_thread")

_HF_TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
# tiny reference configs where the library's config takes them; torchvision's MViT and Swin
# builders fix their block tables, so MViTv2-S runs at its paper config on a 4 x 32 x 32 clip (MViT-B
# and Swin-T, as slow, are checked on the meta device below; tests/test_weights_mvit.py and
# test_swin.py compare their logits through the same converters)
TINY = {
    "vit_base": dict(depth=2, embed_dim=192, num_heads=3, patch_size=8),  # 192 wide: timm's standard 3 heads
    "timesformer_base": dict(_HF_TINY, patch_size=8),
    "vivit_m1_base": dict(_HF_TINY, tubelet_size=[2, 8, 8]),
    "videomae_base": dict(_HF_TINY, patch_size=8),
    "videoprism_base": dict(hidden_size=64, num_spatial_layers=2, num_temporal_layers=1, num_attention_heads=2,
                            intermediate_size=128, tubelet_size=[1, 8, 8]),
    "vjepa2_vitl_probe": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=8,
                              num_pooler_layers=1),
    "hiera_base_16x224": dict(embed_dim=16, stages=(1, 1, 1, 1)),  # 4 x 32 x 32: one 8 x 8 mask unit per frame
    "mvitv2_s_16x4": {},
    # mmaction2's arch 'base' block table (24 blocks, pooling at 2, 5, 21) at width 8
    "mvitv2_b_32x3": dict(arch=dict(embed_dims=8, num_layers=24, num_heads=1, downscale_indices=[2, 5, 21])),
    "videomae_v2_base": dict(_HF_TINY, patch_size=8),
}
# measured max |diff| are 0 (timm) to 8e-6 (torchvision MViT at paper depth): an error in a
# converted tensor moves the logits by far more than this
ATOL = 1e-4


def _cfg(model: str, **kw) -> CompareConfig:
    base = dict(models=[model], mode=["infer"], frames=4, img_size=32, warmup=0, iters=1, rounds=2,
                isolate_memory=False, memory_iters=1, reference_kwargs=TINY.get(model, {}))
    return CompareConfig(**{**base, **kw})


def _library(model: str) -> str:
    return FAMILIES[model].library


def _needs(model: str) -> None:
    why = cmp.missing_library(FAMILIES[model])  # mmaction2's package cannot be imported plainly
    if why:
        pytest.skip(why)


@pytest.mark.parametrize("model", list(TINY))
def test_same_logits_and_a_row_per_implementation(model: str) -> None:
    _needs(model)
    rows = compare_family(FAMILIES[model], _cfg(model))
    assert [(r["impl"], r["mode"], r["status"]) for r in rows] == [
        ("vidbench", "infer", "ok"), (_library(model), "infer", "ok")], rows[0]["error"]
    diff = rows[0]["max_abs_logit_diff"]
    assert 0 <= diff < ATOL, diff
    for r in rows:
        assert r["clips_per_s"] > 0 and r["step_ms_median"] > 0 and r["step_ms_iqr"] >= 0
        assert r["params"] > 0 and r["peak_mem_mb"] is not None and "shared process" in r["mem_method"]
    # the same architecture, parameter for parameter; VideoMAE's fused qkv also holds the key bias
    # Hugging Face leaves out (always zero): one width per layer
    extra = 2 * 64 if FAMILIES[model].model == "videomae_base" else 0
    assert rows[0]["params"] == rows[1]["params"] + extra
    assert rows[1]["speedup_vs_reference"] == 1.0
    assert rows[0]["speedup_vs_reference"] == pytest.approx(rows[0]["clips_per_s"] / rows[1]["clips_per_s"])


@pytest.mark.parametrize("model", ["mvit_b_16x4", "swin3d_t"])
def test_paper_configs_pair_up_on_meta(model: str) -> None:
    """torchvision's builders at another clip size (the 16 x 224 of mvit_v1_b is fixed in its
    builder), without drop path, convert to vidbench's model of the same parameter count."""
    pytest.importorskip("torchvision")
    family, cfg = FAMILIES[model], _cfg(model, frames=8, img_size=64, reference_kwargs={})
    with torch.device("meta"):
        ref = family.build(8, 64, {})
        ours = cmp._vidbench_from(family, ref, 8, 64, load=False)
    assert tuple(ours.input_size) == (3, 8, 64, 64) and cmp.input_shape(family, cfg) == (1, 3, 8, 64, 64)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    from torchvision.ops import StochasticDepth

    assert all(m.p == 0 for m in ref.modules() if isinstance(m, StochasticDepth))


@pytest.mark.parametrize("model", ["mvitv2_b_32x3", "videomae_v2_base"])
def test_new_references_pair_up_at_paper_width_on_meta(model: str) -> None:
    """mmaction2's MViT(arch='base') at 32 x 224 (MViTv2-B, 400 classes) and HF's VideoMAE at the V2
    distilled ViT-B config (eps 1e-6, 710 classes; 2 frames: HF's position table is a Python loop)
    convert to vidbench's registry model at the same width, parameter for parameter."""
    _needs(model)
    family = FAMILIES[model]
    frames = 2 if model == "videomae_v2_base" else family.frames
    with torch.device("meta"):
        ref = family.build(frames, family.img_size, {})
        ours = cmp._vidbench_from(family, ref, frames, family.img_size, load=False)
    extra = 12 * 768 if family.model == "videomae_base" else 0  # the always-zero key biases HF leaves out
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters()) + extra
    if model == "mvitv2_b_32x3":
        assert ours.model_name == "mvitv2_b_32x3" and ours.config.embed_dim == 96 and ours.input_size == (3, 32, 224, 224)
        assert ours.head.out_features == 400
    else:
        assert (ours.config.embed_dim, ours.config.depth, ours.config.norm_eps, ours.head.out_features) == (
            768, 12, 1e-6, 710)


def test_reference_weights_are_perturbed_and_reach_vidbench() -> None:
    """Not a coincidence of initial values: no LayerNorm of the reference is the identity, and a
    change to one reference weight after conversion moves only the reference's logits."""
    pytest.importorskip("transformers")
    family = FAMILIES["timesformer_base"]
    ours, ref = cmp.build_pair(family, _cfg("timesformer_base"))
    norms = [m for m in ref.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(float((m.weight.detach() - 1).abs().max()) > 1e-3 and float(m.bias.detach().abs().max()) > 1e-3
                         for m in norms)
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert float((ours(x) - family.forward(ref, x)).abs().max()) < ATOL
        ref.classifier.bias.add_(1.0)
        assert float((ours(x) - family.forward(ref, x)).abs().max()) > 0.5


def test_train_rows_and_interleaved_rounds(monkeypatch) -> None:
    pytest.importorskip("transformers")
    order = []
    real = cmp.time_steps

    def spy(step, device, warmup, iters):
        order.append((getattr(step, "__name__", "?"), warmup))
        return real(step, device, warmup, iters)

    monkeypatch.setattr(cmp, "time_steps", spy)
    rows = compare_family(FAMILIES["vivit_m1_base"], _cfg("vivit_m1_base", mode=["train"], rounds=3, warmup=2))
    assert [(r["impl"], r["mode"], r["status"]) for r in rows] == [("vidbench", "train", "ok"),
                                                                   ("transformers", "train", "ok")]
    assert rows[0]["max_abs_logit_diff"] < ATOL
    timed = [o for o in order if o[0] == "train"]
    # 3 rounds of (vidbench, reference): the full warm-up before each one's first round, 1 step after
    assert [w for _, w in timed] == [2, 2, 1, 1, 1, 1]


def test_run_writes_csv_and_environment_and_never_adds_to_a_table(tmp_path: Path) -> None:
    pytest.importorskip("timm")
    out = tmp_path / "cmp"
    rows = run_compare(_cfg("vit_base"), out, progress=False)
    table = pd.read_csv(out / "compare.csv")
    assert list(table["impl"]) == ["vidbench", "timm"] and set(table["status"]) == {"ok"}
    assert list(table.columns) == list(cmp.COMPARE_COLUMNS)
    assert (table["max_abs_logit_diff"] < ATOL).all() and (table["frames"].isna()).all()  # an image model
    env = json.loads((out / "environment.json").read_text())
    assert env["compare"]["models"] == ["vit_base"] and "timm" in env["libraries"]
    assert len(rows) == 2
    with pytest.raises(FileExistsError, match="compare.csv already has rows"):
        run_compare(_cfg("vit_base"), out, progress=False)
    assert len(pd.read_csv(out / "compare.csv")) == 2  # untouched


def test_peak_memory_in_a_fresh_process() -> None:
    """The worker builds the model inside the measurement: its weights are in the peak."""
    pytest.importorskip("timm")
    cfg = _cfg("vit_base", isolate_memory=True, memory_iters=1)
    peak, method = cmp._memory_isolated(FAMILIES["vit_base"], cfg, "vidbench", "infer")
    assert "fresh process" in method and "weights included" in method, method
    weights_mib = sum(p.numel() for p in cmp.build_one(FAMILIES["vit_base"], cfg, "vidbench").parameters()) * 4 / 2**20
    assert peak is not None and peak > weights_mib


def test_missing_library_gives_skipped_rows(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    rows = run_compare(_cfg("videomae_base", mode=["infer", "train"]), tmp_path / "out", progress=False)
    assert [(r["impl"], r["mode"], r["status"]) for r in rows] == [
        ("vidbench", "infer", "skipped"), ("transformers", "infer", "skipped"),
        ("vidbench", "train", "skipped"), ("transformers", "train", "skipped")]
    assert all("transformers is not installed" in r["error"] for r in rows)
    table = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert list(table["status"]) == ["skipped"] * 4


def test_mmaction2_missing_gives_skipped_rows_and_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mmengine", None)  # mmaction_backbone imports it first
    rows = compare_family(FAMILIES["mvitv2_b_32x3"], _cfg("mvitv2_b_32x3"))
    assert [(r["impl"], r["status"]) for r in rows] == [("vidbench", "skipped"), ("mmaction", "skipped")]
    assert "pip install mmaction2 mmengine mmcv-lite" in rows[0]["error"]


def test_a_setting_mmaction2_mvit_does_not_take_is_refused() -> None:
    _needs("mvitv2_b_32x3")
    with pytest.raises(ConfigError, match="--reference-arg embed_dims: mmaction2 MViT"):
        cmp.check_reference_args(_cfg("mvitv2_b_32x3", reference_kwargs={"embed_dims": 8}))
    cmp.check_reference_args(_cfg("mvitv2_b_32x3"))  # arch (a dict of arch_zoo keys) is an argument


def test_cli_errors_are_one_line(tmp_path: Path, capsys) -> None:
    assert main(["compare", "vit_bse", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'vit_bse'" in err and "did you mean vit_base" in err
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "compare.csv").write_text("model,impl\nvit_base,vidbench\n")
    assert main(["compare", "vit_base", "--out", str(tmp_path / "b"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already has rows" in err
    assert (tmp_path / "b" / "compare.csv").read_text() == "model,impl\nvit_base,vidbench\n"


def test_cli_runs_a_tiny_comparison(tmp_path: Path, capsys) -> None:
    pytest.importorskip("transformers")
    out = tmp_path / "run"
    args = ["compare", "videomae_base", "--mode", "infer", "--frames", "4", "--img-size", "32", "--warmup", "0",
            "--iters", "1", "--rounds", "1", "--no-isolate-memory", "--out", str(out), "--no-progress"]
    args += [f"--reference-arg={k}={v}" for k, v in TINY["videomae_base"].items()]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "videomae_base" in text and "transformers" in text
    table = pd.read_csv(out / "compare.csv")
    assert list(table["status"]) == ["ok", "ok"] and (table["img_size"] == 32).all()
    # the report's section: the table beside the reference, and the speed-up plot
    from vidbench.report import write_report

    md, _ = write_report([out])
    text = md.read_text()
    assert "## Implementations side by side" in text and "transformers VideoMAEForVideoClassification" in text
    assert (out / "report_plots" / "compare_speedup.png").stat().st_size > 0
    assert cmp_report.compare_table(table).iloc[0]["x ref"] == f"{table['speedup_vs_reference'].iloc[0]:.2f}"


def test_profile_rows_split_each_forward_by_kind(tmp_path: Path) -> None:
    from vidbench.report import write_report

    out = tmp_path / "prof"
    run_compare(_cfg("timesformer_base", mode=["infer"], profile=2), out, progress=False)
    prof = pd.read_csv(out / "compare_profile.csv")
    assert set(prof["impl"]) == {"vidbench", "transformers"}
    for _, g in prof.groupby("impl"):
        ops = g[~g["op"].str.startswith("total")]
        total = g.loc[g["op"] == "total", "self_ms"].item()
        assert ops["self_ms"].sum() == pytest.approx(total)
        assert ops["share_pct"].sum() == pytest.approx(100.0)
        kinds = g[g["op"].str.startswith("total ")].set_index("kind")["self_ms"]
        assert kinds.sum() == pytest.approx(total)
        assert kinds["gemm/conv/attention"] > 0 and "aten::addmm" in set(ops["op"])
    text = write_report([out])[0].read_text()
    assert "Where the time goes" in text and "GEMM / conv / attention %" in text
