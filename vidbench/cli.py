"""The `vidbench` command."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from . import __version__


def _count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def cmd_list(args: argparse.Namespace) -> int:
    """Print the model zoo table: name, family, params at the default config, input, source."""
    import torch

    from .models import create_model, list_models, model_entry

    names = list_models(args.pattern, family=args.family)
    if not names:
        print(f"no model matches {args.pattern!r}", file=sys.stderr)
        return 1
    rows = []
    for name in names:
        entry = model_entry(name)
        with torch.device("meta"):  # build without allocating or initialising real weights
            model = create_model(name)
        params = _count_params(model)
        published = f"{entry.meta.params / 1e6:.2f}M" if entry.meta.params else "-"
        size = "x".join(str(s) for s in model.input_size)
        rows.append((name, entry.family, f"{params / 1e6:.2f}M", published, size, entry.meta.source))
    header = ("model", "family", "params", "published", "input (CxTxHxW)", "source")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths)] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidbench", description="Benchmark suite for video transformers.")
    parser.add_argument("--version", action="version", version=f"vidbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="print the model zoo table")
    p.add_argument("pattern", nargs="?", default=None, help="shell-style pattern, e.g. 'vivit_*'")
    p.add_argument("--family", default=None, help="only this family (vit, vivit, timesformer, vtn, mvit)")
    p.set_defaults(func=cmd_list)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
