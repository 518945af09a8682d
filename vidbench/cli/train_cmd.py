"""vidbench train: train a video model on a clip dataset (single process, or under torchrun).

The flags are `vidbench.train.TrainConfig`'s fields (defaults in brackets are its defaults)."""
from __future__ import annotations

import argparse
import json

from ._options import add_options, config_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..train.config import TrainConfig

    p = sub.add_parser("train", help="train a model on a video dataset; writes checkpoint and train.csv",
                       description="Every flag is a field of vidbench.train.TrainConfig; defaults in brackets.")
    add_options(p, TrainConfig, first=("model", "data", "out"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train import TrainConfig, train

    row = train(config_from_args(TrainConfig, args))
    test = row.pop("test", None)
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}))
    if test:
        print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in test.items()}))
    return 0
