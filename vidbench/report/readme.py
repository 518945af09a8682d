"""The tables of measured and counted figures that README.md, the docs/ pages and the results
directories' own READMEs quote, generated from the committed CSVs: `vidbench report --format readme`.

Each section reads one results directory, renders a Markdown table (and a line or two of
figures from the same rows), and ends with the line that names its files and the command that
regenerates it. In every file that quotes it (`Section.targets`) the block stands under its marker
line (`marker(name)`, an HTML comment: invisible on GitHub and in the MkDocs site);
`update()` rewrites each block in place from the CSVs, and tests/test_report.py checks that every
target holds its sections exactly as generated, so a quoted figure cannot drift from its CSV.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import pandas as pd

from ..errors import ConfigError
from ..results import write_file
from . import tables
from .load import load_run, read_table


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _num(value, fmt: str, missing: str = "-") -> str:
    return missing if value is None or pd.isna(value) else format(float(value), fmt)


def _read(directory: Path, name: str) -> pd.DataFrame:
    return read_table(directory / f"{name}.csv", name)


# --- the quick suite's key table (README "Results", docs/suites.md) --------------------------------

def quick(directory: Path) -> str:
    """One row per model of the committed quick run: counts, bench and random-init accuracy,
    then a line per video model initialised from a self-supervised backbone."""
    run = load_run(directory)
    t = tables.model_table(run).sort_values("model")
    rows = []
    for _, r in t.iterrows():
        rows.append([f"`{r['model']}`", _num(r.get("params_m"), ".2f"), _num(r.get("gmacs"), ".3f"),
                     f"{_num(r.get('peak_mem_mb_infer'), '.0f')} / {_num(r.get('peak_mem_mb_train'), '.0f')}",
                     f"{_num(r.get('clips_s_infer'), '.1f')} / {_num(r.get('clips_s_train'), '.1f')}",
                     f"{_num(r.get('mfu_pct_infer'), '.0f')} / {_num(r.get('mfu_pct_train'), '.0f')}",
                     _num(r.get("top1"), ".1f"), _num(r.get("acc_static"), ".1f"), _num(r.get("acc_temporal"), ".1f")])
    out = [md_table(["model", "params (M)", "GMACs", "peak MB infer / train", "clips/s infer / train",
                     "MFU % infer / train", "top-1", "static", "temporal"], rows)]
    acc, stages = run.table("accuracy"), run.table("stages")
    for _, a in acc[acc["init"].fillna("random") != "random"].iterrows():
        choice = next((s.split(":")[2] for s in stages.get("stage", []) if s.startswith(f"init:{a['model']}:")
                       and s.split(":")[2] in ("best", "worst")), None)
        source = f"the {choice} SSL backbone by linear probe ({a['init']})" if choice else f"the {a['init']} backbone"
        out.append(f"`{a['model']}` initialised from {source}: top-1 {a['top1']:.1f}, static {a['acc_static']:.1f}, "
                   f"temporal {a['acc_temporal']:.1f}.")
    return "\n\n".join(out)


# --- paper sizes: counted (the paper suite's [flops] stage) against the registry's published figures

# (label, input, models, where the published params and GMACs come from): grouping and wording
# only; every figure is read from bench.csv or the registry's ModelMeta
PAPER_GROUPS: Tuple[Tuple[str, str, Tuple[str, ...], str, str], ...] = (
    ("ViT-B/16", "224", ("vit_base",), "torchvision `vit_b_16` meta", "torchvision `vit_b_16` meta; timm's results CSV"),
    ("ViViT-B Model 1 / 2 / 3 / 4", "32x224", ("vivit_m1_base", "vivit_m2_base", "vivit_m3_base", "vivit_m4_base"),
     "ViViT Table 2", "ViViT Table 2"),
    ("TimeSformer-B", "8x224", ("timesformer_base",),
     "TimeSformer Tables 1, 5 (the code release with a 400-class head: vidbench's count exactly)",
     "TimeSformer Table 5 (given over 3 views); mmaction2 README"),
    ("MViT-B 16x4 / 32x3", "16x224 / 32x224", ("mvit_b_16x4", "mvit_b_32x3"),
     "torchvision `mvit_v1_b` meta (the paper rounds to 0.1M); 32x3: pytorchvideo model zoo",
     "MViT Table 4; 32x3: pytorchvideo model zoo"),
    ("MViTv2-S 16x4", "16x224", ("mvitv2_s_16x4",), "torchvision `mvit_v2_s` meta", "torchvision `mvit_v2_s` meta"),
    ("Video Swin T / S / B", "32x224", ("swin3d_t", "swin3d_s", "swin3d_b"), "torchvision `Swin3D_*_Weights` meta",
     "Video-Swin-Transformer README (the paper rounds to whole GMACs)"),
    ("VideoMAE S / B / L", "16x224", ("videomae_small", "videomae_base", "videomae_large"),
     "mmaction2 README (vidbench's qkv bias has a zero k third: depth x width more than HF's count)",
     "mmaction2 README"),
    ("MViTv2-B 32x3 / L 40x3", "32x224 / 40x312", ("mvitv2_b_32x3", "mvitv2_l_40x3"),
     "SlowFast projects/mvitv2 README (B); mmaction2 mvit README (L: mmaction2's MViT counts it exactly, SlowFast "
     "quotes 217.6M)", "SlowFast projects/mvitv2 README; mmaction2 mvit README"),
    ("VideoMAE V2 ViT-g/14", "16x224", ("videomae_v2_giant",),
     "VideoMAE V2 Sec. 4.1 (the encoder; the entry adds a 400-class head)",
     "VideoMAE V2 Table 6(a) (38.16 TFLOPs over 5x3 views)"),
    ("Hiera B / B+ / L / H", "16x224", ("hiera_base_16x224", "hiera_base_plus_16x224", "hiera_large_16x224",
                                        "hiera_huge_16x224"),
     "Hugging Face model pages (B, B+, L); H: hiera-transformer's exact count", "the paper's table not read here"),
    ("VideoPrism B / L / g", "16x288 / 8x288 / 8x288", ("videoprism_base", "videoprism_large", "videoprism_giant"),
     "google-deepmind/videoprism README (encoder; the registry entry adds a 400-class linear head)",
     "none published"),
    ("V-JEPA 2 L / H / g / g-384", "64x256 / 64x256 / 64x256 / 64x384",
     ("vjepa2_vitl", "vjepa2_vith", "vjepa2_vitg", "vjepa2_vitg_384"),
     "facebookresearch/vjepa2 README (rounded: 300M / 600M / 1B)", "none published"),
    ("ViT-L/16", "224", ("vit_large",), "torchvision `vit_l_16` meta", "torchvision `vit_l_16` meta"),
    ("DINOv2 S/14 / B/14 (registers: reg4)", "518",
     ("vit_small_dinov2", "vit_base_dinov2", "vit_small_dinov2_reg4", "vit_base_dinov2_reg4"),
     "timm's models of the same weights (the DINOv2 README rounds to 21M / 86M)", "none published"),
)


def _exact(n: float) -> bool:
    """A count to the unit (a code release's), not a figure rounded to tens of thousands (a paper's)."""
    return float(n).is_integer() and n % 10_000 != 0


def _counts(directory: Path) -> pd.DataFrame:
    bench = _read(directory, "bench")
    bench = bench[(bench["mode"] == "count") & (bench["status"].fillna("ok") == "ok")]
    return bench.drop_duplicates("model", keep="last").set_index("model")


def _paper_rows(directory: Path, column: str) -> List[List[str]]:
    from ..models import model_entry

    counts, rows = _counts(directory), []
    for label, size, models, params_source, gmacs_source in PAPER_GROUPS:
        ours, paper = [], []
        for name in models:
            published = getattr(model_entry(name).meta, column)
            counted = counts[column].get(name) if column in counts else None
            if column == "params":
                exact = published is not None and _exact(published)
                ours.append(_num(counted, ",.0f") if exact else _num(None if counted is None else counted / 1e6, ".2f")
                            + ("" if counted is None else "M"))
                paper.append("-" if published is None else f"{published:,.0f}" if exact else f"{published / 1e6:g}M")
            else:
                ours.append(_num(counted, ".2f"))
                paper.append("-" if published is None else f"{published:g}")
        if column == "params":
            rows.append([label, " / ".join(ours), " / ".join(paper), params_source])
        else:
            rows.append([f"{label} ({size})", " / ".join(ours), " / ".join(paper), gmacs_source])
    return rows


def paper_params(directory: Path) -> str:
    return md_table(["model", "vidbench", "paper", "published figures"], _paper_rows(directory, "params"))


def paper_gmacs(directory: Path) -> str:
    return md_table(["model", "vidbench GMACs", "paper", "published figures"], _paper_rows(directory, "gmacs"))


def paper_measured(directory: Path) -> str:
    """The paper-size models measured on this CPU (bench rows of paper_cpu, batch 1): inference
    of every model, a training step of the Base-size ones, beside the counted GMACs."""
    from .measurement import is_noisy

    bench = _read(directory, "bench")
    bench = bench[bench["mode"].isin(["infer", "train"]) & (bench["status"] == "ok")]
    rows = []
    for model in dict.fromkeys(bench["model"]):
        b = bench[bench["model"] == model]
        i, t = b[b["mode"] == "infer"], b[b["mode"] == "train"]
        first = b.iloc[0]
        size = f"{int(first['frames'])}x{int(first['img_size'])}" if pd.notna(first["frames"]) else f"{int(first['img_size'])}"
        cells = [f"`{model}`", size, _num(first["gmacs"], ".1f")]
        for part in (i, t):
            if part.empty:
                cells += ["-"] * 4
            else:
                r = part.iloc[-1]
                flag = "*" if is_noisy(r["step_ms_median"], r["step_ms_iqr"]) else ""
                cells += [_num(r["clips_per_s"], ".3f"), _num(r["step_ms_median"], ",.0f") + flag,
                          _num(r["peak_mem_mb"], ",.0f"), _num(r["mfu_pct"], ".0f")]
        rows.append(cells)
    return md_table(["model", "input", "GMACs", "infer clips/s", "infer ms", "infer peak MiB", "infer MFU %",
                     "train clips/s", "train ms", "train peak MiB", "train MFU %"], rows)


def compare(directory: Path) -> str:
    """`vidbench compare`'s committed run: vidbench beside each other library's implementation."""
    from .compare import markdown

    return markdown(_read(directory, "compare"))


def compare_profile(directory: Path) -> str:
    """Where one inference forward's time goes, per implementation (compare_profile.csv)."""
    from .compare import profile_table

    return profile_table(_read(directory, "compare_profile")).to_markdown(index=False)


# --- longer runs: accuracy, data loading ---------------------------------------------------------

def accuracy(directory: Path) -> str:
    """One row per training run gathered in accuracy.csv (`run` names its directory, whose
    environment.json gives the threads; `model_options` the options the runs compare)."""
    acc, rows = _read(directory, "accuracy"), []
    for _, a in acc.iterrows():
        env_path = directory / str(a["run"]) / "environment.json"
        env = json.loads(env_path.read_text()) if env_path.exists() else {}
        threads = env.get("torch_threads", "-")
        config = env.get("train_config") or {}
        config = json.loads(config) if isinstance(config, str) else config
        # the registry model the run trained (the row's `model` is its label: `vivit(temporal_pos_std=0.5)` once
        # an option differs from the registry config, and the options have their own column here)
        model = config.get("model") or a["model"]
        options = json.loads(a["model_options"]) if isinstance(a.get("model_options"), str) else {}
        shown = ", ".join(f"`{k}={v}`" for k, v in options.items()) or "default"
        rows.append([f"`{model}`", shown, str(threads), str(int(a["epochs"])), f"{a['train_time_s']:.0f} s",
                     f"{a['top1']:.1f}", f"{a['acc_static']:.1f}", f"{a['acc_temporal']:.1f}"])
    return md_table(["model", "model options", "threads", "epochs", "train time", "top-1", "static top-1",
                     "temporal top-1"], rows)


def data_loading(directory: Path) -> str:
    """benchmarks/data_loading.py's rows: training clips per loader, sampling and worker count
    (against the naive loader at the same sampling and workers), multi-view test items decoded
    once against per view, the targets, the PyAV stage profile (data_loading_profile.csv, when
    present) and the CPU cores per GPU the best video loader implies. A run of the earlier
    script (no sampling column) gets its one table."""
    df, rows = pd.read_csv(directory / "data_loading.csv"), []
    if "sampling" not in df.columns:
        for _, r in df.iterrows():
            naive = df[(df["workers"] == r["workers"]) & (df["loader"] == "naive-pyav-all-frames")]["clips_per_s"]
            rows.append([r["loader"], str(r["workers"]), f"{r['clips_per_s']:.1f}",
                         f"{r['clips_per_s'] / naive.iloc[0]:.2f}x" if len(naive) else "-"])
        return md_table(["loader", "workers", "clips/s", "vs naive"], rows)
    train, test = df[df["views"] == "1x1"], df[df["views"] != "1x1"]

    def naive_of(r) -> Optional[pd.Series]:
        n = train[(train["loader"] == "naive-pyav-all-frames") & (train["sampling"] == r["sampling"])
                  & (train["workers"] == r["workers"])]
        return n.iloc[0] if len(n) else None

    for (loader, sampling), group in train.groupby(["loader", "sampling"], sort=False):  # one row, every worker count
        ratios = []
        for _, r in group.iterrows():
            n = naive_of(r)
            ratios.append("-" if n is None else f"{r['clips_per_s'] / n['clips_per_s']:.2f}x")
        rows.append([loader, " / ".join(str(w) for w in group["workers"]),
                     " / ".join(f"{v:.2f}" for v in group["clips_per_s"]), " / ".join(ratios),
                     " / ".join(f"{v:.3f}" for v in group["cpu_s_per_clip"]), sampling])
    out = [md_table(["loader", "workers", "clips/s", "vs naive", "CPU s / clip", "sampling"], rows)]
    targets = []
    dense = train[(train["sampling"] == "dense16x4") & train["loader"].str.startswith("vidbench-")]
    for workers, group in dense.groupby("workers"):
        best = group.loc[group["clips_per_s"].idxmax()]
        n = naive_of(best)
        if n is not None:
            targets.append(f"{workers} worker{'' if workers == 1 else 's'}: {best['loader']} "
                           f"{best['clips_per_s'] / n['clips_per_s']:.2f}x")
    if targets:
        out.append("Clip loader vs naive, dense 16x4 training clips, fastest backend (target 3x): "
                   + "; ".join(targets) + ".")
    if len(test):
        rows, speedups = [], []
        keys = ["loader", "sampling", "views", "workers"]
        for _, group in test.groupby(keys, sort=False):
            once, each = group[group["decode"] == "once"], group[group["decode"] == "per-view"]
            if not len(once) or not len(each):
                continue
            o, e = once.iloc[-1], each.iloc[-1]
            speedup = o["clips_per_s"] / e["clips_per_s"]
            speedups.append(f"{o['loader']} {speedup:.2f}x")
            rows.append([o["loader"], o["sampling"], o["views"], str(o["workers"]), f"{o['clips_per_s']:.2f}",
                         f"{e['clips_per_s']:.2f}", f"{speedup:.2f}x",
                         f"{o['cpu_s_per_clip']:.2f} / {e['cpu_s_per_clip']:.2f}"])
        out.append(md_table(["test items", "sampling", "views", "workers", "items/s, decode once", "items/s, each view",
                             "speed-up", "CPU s / item, once / each view"], rows))
        out.append("Decode-once vs each view decoded separately (target 2x): " + "; ".join(speedups) + ".")
    profile_path = directory / "data_loading_profile.csv"
    if profile_path.exists():
        prof = pd.read_csv(profile_path)
        columns = list(dict.fromkeys(zip(prof["loader"], prof["sampling"])))
        stages: List[str] = []  # each column's stages in its order, merged
        for loader, sampling in columns:
            previous = None
            for stage in prof[(prof["loader"] == loader) & (prof["sampling"] == sampling)]["stage"]:
                if stage not in stages:
                    stages.insert(stages.index(previous) + 1 if previous is not None else 0, stage)
                previous = stage
        rows = []
        for stage in stages:
            row = [stage]
            for loader, sampling in columns:
                hit = prof[(prof["loader"] == loader) & (prof["sampling"] == sampling) & (prof["stage"] == stage)]
                row.append("-" if not len(hit) else f"{hit['ms_per_clip'].iloc[0]:.1f} ({hit['share'].iloc[0]:.0%})")
            rows.append(row)
        first = {c: prof[(prof["loader"] == c[0]) & (prof["sampling"] == c[1])].iloc[0] for c in columns}
        rows.append(["frames decoded per clip (needed)"] + [
            f"{first[c]['frames_decoded_per_clip']:.0f} ({first[c]['frames_needed_per_clip']:.0f} of "
            f"{first[c]['frames_per_video']:.0f})" for c in columns])
        out.append(md_table(["stage (ms / clip, share)"] + [f"{loader}, {sampling}" for loader, sampling in columns],
                            rows))
        bounds = [f"{first[c]['frames_decoded_per_clip']:.0f} of {first[c]['frames_per_video']:.0f} frames per "
                  f"{c[1]} clip (at most {first[c]['frames_per_video'] / first[c]['frames_decoded_per_clip']:.1f}x less "
                  "decoding than the naive loader's)" for c in columns if not c[0].startswith("naive")]
        env_path = directory / "environment.json"
        env = json.loads(env_path.read_text()) if env_path.exists() else {}
        gop = (f" with {env['keyframes_per_video']:g} keyframes per video (one every {env['frames_per_gop']:.0f} "
               "frames)" if "keyframes_per_video" in env else "")
        out.append(f"Where a clip's time goes (`data_loading_profile.csv`: torch.profiler ranges, "
                   f"{int(prof['clips'].iloc[0])} clips each, one process). Decoding starts at the keyframe before the "
                   f"first frame needed{gop}: PyAV decodes " + "; ".join(bounds) + ".")
    if len(dense):
        at = dense[dense["workers"] == dense["workers"].max()]
        best = at.loc[at["cpu_s_per_clip"].idxmin()]
        c = best["cpu_s_per_clip"]
        out.append(f"CPU per dense 16x4 training clip, least of the video loaders at {best['workers']} workers: "
                   f"{c:.3f} s ({best['loader']}); a GPU taking t s per training clip needs {c:.3f} / t CPU cores "
                   f"for loading alone (cores = CPU s per clip x clips per step / step time).")
    return "\n\n".join(out)


# --- results/ssl_tiny_synthetic/README.md, results/timm_compare_cpu/README.md ---------------------

def ssl(directory: Path) -> str:
    """kNN / linear probe per method (ssl.csv) with the first and last epoch of ssl_log.csv;
    the best of each probe in bold."""
    df, log = _read(directory, "ssl").drop_duplicates("method", keep="last"), _read(directory, "ssl_log")
    best = {c: df[c].max() for c in ("knn_top1", "linear_top1")}
    rows = []
    for _, r in df.iterrows():
        first = log[log["method"] == r["method"]].head(1)
        probes = [f"**{r[c]:.1f}**" if r[c] == best[c] else f"{r[c]:.1f}" for c in best]
        trained = not first.empty
        rows.append(["random init" if r["method"] == "random" else r["method"], *probes, f"{r['pretrain_time_s']:.0f}",
                     f"{first['loss'].iloc[0]:.2f} -> {r['final_loss']:.2f}" if trained else "",
                     f"{r['emb_std']:.3f} / {r['emb_std_ref']:.3f}" if trained else "",
                     f"{first['feat_rank'].iloc[0]:.1f} -> {r['feat_rank']:.1f}" if trained else "",
                     f"{r['eval_feat_rank']:.1f}"])
    return md_table(["method", "kNN top-1", "linear top-1", "pretrain s", "loss first -> last epoch",
                     "emb_std / ref", "feat_rank (train)", "eval feature rank"], rows)


def ssl_video(directory: Path) -> str:
    df = pd.read_csv(directory / "video_init.csv")
    rows = [[r["init"], f"{r['top1']:.1f}", f"{r['acc_static']:.1f}", f"{r['acc_temporal']:.1f}",
             f"{r['train_time_s']:.0f}"] for _, r in df.iterrows()]
    return md_table(["init", "test top-1", "static", "temporal", "train s"], rows)


def timm(directory: Path) -> str:
    r = json.loads((directory / "timm_vit.json").read_text())
    rows = [[name, f"{r[f'{key}_clips_per_s']:.2f}", f"{r[f'{key}_step_ms_median']:.0f} ({r[f'{key}_step_ms_iqr']:.0f})",
             f"{r[f'{key}_mfu_pct']:.1f}", f"{r[f'{key}_gmacs']:.2f}"]
            for name, key in (("vidbench `vit_base`", "vidbench"), ("timm `vit_base_patch16_224`", "timm"))]
    return (md_table(["model", "clips/s", "step ms median (IQR)", "MFU %", "GMACs"], rows) + "\n\n"
            f"Batch {r['batch_size']}, {r['precision']}, {r['device']}, {r['threads']} threads, {r['iters_per_model']} "
            f"timed steps each; throughput ratio vidbench / timm {r['throughput_ratio_vidbench_over_timm']:.3f}; "
            f"max |output difference| {r['max_abs_output_diff']:g}.")


@dataclass(frozen=True)
class Section:
    directory: str  # under the results root
    files: Tuple[str, ...]
    targets: Tuple[str, ...]  # the files (from the repository root) that quote it
    build: Callable[[Path], str]


_SSL_README, _TIMM_README = "results/ssl_tiny_synthetic/README.md", "results/timm_compare_cpu/README.md"
SECTIONS: Dict[str, Section] = {
    "paper-params": Section("paper_cpu", ("bench.csv",), ("docs/models.md",), paper_params),
    "paper-gmacs": Section("paper_cpu", ("bench.csv",), ("docs/measuring.md",), paper_gmacs),
    "paper-measured": Section("paper_cpu", ("bench.csv",), ("docs/measuring.md",), paper_measured),
    "compare": Section("compare_cpu", ("compare.csv",), ("docs/compare.md",), compare),
    # a later run of its own (other commit, other families): beside the first, never merged into it
    "compare-added": Section("compare_cpu_added", ("compare.csv",), ("docs/compare.md",), compare),
    "compare-profile": Section("compare_cpu_profile", ("compare_profile.csv",), ("docs/compare.md",), compare_profile),
    "accuracy": Section("accuracy_cpu", ("accuracy.csv", "*/environment.json"), ("docs/training.md",), accuracy),
    "data-loading": Section("data_loading_cpu", ("data_loading.csv",), ("docs/data/loading.md",), data_loading),
    "quick": Section("quick_cpu", ("bench.csv", "accuracy.csv", "stages.csv"), ("README.md", "docs/suites.md"), quick),
    "ssl": Section("ssl_tiny_synthetic", ("ssl.csv", "ssl_log.csv"), (_SSL_README,), ssl),
    "ssl-video": Section("ssl_tiny_synthetic", ("video_init.csv",), (_SSL_README,), ssl_video),
    "timm": Section("timm_compare_cpu", ("timm_vit.json",), (_TIMM_README,), timm),
}


def marker(name: str) -> str:
    """The line above a quoted section in each of its targets: where `update()` finds it."""
    return f"<!-- generated: vidbench report --format readme --section {name} -->"


def render_section(name: str, root: Union[str, Path] = "results") -> str:
    """The section's Markdown and, under it, the line naming its files and the command."""
    section = SECTIONS[name]
    where = f"{Path(root).as_posix()}/{section.directory}"
    files = ", ".join(f"`{f}`" for f in section.files)
    command = f"vidbench report --format readme --section {name}"
    if Path(root).as_posix() != "results":
        command = f"vidbench report --format readme {Path(root).as_posix()} --section {name}"
    return f"{section.build(Path(root) / section.directory)}\n\n_Generated from `{where}` ({files}): `{command}`._"


def render(root: Union[str, Path] = "results", names: Optional[Sequence[str]] = None) -> str:
    """Every section (or those named), each after a comment naming it and the files that quote it."""
    names = _names(names)
    if len(names) == 1:
        return render_section(names[0], root)
    return "\n\n".join(f"<!-- section {n}: for {', '.join(SECTIONS[n].targets)} -->\n{render_section(n, root)}"
                         for n in names)


def _names(names: Optional[Sequence[str]]) -> List[str]:
    unknown = [n for n in names or () if n not in SECTIONS]
    if unknown:
        raise ConfigError(f"--section {', '.join(unknown)}: unknown; sections are {', '.join(SECTIONS)}")
    return list(names or SECTIONS)


def _quoted_span(text: str, name: str, where: str = "") -> Tuple[int, int]:
    """(start, end) of section `name`'s block in a target's text: from the line after its marker
    to the end of its "_Generated from ..." line. A missing marker or line is a ConfigError."""
    head = marker(name) + "\n"
    start = text.find(head)
    if start < 0 or text.find(head, start + 1) >= 0:
        raise ConfigError(f"{where or 'text'}: needs exactly one line '{marker(name)}' above the section's table")
    start += len(head)
    tail = f"--section {name}`._"
    end = text.find(tail, start)
    if end < 0:
        raise ConfigError(f"{where or 'text'}: no '_Generated from ... {tail}' line under '{marker(name)}'")
    return start, end + len(tail)


def update(root: Union[str, Path] = "results", names: Optional[Sequence[str]] = None,
           repo: Union[str, Path] = ".") -> List[Path]:
    """Rewrite every quoted section (or those named) in each of its targets under `repo` from the
    CSVs under `root`; returns the files that changed (each written whole, atomically)."""
    new: Dict[Path, str] = {}
    for name in _names(names):
        block = render_section(name, root)
        for target in SECTIONS[name].targets:
            path = Path(repo) / target
            text = new.get(path)
            if text is None:
                text = path.read_text()
            start, end = _quoted_span(text, name, str(path))
            new[path] = text[:start] + block + text[end:]
    return [write_file(path, text) for path, text in new.items() if text != path.read_text()]
