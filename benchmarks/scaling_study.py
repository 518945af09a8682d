"""Scaling study: cost against frames and resolution at paper width for each attention pattern.

For every model and every (frames, size) point: tokens per clip (the patch / tubelet grid the
first layer sees), params, GMACs (fvcore on the meta device), activation memory of a training step
(`vidbench.bench.activation_memory`, meta device, fused and reference attention paths), and,
where one forward is estimated to take at most --max-forward-s on this device, the measured
inference time per clip and peak memory (`vidbench.bench.measure`, batch 1, fp32; on CPU in a
fresh worker process per point, so the peak RSS is that point's). The estimate is the point's
GMACs over the GMAC/s measured at the nearest smaller point of the same model (the device's
matmul peak before any). Points not measured are rows with status "skipped: ..."; a model that
cannot take a clip size (MViT needs sizes that are multiples of 32, Hiera-B's mask units 7 x 8
tokens or more: 224, 448, not 112) is a row "unsupported". A model whose patch is not 16 px
(VideoPrism: 18) is counted at the size with the same patch grid (--sizes 112,224,448 -> 126,
252, 504: 7, 14, 28 patches a side), its own size in the rows.

The attention patterns (column `attention`): joint (VideoMAE; V-JEPA 2 with 3-D rotary positions
on q and k), divided / factorised (TimeSformer, ViViT; VideoPrism space then time, its logits
soft-capped), pooling (MViT), shifted window (Swin), mask unit (Hiera: local attention within
mask units in its first stages, global after).

    python benchmarks/scaling_study.py --out results/scaling_cpu --max-forward-s 20 --threads 2
    python benchmarks/scaling_study.py --out results/scaling_cpu --max-forward-s 20 --threads 2 --resume

On a GPU (every point measured; the same rows, in their own directory):

    python benchmarks/scaling_study.py --device cuda --out results/scaling_cuda --max-forward-s 600 \\
        --warmup 3 --iters 10

Rows go to <out>/scaling.csv as each point finishes, environment.json beside; `--resume` skips
the points already written. `vidbench report <out>` turns them into the "Scaling study" section.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from vidbench.bench import SweepConfig, count_flops, matmul_peak_flops, measure
from vidbench.bench.activation_memory import count_activations
from vidbench.bench.grid import BenchPoint, resolve_models
from vidbench.bench.point import error_text, measure_in_process, measure_isolated
from vidbench.models import create_model, model_entry
from vidbench.results import ResultsStore, key_str, run_lock

TABLE = "scaling"
MODELS = ("swin3d_t", "videomae_base", "vivit_m1_base", "timesformer_base", "mvit_b_16x4", "hiera_base_16x224",
          "videoprism_base", "vjepa2_vitl")
KEY_COLUMNS = ("model", "frames", "img_size", "device")
COLUMNS = (
    "model", "attention", "frames", "img_size", "device", "tokens", "params", "gmacs", "act_bytes", "act_attention",
    "act_ref_bytes", "est_forward_s", "step_ms_median", "step_ms_iqr", "clips_per_s", "peak_mem_mb", "mem_method",
    "mfu_pct", "matmul_peak_tflops", "threads", "warmup", "iters", "isolated", "load_avg_1m", "status", "error",
    "timestamp",
)
# the attention pattern of a family whose config does not name one
FAMILY_PATTERN = {"swin": "shifted window", "mvit": "pooling", "videomae": "joint", "hiera": "mask unit",
                  "videoprism": "factorised, soft-capped", "vjepa2": "joint, 3-D RoPE"}
NOMINAL_PATCH = 16  # --sizes are in 16 px patches; a family below with another patch keeps the grid
PATCH_GRID_FAMILIES = ("videoprism",)


def attention_pattern(name: str) -> str:
    """joint, divided, pooling, shifted window, ...: from the family, or the config's attention_type."""
    family = model_entry(name).family
    if family in FAMILY_PATTERN:
        return FAMILY_PATTERN[family]
    with torch.device("meta"):
        config = create_model(name).config
    return str(getattr(config, "attention_type", family)).replace("_", " ")


def model_size(name: str, size: int) -> int:
    """The clip side `name` is counted at for the nominal `size`: the same, except for a family of
    PATCH_GRID_FAMILIES whose patch does not divide it, where it is the size with the same patch
    grid (size / 16 patches of the model's own patch)."""
    if model_entry(name).family not in PATCH_GRID_FAMILIES:
        return size
    with torch.device("meta"):
        patch = int(create_model(name).config.patch_size)
    if size % patch == 0 or size % NOMINAL_PATCH:
        return size
    return size // NOMINAL_PATCH * patch


def count_point(name: str, frames: int, size: int) -> Dict[str, Any]:
    """Everything counted on the meta device for one point (no compute, no memory); a model that
    cannot take the clip is an "unsupported" row."""
    try:
        with torch.device("meta"):
            model = create_model(name, num_frames=frames, img_size=size)
    except ValueError as exc:  # the config's own checks (ModelConfigError): this clip does not fit the model
        return {"status": "unsupported", "error": error_text(exc)}
    flops = count_flops(model)
    fused = count_activations(model, attention="fused")
    reference = count_activations(model, attention="reference")
    backends = ", ".join(f"{b} x{n}" for b, n in sorted(fused.sdpa_backends.items()))
    attention = f"fused ({backends})"
    if getattr(model.config, "softcap", None):  # flex cannot run on meta: those calls count as the reference's
        attention = (f"{attention}; " if backends else "") + ("soft-capped calls: reference path (as a CPU "
                                                              "training step runs them; flex on CUDA saves less)")
    return dict(tokens=int(model.patch_embed.num_patches),
                params=flops.params, gmacs=flops.gmacs, act_bytes=fused.bytes, act_attention=attention,
                act_ref_bytes=reference.bytes)


def estimate_s(gmacs: float, rates: List[Tuple[float, float]], prior: float) -> float:
    """Seconds per forward: GMACs over the GMAC/s measured at the nearest smaller point (or the
    smallest measured one; `prior` before any)."""
    below = [r for g, r in sorted(rates) if g <= gmacs]
    rate = below[-1] if below else (min(rates)[1] if rates else prior)
    return gmacs / rate


def measure_point(name: str, frames: int, size: int, gmacs: float, peak: Optional[float], args: argparse.Namespace,
                  est: float) -> Dict[str, Any]:
    """One inference measurement through the sweep's runner (a fresh worker process when isolated)."""
    cfg = SweepConfig(models=[name], device=args.device, warmup=args.warmup, iters=args.iters, isolate=args.isolate,
                      threads=args.threads, timeout_s=max(300.0, 10 * est * (args.warmup + args.iters)))
    point = BenchPoint(model=name, arch=name, frames=frames, img_size=size, batch_size=1, precision="fp32",
                       mode="infer", device=args.device)
    if cfg.isolated:
        return {"isolated": True, **measure_isolated(point, cfg, gmacs, peak)}
    return {"isolated": False, **measure_in_process(point, cfg, gmacs, peak, measure)}


def points(args: argparse.Namespace) -> List[Tuple[str, int, int]]:
    out: List[Tuple[str, int, int]] = []
    for m in resolve_models(args.models):
        sizes = list(dict.fromkeys(model_size(m, s) for s in args.sizes))
        out += [(m, f, s) for s in sizes for f in args.frames]
    return out


def run(args: argparse.Namespace) -> List[Dict[str, Any]]:
    store = ResultsStore(args.out)
    existing = store.read(TABLE)
    if not existing.empty and not args.resume:
        raise SystemExit(f"{store.path(TABLE)} already has {len(existing)} rows: pass --resume to continue it, "
                         "or choose another --out")
    done = set() if existing.empty else {tuple(key_str(r[k]) for k in KEY_COLUMNS) for r in existing.to_dict("records")}
    rates: Dict[str, List[Tuple[float, float]]] = {}  # model -> (GMACs, GMAC/s) of its measured points
    for r in ([] if existing.empty else existing.to_dict("records")):
        if r.get("status") == "ok" and r.get("step_ms_median", 0) > 0:
            rates.setdefault(r["model"], []).append((float(r["gmacs"]), float(r["gmacs"]) / (r["step_ms_median"] / 1e3)))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    peak = None
    if args.measure:
        try:
            peak = matmul_peak_flops(device, "fp32")
        except Exception:  # the rows still get times; MFU stays blank
            peak = None
    prior = (peak / 2e9) if peak else 50.0  # GMAC/s before any point of a model is measured
    env = {"benchmark": "scaling_study", "argv": [Path(sys.argv[0]).name, *sys.argv[1:]],
           "config": {k: v for k, v in vars(args).items() if k != "out"},
           "matmul_peak_tflops": None if peak is None else peak / 1e12}
    env_path = Path(args.out) / "environment.json"
    if args.resume and env_path.exists():  # keep what the earlier run(s) recorded
        earlier = json.loads(env_path.read_text())
        env["earlier_runs"] = earlier.pop("earlier_runs", []) + [earlier]
    store.write_environment(args.device, env)

    written: List[Dict[str, Any]] = []
    todo = [p for p in points(args) if (p[0], str(p[1]), str(p[2]), args.device) not in done]
    by_model: Dict[str, List[Tuple[int, int]]] = {}
    for name, frames, size in todo:
        by_model.setdefault(name, []).append((frames, size))
    for name, grid in by_model.items():
        pattern, counted = attention_pattern(name), []
        for frames, size in grid:
            try:
                counted.append((frames, size, count_point(name, frames, size)))
            except Exception as exc:  # a failed count is a row, not the end of the study
                counted.append((frames, size, {"status": "error", "error": "counting failed: " + error_text(exc)}))
        counted.sort(key=lambda c: c[2].get("gmacs", 0.0))  # smallest first: each measured rate informs the next
        for frames, size, row in counted:
            row = {"model": name, "attention": pattern, "frames": frames, "img_size": size, "device": args.device,
                   **row}
            if "status" not in row:
                row.update(_measure_or_skip(name, frames, size, row, rates.setdefault(name, []), prior, peak, args))
            row["timestamp"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            store.append(TABLE, {c: row.get(c) for c in COLUMNS})
            written.append(row)
            _print_row(row)
    return written


def _measure_or_skip(name: str, frames: int, size: int, row: Dict[str, Any], rates: List[Tuple[float, float]],
                     prior: float, peak: Optional[float], args: argparse.Namespace) -> Dict[str, Any]:
    est = estimate_s(row["gmacs"], rates, prior)
    out: Dict[str, Any] = {"est_forward_s": est}
    if not args.measure:
        return {**out, "status": "skipped: not measured (--no-measure)"}
    if est > args.max_forward_s:
        return {**out, "status": f"skipped: estimated {est:.0f} s per forward > max {args.max_forward_s:g} s"}
    out["load_avg_1m"] = os.getloadavg()[0]  # on a shared machine, what else was running
    result = measure_point(name, frames, size, row["gmacs"], peak, args, est)
    out.update({k: v for k, v in result.items() if k in COLUMNS and k not in KEY_COLUMNS and k not in row})
    if out.get("status") == "ok" and out.get("step_ms_median"):
        rates.append((row["gmacs"], row["gmacs"] / (out["step_ms_median"] / 1e3)))
    return out


def _print_row(row: Dict[str, Any]) -> None:
    head = f"{row['model']:18s} {row['frames']:3d}x{row['img_size']:<4d}"
    if row.get("tokens") is None:
        print(f"{head} {row['status']}: {row.get('error', '')}", flush=True)
        return
    text = (f"{head} {row['tokens']:7d} tokens {row['gmacs']:9.1f} GMACs  act {row['act_bytes'] / 2**20:9.0f} MiB"
            f" (reference {row['act_ref_bytes'] / 2**20:.0f})")
    if row["status"] == "ok":
        text += f"  {row['step_ms_median']:9.0f} ms/clip  peak {row['peak_mem_mb']:.0f} MiB"
    else:
        text += f"  {row['status']} {row.get('error') or ''}"
    print(text, flush=True)


def _ints(text: str) -> List[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated registry names or patterns")
    parser.add_argument("--frames", type=_ints, default=[8, 16, 32, 64], help="comma-separated frame counts")
    parser.add_argument("--sizes", type=_ints, default=[112, 224, 448], help="comma-separated image sizes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="results directory (default: results/scaling_<device>)")
    parser.add_argument("--resume", action="store_true", help="continue a run: skip the points already written")
    parser.add_argument("--measure", action=argparse.BooleanOptionalAction, default=True,
                        help="measure time and peak memory where the estimate allows (--no-measure: count only)")
    parser.add_argument("--max-forward-s", type=float, default=60.0,
                        help="measure a point only if one forward is estimated to take at most this many seconds")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                        help="a fresh worker process per point (default: on CPU, not on CUDA)")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.out = args.out or f"results/scaling_{args.device.split(':')[0]}"
    if min(args.frames + args.sizes) < 1 or args.iters < 1 or args.warmup < 0:
        parser.error("frames and sizes must be >= 1, iters >= 1, warmup >= 0")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    with run_lock(args.out, "benchmarks/scaling_study.py"):
        rows = run(args)
    measured = sum(r.get("status") == "ok" for r in rows)
    print(f"{len(rows)} points written to {Path(args.out) / (TABLE + '.csv')} ({measured} measured) "
          f"in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
