"""The report's "Implementations side by side" section, from a run's compare.csv (`vidbench
compare`): per model and mode, vidbench's and the other library's throughput, step time, peak
memory and the largest logit difference, as a table and a speed-up plot (plots.speedup)."""
from __future__ import annotations

from typing import Any, List

import pandas as pd

from .load import Run
from .plots import speedup

__all__ = ["NOTE", "TABLE", "add_section", "compare_table", "markdown", "profile_table"]

TABLE = "compare"
NOTE = ("`vidbench compare`: each vidbench model against the other library's implementation of the same paper "
        "config, built from its config objects with every weight perturbed away from its initial value, vidbench's "
        "loaded from the same weights through its published-weights converter. Both are timed in interleaved rounds "
        "on the same clip (batch {batch}, {precision}, {threads} threads); step time is the median (IQR) of all "
        "timed steps; x ref is vidbench's clips/s over the reference's; peak memory: {methods}.")
_COLUMNS = ("model", "mode", "reference", "max |diff|", "vidbench clips/s", "ref clips/s", "x ref",
            "vidbench step ms", "ref step ms", "vidbench peak MiB", "ref peak MiB", "status")


def _ms(median: Any, iqr: Any) -> str:
    return "" if pd.isna(median) else f"{median:.0f} ({iqr:.0f})"


def _num(value: Any, spec: str) -> str:
    return "" if value is None or pd.isna(value) else format(value, spec)


def compare_table(df: pd.DataFrame) -> pd.DataFrame:
    """One line per (model, mode): vidbench beside the reference. Rows that did not run show
    their status and reason."""
    if df.empty:
        return pd.DataFrame(columns=_COLUMNS)
    lines = []
    for (model, mode), group in df.groupby(["model", "mode"], sort=False):
        ours = group[group["impl"] == "vidbench"]
        ref = group[group["impl"] != "vidbench"]
        if ours.empty or ref.empty:
            continue
        a, b = ours.iloc[0], ref.iloc[0]
        ok = a["status"] == "ok" and b["status"] == "ok"
        status = "ok" if ok else f"{a['status']}: {a['error'] if not pd.isna(a['error']) else b['error']}"
        lines.append({
            "model": model, "mode": mode, "reference": b["reference"],
            "max |diff|": _num(a["max_abs_logit_diff"], ".1e"),
            "vidbench clips/s": _num(a["clips_per_s"], ".3g"), "ref clips/s": _num(b["clips_per_s"], ".3g"),
            "x ref": _num(a["speedup_vs_reference"], ".2f"),
            "vidbench step ms": _ms(a["step_ms_median"], a["step_ms_iqr"]),
            "ref step ms": _ms(b["step_ms_median"], b["step_ms_iqr"]),
            "vidbench peak MiB": _num(a["peak_mem_mb"], ".0f"), "ref peak MiB": _num(b["peak_mem_mb"], ".0f"),
            "status": status,
        })
    return pd.DataFrame(lines, columns=_COLUMNS)


def markdown(df: pd.DataFrame) -> str:
    """The table of a compare.csv as Markdown (for a README)."""
    table = compare_table(df)
    return table.to_markdown(index=False) if not table.empty else "_no comparison rows_"


def profile_table(df: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """From compare_profile.csv: per model and implementation, one forward's profiled op time and
    its shares: the GEMM / convolution / fused-attention kernels both implementations run, layout
    copies, and the rest, with the largest ops outside the kernels."""
    if df.empty:
        return pd.DataFrame()
    lines = []
    for (model, impl), g in df.groupby(["model", "impl"], sort=False):
        ops = g[~g["op"].astype(str).str.startswith("total")]
        total = ops["self_ms"].sum()
        share = {k: 100 * ops.loc[ops["kind"] == k, "self_ms"].sum() / total for k in ("gemm/conv/attention", "copy", "other")}
        rest = ops[ops["kind"] != "gemm/conv/attention"].nlargest(top, "self_ms")
        lines.append({"model": model, "impl": impl, "op time ms": round(total, 0),
                      "GEMM / conv / attention %": round(share["gemm/conv/attention"], 1),
                      "copies %": round(share["copy"], 1), "other %": round(share["other"], 1),
                      "largest other ops": ", ".join(f"{str(o).replace('aten::', '')} {p:.1f}%"
                                                     for o, p in zip(rest["op"], 100 * rest["self_ms"] / total))})
    return pd.DataFrame(lines)


def add_section(doc: Any, runs: List[Run]) -> None:
    """Heading, note, one table per run holding compare.csv, and the speed-up plot; nothing when
    no run has one. `doc` is the report's document builder (heading / para / table / figure)."""
    with_rows = [run for run in runs if not run.table(TABLE).empty]
    if not with_rows and all(run.table("compare_profile").empty for run in runs):
        return
    doc.heading("Implementations side by side")
    for run in with_rows:
        df = run.table(TABLE)
        methods = sorted({str(m) for m in df["mem_method"].dropna()}) if "mem_method" in df else []
        first = df.iloc[0]
        doc.heading(f"{run.name} ({run.device})", 3)
        doc.para(NOTE.format(batch=_num(first.get("batch_size"), ".0f"), precision=first.get("precision"),
                             threads=_num(first.get("threads"), ".0f"), methods="; ".join(methods) or "not measured"))
        doc.table(compare_table(df))
    if with_rows:
        doc.figure(speedup(with_rows), "compare_speedup",
                   "vidbench throughput over the other library's on the same weights (dashed: as fast)")
    profiled = [run for run in runs if not run.table("compare_profile").empty]
    if profiled:
        doc.heading("Where the time goes (torch.profiler)", 3)
        doc.para("One inference forward of each implementation, profiled alternately (`vidbench compare --profile N`); "
                 "per op the least self CPU time of the N runs. GEMM / conv / attention: the matrix products, "
                 "convolutions and fused attention kernels, the work both implementations must do; copies: layout "
                 "copies (copy_, cat, clone, ...); other: elementwise ops, norms, softmax written out, ...")
        for run in profiled:
            doc.para(f"{run.name} ({run.device}):")
            doc.table(profile_table(run.table("compare_profile")))
