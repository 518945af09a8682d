"""vidbench report RESULTS_DIR [RESULTS_DIR ...] [--out DIR];
vidbench report --format readme [RESULTS_ROOT] [--section NAME ...]."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from ..options import option
from ._options import add_options, config_from_args


@dataclass
class ReportJob:
    """`vidbench report`: a report of results directories, or the README's tables."""

    results_dirs: List[str] = option(default_factory=list, positional="*",
                                     help="results directories (bench.csv, accuracy.csv, ssl.csv, environment.json); "
                                          "with --format readme, at most one: the results root holding the committed "
                                          "runs (default: results)")
    out: Optional[str] = option(None, help="where to write the report (default: the first results directory)")
    format: str = option("md", choices=("md", "readme"),
                         help="md: report.md + report.html; readme: print the Markdown tables README.md and the "
                              "results directories' READMEs quote, generated from their CSVs")
    section: Optional[List[str]] = option(None, repeat=True, help="with --format readme: only this table "
                                                                  "(repeatable); default every one")
    write: bool = option(False, help="with --format readme: write each table into the files that quote it "
                                     "(README.md, docs/, results READMEs; run from the repository root) instead "
                                     "of printing")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write report.md and report.html comparing one or more results directories, "
                                      "or print the README's tables from the committed results (--format readme)")
    add_options(p, ReportJob)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError

    args = config_from_args(ReportJob, args)
    if args.format == "readme":
        from ..report.readme import render, update

        if len(args.results_dirs) > 1 or args.out:
            raise ConfigError("--format readme takes one results root (default: results) and no --out")
        root = args.results_dirs[0] if args.results_dirs else "results"
        if not args.write:
            print(render(root, args.section))
            return 0
        if not Path("README.md").is_file():
            raise ConfigError("--write rewrites the files that quote the tables: run it from the repository root "
                              f"(no README.md in {Path.cwd()})")
        written = update(root, args.section)
        print("\n".join(f"wrote {path}" for path in written) or "every quoted table is already up to date")
        return 0
    if args.section or args.write:
        raise ConfigError("--section and --write go with --format readme")
    if not args.results_dirs:
        raise ConfigError("give at least one results directory")
    from ..report import write_report

    md, html = write_report(args.results_dirs, args.out)
    print(f"wrote {md}\nwrote {html}")
    return 0
