"""Running vidbench commands from the scripts in benchmarks/: each in a fresh process of this
checkout (not whatever vidbench is installed), printed before it runs, with the torch thread
count fixed through OMP_NUM_THREADS (torch reads it at start-up; `vidbench train` has no
--threads)."""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]


def vidbench(args: Sequence[str], threads: int) -> None:
    """`python -m vidbench ARGS` with this checkout first on the path; a failure stops the script."""
    print("$ vidbench " + shlex.join(args), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-m", "vidbench", *args], check=True, env=env)


def dataset_parser(doc: str, out: str) -> argparse.ArgumentParser:
    """The options every such script takes: where its results go and which video dataset it reads
    (generated with `make-dataset` there when absent, at --videos-per-class for a quick check)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0], epilog=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=out, help="results directory")
    p.add_argument("--data", default="data/synthetic", help="the video dataset (generated there when absent)")
    p.add_argument("--videos-per-class", type=int, default=None, help="make-dataset option (default: its own, 60)")
    return p


def ensure_dataset(data: Path, videos_per_class: Optional[int]) -> None:
    if not (data / "dataset.json").exists():
        extra = ["--videos-per-class", str(videos_per_class)] if videos_per_class else []
        vidbench(["make-dataset", "--out", str(data), *extra], 1)
