"""vidbench eval: multi-view accuracy of a trained checkpoint or of published weights; appends to
accuracy.csv."""
from __future__ import annotations

import argparse
import json
import sys

from ._args import positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="multi-view top-1/top-5/per-group accuracy of a checkpoint or published weights",
                       description="--checkpoint: a model trained by vidbench train (its clip settings). --weights: a "
                                   "checkpoint in any supported format (vidbench convert --help lists them), "
                                   "evaluated with its own preprocessing and views unless overridden.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="e.g. results/m2/checkpoint.safetensors")
    src.add_argument("--weights", help="published weights: a file or a Hugging Face directory")
    p.add_argument("--model", default=None, help="registry name for --weights formats without a config")
    p.add_argument("--weights-format", default=None, help="force a weights format instead of detecting it")
    p.add_argument("--data", default=None, help="dataset directory (default for --checkpoint: the one it was trained on)")
    p.add_argument("--views", default=None, help="temporal clips x spatial crops (1 or 3), e.g. 4x3 "
                                                 "(default: the weights' published views, else 4x3)")
    p.add_argument("--split", default=None, help="default: test, else val (said when so)")
    p.add_argument("--frames", type=positive_int, default=None, help="--weights: clip frames (time embeddings resized)")
    p.add_argument("--stride", type=positive_int, default=None, help="--weights: frame stride (default: the weights')")
    p.add_argument("--img-size", type=positive_int, default=None, help="--weights: crop size (position embeddings resized)")
    p.add_argument("--out", default=None, help="results directory (default: the checkpoint's; results/pretrained "
                                               "for --weights)")
    p.add_argument("--batch-size", type=positive_int, default=8, help="videos per batch (each with all its views)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--backend", choices=["decord", "pyav"], default=None)
    p.add_argument("--bad-items", choices=["skip", "raise"], default="skip")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train import evaluate_checkpoint, evaluate_weights
    from ..weights import WeightsError

    try:
        if args.weights:
            if not args.data:
                print("vidbench eval: --weights needs --data", file=sys.stderr)
                return 2
            row = evaluate_weights(args.weights, args.data, model=args.model, weights_format=args.weights_format,
                                   views=args.views, split=args.split, out=args.out, num_frames=args.frames,
                                   stride=args.stride, img_size=args.img_size, batch_size=args.batch_size,
                                   num_workers=args.workers, backend=args.backend, bad_items=args.bad_items,
                                   amp=args.amp, device=args.device, progress=not args.no_progress)
        else:
            row = evaluate_checkpoint(args.checkpoint, args.data, args.views or "4x3", args.split, args.out,
                                      args.batch_size, args.workers, args.backend, args.bad_items, args.amp,
                                      args.device, not args.no_progress)
    except (WeightsError, FileNotFoundError, KeyError) as exc:
        print(f"vidbench eval: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"vidbench eval: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}))
    return 0
