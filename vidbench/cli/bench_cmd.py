"""vidbench bench: run a measurement grid and write results/<name>/bench.csv row by row. The grid
flags are `vidbench.bench.SweepConfig`'s fields (a suite's [bench] section takes the same)."""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import sys

from ._options import add_options, config_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..bench.sweep import SweepConfig

    p = sub.add_parser("bench", help="measure throughput, step time, peak memory and MFU over a grid",
                       description="Every combination of the comma-separated lists becomes one row of "
                                   "<out>/bench.csv, written as soon as it is measured. The grid flags are the "
                                   "fields of vidbench.bench.SweepConfig (a suite's [bench] keys); defaults in "
                                   "brackets.")
    add_options(p, SweepConfig)
    p.add_argument("--out", default=None, help="results directory [results/bench-<UTC time>]")
    p.add_argument("--resume", action="store_true", help="continue --out, skipping rows already written")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..bench import SweepConfig, run_sweep
    from ..bench.summary import summary
    from ..distributed import launched_world

    out = args.out
    if out is None:
        if args.resume:
            print("vidbench bench: --resume needs --out", file=sys.stderr)
            return 2
        if launched_world() > 1:
            print("vidbench bench: under torchrun, give --out (every process writes to one directory)", file=sys.stderr)
            return 2
        out = f"results/bench-{_dt.datetime.now(_dt.timezone.utc).strftime('%Y%m%d-%H%M%S')}"
    try:
        cfg = config_from_args(SweepConfig, args)
        if cfg.weights:
            from ..weights import inspect_weights

            if len(cfg.models) > 1:
                raise ValueError("--weights measures one model: give at most one --models name")
            _, _, name, config = inspect_weights(cfg.weights, cfg.models[0] if cfg.models else None,
                                                 cfg.weights_format)
            cfg = dataclasses.replace(cfg, models=[name], model_kwargs={**config, **cfg.model_kwargs})
        elif not cfg.models:
            raise ValueError("give --models (or --weights)")
        rows = run_sweep(cfg, out, resume=args.resume, progress=not args.no_progress)
    except (KeyError, ValueError, FileExistsError) as exc:
        print(f"vidbench bench: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    if launched_world() > 1 and not rows:  # torchrun's other processes: rank 0 reports
        return 0
    print(summary(rows))
    print(f"\nGMACs: multiply-adds per clip (1 MAC = 1 FLOP, papers' convention); MFU: achieved FLOP/s "
          f"(2 x GMACs x clips/s, x3 for train) / matmul peak measured in this run. {len(rows)} rows -> {out}/bench.csv")
    return 0

