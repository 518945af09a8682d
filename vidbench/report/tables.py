"""Turn result rows into the report's tables (no formatting or plotting here)."""
from __future__ import annotations

from typing import List, Optional

import numpy as np
import pandas as pd

from .load import Run


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df
    return df[df["status"].fillna("ok") == "ok"] if "status" in df.columns else df


def _published(model: str):
    from ..models import list_models, model_entry

    if model not in list_models():
        return None
    return model_entry(model).meta


def _default_frames(model: str, rows: pd.DataFrame) -> Optional[int]:
    meta = _published(model)
    if meta is not None and meta.input_size is not None and len(meta.input_size) == 4:
        if (rows["frames"] == meta.input_size[1]).any():
            return int(meta.input_size[1])
    return int(rows["frames"].min()) if "frames" in rows and rows["frames"].notna().any() else None


def model_table(run: Run) -> pd.DataFrame:
    """One row per (model, precision): params, GMACs and published figures with deviation, peak
    memory (smallest batch), best clips/s for inference and training with MFU, at the model's
    default frame count; accuracy (random init where several inits exist)."""
    from .measurement import default_rows

    bench = default_rows(_ok(run.table("bench")))  # the option rows have their own tables
    acc = run.table("accuracy")
    rows: List[dict] = []
    models = list(dict.fromkeys(list(bench.get("model", [])) + list(acc.get("model", []))))
    for model in models:
        b = bench[bench["model"] == model] if not bench.empty else bench
        precisions = list(dict.fromkeys(b["precision"])) if not b.empty and "precision" in b else [None]
        for precision in precisions:
            row = {"model": model, "precision": precision}
            meta = _published(model)
            bp = b[b["precision"] == precision] if precision is not None else b
            if not bp.empty:
                frames = _default_frames(model, bp)
                bf = bp[bp["frames"].isna()] if frames is None else bp[bp["frames"] == frames]  # image models: no frames
                row.update(frames=frames, params_m=bf["params"].iloc[0] / 1e6, gmacs=bf["gmacs"].iloc[0])
                for mode in ("infer", "train"):
                    m = bf[bf["mode"] == mode].dropna(subset=["clips_per_s"])
                    if m.empty:
                        continue
                    best = m.loc[m["clips_per_s"].idxmax()]
                    row[f"clips_s_{mode}"] = best["clips_per_s"]
                    row[f"batch_{mode}"] = int(best["batch_size"])
                    row[f"mfu_pct_{mode}"] = best.get("mfu_pct", np.nan)
                    row[f"peak_mem_mb_{mode}"] = m.loc[m["batch_size"].idxmin(), "peak_mem_mb"]
            if meta is not None and meta.params:
                row["published_params_m"] = meta.params / 1e6
                if "params_m" in row:
                    row["params_dev_pct"] = 100 * (row["params_m"] - row["published_params_m"]) / row["published_params_m"]
            if meta is not None and meta.gmacs:
                row["published_gmacs"] = meta.gmacs
                on_paper_input = meta.input_size is not None and (
                    len(meta.input_size) == 3 or row.get("frames") == meta.input_size[1])  # image models: no frames
                if "gmacs" in row and on_paper_input:
                    row["gmacs_dev_pct"] = 100 * (row["gmacs"] - meta.gmacs) / meta.gmacs
            a = _accuracy_for(acc, model)
            if a is not None:
                row.update(init=a.get("init"), top1=a.get("top1"), top5=a.get("top5"),
                           acc_static=a.get("acc_static"), acc_temporal=a.get("acc_temporal"))
            rows.append(row)
    return pd.DataFrame(rows)


def _accuracy_for(acc: pd.DataFrame, model: str) -> Optional[dict]:
    if acc.empty or "model" not in acc:
        return None
    a = acc[acc["model"] == model]
    if a.empty:
        return None
    if "init" in a and (a["init"] == "random").any():
        a = a[a["init"] == "random"]
    return a.iloc[-1].to_dict()


def published_table(run: Run) -> pd.DataFrame:
    """One row per evaluated checkpoint (`vidbench eval --weights`, the published suite): source,
    published and measured top-1 with their difference, views, GMACs per view and x views, and
    the inference throughput / peak memory measured with the same weights at their own input size."""
    acc = run.table("accuracy")
    if acc.empty or "weights_path" not in acc:
        return pd.DataFrame()
    acc = acc[acc["weights_path"].notna()].drop_duplicates(["weights_path", "data", "split", "views"], keep="last")
    bench = _ok(run.table("bench"))
    rows = []
    for _, a in acc.iterrows():
        row = {"model": a["model"], "weights": a.get("weights"), "source": a.get("weights_source"),
               "views": a.get("views"), "published_top1": a.get("published_top1"), "top1": a.get("top1"),
               "top1_minus_published": a.get("top1_minus_published"), "num_videos": a.get("num_videos")}
        if not bench.empty and "weights" in bench:
            b = bench[(bench["weights"] == a["weights_path"]) & (bench["mode"] == "infer")].dropna(subset=["clips_per_s"])
            if not b.empty:
                best = b.loc[b["clips_per_s"].idxmax()]
                clips, crops = (int(v) for v in str(a.get("views", "1x1")).split("x"))
                row.update(gmacs=best["gmacs"], gmacs_x_views=best["gmacs"] * clips * crops,
                           clips_s_infer=best["clips_per_s"], peak_mem_mb_infer=best.get("peak_mem_mb"))
        rows.append(row)
    return pd.DataFrame(rows)


def init_table(run: Run) -> pd.DataFrame:
    """Video accuracy of every (model, init) pair: how each initialisation changes accuracy."""
    acc = run.table("accuracy")
    if acc.empty or "init" not in acc:
        return pd.DataFrame()
    cols = [c for c in ("model", "init", "top1", "acc_static", "acc_temporal", "epochs", "train_time_s") if c in acc]
    return acc[cols].drop_duplicates(["model", "init"], keep="last").reset_index(drop=True)


def ssl_table(run: Run) -> pd.DataFrame:
    ssl = run.table("ssl")
    if ssl.empty:
        return ssl
    cols = [c for c in ("method", "epochs", "knn_top1", "linear_top1", "pretrain_time_s", "embed_std", "effective_rank")
            if c in ssl]
    return ssl[cols].drop_duplicates(["method"], keep="last").reset_index(drop=True)


def failures(run: Run) -> pd.DataFrame:
    """Rows whose status is not ok, from every table that has a status."""
    out = []
    for name, df in run.tables.items():
        if "status" in df.columns:
            if name == "stages" and "stage" in df:  # a stage retried by --resume: its last outcome counts
                df = df.drop_duplicates("stage", keep="last")
            bad = df[df["status"].fillna("ok") != "ok"]
            extra: tuple = ()
            if name == "scaling":  # points skipped by design are listed in the scaling study's own table
                bad, extra = bad[~bad["status"].astype(str).str.startswith("skipped")], ("img_size",)
            if not bad.empty:
                keep = [c for c in ("stage", "model", "method", "frames", *extra, "batch_size", "mode", "status",
                                    "error", "message") if c in bad]
                out.append(bad[keep].assign(table=name))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def scaling(run: Run, metric: str, mode: str = "infer") -> pd.DataFrame:
    """Per model: `metric` against frames at one batch size and precision, with the log-log slope.
    For clips/s the cost per clip (1000 / clips_per_s, ms) is used, so joint attention's slope
    tends to 2 and factorised attention's to 1 once attention dominates."""
    bench = _ok(run.table("bench"))
    if bench.empty:
        return pd.DataFrame()
    bench = bench[bench["mode"] == mode]
    rows = []
    for (model, precision), b in bench.groupby(["model", "precision"], sort=False):
        batch = b.groupby("batch_size")["frames"].nunique()
        batch = batch[batch >= 2]
        if batch.empty:
            continue
        pts = b[b["batch_size"] == batch.index.min()].sort_values("frames")
        y = 1000.0 / pts["clips_per_s"] if metric == "clips_per_s" else pts[metric]
        ok = np.isfinite(y) & (y > 0)
        if ok.sum() < 2:
            continue
        slope = float(np.polyfit(np.log(pts["frames"][ok]), np.log(y[ok]), 1)[0])
        for f, v in zip(pts["frames"][ok], y[ok]):
            rows.append(dict(model=model, precision=precision, batch_size=int(batch.index.min()), frames=int(f),
                             value=float(v), slope=slope))
    return pd.DataFrame(rows)


def pareto_front(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Points not dominated by any other (lower or equal x with higher or equal y, one strictly)."""
    pts = points.dropna(subset=[x, y]).sort_values([x, y], ascending=[True, False])
    front, best = [], -np.inf
    for _, p in pts.iterrows():
        if p[y] > best:
            front.append(p)
            best = p[y]
    return pd.DataFrame(front)


# The scaling study (benchmarks/scaling_study.py, scaling.csv): one row per model x frames x size.
MIB = 2**20
STUDY_KEYS = ("model", "frames", "img_size", "device")
STUDY_COLUMNS = ("model", "attention", "frames", "img_size", "device", "tokens", "params", "gmacs", "act_bytes",
                 "act_attention", "act_ref_bytes", "step_ms_median", "peak_mem_mb", "mem_method", "status", "error")
STUDY_METRICS = {"gmacs": "GMACs", "act_mib": "activation MiB", "act_ref_mib": "activation MiB (reference)",
                 "ms_per_clip": "ms per clip"}


def scaling_study(run: Run) -> pd.DataFrame:
    """The study's points as last written, sorted by model (first-seen order), size, frames, with
    activation memory in MiB (fused and reference attention) and the measured ms per clip and
    peak memory where status is ok (blank where skipped)."""
    df = run.table("scaling")
    if df.empty or "model" not in df:
        return pd.DataFrame()
    df = df.reindex(columns=list(df.columns) + [c for c in STUDY_COLUMNS if c not in df.columns])
    df = df.drop_duplicates(list(STUDY_KEYS), keep="last").copy()
    ok = df["status"].fillna("ok").astype(str) == "ok"
    for c in ("frames", "img_size", "tokens", "params"):  # integers, blank where not counted
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
    df["act_mib"] = pd.to_numeric(df["act_bytes"], errors="coerce") / MIB
    df["act_ref_mib"] = pd.to_numeric(df["act_ref_bytes"], errors="coerce") / MIB
    df["ms_per_clip"] = pd.to_numeric(df["step_ms_median"], errors="coerce").where(ok)
    df["peak_mib"] = pd.to_numeric(df["peak_mem_mb"], errors="coerce").where(ok)
    order = {m: i for i, m in enumerate(dict.fromkeys(df["model"]))}
    df = df.assign(_order=df["model"].map(order)).sort_values(["_order", "img_size", "frames"])
    return df.drop(columns="_order").reset_index(drop=True)


def loglog_slope(x: pd.Series, y: pd.Series) -> float:
    """Least-squares slope of log y against log x over the finite positive pairs (NaN below two
    distinct x)."""
    x, y = (pd.to_numeric(v, errors="coerce").astype(float) for v in (x, y))
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if x[ok].nunique() < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def study_curves(points: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per model: `metric` against tokens per clip (sorted by tokens) with the model's log-log slope."""
    if points.empty or metric not in points:
        return pd.DataFrame()
    rows = []
    for model, p in points.groupby("model", sort=False):
        value = pd.to_numeric(p[metric], errors="coerce").astype(float)
        p = p[np.isfinite(value) & (value > 0) & p["tokens"].notna()].sort_values(["tokens", metric])
        if p.empty:
            continue
        slope = loglog_slope(p["tokens"], p[metric])
        for _, r in p.iterrows():
            rows.append(dict(model=model, attention=r["attention"], frames=int(r["frames"]), img_size=int(r["img_size"]),
                             tokens=int(r["tokens"]), value=float(r[metric]), slope=slope))
    return pd.DataFrame(rows)


def study_slopes(points: pd.DataFrame) -> pd.DataFrame:
    """One row per model: attention pattern, the SDPA backend(s) its activation count used, points
    counted / measured, and the log-log slope against tokens per clip of GMACs, activation memory
    (fused and reference) and measured time."""
    if points.empty:
        return pd.DataFrame()
    rows = []
    for model, p in points.groupby("model", sort=False):
        row = dict(model=model, attention=p["attention"].dropna().iloc[0] if p["attention"].notna().any() else None,
                   kernel="; ".join(dict.fromkeys(p["act_attention"].dropna().astype(str))),
                   points=int(p["tokens"].notna().sum()), measured=int(p["ms_per_clip"].notna().sum()))
        for metric in STUDY_METRICS:
            row[f"slope_{metric}"] = loglog_slope(p["tokens"], p[metric])
        rows.append(row)
    return pd.DataFrame(rows)
