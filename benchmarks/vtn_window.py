"""VTN's temporal attention, banded (Longformer) vs dense under an (N, N) mask, over the number of
frames: time, peak memory and counted multiply-adds, at VTN-B's width (768 channels, 12 heads,
attention window 18, the cls token global).

Two scopes: `core`, the kernel calls alone (`banded_window_attention` / `dense_window_attention`
on given q, k, v, plus the cls row against all keys), and `layer`, VTN's whole
`LongformerSelfAttention` (projections included, what the model runs). Both kernel paths (fused
SDPA and the reference that materialises the attention matrix). Batch 1, fp32, eval, no grad;
time: median and minimum of --iters forwards after --warmup (the minimum is the least disturbed
run on a shared machine); memory: the process's peak RSS above the baseline during those
forwards (`vidbench.bench.memory.PeakMemory`, shared process: malloc's free memory is handed
back before each point); GMACs: fvcore's count (`count_flops`), which equals
`vidbench.bench.flops.sliding_window_macs` (tests/test_vtn.py).

    python benchmarks/vtn_window.py --out results/vtn_window_cpu --threads 1 --iters 15
    python benchmarks/vtn_window.py --out results/vtn_window_cpu --render-only   # README.md from the CSV

Writes <out>/vtn_window.csv, <out>/environment.json (versions, commit, CPU, the command) and
<out>/README.md (the command, the crossover points, the table).
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's vidbench

from vidbench.bench import count_flops  # noqa: E402
from vidbench.bench.flops import sliding_window_macs  # noqa: E402
from vidbench.bench.memory import PeakMemory  # noqa: E402
from vidbench.layers import fused_attn, scaled_dot_product  # noqa: E402
from vidbench.models.vtn import LongformerSelfAttention, banded_window_attention, dense_window_attention  # noqa: E402
from vidbench.results import ResultsStore, cpu_name  # noqa: E402

FRAMES = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
DIM, HEADS, WINDOW, GLOBAL = 768, 12, 18, 1  # VTN-B's temporal encoder (VTNConfig defaults)
COLUMNS = ("frames", "tokens", "scope", "kernel", "attention", "time_ms", "time_ms_min", "peak_mem_mb", "gmacs",
           "gmacs_formula", "threads", "iters", "mem_method", "torch", "cpu")


class Core(nn.Module):
    """The kernel calls of the Longformer attention on q = k = v = x (B, heads, N, head_dim)."""

    def __init__(self, banded: bool) -> None:
        super().__init__()
        self.banded = banded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attend = banded_window_attention if self.banded else dense_window_attention
        local = attend(x, x, x, WINDOW, GLOBAL)  # (B, heads, N - 1, head_dim)
        return torch.cat([scaled_dot_product(x[:, :, :GLOBAL], x, x), local], dim=2)


def build(scope: str, banded: bool) -> nn.Module:
    if scope == "core":
        return Core(banded).eval()
    return LongformerSelfAttention(DIM, HEADS, WINDOW, num_global_tokens=GLOBAL, banded=banded).eval()


def input_size(scope: str, tokens: int) -> tuple:
    return (HEADS, tokens, DIM // HEADS) if scope == "core" else (tokens, DIM)


def measure(module: nn.Module, x: torch.Tensor, warmup: int, iters: int) -> tuple:
    """(median ms, minimum ms, peak MiB above baseline, memory method) of `iters` forwards."""
    with torch.no_grad():
        for _ in range(warmup):
            module(x)
        times = []
        with PeakMemory(torch.device("cpu")) as peak:
            for _ in range(iters):
                start = time.perf_counter()
                module(x)
                times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times), peak.result.peak_mb, peak.result.method


def run(out: Path, frames: Sequence[int], warmup: int, iters: int) -> List[Dict[str, object]]:
    rows = []
    for n_frames in frames:
        tokens = n_frames + GLOBAL
        for scope in ("core", "layer"):
            for banded in (True, False):
                module = build(scope, banded)
                size = input_size(scope, tokens)
                counted = count_flops(module, size, fused=True).macs
                formula = sliding_window_macs(tokens, WINDOW, GLOBAL, HEADS, DIM // HEADS, banded=banded)
                if scope == "layer":
                    formula += tokens * DIM * DIM * 7  # qkv and qkv_global (3 each) and proj
                x = torch.randn(1, *size)
                for fused in (True, False):
                    with fused_attn(fused):
                        ms, ms_min, mem, method = measure(module, x, warmup, iters)
                    rows.append(dict(frames=n_frames, tokens=tokens, scope=scope, kernel="fused" if fused else "reference",
                                     attention="banded" if banded else "dense", time_ms=round(ms, 3),
                                     time_ms_min=round(ms_min, 3),
                                     peak_mem_mb=None if mem is None else round(mem, 2), gmacs=counted / 1e9,
                                     gmacs_formula=formula / 1e9, threads=torch.get_num_threads(), iters=iters,
                                     mem_method=method, torch=torch.__version__, cpu=cpu_name()))
                    print(" ".join(f"{k}={rows[-1][k]}" for k in COLUMNS[:9]), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    ResultsStore(out).write_environment("cpu", {"benchmark": "vtn_window",
                                                "argv": ["benchmarks/vtn_window.py", *sys.argv[1:]]})
    with open(out / "vtn_window.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def read(out: Path) -> List[Dict[str, object]]:
    with open(out / "vtn_window.csv", newline="") as f:
        return [{k: (v if k in ("scope", "kernel", "attention", "mem_method", "torch", "cpu") else float(v) if v else None)
                 for k, v in row.items()} for row in csv.DictReader(f)]


def crossover(rows: List[Dict[str, object]], scope: str, kernel: str, metric: str) -> str:
    """From which frame count of the grid on banded is below dense in `metric` (at that point
    and every longer one): "24 (dense below at 16)"."""
    by = {(r["frames"], r["attention"]): r[metric] for r in rows if r["scope"] == scope and r["kernel"] == kernel}
    frames = sorted({f for f, _ in by})
    if any(by.get((f, "banded")) is None or by.get((f, "dense")) is None for f in frames):
        return "n/a"
    wins = [by[(f, "banded")] < by[(f, "dense")] for f in frames]
    if not wins[-1]:
        return f"none up to {int(frames[-1])}"
    first = len(wins) - next(i for i, w in enumerate(reversed(wins)) if not w) if not all(wins) else 0
    if first == 0:
        return f"{int(frames[0])} or fewer (banded below at every length)"
    return f"{int(frames[first])} (dense below at {int(frames[first - 1])})"


def exact_macs_crossover(max_frames: int = 1024) -> int:
    """The frame count from which the banded count stays below the dense one (kernel calls)."""
    last_dense = 0
    for frames in range(1, max_frames + 1):
        n = frames + GLOBAL
        if sliding_window_macs(n, WINDOW, GLOBAL, HEADS, DIM // HEADS) >= sliding_window_macs(
                n, WINDOW, GLOBAL, HEADS, DIM // HEADS, banded=False):
            last_dense = frames
    return last_dense + 1


def render(out: Path, rows: List[Dict[str, object]]) -> str:
    threads = int(rows[0]["threads"])
    lines = [
        "# VTN temporal attention: banded (Longformer) vs dense-masked, CPU",
        "",
        "Generated by `benchmarks/vtn_window.py` from `vtn_window.csv` in this directory:",
        "",
        f"    python benchmarks/vtn_window.py --out results/vtn_window_cpu --threads {threads} "
        f"--iters {int(rows[0]['iters'])}",
        "    python benchmarks/vtn_window.py --out results/vtn_window_cpu --render-only  # this file from the CSV",
        "",
        f"VTN-B's temporal attention: {DIM} channels, {HEADS} heads, window {WINDOW} ({WINDOW // 2} frames each "
        f"side), the cls token global; tokens = frames + 1. Batch 1, fp32, eval, {threads} thread(s) on "
        f"{rows[0]['cpu']}, torch {rows[0]['torch']}; time: median and minimum of "
        f"{int(rows[0]['iters'])} forwards; memory: peak RSS above the "
        "baseline, in a shared process; GMACs: fvcore's count (equal to `sliding_window_macs`). `core` is the "
        "kernel calls alone on given q, k, v; `layer` is `LongformerSelfAttention` with its projections (qkv, "
        "the cls token's qkv_global, proj: 7 x 768^2 multiply-adds per token). The banded path cuts the frames in "
        f"chunks of {WINDOW // 2} and computes each against the cls token and its own and the two neighbouring "
        f"chunks ({GLOBAL + 3 * (WINDOW // 2)} keys per query); dense computes every query against all N keys "
        "under an (N, N) mask.",
        "",
        "## Crossover: the frame count from which banded is below dense (at every longer length measured)",
        "",
        f"Counted multiply-adds (kernel calls, exact over every length 1..1024): from {exact_macs_crossover()} "
        "frames on (below that the band, padded to whole chunks, holds more pairs than the sequence has).",
        "",
        "| scope | kernel | GMACs (counted) | time (median) | time (minimum) | peak memory |",
        "|---|---|---|---|---|---|",
    ]
    for scope in ("core", "layer"):
        for kernel in ("fused", "reference"):
            lines.append(f"| {scope} | {kernel} | " + " | ".join(crossover(rows, scope, kernel, metric) for metric in
                                                               ("gmacs", "time_ms", "time_ms_min", "peak_mem_mb")) + " |")
    lines += [
        "",
        "Time crosses later than the count: the band's chunks are many small products plus copies of K and V "
        "into overlapping bands, where dense attention is a few large products. On memory the banded path wins "
        "only against the reference kernel, which materialises the (heads, N, N) weights; the fused kernel "
        "does not keep them, and its dense path stays below the band copies (28/9 of K and V, plus padding) at "
        "these lengths. `vtn_base` itself takes up to 286 frames (max_position_embeddings 288); the longer "
        "lengths are the attention alone.",
    ]
    lines += ["", "## Measurements", "", "ms: median (minimum).", "",
              "| frames | scope | kernel | banded ms | dense ms | banded MiB | dense MiB | banded GMACs | dense GMACs |",
              "|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    index = {(r["frames"], r["scope"], r["kernel"], r["attention"]): r for r in rows}
    for frames in sorted({r["frames"] for r in rows}):
        for scope in ("core", "layer"):
            for kernel in ("fused", "reference"):
                b, d = index[(frames, scope, kernel, "banded")], index[(frames, scope, kernel, "dense")]
                lines.append(f"| {int(frames)} | {scope} | {kernel} | {_ms(b)} | {_ms(d)} | "
                             f"{_mib(b['peak_mem_mb'])} | {_mib(d['peak_mem_mb'])} | {b['gmacs']:.4f} | {d['gmacs']:.4f} |")
    text = "\n".join(lines) + "\n"
    (out / "README.md").write_text(text)
    return text


def _ms(row: Dict[str, object]) -> str:
    return f"{row['time_ms']:.2f} ({row['time_ms_min']:.2f})"


def _mib(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results/vtn_window_cpu")
    p.add_argument("--frames", type=int, nargs="+", default=list(FRAMES))
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (1: steadiest on a shared CPU)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=7)
    p.add_argument("--render-only", action="store_true", help="rewrite README.md from the CSV, measure nothing")
    args = p.parse_args()
    out = Path(args.out)
    if args.render_only:
        rows = read(out)
    else:
        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        rows = run(out, args.frames, args.warmup, args.iters)
    print(render(out, rows))


if __name__ == "__main__":
    main()
