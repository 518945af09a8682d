"""The report's "Measurement options" section: the bench rows that `--attn-backend`, `--detail`,
`--grad-checkpointing`, `--batch-size max` and `--nproc` add, one table each where a run has
them, and every row whose step time is noisy (IQR above 10% of the median) listed and marked.
Tables only (no measurement here); the default rows stay in the Models table."""
from __future__ import annotations

from typing import Any, List

import pandas as pd

from .load import Run

__all__ = ["add_section", "is_noisy", "backend_table", "phase_table", "checkpoint_table", "max_batch_table", "nproc_table",
           "noisy_rows", "default_rows"]


def _col(df: pd.DataFrame, name: str, default: Any) -> pd.Series:
    return df[name] if name in df.columns else pd.Series(default, index=df.index)


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[_col(df, "status", "ok").fillna("ok") == "ok"] if not df.empty else df


def is_noisy(step_ms_median: Any, step_ms_iqr: Any) -> bool:
    """Whether one row's step-time IQR exceeds NOISY_IQR_PCT % of its median."""
    from ..bench.sweep import NOISY_IQR_PCT

    return bool(step_ms_median) and 100 * step_ms_iqr / step_ms_median > NOISY_IQR_PCT


def _flag(df: pd.DataFrame) -> pd.Series:
    """'noisy' where the step time's IQR exceeds NOISY_IQR_PCT % of the median."""
    from ..bench.sweep import NOISY_IQR_PCT

    pct = 100 * _col(df, "step_ms_iqr", float("nan")) / _col(df, "step_ms_median", float("nan"))
    return pct.gt(NOISY_IQR_PCT).map({True: "noisy", False: ""})


def _is_true(series: pd.Series) -> pd.Series:
    return series.astype(str).str.lower().isin(("true", "1", "on"))


def default_rows(bench: pd.DataFrame) -> pd.DataFrame:
    """Rows measured with every option at its default: auto attention, no checkpointing, one
    process, no compile, a fixed batch (rows older than these columns count as defaults)."""
    if bench.empty:
        return bench
    keep = (_col(bench, "attn_backend", "auto").fillna("auto") == "auto") \
        & ~_is_true(_col(bench, "grad_checkpointing", False).fillna(False)) \
        & (_col(bench, "nproc", 1).fillna(1).astype(float) == 1) \
        & _col(bench, "compile", "off").fillna("off").astype(str).isin(("off", "False", "false")) \
        & (_col(bench, "batch_search", "").fillna("") != "max")
    return bench[keep]


def _base(df: pd.DataFrame) -> pd.DataFrame:
    frames = _col(df, "frames", None)
    return pd.DataFrame({"model": df["model"], "T": frames.map(lambda v: "" if pd.isna(v) else int(v)),
                         "img": df["img_size"], "batch": df["batch_size"], "prec": df["precision"], "mode": df["mode"]})


def backend_table(bench: pd.DataFrame) -> pd.DataFrame:
    """Every attention backend's rows where a run measured more than one (error rows say why)."""
    if bench.empty or _col(bench, "attn_backend", "auto").nunique() < 2:
        return pd.DataFrame()
    t = _base(bench)
    t["backend"] = bench["attn_backend"]
    t["ckpt"] = _col(bench, "grad_checkpointing", False)
    t["kernels run"] = _col(bench, "attn_kernels", "")
    t["clips/s"] = bench["clips_per_s"].round(2)
    t["step ms"] = bench["step_ms_median"].round(1)
    t["peak MiB"] = bench["peak_mem_mb"].round(0)
    t["noise"] = _flag(bench)
    t["status"] = [s if s == "ok" else f"{s}: {str(e)[:80]}" for s, e in zip(bench["status"], _col(bench, "error", ""))]
    return t


def phase_table(bench: pd.DataFrame) -> pd.DataFrame:
    """`--detail` rows: each phase's median time and peak memory, and their sum beside the step."""
    if bench.empty or "forward_ms" not in bench or bench["forward_ms"].isna().all():
        return pd.DataFrame()
    b = _ok(bench).dropna(subset=["forward_ms"])
    t = _base(b)
    t["backend"] = _col(b, "attn_backend", "auto")
    t["ckpt"] = _col(b, "grad_checkpointing", False)
    phases = ["forward_ms", "backward_ms", "optimizer_ms"]
    for p in phases:
        t[p.replace("_ms", " ms")] = b[p].round(1)
    t["sum ms"] = b[phases].fillna(0).sum(axis=1).round(1)
    t["step ms"] = b["step_ms_median"].round(1)
    for p in ("forward", "backward", "optimizer"):
        t[f"{p} peak MiB"] = b[f"{p}_peak_mem_mb"].round(0)
    t["noise"] = _flag(b)
    return t


def checkpoint_table(bench: pd.DataFrame) -> pd.DataFrame:
    """Train rows measured with and without activation checkpointing, side by side."""
    b = _ok(bench)
    if b.empty or not _is_true(_col(b, "grad_checkpointing", False).fillna(False)).any():
        return pd.DataFrame()
    b = b.assign(ckpt=_is_true(_col(b, "grad_checkpointing", False).fillna(False)))
    b = b[(b["mode"] == "train") & (_col(b, "nproc", 1).fillna(1).astype(float) == 1)]
    keys = ["model", "frames", "img_size", "batch_size", "precision", "attn_backend"]
    lines = []
    for _, group in b.groupby([k for k in keys if k in b.columns], dropna=False, sort=False):
        off, on = group[~group["ckpt"]], group[group["ckpt"]]
        if off.empty or on.empty:
            continue
        a, c = off.iloc[-1], on.iloc[-1]
        lines.append({"model": a["model"], "T": "" if pd.isna(a["frames"]) else int(a["frames"]), "img": a["img_size"],
                      "batch": a["batch_size"], "prec": a["precision"], "step ms off": round(a["step_ms_median"], 1),
                      "step ms on": round(c["step_ms_median"], 1),
                      "step x": round(c["step_ms_median"] / a["step_ms_median"], 2),
                      "peak MiB off": round(a["peak_mem_mb"], 0), "peak MiB on": round(c["peak_mem_mb"], 0),
                      "peak x": round(c["peak_mem_mb"] / a["peak_mem_mb"], 2) if a["peak_mem_mb"] else None,
                      "noise": "noisy" if (_flag(pd.DataFrame([a, c])) == "noisy").any() else ""})
    return pd.DataFrame(lines)


def max_batch_table(bench: pd.DataFrame) -> pd.DataFrame:
    """`--batch-size max` rows: the batch found under the limit, the throughput there, the tries."""
    if bench.empty or not (_col(bench, "batch_search", "").fillna("") == "max").any():
        return pd.DataFrame()
    b = bench[_col(bench, "batch_search", "") == "max"]
    t = _base(b)
    t["limit MiB"] = b["mem_limit_mb"].round(0)
    t["process peak MiB"] = _col(b, "process_peak_mb", None).round(0)
    t["clips/s"] = b["clips_per_s"].round(2)
    t["tries (batch status)"] = b["batch_tries"]
    t["noise"] = _flag(b)
    t["status"] = b["status"]
    return t


def nproc_table(bench: pd.DataFrame) -> pd.DataFrame:
    """Multi-process (DDP / FSDP2) train rows beside the one-process row of the same configuration:
    the strategy, nodes and scaling mode (weak: batch per process fixed; strong: global batch fixed),
    and each process's sharded state (parameters, gradients, optimizer state) where the row has it."""
    if bench.empty or not (_col(bench, "nproc", 1).fillna(1).astype(float) > 1).any():
        return pd.DataFrame()
    b = _ok(bench)
    b = b[b["mode"] == "train"]
    t = _base(b)
    t["processes"] = _col(b, "nproc", 1).fillna(1).astype(int)
    t["strategy"] = _col(b, "strategy", "").fillna("")
    t["nodes"] = _col(b, "nnodes", 1).fillna(1).astype(int)
    t["scaling"] = _col(b, "scaling", "").fillna("")
    t["global batch"] = _col(b, "global_batch", None)
    t["backend"] = _col(b, "dist_backend", "")
    t["threads/process"] = b["threads"]
    t["clips/s total"] = b["clips_per_s"].round(2)
    t["clips/s per process"] = _col(b, "clips_per_s_per_process", None).round(2)
    t["efficiency"] = _col(b, "scaling_efficiency", None).round(2)
    t["step ms"] = b["step_ms_median"].round(1)
    for column, label in (("param_mb", "params MiB/process"), ("grad_mb", "grads MiB/process"),
                          ("optimizer_state_mb", "optimizer MiB/process")):
        t[label] = pd.to_numeric(_col(b, column, None), errors="coerce").round(1)
    t["noise"] = _flag(b)
    t = t.dropna(axis="columns", how="all")  # older rows: no strategy or sharded-state columns
    return t.sort_values(["model", "processes", "strategy"], kind="stable")


def noisy_rows(bench: pd.DataFrame) -> pd.DataFrame:
    b = _ok(bench)
    if b.empty or "step_ms_iqr" not in b:
        return pd.DataFrame()
    b = b[_flag(b) == "noisy"]
    t = _base(b)
    t["step ms"] = b["step_ms_median"].round(1)
    t["IQR ms"] = b["step_ms_iqr"].round(1)
    t["IQR % of median"] = (100 * b["step_ms_iqr"] / b["step_ms_median"]).round(0)
    return t


_TABLES = (
    ("Attention backends", backend_table, "Each `--attn-backend` measured on the same configuration; *kernels run* "
     "is what one eager forward really dispatched to (counted below `F.scaled_dot_product_attention`); a backend "
     "that cannot run a configuration on the device is an error row saying why."),
    ("Phases of a step", phase_table, "`--detail`: forward (with the loss), backward and optimizer step timed "
     "separately over the same number of steps, with the peak memory of each phase; *sum* beside the whole step "
     "timed on its own."),
    ("Activation checkpointing", checkpoint_table, "`--grad-checkpointing off,on`: each block's activations "
     "recomputed in the backward pass instead of kept; *x* is on / off."),
    ("Largest batch that fits", max_batch_table, "`--batch-size max`: batches 1, 2, 4, ... then bisection, each "
     "try one warm-up and one timed step in a fresh process whose peak resident memory the limit caps (CUDA: the "
     "device's memory); the row is then measured in full at the batch found."),
    ("Multi-process training", nproc_table, "`--nproc N` (torchrun) with `--strategy ddp` (replicated) or `fsdp` "
     "(FSDP2, sharded per block), on `--nnodes` nodes: the step time is the slowest process's; efficiency = total "
     "clips/s / (N x the one-process clips/s at the same threads per process); *scaling* weak keeps the batch per "
     "process, strong the global batch; the MiB columns are one process's share of the training state."),
)


def e2e_table(e2e: pd.DataFrame) -> pd.DataFrame:
    """`vidbench bench --data` rows: the step fed by the real loader beside the model alone and the
    loader alone, the wait share and the cores the loader keeps busy and would need."""
    b = _ok(e2e)
    if b.empty:
        return pd.DataFrame()
    t = _base(b)
    t["loader"] = _col(b, "backend", "").astype(str) + " x" + _col(b, "num_workers", 0).astype(str)
    for column, label, digits in (("clips_per_s", "clips/s e2e", 2), ("model_clips_per_s", "model only", 2),
                                  ("loader_clips_per_s", "loader only", 2), ("wait_share", "wait %", 0),
                                  ("cores_busy", "cores busy", 2), ("loader_cpu_s_per_clip", "loader CPU s / clip", 3),
                                  ("cores_per_device", "cores per device", 1)):
        values = pd.to_numeric(_col(b, column, None), errors="coerce")
        t[label] = (100 * values if column == "wait_share" else values).round(digits)
    return t


_E2E_NOTE = ("`vidbench bench --data TREE`: each configuration measured three ways in one run: the step fed by "
             "the real loader (decode, transforms, copy to the device, model), the model on random clips, the loader "
             "alone; *wait %* is the share of the fed step's wall time spent blocked on the loader; *cores busy* "
             "the CPU cores the fed run kept busy (its process and the loader's workers); *cores per device* = "
             "loader CPU s per clip x model-only clips/s, the cores a loader needs to keep this device's model fed.")


def add_section(doc: Any, runs: List[Run]) -> None:
    """Write the section where any run has rows for it (nothing otherwise)."""
    parts = [(title, fn, note, [(run, fn(run.table("bench"))) for run in runs]) for title, fn, note in _TABLES]
    parts.append(("The end-to-end step", e2e_table, _E2E_NOTE, [(run, e2e_table(run.table("e2e"))) for run in runs]))
    noisy = [(run, noisy_rows(run.table("bench"))) for run in runs]
    if not any(not t.empty for *_, found in parts for _, t in found) and all(t.empty for _, t in noisy):
        return
    doc.heading("Measurement options")
    for title, _, note, found in parts:
        if any(not t.empty for _, t in found):
            doc.heading(title, 3)
            doc.para(note)
            for run, t in found:
                if not t.empty:
                    doc.para(f"{run.name} ({run.device}):")
                    doc.table(t)
    if any(not t.empty for _, t in noisy):
        doc.heading("Noisy rows", 3)
        doc.para("Rows whose step-time IQR exceeds 10% of the median (marked *noisy* in the tables above): rerun "
                 "them on a quieter machine or with more --iters before trusting a difference smaller than that.")
        for run, t in noisy:
            if not t.empty:
                doc.para(f"{run.name} ({run.device}):")
                doc.table(t)
