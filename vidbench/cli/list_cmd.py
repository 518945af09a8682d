"""vidbench list [PATTERN] [--family F]: the model zoo table."""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Optional

from ..options import option
from ._options import add_options, config_from_args


@dataclass
class ListJob:
    """`vidbench list`: the model zoo, the published checkpoints or the checkpoint formats."""

    pattern: Optional[str] = option(None, positional="?", help="shell-style pattern, e.g. 'vivit_*'")
    family: Optional[str] = option(None, help="only this family (vit, vivit, timesformer, vtn, mvit, swin, videomae)")
    weights: bool = option(False, help="list the published checkpoints vidbench knows (file names, source, "
                                       "preprocessing, top-1)")
    formats: bool = option(False, help="list the checkpoint formats vidbench reads")
    markdown: bool = option(False, help="with --weights / --formats: a Markdown table")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="print the model zoo table")
    add_options(p, ListJob)
    p.set_defaults(func=run)


def _print(header, rows, markdown: bool) -> None:
    if markdown:
        for row in [header, tuple("---" for _ in header)] + rows:
            print("| " + " | ".join(str(c) for c in row) + " |")
        return
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths)] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


def _weights(args: ListJob) -> int:
    """The published-weights table (what the README shows, generated from the registry)."""
    import fnmatch

    from ..models import model_entry
    from ..weights import get_format, list_formats, list_published

    if args.formats:
        rows = [(f"`{n}`" if args.markdown else n, ", ".join(get_format(n).families), get_format(n).description)
                for n in list_formats() if not args.family or args.family in get_format(n).families]
        _print(("format", "families", "reads"), rows, args.markdown)
        return 0
    rows = []
    for w in list_published():
        if args.pattern and not fnmatch.fnmatch(w.model, args.pattern):
            continue
        if args.family and model_entry(w.model).family != args.family:
            continue
        top = "-" if w.top1 is None else f"{w.top1:g}" + ("" if w.top5 is None else f" / {w.top5:g}")
        files = ", ".join(f"`{f}`" if args.markdown else f for f in w.files)
        rows.append((w.model, files, w.format, f"{w.num_frames}x{w.sampling_rate}", f"{w.resize_size}/{w.crop_size}",
                     "/".join(f"{m:g}" for m in w.mean) + " ; " + "/".join(f"{s:g}" for s in w.std),
                     f"{w.views[0]}x{w.views[1]}", top, "-" if w.gmacs is None else f"{w.gmacs:g}", w.source))
    _print(("model", "files", "format", "frames x rate", "resize/crop", "mean ; std", "views", "top-1 / top-5",
            "GMACs/view", "source"), rows, args.markdown)
    return 0


def run(args: argparse.Namespace) -> int:
    """Name, family, params at the default config (built on the meta device), published params,
    input size and source."""
    import torch

    from ..errors import ConfigError, did_you_mean
    from ..models import create_model, list_models, model_entry

    args = config_from_args(ListJob, args)
    if args.family:  # an unknown family is a typo, not an empty table
        families = sorted({model_entry(n).family for n in list_models()})
        if args.family not in families:
            raise ConfigError(f"--family {args.family}: unknown family{did_you_mean(args.family, families)} "
                              f"(families: {', '.join(families)})")
    if args.weights or args.formats:
        return _weights(args)
    names = list_models(args.pattern, family=args.family)
    if not names:
        asked = " and ".join(filter(None, [args.pattern and f"pattern {args.pattern!r}",
                                           args.family and f"family {args.family}"]))
        print(f"no model matches {asked}", file=sys.stderr)
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
    _print(("model", "family", "params", "published", "input (CxTxHxW)", "source"), rows, False)
    return 0
