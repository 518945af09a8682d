"""Write report.md (plots as PNG files beside it) and a self-contained report.html (plots
embedded as data URIs) from one or more results directories."""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import matplotlib.pyplot as plt
import pandas as pd

from ..results import write_file, writing
from . import compare, measurement, plots, tables
from .load import ReportError, Run, load_run, read_table

MODEL_COLUMNS = {
    "model": "model", "precision": "precision", "frames": "frames", "params_m": "params (M)",
    "published_params_m": "paper params (M)", "params_dev_pct": "params dev %", "gmacs": "GMACs",
    "published_gmacs": "paper GMACs", "gmacs_dev_pct": "GMACs dev %", "peak_mem_mb_infer": "peak MB infer",
    "peak_mem_mb_train": "peak MB train", "clips_s_infer": "clips/s infer", "clips_s_train": "clips/s train",
    "mfu_pct_infer": "MFU % infer", "mfu_pct_train": "MFU % train", "top1": "top-1", "acc_static": "static top-1",
    "acc_temporal": "temporal top-1",
}
PUBLISHED_COLUMNS = {
    "model": "model", "weights": "weights", "source": "source", "views": "views", "published_top1": "published top-1",
    "top1": "measured top-1", "top1_minus_published": "difference", "num_videos": "videos", "gmacs": "GMACs/view",
    "gmacs_x_views": "GMACs x views", "clips_s_infer": "clips/s infer", "peak_mem_mb_infer": "peak MB infer",
}
ENV_KEYS = ("device", "device_name", "torch_version", "cuda_version", "vidbench_version", "git_commit", "torch_threads",
            "cpu", "date")
SECTIONS = ("Runs", "Models", "Accuracy vs compute", "Scaling with frames", "Self-supervised pretraining",
            "Initialisation", "Failures and skipped items")
STUDY_COLUMNS = {
    "model": "model", "attention": "attention", "frames": "frames", "img_size": "size", "tokens": "tokens",
    "gmacs": "GMACs", "act_mib": "activation MiB", "act_ref_mib": "activation MiB (reference attn)",
    "ms_per_clip": "ms/clip", "peak_mib": "peak MiB", "status": "measured",
}
SLOPE_COLUMNS = {
    "model": "model", "attention": "attention", "kernel": "attention kernel counted", "points": "points",
    "measured": "measured",
    "slope_gmacs": "GMACs slope", "slope_act_mib": "activation slope", "slope_act_ref_mib": "activation slope (reference)",
    "slope_ms_per_clip": "ms/clip slope",
}
NOTE_STUDY = ("benchmarks/scaling_study.py at paper width: GMACs (fvcore) and activation memory counted on the meta "
              "device at every point; time and peak memory measured (inference, batch 1, fp32; {methods}) where one "
              "forward was estimated to fit the run's limit, the rest listed as skipped. Tokens per clip: the patch / "
              "tubelet grid of the first layer (Swin and MViT embed 2x4x4 patches, the ViTs 2x16x16 tubelets or "
              "16x16 patches). Activation memory: what autograd saves for backward in one training step at batch 1 "
              "(weights excluded) plus the output, with the fused attention kernel (F.scaled_dot_product_attention "
              "with the backend the CPU picks for those shapes, per model below: flash saves q, k, v, output and "
              "log-sum-exp, math the attention matrix); 'reference attn': vidbench's reference path, attention "
              "matrix materialised. Slopes: least-squares log-log slopes against tokens (1: linear; "
              "joint attention tends to 2 once the attention matrix dominates).")
NOTE_GMACS = ("GMACs are multiply-adds per view at batch 1 (one multiply-add = one FLOP, the papers' "
              "convention), counted by fvcore with attention included. Peak memory is measured ({methods}). "
              "Accuracy columns are top-1 in percent on the test split (static / temporal: the class groups of "
              "the generated dataset); SSL kNN / linear top-1 in percent on frames of the val split.")


class _Doc:
    """Builds the Markdown and HTML versions side by side."""

    def __init__(self, out: Path):
        self.md: List[str] = []
        self.html: List[str] = []
        self.out = out
        self.plot_dir = out / "report_plots"

    def heading(self, text: str, level: int = 2) -> None:
        self.md.append(f"{'#' * level} {text}\n")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def para(self, text: str) -> None:
        self.md.append(text + "\n")
        self.html.append(f"<p>{html.escape(text)}</p>")

    def table(self, df: pd.DataFrame, empty: str = "no rows") -> None:
        if df.empty:
            self.para(f"_{empty}_")
            return
        shown = df.copy()
        for c in shown.columns:
            if pd.api.types.is_float_dtype(shown[c]):
                shown[c] = shown[c].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
        shown = shown.fillna("")
        self.md.append(shown.to_markdown(index=False) + "\n")
        self.html.append(shown.to_html(index=False, border=0, classes="tbl", escape=True))

    def figure(self, fig, name: str, caption: str) -> None:
        if fig is None:
            self.para(f"_{caption}: nothing to plot in these runs_")
            return
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        png = buf.getvalue()
        write_file(self.plot_dir / f"{name}.png", png)
        self.md.append(f"![{caption}](report_plots/{name}.png)\n\n_{caption}_\n")
        data = base64.b64encode(png).decode("ascii")
        self.html.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table.tbl{border-collapse:collapse;font-size:13px;margin:1em 0}"
        ".tbl th,.tbl td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}"
        ".tbl th{background:#f4f4f4}figure{margin:1em 0}img{max-width:100%}figcaption{font-size:13px;color:#555}")


def write_report(results_dirs: Sequence[Union[str, Path]], out_dir: Optional[Union[str, Path]] = None) -> Tuple[Path, Path]:
    """Write report.md and report.html for one or more results directories into `out_dir`
    (default: the first results directory). Returns both paths."""
    runs = [_load(d) for d in results_dirs]
    out = Path(out_dir) if out_dir else runs[0].path
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    doc = _Doc(out)
    doc.heading("vidbench report", 1)

    doc.heading("Runs")
    env = pd.DataFrame([{"run": r.name, **{k: r.env.get(k, "") for k in ENV_KEYS}} for r in runs])
    doc.table(env)
    devices = sorted({r.device for r in runs})
    if len(devices) > 1:
        doc.para("These runs come from different devices (" + "; ".join(devices) + "): timings and memory are plotted "
                 "per device, never on one axis.")

    doc.heading("Models")
    methods = sorted({str(m) for r in runs for m in r.table("bench").get("mem_method", pd.Series(dtype=str)).dropna()})
    doc.para(NOTE_GMACS.format(methods=", ".join(methods) or "no memory rows"))
    for run in runs:
        doc.heading(f"{run.name} ({run.device})", 3)
        t = tables.model_table(run)
        doc.table(t[[c for c in MODEL_COLUMNS if c in t.columns]].rename(columns=MODEL_COLUMNS) if not t.empty else t)

    published = [(run, tables.published_table(run)) for run in runs]
    if any(not t.empty for _, t in published):
        doc.heading("Published weights")
        doc.para("Each checkpoint evaluated with its own preprocessing and test views (clips x crops) on the "
                 "run's dataset, beside the top-1 its publisher reports on theirs; GMACs x views is the cost of "
                 "one video's prediction; clips/s and peak memory: inference at batch 1 at its own input size.")
        for run, t in published:
            if not t.empty:
                doc.heading(f"{run.name} ({run.device})", 3)
                doc.table(t.rename(columns=PUBLISHED_COLUMNS))

    compare.add_section(doc, runs)
    measurement.add_section(doc, runs)

    doc.heading("Accuracy vs compute")
    doc.figure(plots.accuracy_vs_gmacs(runs), "accuracy_vs_gmacs", "top-1 against GMACs per view; dashed: Pareto front")

    doc.heading("Scaling with frames")
    doc.para("Log-log against frames at the smallest batch with several frame counts; the legend gives each "
             "model's fitted slope (joint space-time attention tends to 2 once attention dominates, factorised "
             "attention to 1).")
    by_device: Dict[str, List[Run]] = {}
    for run in runs:
        by_device.setdefault(run.device, []).append(run)
    for i, (device, group) in enumerate(by_device.items()):
        for metric, mode in (("clips_per_s", "infer"), ("clips_per_s", "train"), ("peak_mem_mb", "infer")):
            what = "cost per clip" if metric == "clips_per_s" else "peak memory"
            doc.figure(plots.scaling(group, metric, mode), f"scaling_{metric}_{mode}_{i}", f"{mode} {what} vs frames ({device})")

    study = [(run, tables.scaling_study(run)) for run in runs]
    if any(not t.empty for _, t in study):
        _scaling_study(doc, study, by_device)

    doc.heading("Self-supervised pretraining")
    for run in runs:
        doc.heading(f"{run.name}", 3)
        doc.table(tables.ssl_table(run), "no self-supervised runs")
    doc.figure(plots.ssl_accuracy(runs), "ssl_accuracy", "kNN and linear-probe top-1 of each method's backbone")

    doc.heading("Initialisation")
    for run in runs:
        doc.heading(f"{run.name}", 3)
        doc.table(tables.init_table(run), "no accuracy rows")
    doc.figure(plots.init_accuracy(runs), "init_accuracy", "video top-1 of each model under each initialisation")

    doc.heading("Failures and skipped items")
    for run in runs:
        doc.heading(f"{run.name}", 3)
        doc.table(tables.failures(run), "none")
        acc = run.table("accuracy")
        if "skipped_items" in acc and acc["skipped_items"].fillna(0).sum() > 0:
            doc.para(f"{int(acc['skipped_items'].fillna(0).sum())} video files were skipped as unreadable across "
                     "the accuracy rows (see the skipped_items column of accuracy.csv).")

    md_path, html_path = out / "report.md", out / "report.html"
    write_file(md_path, "\n".join(doc.md))
    write_file(html_path, "<!doctype html><html><head><meta charset='utf-8'><title>vidbench report</title>"
                         f"<style>{_CSS}</style></head><body>" + "\n".join(doc.html) + "</body></html>\n")
    return md_path, html_path


def _load(path: Union[str, Path]) -> Run:
    """`load_run`, plus the scaling study's scaling.csv as the table "scaling" and `vidbench
    compare`'s compare.csv and compare_profile.csv as "compare" and "compare_profile" (a directory
    that holds only those is a run too)."""
    extra = {name: Path(path) / f"{name}.csv" for name in ("scaling", "compare", "compare_profile")}
    extra = {name: csv for name, csv in extra.items() if csv.is_file() and csv.stat().st_size > 0}
    if not extra:
        return load_run(path)
    try:
        run = load_run(path)
    except ReportError:  # holds none of the other tables
        env_path = Path(path) / "environment.json"
        try:
            env = json.loads(env_path.read_text()) if env_path.exists() else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ReportError(f"{env_path}: not readable JSON ({err})") from None
        run = Run(Path(path), env, {})
    for name, csv in extra.items():
        run.tables[name] = read_table(csv, name)
    return run


def _scaling_study(doc: _Doc, study: List[Tuple[Run, pd.DataFrame]], by_device: Dict[str, List[Run]]) -> None:
    doc.heading("Scaling study")
    points = [t for _, t in study if not t.empty]
    methods = sorted({str(m) for t in points for m in t["mem_method"].dropna()})
    doc.para(NOTE_STUDY.format(methods="peak memory: " + (", ".join(methods) or "none measured")))
    for run, t in study:
        if t.empty:
            continue
        doc.heading(f"{run.name} ({run.device})", 3)
        doc.table(tables.study_slopes(t).rename(columns=SLOPE_COLUMNS))
        shown = t.assign(status=t["status"].fillna("ok").map(lambda s: "yes" if s == "ok" else s))
        for c in ("frames", "img_size", "tokens"):
            shown[c] = shown[c].map(lambda v: "" if pd.isna(v) else int(v)).astype(object)
        doc.table(shown[[c for c in STUDY_COLUMNS if c in shown]].rename(columns=STUDY_COLUMNS))
    with_study = [r for r, t in study if not t.empty]
    doc.figure(plots.scaling_study(with_study, "gmacs"), "study_gmacs", "GMACs per clip vs tokens per clip (log-log)")
    doc.figure(plots.scaling_study(with_study, "act_mib"), "study_activation",
               "activation memory of a training step vs tokens per clip (log-log; dashed: reference attention)")
    for i, (device, group) in enumerate(by_device.items()):
        group = [r for r in group if any(r is w for w in with_study)]
        if group:
            doc.figure(plots.scaling_study(group, "ms_per_clip"), f"study_time_{i}",
                       f"measured inference time per clip vs tokens per clip ({device})")
