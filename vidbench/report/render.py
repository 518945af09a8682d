"""Write report.md (plots as PNG files beside it) and a self-contained report.html (plots
embedded as data URIs) from one or more results directories. A section appears where the runs
have rows for it; a run measured from a working tree with uncommitted changes is flagged."""
from __future__ import annotations

import base64
import html
import io
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import matplotlib.pyplot as plt
import pandas as pd

from ..results import write_file, writing
from .compare import add_section as add_compare_section
from .load import Run, load_run
from .measurement import add_section as add_measurement_section
from .plots import accuracy_vs_gmacs, init_accuracy, ssl_accuracy
from .plots import scaling as scaling_plot
from .plots import scaling_study as study_plot
from .tables import failures, init_table, model_table, published_table, scaling_study, ssl_table, study_slopes

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
# Every section a report can hold, in order (Published weights, the comparison, measurement options
# and the scaling study come between Models and Accuracy vs compute); each is written only where a
# run has rows for it.
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


_INLINE = (  # the Markdown the report's own sentences use besides `code`, as HTML (on escaped text)
    (re.compile(r"\*\*(\S(?:.*?\S)?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*(\S(?:.*?\S)?)\*(?![\w*])"), r"<em>\1</em>"),
    (re.compile(r"(?<![\w_])_(\S(?:.*?\S)?)_(?![\w_])"), r"<em>\1</em>"),
)


def inline_html(text: str) -> str:
    """One line of the report's Markdown as HTML: escaped, with `code`, **strong** and *emphasis*
    (or _emphasis_) turned into their tags; code spans are left as written inside."""
    out = []
    for part in re.split(r"(`[^`]+`)", text):
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        part = html.escape(part)
        for pattern, tag in _INLINE:
            part = pattern.sub(tag, part)
        out.append(part)
    return "".join(out)


class _Doc:
    """Builds the Markdown and HTML versions side by side. Tables, figures and findings are what
    a section shows; a `section` in which none was written is dropped with its heading and notes."""

    def __init__(self, out: Path):
        self.md: List[str] = []
        self.html: List[str] = []
        self.out = out
        self.plot_dir = out / "report_plots"
        self.shown = 0  # tables, figures and findings written so far

    def heading(self, text: str, level: int = 2) -> None:
        self.md.append(f"{'#' * level} {text}\n")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    @contextmanager
    def section(self, title: str, level: int = 2) -> Iterator[None]:
        """A heading and what is written under it, kept only where it shows something."""
        md, htm, shown = len(self.md), len(self.html), self.shown
        self.heading(title, level)
        yield
        if self.shown == shown:
            del self.md[md:], self.html[htm:]

    def para(self, text: str, finding: bool = False) -> None:
        """A paragraph of the report's Markdown; `finding`: it reports something about the runs
        (its section is shown), not a note on how to read them."""
        self.md.append(text + "\n")
        self.html.append(f"<p>{inline_html(text)}</p>")
        self.shown += finding

    def warning(self, text: str) -> None:
        """A finding the reader must not miss: a quoted bold line in Markdown, a framed one in HTML."""
        self.md.append(f"> **Warning:** {text}\n")
        self.html.append(f'<p class="warning"><strong>Warning:</strong> {inline_html(text)}</p>')
        self.shown += 1

    def table(self, df: pd.DataFrame) -> None:
        """A table of the rows in `df`; nothing where it has none."""
        if df.empty:
            return
        shown = df.copy()
        for c in shown.columns:
            if pd.api.types.is_float_dtype(shown[c]):
                shown[c] = shown[c].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
        shown = shown.fillna("")
        cells = shown.apply(lambda col: col.map(lambda v: v.replace("|", "\\|") if isinstance(v, str) else v))
        self.md.append(cells.to_markdown(index=False) + "\n")
        self.html.append(shown.to_html(index=False, border=0, classes="tbl", escape=True))
        self.shown += 1

    def figure(self, fig, name: str, caption: str) -> None:
        """A plot as report_plots/NAME.png and embedded in the HTML; nothing where `fig` is None."""
        if fig is None:
            return
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        png = buf.getvalue()
        write_file(self.plot_dir / f"{name}.png", png)
        self.md.append(f"![{caption}](report_plots/{name}.png)\n\n_{caption}_\n")
        data = base64.b64encode(png).decode("ascii")
        self.html.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                         f"<figcaption>{inline_html(caption)}</figcaption></figure>")
        self.shown += 1


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table.tbl{border-collapse:collapse;font-size:13px;margin:1em 0}"
        ".tbl th,.tbl td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}"
        ".tbl th{background:#f4f4f4}figure{margin:1em 0}img{max-width:100%}figcaption{font-size:13px;color:#555}"
        "code{font-size:90%;background:#f4f4f4;padding:0 2px}"
        ".warning{background:#fff3cd;border:1px solid #e0b000;border-left:6px solid #e0b000;padding:8px 12px}")


def dirty_commits(run: Run) -> List[str]:
    """The commits of this run (and of earlier runs into the same directory, environment.json's
    earlier_runs) recorded with '-dirty': measured from a tree with uncommitted changes."""
    envs = [run.env] + [e for e in run.env.get("earlier_runs", []) if isinstance(e, dict)]
    return list(dict.fromkeys(str(e["git_commit"]) for e in envs if str(e.get("git_commit", "")).endswith("-dirty")))


def write_report(results_dirs: Sequence[Union[str, Path]], out_dir: Optional[Union[str, Path]] = None) -> Tuple[Path, Path]:
    """Write report.md and report.html for one or more results directories into `out_dir`
    (default: the first results directory). Returns both paths."""
    runs = [load_run(d) for d in results_dirs]
    out = Path(out_dir) if out_dir else runs[0].path
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    doc = _Doc(out)
    doc.heading("vidbench report", 1)

    with doc.section("Runs"):
        doc.table(pd.DataFrame([{"run": r.name, **{k: r.env.get(k, "") for k in ENV_KEYS}} for r in runs]))
        for run in runs:
            dirty = dirty_commits(run)
            if dirty:
                one = len(dirty) == 1
                doc.warning(f"{run.name} was measured from a working tree with uncommitted changes "
                            f"({'commit' if one else 'commits'} {', '.join(dirty)}): its figures may not be "
                            f"reproducible from {'that commit' if one else 'those commits'}.")
        devices = sorted({r.device for r in runs})
        if len(devices) > 1:
            doc.para("These runs come from different devices (" + "; ".join(devices) + "): timings and memory are "
                     "plotted per device, never on one axis.")

    with doc.section("Models"):
        methods = sorted({str(m) for r in runs for m in r.table("bench").get("mem_method", pd.Series(dtype=str)).dropna()})
        doc.para(NOTE_GMACS.format(methods=", ".join(methods) or "no memory rows"))
        for run in runs:
            with doc.section(f"{run.name} ({run.device})", 3):
                t = model_table(run)
                doc.table(t[[c for c in MODEL_COLUMNS if c in t.columns]].rename(columns=MODEL_COLUMNS))

    with doc.section("Published weights"):
        doc.para("Each checkpoint evaluated with its own preprocessing and test views (clips x crops) on the "
                 "run's dataset, beside the top-1 its publisher reports on theirs; GMACs x views is the cost of "
                 "one video's prediction; clips/s and peak memory: inference at batch 1 at its own input size.")
        for run in runs:
            with doc.section(f"{run.name} ({run.device})", 3):
                doc.table(published_table(run).rename(columns=PUBLISHED_COLUMNS))

    add_compare_section(doc, runs)
    add_measurement_section(doc, runs)

    with doc.section("Accuracy vs compute"):
        doc.figure(accuracy_vs_gmacs(runs), "accuracy_vs_gmacs", "top-1 against GMACs per view; dashed: Pareto front")

    by_device: Dict[str, List[Run]] = {}
    for run in runs:
        by_device.setdefault(run.device, []).append(run)
    with doc.section("Scaling with frames"):
        doc.para("Log-log against frames at the smallest batch with several frame counts; the legend gives each "
                 "model's fitted slope (joint space-time attention tends to 2 once attention dominates, factorised "
                 "attention to 1).")
        for i, (device, group) in enumerate(by_device.items()):
            for metric, mode in (("clips_per_s", "infer"), ("clips_per_s", "train"), ("peak_mem_mb", "infer")):
                what = "cost per clip" if metric == "clips_per_s" else "peak memory"
                doc.figure(scaling_plot(group, metric, mode), f"scaling_{metric}_{mode}_{i}",
                           f"{mode} {what} vs frames ({device})")

    study = [(run, scaling_study(run)) for run in runs]
    if any(not t.empty for _, t in study):
        _scaling_study(doc, study, by_device)

    with doc.section("Self-supervised pretraining"):  # the plot of every run, then each run's table
        doc.figure(ssl_accuracy(runs), "ssl_accuracy", "kNN and linear-probe top-1 of each method's backbone")
        for run in runs:
            with doc.section(run.name, 3):
                doc.table(ssl_table(run))

    with doc.section("Initialisation"):
        doc.figure(init_accuracy(runs), "init_accuracy", "video top-1 of each model under each initialisation")
        for run in runs:
            with doc.section(run.name, 3):
                doc.table(init_table(run))

    with doc.section("Failures and skipped items"):
        for run in runs:
            with doc.section(run.name, 3):
                doc.table(failures(run))
                acc = run.table("accuracy")
                if "skipped_items" in acc and acc["skipped_items"].fillna(0).sum() > 0:
                    doc.para(f"{int(acc['skipped_items'].fillna(0).sum())} video files were skipped as unreadable "
                             "across the accuracy rows (see the skipped_items column of accuracy.csv).", finding=True)

    md_path, html_path = out / "report.md", out / "report.html"
    write_file(md_path, "\n".join(doc.md))
    write_file(html_path, "<!doctype html><html><head><meta charset='utf-8'><title>vidbench report</title>"
                         f"<style>{_CSS}</style></head><body>" + "\n".join(doc.html) + "</body></html>\n")
    return md_path, html_path


def _scaling_study(doc: _Doc, study: List[Tuple[Run, pd.DataFrame]], by_device: Dict[str, List[Run]]) -> None:
    doc.heading("Scaling study")
    points = [t for _, t in study if not t.empty]
    methods = sorted({str(m) for t in points for m in t["mem_method"].dropna()})
    doc.para(NOTE_STUDY.format(methods="peak memory: " + (", ".join(methods) or "none measured")))
    for run, t in study:
        if t.empty:
            continue
        doc.heading(f"{run.name} ({run.device})", 3)
        doc.table(study_slopes(t).rename(columns=SLOPE_COLUMNS))
        shown = t.assign(status=t["status"].fillna("ok").map(lambda s: "yes" if s == "ok" else s))
        for c in ("frames", "img_size", "tokens"):
            shown[c] = shown[c].map(lambda v: "" if pd.isna(v) else int(v)).astype(object)
        doc.table(shown[[c for c in STUDY_COLUMNS if c in shown]].rename(columns=STUDY_COLUMNS))
    with_study = [r for r, t in study if not t.empty]
    doc.figure(study_plot(with_study, "gmacs"), "study_gmacs", "GMACs per clip vs tokens per clip (log-log)")
    doc.figure(study_plot(with_study, "act_mib"), "study_activation",
               "activation memory of a training step vs tokens per clip (log-log; dashed: reference attention)")
    for i, (device, group) in enumerate(by_device.items()):
        group = [r for r in group if any(r is w for w in with_study)]
        if group:
            doc.figure(study_plot(group, "ms_per_clip"), f"study_time_{i}",
                       f"measured inference time per clip vs tokens per clip ({device})")
