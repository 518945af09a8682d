"""The `vidbench` command. Each subcommand lives in its own module of this package with
`add_parser(subparsers)`; COMMANDS lists them in help order. Nothing outside the CLI imports it."""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from .. import __version__

COMMANDS = ["list", "flops", "bench", "make-dataset", "train", "eval", "pretrain", "ssl-eval", "report", "run", "convert"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidbench", description="Benchmark suite for video transformers.")
    parser.add_argument("--version", action="version", version=f"vidbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".{name.replace('-', '_')}_cmd", __name__).add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
