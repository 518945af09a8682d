"""vidbench list [PATTERN] [--family F]: the model zoo table."""
from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="print the model zoo table")
    p.add_argument("pattern", nargs="?", default=None, help="shell-style pattern, e.g. 'vivit_*'")
    p.add_argument("--family", default=None, help="only this family (vit, vivit, timesformer, vtn, mvit)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Name, family, params at the default config (built on the meta device), published params,
    input size and source."""
    import torch

    from ..models import create_model, list_models, model_entry

    names = list_models(args.pattern, family=args.family)
    if not names:
        print(f"no model matches {args.pattern!r}", file=sys.stderr)
        return 1
    rows = []
    for name in names:
        entry = model_entry(name)
        with torch.device("meta"):
            model = create_model(name)
        params = sum(p.numel() for p in model.parameters())
        published = f"{entry.meta.params / 1e6:.2f}M" if entry.meta.params else "-"
        size = "x".join(str(s) for s in model.input_size)
        rows.append((name, entry.family, f"{params / 1e6:.2f}M", published, size, entry.meta.source))
    header = ("model", "family", "params", "published", "input (CxTxHxW)", "source")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths)] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0
