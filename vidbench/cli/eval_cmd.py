"""vidbench eval: multi-view accuracy of a trained checkpoint or of published weights; appends to
accuracy.csv. The flags are `vidbench.train.EvalConfig`'s fields."""
from __future__ import annotations

import argparse
import json

from ._options import add_options, config_from_args

HELP = "multi-view top-1/top-5/per-group accuracy of a checkpoint or published weights"
DESCRIPTION = ("--checkpoint: a model trained by vidbench train (its clip settings). --weights: a checkpoint in any "
               "supported format (vidbench convert --help lists them), evaluated with its own preprocessing and views "
               "unless overridden. Every flag is a field of vidbench.train.EvalConfig; defaults in brackets.")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..train.config import EvalConfig

    p = sub.add_parser("eval", help=HELP, description=DESCRIPTION)
    add_options(p, EvalConfig, exclusive=("checkpoint", "weights"), exclusive_required=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train import EvalConfig, run_eval

    row = run_eval(config_from_args(EvalConfig, args))
    print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}))
    return 0
