"""vidbench extract-frames: a dataset's videos as JPEG frame folders (mmaction2 rawframes)."""
from __future__ import annotations

import argparse

from ._args import positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extract-frames",
                       help="write a dataset's videos as JPEG frame folders + rawframes lists (mmaction2 layout)")
    p.add_argument("--data", required=True, help="dataset directory (dataset.json, or <split>.csv/.txt/folders); "
                                                 "each video's frame folder keeps its path under it (whitespace -> '_')")
    p.add_argument("--out", required=True, help="output dataset directory (frame folders, <split>_rawframes.txt, "
                                                "classes.txt, dataset.json); `--data <out>` then reads it")
    p.add_argument("--split", action="append", default=None,
                   help="split to extract (repeatable; default: every split of the dataset)")
    p.add_argument("--quality", type=positive_int, default=95, help="JPEG quality 1..100 [95]")
    p.add_argument("--workers", type=int, default=0, help="worker processes (0: in this process) [0]")
    p.add_argument("--backend", choices=("decord", "torchcodec", "pyav"), default=None,
                   help="video decoder [decord where installed, else torchcodec where FFmpeg loads, else pyav]")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from ..data.rawframes import extract_frames
    from ..data.spec import DataSpec
    from ..errors import ConfigError

    if args.workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {args.workers}")
    tic = time.perf_counter()
    result = extract_frames(DataSpec.load(args.data), args.out, args.split, args.quality, args.workers, args.backend,
                            progress=args.progress)
    for problem in result.problems:
        print(f"skipped: {problem}")
    for note in result.fallbacks:
        print(f"decoded with PyAV after the first decoder failed: {note}")
    counts = ", ".join(f"{split} {n} frames" for split, n in result.totals.items())
    print(f"wrote {result.out} in {time.perf_counter() - tic:.1f}s ({counts}; {len(result.problems)} skipped; "
          f"{len(result.fallbacks)} decoded by PyAV after the first decoder failed)")
    return 0
