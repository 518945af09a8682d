"""vidbench run --suite quick|paper|FILE.toml [--out DIR] [--resume]: every stage of a suite
(dataset, bench, train, ssl, init, report) into one results directory."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import List, Optional

from ..options import PROGRESS, option
from ._options import add_options, config_from_args


@dataclass
class RunJob:
    """`vidbench run`: a suite's stages, with the [published] section's paths overridable."""

    suite: str = option("quick", help="built-in suite name or path to a .toml suite file")
    out: Optional[str] = option(None, help="results directory [results/<suite name>]")
    resume: bool = option(False, help="continue a stopped run: finished stages are skipped")
    only: Optional[List[str]] = option(None, metavar="ONLY", help="comma-separated stage names to run (see "
                                                                   "--list-stages)")
    list_stages: bool = option(False, help="print the suite's stages and exit")
    weights_dir: Optional[str] = option(None, help="[published] weights_dir: a directory of checkpoints (any "
                                                   "supported format)")
    data: Optional[str] = option(None, help="[published] data: the dataset tree the checkpoints are evaluated on")
    progress: bool = PROGRESS(help="progress bars")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a suite (quick: tiny models on the CPU in ~10 min; paper: paper-size configs)",
                       description="Suites are TOML files: vidbench/suites/*.toml are built in; pass a path for your own.")
    add_options(p, RunJob)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..suite import load_suite, plan, run_suite

    job = config_from_args(RunJob, args)
    suite = load_suite(job.suite)
    if job.weights_dir or job.data:
        if suite.published is None:
            raise ConfigError(f"--weights-dir / --data apply to a suite with a [published] section; {suite.name} has "
                              "none (try --suite published)")
        suite.published.weights_dir = job.weights_dir or suite.published.weights_dir
        suite.published.data = job.data or suite.published.data
    out = job.out or f"results/{suite.name}"
    if job.list_stages:
        for stage in plan(suite, out):
            print(stage.name)
        return 0
    rows = run_suite(suite, out, resume=job.resume, progress=job.progress, only=job.only or None)
    return 1 if (not rows.empty and (rows["status"] == "error").any()) else 0
