"""vidbench report RESULTS_DIR [RESULTS_DIR ...] [--out DIR]."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write report.md and report.html comparing one or more results directories")
    p.add_argument("results_dirs", nargs="+", help="results directories (bench.csv, accuracy.csv, ssl.csv, environment.json)")
    p.add_argument("--out", default=None, help="where to write the report (default: the first results directory)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report import write_report

    md, html = write_report(args.results_dirs, args.out)
    print(f"wrote {md}\nwrote {html}")
    return 0
