"""vidbench bench: run a measurement grid and write results/<name>/bench.csv row by row."""
from __future__ import annotations

import argparse
import datetime as _dt
import sys
from typing import Any, Dict, List, Optional

from ._args import comma_list, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure throughput, step time, peak memory and MFU over a grid",
                       description="Every combination of the comma-separated lists becomes one row of "
                                   "<out>/bench.csv, written as soon as it is measured.")
    p.add_argument("--models", type=comma_list(str), default=None,
                   help="names or patterns, e.g. 'vivit_*_tiny,vit_tiny' (with --weights: the checkpoint's model)")
    p.add_argument("--weights", default=None, help="measure the model a checkpoint holds, at its own config, with "
                                                   "its weights loaded (any supported format)")
    p.add_argument("--weights-format", default=None, help="force a weights format instead of detecting it")
    p.add_argument("--frames", type=comma_list(positive_int), default=[None], help="num_frames values (default: each model's)")
    p.add_argument("--img-size", type=comma_list(positive_int), default=[None], help="img_size values (default: each model's)")
    p.add_argument("--batch-size", type=comma_list(positive_int), default=[1], help="batch sizes (default 1)")
    p.add_argument("--precision", type=comma_list(str), default=["fp32"], help="fp32,bf16,fp16 (autocast; default fp32)")
    p.add_argument("--mode", type=comma_list(str), default=["infer", "train"], help="infer,train (default both)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (compiled during warm-up)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before timing (default 3)")
    p.add_argument("--iters", type=positive_int, default=10, help="timed steps (default 10)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", default=None, help="results directory (default results/bench-<UTC time>)")
    p.add_argument("--resume", action="store_true", help="continue --out, skipping rows already written")
    iso = p.add_mutually_exclusive_group()
    iso.add_argument("--isolate", dest="isolate", action="store_true", default=None,
                     help="each configuration in a fresh process (default on CPU)")
    iso.add_argument("--no-isolate", dest="isolate", action="store_false", help="all in this process (default on CUDA)")
    p.add_argument("--retry-oom", type=int, default=0, help="after an OOM retry at half the batch, up to N times")
    p.add_argument("--timeout", type=float, default=None, help="seconds per isolated configuration")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None or value != value else format(value, spec)  # NaN != NaN


def summary(rows: List[Dict[str, Any]]) -> str:
    """A short text table of a run's rows (the CSV holds everything)."""
    header = ("model", "T", "img", "batch", "prec", "mode", "GMACs", "clips/s", "step ms", "iqr ms", "peak MiB", "MFU %", "status")
    table = [header]
    for r in rows:
        table.append((r["model"], _fmt(r["frames"], "d") if r["frames"] is not None else "-", str(r["img_size"]),
                      str(r["batch_size"]), r["precision"], r["mode"], _fmt(r["gmacs"], ".3f"),
                      _fmt(r["clips_per_s"], ".2f"), _fmt(r["step_ms_median"], ".1f"), _fmt(r["step_ms_iqr"], ".1f"),
                      _fmt(r["peak_mem_mb"], ".0f"), _fmt(r["mfu_pct"], ".1f"),
                      r["status"] if r["status"] == "ok" else f"{r['status']}: {str(r['error'])[:60]}"))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in table)


def run(args: argparse.Namespace) -> int:
    from ..bench import SweepConfig, run_sweep

    out: Optional[str] = args.out
    if out is None:
        if args.resume:
            print("vidbench bench: --resume needs --out", file=sys.stderr)
            return 2
        out = f"results/bench-{_dt.datetime.now(_dt.timezone.utc).strftime('%Y%m%d-%H%M%S')}"
    try:
        models, model_kwargs = args.models, {}
        if args.weights:
            from ..weights import inspect_weights

            if models and len(models) > 1:
                raise ValueError("--weights measures one model: give at most one --models name")
            _, _, name, model_kwargs = inspect_weights(args.weights, models[0] if models else None,
                                                       args.weights_format)
            models = [name]
        elif not models:
            raise ValueError("give --models (or --weights)")
        cfg = SweepConfig(models=models, weights=args.weights, weights_format=args.weights_format,
                          model_kwargs=model_kwargs, frames=args.frames, img_sizes=args.img_size,
                          batch_sizes=args.batch_size, precisions=args.precision, modes=args.mode,
                          device=args.device, compile=args.compile, warmup=args.warmup, iters=args.iters,
                          isolate=args.isolate, retry_oom=args.retry_oom, timeout_s=args.timeout, threads=args.threads)
        rows = run_sweep(cfg, out, resume=args.resume, progress=not args.no_progress)
    except (KeyError, ValueError, FileExistsError) as exc:
        print(f"vidbench bench: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    print(summary(rows))
    print(f"\nGMACs: multiply-adds per clip (1 MAC = 1 FLOP, papers' convention); MFU: achieved FLOP/s "
          f"(2 x GMACs x clips/s, x3 for train) / matmul peak measured in this run. {len(rows)} rows -> {out}/bench.csv")
    return 0
