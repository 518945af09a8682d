"""Matplotlib figures for the report. Each function takes runs and returns a Figure or None
when the runs hold nothing to plot."""
from __future__ import annotations

from typing import List, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .load import Run  # noqa: E402
from .tables import init_table, model_table, pareto_front, ssl_table, study_curves  # noqa: E402
from .tables import scaling as scaling_points  # noqa: E402
from .tables import scaling_study as study_points  # noqa: E402

_MARKERS = "osD^v<>pPX*"


def accuracy_vs_gmacs(runs: List[Run]) -> Optional[Figure]:
    """Top-1 against GMACs per view, one marker per run, Pareto front per run."""
    data = [(run, model_table(run)) for run in runs]
    data = [(r, t.dropna(subset=["gmacs", "top1"])) for r, t in data if {"gmacs", "top1"} <= set(t.columns)]
    data = [(r, t.drop_duplicates("model")) for r, t in data if not t.empty]
    if not data:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (run, t) in enumerate(data):
        label = f"{run.name} ({run.device})" if len(data) > 1 else None
        ax.scatter(t["gmacs"], t["top1"], marker=_MARKERS[i % len(_MARKERS)], label=label, zorder=3)
        for _, row in t.iterrows():
            ax.annotate(row["model"], (row["gmacs"], row["top1"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        front = pareto_front(t, "gmacs", "top1")
        ax.step(front["gmacs"], front["top1"], where="post", linestyle="--", alpha=0.6)
        ax.scatter(front["gmacs"], front["top1"], s=160, facecolors="none", edgecolors="C3", zorder=2,
                   label="Pareto front" + (f" ({run.name})" if len(data) > 1 else ""))
    ax.set_xscale("log")
    ax.set_xlabel("GMACs per view (1 multiply-add = 1 FLOP)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title("Accuracy vs compute")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def scaling(runs: List[Run], metric: str, mode: str) -> Optional[Figure]:
    """Cost per clip (metric='clips_per_s') or peak memory against frames, log-log, with each
    model's fitted slope in the legend. All runs passed must share one device."""
    curves = [(run, scaling_points(run, metric, mode)) for run in runs]
    curves = [(r, c) for r, c in curves if not c.empty]
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (run, c) in enumerate(curves):
        for (model, precision), pts in c.groupby(["model", "precision"], sort=False):
            label = f"{model} {precision} b{pts['batch_size'].iloc[0]}: slope {pts['slope'].iloc[0]:.2f}"
            if len(curves) > 1:
                label = f"{run.name} {label}"
            ax.plot(pts["frames"], pts["value"], marker=_MARKERS[i % len(_MARKERS)], label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("frames")
    what = "ms per clip (1 / throughput)" if metric == "clips_per_s" else "peak memory (MB)"
    ax.set_ylabel(what)
    ax.set_title(f"{mode}: {what} vs frames on {curves[0][0].device}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def _bar_figure(groups: int) -> tuple:
    """A figure for a bar chart of `groups` groups, wider the more groups it has."""
    return plt.subplots(figsize=(min(16.0, max(7.0, 2.0 + 0.75 * groups)), 4.2))


# Tick label styles tried in order until neighbouring labels do not overlap: (rotation, font size).
_LABEL_STYLES = ((0, 9), (0, 8), (30, 8), (30, 7), (90, 8), (90, 7), (90, 6), (90, 5))


def labels_fit(ax) -> bool:
    """Whether the x tick labels of `ax` clear each other as drawn: side by side, their boxes do
    not meet; rotated by the same angle, the parallel strips they lie in are at least one label
    height apart (tick spacing x sin(angle))."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    ticks = [t for t in ax.get_xticklabels() if t.get_text()]
    if len(ticks) < 2:
        return True
    xs = sorted(ax.transData.transform([(x, 0) for x in ax.get_xticks()])[:, 0])
    spacing = min(b - a for a, b in zip(xs, xs[1:]))
    angle = ticks[0].get_rotation()
    if angle == 0:
        boxes = sorted((t.get_window_extent(renderer) for t in ticks), key=lambda b: b.x0)
        return all(a.x1 + 2 <= b.x0 for a, b in zip(boxes, boxes[1:]))
    height = max(t.get_fontsize() * fig.dpi / 72 * 1.2 * (t.get_text().count("\n") + 1) for t in ticks)
    return spacing * np.sin(np.radians(angle)) >= height


def _finish_bars(fig: Figure, ax, labels: List[str], ylabel: str, title: Optional[str]) -> Figure:
    """What every bar chart ends with: one tick per group, labelled without overlap (flat where the
    labels fit, else turned 30 then 90 degrees, the font smaller for long lists), axis labels,
    legend, horizontal grid, tight layout."""
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_xticks(np.arange(len(labels)), labels)
    for angle, size in _LABEL_STYLES:
        for t in ax.get_xticklabels():
            t.set_rotation(angle)
            t.set_fontsize(size)
            t.set_horizontalalignment("right" if angle == 30 else "center")
            t.set_rotation_mode("anchor" if angle == 30 else "default")
        fig.tight_layout()
        if labels_fit(ax):
            break
    return fig


def ssl_accuracy(runs: List[Run]) -> Optional[Figure]:
    """kNN and linear-probe top-1 of each pretraining method (random init included where run)."""
    parts = [(run, ssl_table(run)) for run in runs]
    parts = [(r, t) for r, t in parts if not t.empty]
    if not parts:
        return None
    labels, knn, lin = [], [], []
    for run, t in parts:
        for _, row in t.iterrows():
            labels.append(row["method"] if len(parts) == 1 else f"{run.name}\n{row['method']}")
            knn.append(row.get("knn_top1", np.nan))
            lin.append(row.get("linear_top1", np.nan))
    fig, ax = _bar_figure(len(labels))
    x = np.arange(len(labels))
    ax.bar(x - 0.2, knn, 0.4, label="weighted kNN")
    ax.bar(x + 0.2, lin, 0.4, label="linear probe")
    return _finish_bars(fig, ax, labels, "top-1 on frames (%)", "Self-supervised image backbones")


def init_accuracy(runs: List[Run]) -> Optional[Figure]:
    """Video top-1 (overall, static, temporal) of each (model, init) pair."""
    parts = [(run, init_table(run)) for run in runs]
    parts = [(r, t) for r, t in parts if not t.empty and t["init"].nunique() > 1]
    if not parts:
        return None
    labels, cols = [], {"top1": [], "acc_static": [], "acc_temporal": []}
    for run, t in parts:
        for _, row in t.iterrows():
            prefix = "" if len(parts) == 1 else f"{run.name}\n"
            labels.append(f"{prefix}{row['model']}\n{row['init']}")
            for c in cols:
                cols[c].append(row.get(c, np.nan))
    fig, ax = _bar_figure(len(labels))
    x = np.arange(len(labels))
    for i, (c, vals) in enumerate(cols.items()):
        ax.bar(x + (i - 1) * 0.27, vals, 0.27, label=c)
    return _finish_bars(fig, ax, labels, "video top-1 (%)", "Video accuracy by initialisation")


def speedup(runs: List[Run]) -> Optional[Figure]:
    """`vidbench compare`: vidbench's throughput over the reference's, one group per model and a
    bar per mode (per run and mode where several runs have rows; 1: as fast)."""
    data = [(run, run.table("compare")) for run in runs]
    data = [(run, df[(df["impl"] == "vidbench") & (df["status"] == "ok")]) for run, df in data if not df.empty]
    data = [(run, df) for run, df in data if not df.empty]
    if not data:
        return None
    models = list(dict.fromkeys(m for _, df in data for m in df["model"]))
    bars = [(run, mode, df[df["mode"] == mode].drop_duplicates("model", keep="last").set_index("model"))
            for run, df in data for mode in dict.fromkeys(df["mode"])]
    fig, ax = _bar_figure(len(models))
    width = 0.8 / len(bars)
    for i, (run, mode, part) in enumerate(bars):
        shown = [k for k, m in enumerate(models) if m in part.index]
        ax.bar([k + (i - (len(bars) - 1) / 2) * width for k in shown],
               [part.loc[models[k], "speedup_vs_reference"] for k in shown], width=width,
               label=mode + (f" ({run.name})" if len(data) > 1 else ""), color=f"C{i}")
    ax.axhline(1.0, color="0.3", linewidth=1, linestyle="--")
    return _finish_bars(fig, ax, models, "vidbench clips/s / reference clips/s", None)


def scaling_study(runs: List[Run], metric: str) -> Optional[Figure]:
    """The scaling study: `metric` ("gmacs", "act_mib" or "ms_per_clip") against tokens per clip,
    log-log, one line per model with its attention pattern and fitted slope in the legend. Counted
    metrics are the same on every device: each point is drawn once. For "act_mib" the reference
    attention path is drawn dashed. For "ms_per_clip" all runs passed must share one device."""
    points = [(run, study_points(run)) for run in runs]
    points = [(r, p) for r, p in points if not p.empty]
    if not points:
        return None
    if metric == "ms_per_clip" and len(points) > 1:  # measured: one line per run and model
        points = [(r, p.assign(model=r.name + ":" + p["model"])) for r, p in points]
    merged = pd.concat([p for _, p in points], ignore_index=True)
    if metric != "ms_per_clip":  # counted on the meta device: one point per model, frames and size
        merged = merged.drop_duplicates(["model", "frames", "img_size"], keep="first")
    curves = study_curves(merged, metric)
    if curves.empty:
        return None
    ref = study_curves(merged, "act_ref_mib") if metric == "act_mib" else pd.DataFrame()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for i, (model, c) in enumerate(curves.groupby("model", sort=False)):
        label = f"{model} ({c['attention'].iloc[0]}): slope {c['slope'].iloc[0]:.2f}"
        r = ref[ref["model"] == model] if not ref.empty else ref
        if not r.empty:
            label += f", reference {r['slope'].iloc[0]:.2f}"
        line, = ax.plot(c["tokens"], c["value"], marker=_MARKERS[i % len(_MARKERS)], label=label)
        if not r.empty:
            ax.plot(r["tokens"], r["value"], linestyle="--", marker=_MARKERS[i % len(_MARKERS)], markersize=3,
                    color=line.get_color(), alpha=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tokens per clip (patch / tubelet grid of the first layer)")
    ylabel = {"gmacs": "GMACs per clip", "act_mib": "activation memory of a training step (MiB)",
              "ms_per_clip": "inference ms per clip (batch 1)"}[metric]
    ax.set_ylabel(ylabel)
    title = {"gmacs": "Compute vs tokens (counted)",
             "act_mib": "Activation memory vs tokens (counted; dashed: reference attention)",
             "ms_per_clip": f"Measured time vs tokens on {runs[0].device}"}[metric]
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
