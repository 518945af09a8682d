"""vidbench bench: run a measurement grid and write results/<name>/bench.csv row by row. The grid
flags are `vidbench.bench.SweepConfig`'s fields (a suite's [bench] section takes the same)."""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
from dataclasses import dataclass
from typing import Optional

from ..options import PROGRESS, option
from ._options import add_options, config_from_args


@dataclass
class BenchJob:
    """What `vidbench bench` takes besides the grid (`SweepConfig`): where the rows go."""

    out: Optional[str] = option(None, help="results directory [results/bench-<UTC time>]")
    resume: bool = option(False, help="continue --out, skipping rows already written")
    progress: bool = PROGRESS(help="progress bar")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..bench.sweep import SweepConfig

    p = sub.add_parser("bench", help="measure throughput, step time, peak memory and MFU over a grid",
                       description="Every combination of the comma-separated lists becomes one row of "
                                   "<out>/bench.csv, written as soon as it is measured. The grid flags are the "
                                   "fields of vidbench.bench.SweepConfig (a suite's [bench] keys); defaults in "
                                   "brackets.")
    add_options(p, SweepConfig)
    add_options(p, BenchJob)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..bench import SweepConfig, run_sweep
    from ..bench.summary import summary
    from ..distributed import launched_world
    from ..errors import ConfigError

    job = config_from_args(BenchJob, args)
    out = job.out
    if out is None:
        if job.resume:
            raise ConfigError("--resume needs --out")
        if launched_world() > 1:
            raise ConfigError("under torchrun, give --out (every process writes to one directory)")
        out = f"results/bench-{_dt.datetime.now(_dt.timezone.utc).strftime('%Y%m%d-%H%M%S')}"
    cfg = config_from_args(SweepConfig, args)
    if cfg.weights:
        from ..weights import inspect_weights

        if len(cfg.models) > 1:
            raise ConfigError("--weights measures one model: give at most one --models name")
        _, _, name, config = inspect_weights(cfg.weights, cfg.models[0] if cfg.models else None, cfg.weights_format)
        cfg = dataclasses.replace(cfg, models=[name], model_kwargs={**config, **cfg.model_kwargs})
    elif not cfg.models:
        raise ConfigError("give --models (or --weights)")
    rows = run_sweep(cfg, out, resume=job.resume, progress=job.progress)
    if launched_world() > 1 and not rows:  # torchrun's other processes: rank 0 reports
        return 0
    print(summary(rows))
    print(f"\nGMACs: multiply-adds per clip (1 MAC = 1 FLOP, papers' convention); MFU: achieved FLOP/s "
          f"(2 x GMACs x clips/s, x3 for train) / matmul peak measured in this run. {len(rows)} rows -> {out}/bench.csv")
    return 0
