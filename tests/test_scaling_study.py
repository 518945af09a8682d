"""The scaling study: activation memory counted on meta equals the count with real tensors on the
CPU; benchmarks/scaling_study.py writes one row per point and resumes; the report section."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from vidbench.bench import count_flops
from vidbench.bench.activation_memory import activation_bytes, count_activations
from vidbench.layers import fused_attn
from vidbench.models import create_model
from vidbench.report import Run, write_report
from vidbench.report.tables import scaling_study, study_slopes
from vidbench.results import ResultsStore

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scaling_study.py"


def saved_bytes_on_cpu(model: torch.nn.Module, size) -> int:
    """The same quantity measured with real tensors, deduplicated by data pointer: every storage
    autograd saves in a training-mode forward (parameters and buffers excepted) plus the output."""
    state = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    kept = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in state:
            kept.setdefault(t.untyped_storage().data_ptr(), t)
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(torch.randn(1, *size))
    kept.setdefault(out.untyped_storage().data_ptr(), out)
    return sum(t.untyped_storage().nbytes() for t in kept.values())


@pytest.mark.parametrize("name, attention, backend", [
    ("videomae_tiny", "fused", "flash_attention"),  # joint attention: the CPU's flash kernel
    ("videomae_tiny", "reference", None),  # the attention matrix materialised
    ("swin3d_tiny", "fused", "math"),  # a bias that needs a gradient: the CPU falls back to math
])
def test_meta_count_equals_real_cpu_count(name, attention, backend):
    meta = count_activations(name, attention=attention)
    assert meta.device == "meta" and meta.attention == attention
    model = create_model(name)
    with fused_attn(attention == "fused"):
        real = saved_bytes_on_cpu(model, model.input_size)
    assert meta.bytes == real
    assert activation_bytes(name, attention=attention) == real
    if backend:
        assert set(meta.sdpa_backends) == {backend}


def test_fused_kernel_saves_less_than_the_reference_path():
    fused, reference = (count_activations("vivit_m1_tiny", attention=a) for a in ("fused", "reference"))
    assert fused.sdpa_backends == {"flash_attention": 4}  # one per block
    # the reference path keeps at least each block's softmax matrix: heads x N x N floats (N with cls)
    model = create_model("vivit_m1_tiny")
    n, heads, depth = model.patch_embed.num_patches + 1, model.config.num_heads, model.config.depth
    assert reference.bytes - fused.bytes >= depth * heads * n * n * 4


def load_script():
    spec = importlib.util.spec_from_file_location("scaling_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_writes_every_point_and_resumes(tmp_path, capsys):
    study = load_script()
    out = tmp_path / "study"
    argv = ["--models", "videomae_tiny,mvit_tiny", "--frames", "4,8", "--sizes", "16,32", "--out", str(out),
            "--no-measure"]
    assert study.main(argv) == 0
    rows = ResultsStore(out).read("scaling")
    assert len(rows) == 8 and list(rows.columns) == list(study.COLUMNS)
    assert set(zip(rows["model"], rows["frames"], rows["img_size"])) == {
        (m, f, s) for m in ("videomae_tiny", "mvit_tiny") for f in (4, 8) for s in (16, 32)}
    mvit16 = rows[(rows["model"] == "mvit_tiny") & (rows["img_size"] == 16)]
    assert (mvit16["status"] == "unsupported").all() and mvit16["error"].str.contains("multiple of 32").all()
    counted = rows[rows["status"] != "unsupported"]
    assert counted["status"].str.startswith("skipped").all()
    mae = rows[rows["model"] == "videomae_tiny"].set_index(["frames", "img_size"])
    assert mae.loc[(8, 32), "tokens"] == 4 * 4 * 4  # tubelet 2x8x8
    assert mae.loc[(8, 32), "attention"] == "joint"
    assert mae.loc[(8, 32), "gmacs"] == pytest.approx(count_flops("videomae_tiny", num_frames=8, img_size=32).gmacs)
    assert mae.loc[(8, 32), "act_bytes"] == activation_bytes("videomae_tiny", num_frames=8, img_size=32)
    assert mae.loc[(8, 32), "act_attention"] == "fused (flash_attention x4)"
    assert rows.loc[rows["model"] == "mvit_tiny", "attention"].eq("pooling").all()
    env = json.loads((out / "environment.json").read_text())
    assert env["benchmark"] == "scaling_study" and env["config"]["frames"] == [4, 8]

    assert study.main(argv + ["--resume"]) == 0  # nothing left to do
    assert len(ResultsStore(out).read("scaling")) == 8
    with pytest.raises(SystemExit, match="--resume"):
        study.main(argv)  # an existing run is never mixed into silently


def test_new_attention_patterns_are_counted(tmp_path):
    """Hiera's mask units, VideoPrism's soft-capped factorised attention and V-JEPA 2's rotary joint
    attention (their CPU configs) are counted on the meta device, each under its pattern's name;
    VideoPrism's 18 px patch keeps the nominal 16 px grid (paper width: 224 -> 252)."""
    study = load_script()
    assert study.model_size("videoprism_base", 224) == 252 and study.model_size("videoprism_base", 288) == 288
    assert study.model_size("videoprism_tiny", 32) == 32 and study.model_size("vjepa2_vitl", 224) == 224
    assert {"hiera_base_16x224", "videoprism_base", "vjepa2_vitl"} <= set(study.MODELS)
    out = tmp_path / "study"
    assert study.main(["--models", "hiera_tiny,videoprism_tiny,vjepa2_tiny", "--frames", "8", "--sizes", "32",
                       "--out", str(out), "--no-measure"]) == 0
    rows = ResultsStore(out).read("scaling").set_index("model")
    assert rows["attention"].to_dict() == {"hiera_tiny": "mask unit", "videoprism_tiny": "factorised, soft-capped",
                                           "vjepa2_tiny": "joint, 3-D RoPE"}
    assert rows["status"].str.startswith("skipped: not measured").all()
    assert rows.loc["vjepa2_tiny", "tokens"] == 4 * 4 * 4 and rows.loc["videoprism_tiny", "tokens"] == 8 * 4 * 4
    for name in rows.index:
        assert rows.loc[name, "gmacs"] == pytest.approx(count_flops(name, num_frames=8, img_size=32).gmacs)
        assert rows.loc[name, "act_bytes"] > 0 and rows.loc[name, "act_ref_bytes"] >= rows.loc[name, "act_bytes"]
    assert "soft-capped calls: reference path" in rows.loc["videoprism_tiny", "act_attention"]
    assert "soft-capped" not in rows.loc["vjepa2_tiny", "act_attention"]


def test_script_measures_under_the_limit_and_skips_over_it(tmp_path):
    study = load_script()
    base = ["--models", "videomae_tiny", "--frames", "4", "--sizes", "16", "--no-isolate", "--warmup", "0", "--iters", "1"]
    study.main(base + ["--out", str(tmp_path / "a")])
    row = ResultsStore(tmp_path / "a").read("scaling").iloc[0]
    assert row["status"] == "ok" and row["step_ms_median"] > 0 and row["iters"] == 1 and not row["isolated"]
    study.main(base + ["--out", str(tmp_path / "b"), "--max-forward-s", "0"])
    row = ResultsStore(tmp_path / "b").read("scaling").iloc[0]
    assert row["status"].startswith("skipped: estimated") and row["est_forward_s"] > 0
    assert row["step_ms_median"] != row["step_ms_median"]  # blank: nothing was measured


def make_study(path):
    """A scaling.csv alone, as the script writes it: GMACs ~ tokens^2 for a joint model and ~
    tokens for a windowed one; the largest points skipped."""
    store = ResultsStore(path)
    for model, attention, power in (("joint_net", "joint", 2.0), ("window_net", "shifted window", 1.0)):
        for frames in (8, 16, 32):
            tokens = frames * 49
            measured = frames < 32
            store.append("scaling", dict(
                model=model, attention=attention, frames=frames, img_size=112, device="cpu", tokens=tokens,
                params=1e6, gmacs=1e-5 * tokens**power, act_bytes=1000 * tokens, act_attention="fused (flash_attention x2)",
                act_ref_bytes=10 * tokens**2, step_ms_median=0.01 * tokens**power if measured else None,
                peak_mem_mb=tokens / 10 if measured else None, mem_method="cpu_peak_rss_minus_baseline (fresh process)",
                status="ok" if measured else "skipped: estimated 99 s per forward > max 20 s"))
    store.append("scaling", dict(model="window_net", attention="shifted window", frames=8, img_size=100, device="cpu",
                                 status="unsupported", error="ValueError: not a multiple of 32"))
    store.write_environment("cpu")
    return path


def test_report_section_from_a_scaling_csv(tmp_path):
    run_dir = make_study(tmp_path / "study")
    points = scaling_study(Run(run_dir, {}, {"scaling": ResultsStore(run_dir).read("scaling")}))
    slopes = study_slopes(points).set_index("model")
    assert slopes.loc["joint_net", "slope_gmacs"] == pytest.approx(2.0)
    assert slopes.loc["window_net", "slope_gmacs"] == pytest.approx(1.0)
    assert slopes.loc["joint_net", "slope_act_ref_mib"] == pytest.approx(2.0)
    assert slopes.loc["joint_net", "measured"] == 2
    md, html = write_report([run_dir])
    text = md.read_text()
    assert "## Scaling study" in text and "<h2>Scaling study</h2>" in html.read_text()
    assert "skipped: estimated 99 s per forward > max 20 s" in text
    for png in ("study_gmacs", "study_activation", "study_time_0"):
        assert (run_dir / "report_plots" / f"{png}.png").exists()
    failures = text.split("## Failures and skipped items")[1]
    assert "not a multiple of 32" in failures and "estimated 99 s" not in failures  # skipped by design: not a failure
