"""vidbench run --suite quick|paper|FILE.toml [--out DIR] [--resume]: every stage of a suite
(dataset, bench, train, ssl, init, report) into one results directory."""
from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a suite (quick: tiny models on the CPU in ~10 min; paper: paper-size configs)",
                       description="Suites are TOML files: vidbench/suites/*.toml are built in; pass a path for your own.")
    p.add_argument("--suite", default="quick", help="built-in suite name or path to a .toml suite file [quick]")
    p.add_argument("--out", help="results directory [results/<suite name>]")
    p.add_argument("--resume", action="store_true", help="continue a stopped run: finished stages are skipped")
    p.add_argument("--only", help="comma-separated stage names to run (see --list-stages)")
    p.add_argument("--list-stages", action="store_true", help="print the suite's stages and exit")
    p.add_argument("--weights-dir", help="[published] weights_dir: a directory of checkpoints (any supported format)")
    p.add_argument("--data", help="[published] data: the dataset tree the checkpoints are evaluated on")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..suite import load_suite, plan, run_suite

    try:
        suite = load_suite(args.suite)
    except (FileNotFoundError, ValueError) as err:
        print(f"vidbench run: error: {err}", file=sys.stderr)
        return 2
    if args.weights_dir or args.data:
        if suite.published is None:
            print(f"vidbench run: error: --weights-dir / --data apply to a suite with a [published] section; "
                  f"{suite.name} has none (try --suite published)", file=sys.stderr)
            return 2
        suite.published.weights_dir = args.weights_dir or suite.published.weights_dir
        suite.published.data = args.data or suite.published.data
    out = args.out or f"results/{suite.name}"
    if args.list_stages:
        for stage in plan(suite, out):
            print(stage.name)
        return 0
    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    try:
        rows = run_suite(suite, out, resume=args.resume, progress=not args.no_progress, only=only)
    except (FileExistsError, ValueError) as err:
        print(f"vidbench run: error: {err}", file=sys.stderr)
        return 2
    return 1 if (not rows.empty and (rows["status"] == "error").any()) else 0
