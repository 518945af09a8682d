"""vidbench eval: multi-view accuracy of a trained checkpoint; appends to accuracy.csv."""
from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="multi-view top-1/top-5/per-group accuracy of a checkpoint")
    p.add_argument("--checkpoint", required=True, help="e.g. results/m2/checkpoint.safetensors")
    p.add_argument("--data", default=None, help="dataset directory (default: the one it was trained on)")
    p.add_argument("--views", default="4x3", help="temporal clips x spatial crops (1 or 3), e.g. 4x3")
    p.add_argument("--split", default="test")
    p.add_argument("--out", default=None, help="results directory (default: the checkpoint's)")
    p.add_argument("--batch-size", type=int, default=8, help="videos per batch (each with all its views)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--backend", choices=["decord", "pyav"], default=None)
    p.add_argument("--bad-items", choices=["skip", "raise"], default="skip")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train import evaluate_checkpoint

    row = evaluate_checkpoint(args.checkpoint, args.data, args.views, args.split, args.out, args.batch_size,
                              args.workers, args.backend, args.bad_items, args.amp, args.device,
                              not args.no_progress)
    print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}))
    return 0
