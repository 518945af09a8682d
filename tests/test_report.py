"""Report generation from small fixture results directories: both files, every section where its
runs have rows and none where they have not, plots with one group per model and labels that do not
overlap, runs from a dirty tree flagged."""
import json
from pathlib import Path

import pandas as pd
import pytest

from vidbench.cli import main
from vidbench.report import SECTIONS, load_run, readme, write_report
from vidbench.report.plots import init_accuracy, labels_fit, speedup
from vidbench.report.readme import SECTIONS as README_SECTIONS
from vidbench.report.readme import render_section
from vidbench.report.render import inline_html
from vidbench.report.tables import model_table, pareto_front, scaling
from vidbench.results import ResultsStore

MODELS = {"vivit_m1_tiny": 2.0, "vivit_m3_tiny": 1.0, "vit_frameavg_tiny": 0.5}


def set_commit(path, commit):
    """Record `commit` as the run's git commit (the one written depends on the tree the tests run in)."""
    env = json.loads((path / "environment.json").read_text())
    (path / "environment.json").write_text(json.dumps({**env, "git_commit": commit}))
    return path


def make_compare(path, models=("timesformer_base", "vivit_m1_base", "mvit_b_16x4"), commit="abc1234"):
    """A compare.csv alone, as `vidbench compare` writes it: per model and mode a vidbench row and
    the reference's (speed-up 1 + model index / 10 in inference, 1 in training)."""
    store = ResultsStore(path)
    for i, model in enumerate(models):
        for mode in ("infer", "train"):
            for impl, speedup_ in (("vidbench", 1 + i / 10 if mode == "infer" else 1.0), ("transformers", 1.0)):
                store.append("compare", dict(
                    model=model, impl=impl, reference="transformers Model", library="transformers", mode=mode,
                    frames=8, img_size=224, batch_size=1, precision="fp32", device="cpu", threads=2,
                    max_abs_logit_diff=1e-6, clips_per_s=speedup_, step_ms_median=1000 / speedup_, step_ms_iqr=5.0,
                    speedup_vs_reference=speedup_, peak_mem_mb=500.0, mem_method="peak RSS", status="ok", error=""))
    store.write_environment("cpu")
    return set_commit(path, commit)


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


def test_a_report_shows_only_the_sections_its_runs_have_rows_for(tmp_path):
    """A compare-only run: Runs and the comparison, no empty Models / Accuracy / Scaling / SSL /
    Initialisation / Failures section, and no placeholder text in either file."""
    md, html = write_report([make_compare(tmp_path / "cmp")])
    md_text, html_text = md.read_text(), html.read_text()
    headings = [line for line in md_text.splitlines() if line.startswith("## ")]
    assert headings == ["## Runs", "## Implementations side by side"]
    assert html_text.count("<h2>") == 2 and html_text.count("<table") == 2 and html_text.count("<img") == 1
    for placeholder in ("no rows", "nothing to plot", "no self-supervised", "_none_"):
        assert placeholder not in md_text and placeholder not in html_text


def test_the_html_renders_the_reports_markdown():
    assert inline_html("`vidbench compare --profile N` and *kernels run*, **bold**") == \
        "<code>vidbench compare --profile N</code> and <em>kernels run</em>, <strong>bold</strong>"
    assert inline_html("_caption: a_b_") == "<em>caption: a_b</em>"
    assert inline_html("skipped_items and 2*3*4 <b>") == "skipped_items and 2*3*4 &lt;b&gt;"  # no stray emphasis


def test_a_run_from_a_dirty_tree_is_flagged(tmp_path):
    clean = make_compare(tmp_path / "clean")
    dirty = make_compare(tmp_path / "dirty", commit="63afd8d-dirty")
    md, html = write_report([clean, dirty], tmp_path / "both")
    warnings = [line for line in md.read_text().splitlines() if line.startswith("> **Warning:**")]
    assert len(warnings) == 1 and "dirty was measured from a working tree with uncommitted changes" in warnings[0]
    assert "63afd8d-dirty" in warnings[0]
    assert html.read_text().count('<p class="warning">') == 1
    # rows added to the directory earlier, from a dirty tree, count too (environment.json's earlier_runs)
    env = json.loads((clean / "environment.json").read_text())
    (clean / "environment.json").write_text(json.dumps({**env, "earlier_runs": [{"git_commit": "5ebcdf3-dirty"}]}))
    assert "(commit 5ebcdf3-dirty)" in write_report([clean])[0].read_text()


def test_speedup_plot_has_one_group_per_model_and_a_bar_per_mode(tmp_path):
    run = load_run(make_compare(tmp_path / "cmp"))
    ax = speedup([run]).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["timesformer_base", "vivit_m1_base", "mvit_b_16x4"]
    assert [len(c.patches) for c in ax.containers] == [3, 3]  # infer, train
    infer = sorted(ax.containers[0].patches, key=lambda p: p.get_x())
    assert [round(p.get_height(), 6) for p in infer] == [1.0, 1.1, 1.2]
    assert all(-0.5 < p.get_x() - k < 0.5 for k, p in enumerate(infer))  # each bar in its model's group


@pytest.mark.parametrize("groups", [3, 11, 40])
def test_bar_labels_do_not_overlap(tmp_path, groups):
    """Tick labels under the bars clear each other for a few, a dozen and many groups."""
    store = ResultsStore(tmp_path / "r")
    for i in range(groups):
        for init in ("random", "imagenet_supervised"):
            store.append("accuracy", dict(model=f"timesformer_tiny_variant_{i}", init=init, top1=50.0, acc_static=60.0,
                                          acc_temporal=40.0))
    fig = init_accuracy([load_run(tmp_path / "r")])
    ax = fig.axes[0]
    assert len(ax.get_xticklabels()) == 2 * groups and labels_fit(ax)
    fig.canvas.draw()
    inside = fig.bbox.padded(1)
    assert all(inside.contains(b.x0, b.y0) and inside.contains(b.x1, b.y1)
               for b in (t.get_window_extent() for t in ax.get_xticklabels()))  # none cut off


def test_empty_or_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="results directory not found"):
        write_report([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="nothing to report"):
        write_report([tmp_path / "empty"])


# --- README tables (`vidbench report --format readme`) -------------------------------------------

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(README_SECTIONS))
def test_quoted_tables_are_the_generated_ones(name, monkeypatch):
    """Each table README.md, a docs/ page or a results directory's README quotes is, under its
    marker line and with the line under it, exactly what the command prints from the committed
    CSVs: an edited figure, a changed CSV or a dropped table fails here (regenerate with the
    command in that line)."""
    monkeypatch.chdir(REPO)
    block = render_section(name)
    assert f"--section {name}`" in block.splitlines()[-1]
    assert README_SECTIONS[name].targets
    for target in README_SECTIONS[name].targets:
        assert f"{readme.marker(name)}\n{block}" in (REPO / target).read_text(), target


def test_every_committed_results_directory_says_how_it_was_made():
    """README.md (or environment.json's argv) names the suite TOML, benchmarks/ script or vidbench
    command that made it; nothing in results/ is a script of its own."""
    for run in sorted(p for p in (REPO / "results").iterdir() if p.is_dir()):
        notes = run / "README.md"
        env = json.loads((run / "environment.json").read_text()) if (run / "environment.json").exists() else {}
        scripts = [a for a in env.get("argv", []) if a.endswith(".py") and (REPO / "benchmarks" / Path(a).name).exists()]
        text = notes.read_text() if notes.exists() else ""
        commands = ("python benchmarks/", "vidbench run --suite", "vidbench compare ", "vidbench bench ")
        assert scripts or any(c in text for c in commands), run.name
        assert not [p.name for p in run.iterdir() if p.suffix in (".sh", ".py")], run.name


def test_readme_tables_from_hand_made_results(tmp_path, monkeypatch):
    """The arithmetic and formatting on rows whose answers are worked out by hand."""
    dl = tmp_path / "data_loading_cpu"
    dl.mkdir()
    pd.DataFrame(dict(loader=["fast", "naive-pyav-all-frames", "fast"], workers=[0, 0, 2], clips_per_s=[150.0, 100.0, 9.0])
                 ).to_csv(dl / "data_loading.csv", index=False)
    assert readme.data_loading(dl).splitlines()[2:] == ["| fast | 0 | 150.0 | 1.50x |",
                                                        "| naive-pyav-all-frames | 0 | 100.0 | 1.00x |",
                                                        "| fast | 2 | 9.0 | - |"]  # no naive row at 2 workers
    acc = tmp_path / "accuracy_cpu"
    (acc / "a").mkdir(parents=True)
    (acc / "a" / "environment.json").write_text(json.dumps({"torch_threads": 2}))
    pd.DataFrame(dict(run=["a"], model=["vivit_m2_tiny"], init=["random"], model_options=['{"temporal_pos_std": 0.5}'],
                      epochs=[20], train_time_s=[434.6], top1=[99.2063], acc_static=[100.0], acc_temporal=[98.8889])
                 ).to_csv(acc / "accuracy.csv", index=False)
    assert readme.accuracy(acc).splitlines()[2] == \
        "| `vivit_m2_tiny` | `temporal_pos_std=0.5` | 2 | 20 | 435 s | 99.2 | 100.0 | 98.9 |"
    paper = tmp_path / "paper_cpu"
    ResultsStore(paper).append("bench", dict(model="vivit_m1_base", params=88_954_000, gmacs=451.8259, mode="count",
                                             status="ok"))
    ResultsStore(paper).append("bench", dict(model="mvit_b_16x4", params=36_610_672, gmacs=70.8, mode="count",
                                             status="ok"))
    params = readme.paper_params(paper)
    assert "| ViViT-B Model 1 / 2 / 3 / 4 | 88.95M / - / - / - | 88.9M / 115.1M / 117.3M / 88.9M |" in params
    assert "| MViT-B 16x4 / 32x3 | 36,610,672 / - | 36,610,672 / 36.61M |" in params  # exact where the source is
    assert "| ViViT-B Model 1 / 2 / 3 / 4 (32x224) | 451.83 / - / - / - | 455.2 / 284.4 / 372.3 / 277.1 |" \
        in readme.paper_gmacs(paper)
    monkeypatch.chdir(tmp_path)
    assert readme.render_section("data-loading", ".").endswith(
        "_Generated from `./data_loading_cpu` (`data_loading.csv`): "
        "`vidbench report --format readme . --section data-loading`._")


def test_readme_format_on_the_command_line(tmp_path, capsys):
    assert main(["report", "--format", "readme", str(REPO / "results"), "--section", "data-loading"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| loader | workers | clips/s | vs naive |") and "--section data-loading`._" in out
    assert main(["report", "--format", "readme", "--section", "nope"]) == 2
    assert "--section nope: unknown; sections are paper-params" in capsys.readouterr().err
    assert main(["report", "--section", "quick", str(tmp_path)]) == 2


def test_multi_process_table_shows_strategy_nodes_scaling_and_sharded_state():
    from vidbench.report.measurement import nproc_table

    base = {"model": "vit_tiny", "frames": 8, "img_size": 32, "batch_size": 4, "precision": "fp32", "mode": "train",
            "status": "ok", "threads": 1, "step_ms_median": 10.0, "step_ms_iqr": 0.1}
    rows = [{**base, "nproc": 1, "strategy": "ddp", "clips_per_s": 10.0},
            {**base, "nproc": 2, "strategy": "ddp", "nnodes": 1, "scaling": "weak", "global_batch": 8,
             "clips_per_s": 16.0, "scaling_efficiency": 0.8, "param_mb": 2.0, "grad_mb": 2.0, "optimizer_state_mb": 4.0},
            {**base, "nproc": 2, "strategy": "fsdp", "nnodes": 2, "scaling": "strong", "global_batch": 4,
             "clips_per_s": 12.0, "scaling_efficiency": 0.6, "param_mb": 1.0, "grad_mb": 1.0, "optimizer_state_mb": 2.0}]
    t = nproc_table(pd.DataFrame(rows))
    fsdp = t[t["strategy"] == "fsdp"].iloc[0]
    assert (fsdp["nodes"], fsdp["scaling"], fsdp["global batch"]) == (2, "strong", 4)
    assert fsdp["optimizer MiB/process"] == 2.0 and t[t["strategy"] == "ddp"]["params MiB/process"].max() == 2.0
    # rows from before these columns: the table leaves them out rather than showing empty columns
    old = nproc_table(pd.DataFrame([{k: v for k, v in r.items() if not k.endswith("_mb")} for r in rows]))
    assert "params MiB/process" not in old.columns and "processes" in old.columns


def test_a_directory_of_end_to_end_rows_is_a_report_with_their_table(tmp_path):
    from vidbench.report.measurement import e2e_table

    row = {"model": "videomae_tiny", "frames": 8, "img_size": 32, "batch_size": 4, "precision": "fp32",
           "mode": "train", "status": "ok", "backend": "pyav", "num_workers": 2, "clips_per_s": 20.0,
           "model_clips_per_s": 100.0, "loader_clips_per_s": 25.0, "wait_share": 0.55, "cores_busy": 1.9,
           "loader_cpu_s_per_clip": 0.08, "cores_per_device": 8.0}
    t = e2e_table(pd.DataFrame([row, {**row, "status": "error", "mode": "infer"}]))
    assert len(t) == 1 and t.iloc[0]["wait %"] == 55 and t.iloc[0]["loader"] == "pyav x2"
    run = tmp_path / "e2e_run"
    run.mkdir()
    pd.DataFrame([row]).to_csv(run / "e2e.csv", index=False)
    (run / "environment.json").write_text('{"device": "cpu"}')
    md, _ = write_report([run], tmp_path / "out")
    text = md.read_text()
    assert "The end-to-end step" in text and "cores per device" in text
