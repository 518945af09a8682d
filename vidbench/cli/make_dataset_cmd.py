"""vidbench make-dataset: the generated action dataset (static vs temporal classes, H.264 MP4s)."""
from __future__ import annotations

import argparse

from ._args import positive_int
from ._options import add_deprecated_flag


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("make-dataset", help="generate the synthetic action dataset (H.264 MP4s + splits)")
    p.add_argument("--out", default="data/synthetic", help="output directory (default: data/synthetic)")
    p.add_argument("--classes", default=None,
                   help="comma-separated class names (default: all 14; see --list-classes)")
    p.add_argument("--videos-per-class", type=positive_int, default=60)
    p.add_argument("--frames", type=positive_int, default=17, help="frames per video (odd keeps test clips symmetric)")
    p.add_argument("--img-size", type=positive_int, default=32,
                   help="frame side in pixels, even [32] (deprecated alias: --size)")
    add_deprecated_flag(p, "--size", dest="img_size", new="--img-size", type=positive_int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=positive_int, default=8)
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--test-fraction", type=float, default=0.15)
    p.add_argument("--list-classes", action="store_true", help="print the classes and their groups, then exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from ..data.synthetic import CLASSES, make_dataset

    if args.list_classes:
        for c in CLASSES.values():
            print(f"{c.name:16s} {c.group}" + (" (reverse)" if c.reverse else "") + (" (no flip)" if c.mirror_sensitive else ""))
        return 0
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    tic = time.perf_counter()
    out = make_dataset(args.out, classes, args.videos_per_class, args.frames, args.img_size, args.seed, args.fps,
                       args.val_fraction, args.test_fraction, progress=True)
    print(f"wrote {out} in {time.perf_counter() - tic:.1f}s (dataset.json, classes.txt, train/val/test.csv)")
    return 0
