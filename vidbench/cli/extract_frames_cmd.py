"""vidbench extract-frames: a dataset's videos as JPEG frame folders (mmaction2 rawframes)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import List, Optional

from ..options import DECODER, PROGRESS, WORKERS, option
from ._options import add_options, config_from_args


@dataclass
class ExtractFramesJob:
    """`vidbench extract-frames`: a video dataset in, a rawframes dataset out."""

    data: str = option("", required=True, help="dataset directory (dataset.json, or <split>.csv/.txt/folders); each "
                                               "video's frame folder keeps its path under it (whitespace -> '_')")
    out: str = option("", required=True, help="output dataset directory (frame folders, <split>_rawframes.txt, "
                                              "classes.txt, dataset.json); `--data <out>` then reads it")
    split: Optional[List[str]] = option(None, repeat=True, help="split to extract (repeatable; default: every split "
                                                                "of the dataset)")
    quality: int = option(95, positive=True, help="JPEG quality 1..100")
    num_workers: int = WORKERS(0, help="worker processes (0: in this process)")
    backend: Optional[str] = DECODER()
    progress: bool = PROGRESS(help="progress bar")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extract-frames",
                       help="write a dataset's videos as JPEG frame folders + rawframes lists (mmaction2 layout)")
    add_options(p, ExtractFramesJob)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from ..data.rawframes import extract_frames
    from ..data.spec import DataSpec

    job = config_from_args(ExtractFramesJob, args)
    tic = time.perf_counter()
    result = extract_frames(DataSpec.load(job.data), job.out, job.split, job.quality, job.num_workers, job.backend,
                            progress=job.progress)
    for problem in result.problems:
        print(f"skipped: {problem}")
    for note in result.fallbacks:
        print(f"decoded with PyAV after the first decoder failed: {note}")
    counts = ", ".join(f"{split} {n} frames" for split, n in result.totals.items())
    print(f"wrote {result.out} in {time.perf_counter() - tic:.1f}s ({counts}; {len(result.problems)} skipped; "
          f"{len(result.fallbacks)} decoded by PyAV after the first decoder failed)")
    return 0
