"""The `vidbench` command. Each subcommand lives in its own module of this package with
`add_parser(subparsers)`; COMMANDS lists them in help order. Nothing outside the CLI imports it."""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, NoReturn, Optional

from .. import __version__
from ..distributed import exit_process
from ._options import add_version

COMMANDS = ["list", "flops", "bench", "make-dataset", "extract-frames", "check-data", "train", "eval", "pretrain", "ssl-eval", "report", "run", "convert", "compare"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidbench", description="Benchmark suite for video transformers.")
    add_version(parser, f"vidbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".{name.replace('-', '_')}_cmd", __name__).add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run a command. A user error (bad file, option or value; `vidbench.errors.USER_ERRORS`)
    prints one line naming what is wrong and returns 2; a bug keeps its traceback."""
    import os

    from ..errors import USER_ERRORS, message

    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as given, for a command that relaunches itself
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        if os.environ.get("VIDBENCH_DEBUG"):
            raise
        print(f"vidbench {args.command}: {message(exc)}", file=sys.stderr)
        return 2


def run() -> NoReturn:
    """The `vidbench` command as a program (the console script, ``python -m vidbench``, and under
    ``torchrun -m vidbench`` or ``torchrun --no-python vidbench``): `main`, then the process ends
    with its status through `vidbench.distributed.exit_process`."""
    exit_process(main())


if __name__ == "__main__":
    run()
