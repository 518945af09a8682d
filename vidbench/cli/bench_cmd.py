"""vidbench bench: run a measurement grid and write results/<name>/bench.csv row by row. The grid
flags are `vidbench.bench.SweepConfig`'s fields (a suite's [bench] section takes the same); with
--data TREE, the end-to-end step fed by that dataset's loader into e2e.csv (`vidbench.bench.e2e`,
`E2EConfig`: the grid's fields and the loader's; a suite's [e2e] section)."""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
from dataclasses import dataclass
from typing import Any, Optional

from ..options import PROGRESS, option
from ._options import add_options, config_from_args


@dataclass
class BenchJob:
    """What `vidbench bench` takes besides the grid (`SweepConfig`): where the rows go."""

    out: Optional[str] = option(None, help="results directory [results/bench-<UTC time>]")
    resume: bool = option(False, help="continue --out, skipping rows already written")
    progress: bool = PROGRESS(help="progress bar")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..bench.e2e import E2EConfig

    p = sub.add_parser("bench", help="measure throughput, step time, peak memory and MFU over a grid",
                       description="Every combination of the comma-separated lists becomes one row of "
                                   "<out>/bench.csv, written as soon as it is measured. The grid flags are the "
                                   "fields of vidbench.bench.SweepConfig (a suite's [bench] keys); defaults in "
                                   "brackets. With --data TREE: the training / inference step fed by that dataset's "
                                   "loader, beside the model-only and loader-only rates, into <out>/e2e.csv.")
    add_options(p, E2EConfig)  # SweepConfig's fields and the end-to-end step's
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
    e2e = getattr(args, "data", None) is not None
    loader_flags = [f"--{flag}" for name, flag in (("split", "split"), ("num_workers", "workers"),
                                                   ("backend", "backend")) if hasattr(args, name)]
    if loader_flags and not e2e:
        raise ConfigError(f"{', '.join(loader_flags)}: options of the end-to-end step; give --data TREE too")
    if e2e:
        from ..bench.e2e import E2EConfig

        cfg = config_from_args(E2EConfig, args)
    else:
        cfg = config_from_args(SweepConfig, args)
    if cfg.weights:
        from ..weights import inspect_weights

        if len(cfg.models) > 1:
            raise ConfigError("--weights measures one model: give at most one --models name")
        _, _, name, config = inspect_weights(cfg.weights, cfg.models[0] if cfg.models else None, cfg.weights_format)
        cfg = dataclasses.replace(cfg, models=[name], model_kwargs={**config, **cfg.model_kwargs})
    elif not cfg.models:
        raise ConfigError("give --models (or --weights)")
    if e2e:
        return _run_e2e(cfg, out, job)
    rows = run_sweep(cfg, out, resume=job.resume, progress=job.progress)
    if launched_world() > 1 and not rows:  # torchrun's other processes: rank 0 reports
        return 0
    print(summary(rows))
    print(f"\nGMACs: multiply-adds per clip (1 MAC = 1 FLOP, papers' convention); MFU: achieved FLOP/s "
          f"(2 x GMACs x clips/s, x3 for train) / matmul peak measured in this run. {len(rows)} rows -> {out}/bench.csv")
    return 0


def _run_e2e(cfg: Any, out: str, job: BenchJob) -> int:
    """`--data TREE`: the end-to-end rows of `cfg` (an `E2EConfig`)."""
    from ..bench.e2e import E2E_TABLE, e2e_summary, run_e2e

    rows = run_e2e(cfg, out, resume=job.resume, progress=job.progress)
    print(e2e_summary(rows))
    print(f"\nclips/s end to end (the step fed by the loader), of the model alone (random clips) and of the loader "
          f"alone; wait: share of the step time blocked on the loader; cores: CPU busy in the e2e steps (this process "
          f"+ workers); cores/dev: the loader's CPU seconds per clip x the model-only clips/s. {len(rows)} rows -> "
          f"{out}/{E2E_TABLE}.csv")
    return 0
