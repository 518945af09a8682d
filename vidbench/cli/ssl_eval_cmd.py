"""vidbench ssl-eval --init FILE|random --data DIR --out DIR: kNN and linear-probe top-1 of a
frozen image backbone (a saved .safetensors, or a random-init one as the baseline)."""
from __future__ import annotations

import argparse
import sys

from .pretrain_cmd import add_backbone_args, backbone_overrides


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ssl-eval", help="kNN / linear-probe evaluation of an image backbone (or random init)")
    p.add_argument("--init", required=True, help="a backbone .safetensors file, or 'random'")
    add_backbone_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..options import check_device
    from ..ssl.run import evaluate_init, open_frames

    check_device(args.device, "--device", auto=False)  # before any data is opened
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        overrides = backbone_overrides(args)
        if args.init != "random":
            from ..checkpoint import read_backbone_meta

            size = read_backbone_meta(args.init)["config"]["img_size"]
            size = size[0] if isinstance(size, list) else size
        else:
            size = overrides.get("img_size") or 224
        data = open_frames(args.data, size, frames_per_clip=args.frames)
        row = evaluate_init(args.init, data, args.out, args.backbone, overrides, args.seed, args.knn_k, args.device)
    except (ValueError, TypeError, KeyError, FileNotFoundError) as err:
        print(f"vidbench ssl-eval: error: {err}", file=sys.stderr)
        return 2
    print(", ".join(f"{k}={row[k]}" for k in ("method", "epochs", "knn_top1", "linear_top1", "eval_feat_rank")))
    return 0
