"""Report generation from small fixture results directories: both files, every section."""
import json

import pytest

from vidbench.cli import main
from vidbench.report import SECTIONS, load_run, write_report
from vidbench.report.tables import model_table, pareto_front, scaling
from vidbench.results import ResultsStore

MODELS = {"vivit_m1_tiny": 2.0, "vivit_m3_tiny": 1.0, "vit_frameavg_tiny": 0.5}


def make_run(path, device="cpu", device_name="Test CPU"):
    """A results directory as the harness, trainer and SSL writer produce it."""
    store = ResultsStore(path)
    for model, slope in MODELS.items():
        for frames in (8, 16, 32):
            for mode in ("infer", "train"):
                ms = 10 * (frames / 8) ** slope * (3 if mode == "train" else 1)
                store.append("bench", dict(model=model, params=1.9e6, gmacs=0.1 * frames / 8, frames=frames, img_size=32,
                                           batch_size=1, precision="fp32", device=device, mode=mode,
                                           clips_per_s=1000 / ms, step_ms_median=ms, step_ms_iqr=0.1,
                                           peak_mem_mb=50 * frames / 8, mem_method="peak RSS, subprocess",
                                           mfu_pct=5.0, status="ok", error=""))
    for mode in ("infer", "train"):  # an image model: no frames column value
        store.append("bench", dict(model="vit_tiny", params=5.7e6, gmacs=1.26, img_size=224, batch_size=4,
                                   precision="fp32", device=device, mode=mode, clips_per_s=8.0, step_ms_median=500,
                                   step_ms_iqr=1.0, peak_mem_mb=60, mfu_pct=20.0, status="ok", error=""))
    store.append("bench", dict(model="vtn_tiny", frames=8, batch_size=64, precision="fp32", mode="train",
                               status="oom", error="out of memory"))
    for model, (top1, static, temporal) in {"vivit_m1_tiny": (90, 95, 85), "vivit_m3_tiny": (80, 90, 70),
                                            "vit_frameavg_tiny": (55, 95, 12)}.items():
        store.append("accuracy", dict(model=model, init="random", data="data/synthetic", views="2x1", epochs=3,
                                      top1=top1, top5=100.0, acc_static=static, acc_temporal=temporal, skipped_items=0))
    store.append("accuracy", dict(model="vivit_m1_tiny", init="byol", data="data/synthetic", views="2x1", epochs=3,
                                  top1=92, top5=100.0, acc_static=97, acc_temporal=87, skipped_items=1))
    for method, knn, lin in (("random", 30, 35), ("byol", 60, 70), ("simclr", 55, 65)):
        store.append("ssl", dict(method=method, epochs=2, knn_top1=knn, linear_top1=lin, pretrain_time_s=12.0))
    store.write_environment(device)
    env = json.loads((path / "environment.json").read_text())
    env["device_name"] = device_name
    (path / "environment.json").write_text(json.dumps(env))
    return path


def test_report_has_both_files_and_every_section(tmp_path):
    run = make_run(tmp_path / "quick")
    md, html = write_report([run])
    assert md == run / "report.md" and html == run / "report.html"
    md_text, html_text = md.read_text(), html.read_text()
    for section in SECTIONS:
        assert f"## {section}" in md_text
        assert f"<h2>{section}</h2>" in html_text
    # every plot rendered, embedded in the HTML, written beside the Markdown
    assert html_text.count("data:image/png;base64,") == 6
    assert "nothing to plot" not in md_text
    assert (run / "report_plots" / "accuracy_vs_gmacs.png").exists()
    assert "one multiply-add = one FLOP" in md_text and "peak RSS, subprocess" in md_text
    assert "out of memory" in md_text  # the failed row is reported
    assert "<script" not in html_text and "src=\"http" not in html_text  # self-contained


def test_model_table_values(tmp_path):
    t = model_table(load_run(make_run(tmp_path / "r")))
    row = t.set_index("model").loc["vivit_m1_tiny"]
    assert row["frames"] == 8 and row["clips_s_infer"] == pytest.approx(100.0)
    assert row["top1"] == 90  # the random-init row, not the byol one
    assert row["peak_mem_mb_infer"] == 50
    image = t.set_index("model").loc["vit_tiny"]
    assert image["params_m"] == pytest.approx(5.7) and image["clips_s_train"] == 8.0


def test_scaling_slopes_recover_the_exponents(tmp_path):
    s = scaling(load_run(make_run(tmp_path / "r")), "clips_per_s", "infer")
    slopes = s.groupby("model")["slope"].first()
    for model, exponent in MODELS.items():
        assert slopes[model] == pytest.approx(exponent, abs=1e-6)


def test_pareto_front():
    import pandas as pd

    pts = pd.DataFrame(dict(model=list("abcd"), gmacs=[1, 2, 3, 4], top1=[0.5, 0.4, 0.7, 0.6]))
    assert list(pareto_front(pts, "gmacs", "top1")["model"]) == ["a", "c"]


def test_two_devices_are_compared_but_not_mixed(tmp_path, capsys):
    cpu = make_run(tmp_path / "cpu")
    gpu = make_run(tmp_path / "gpu", device="cuda", device_name="Test GPU")
    assert main(["report", str(cpu), str(gpu), "--out", str(tmp_path / "both")]) == 0
    text = (tmp_path / "both" / "report.md").read_text()
    assert "different devices" in text
    assert "(cpu: Test CPU)" in text and "(cuda: Test GPU)" in text
    html = (tmp_path / "both" / "report.html").read_text()
    assert html.count("vs frames (cuda: Test GPU)</figcaption>") == 3
    assert html.count("vs frames (cpu: Test CPU)</figcaption>") == 3


def test_empty_or_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="results directory not found"):
        write_report([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="nothing to report"):
        write_report([tmp_path / "empty"])
