"""vidbench compare MODEL [MODEL ...]: vidbench's models against another library's implementation
of the same family (timm, torchvision, Hugging Face transformers), same weights, same clip, timed
in interleaved rounds; one row per implementation and mode in <out>/compare.csv. The flags are
`vidbench.bench.compare.CompareConfig`'s fields."""
from __future__ import annotations

import argparse
import datetime as _dt
from dataclasses import dataclass
from typing import List, Optional

from ..options import PROGRESS, option
from ._options import add_options, config_from_args


@dataclass
class CompareJob:
    """What `vidbench compare` takes besides `CompareConfig`: the models and where the rows go."""

    models: List[str] = option(default_factory=list, positional="+", metavar="MODEL",
                               help="vidbench models to compare (see above)")
    out: Optional[str] = option(None, help="results directory [results/compare-<UTC time>]")
    progress: bool = PROGRESS(help="progress lines")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..bench.compare import FAMILIES, CompareConfig

    p = sub.add_parser("compare", help="vidbench vs timm / torchvision / Hugging Face on the same weights: logit "
                                       "difference, throughput, step time and peak memory",
                       description="Each model is built twice at the same (paper) config, the other library's "
                                   "implementation with perturbed weights and vidbench's loaded from it through "
                                   "the published-weights converter; both are timed in interleaved rounds. Models: "
                                   + ", ".join(f"{m} ({f.reference})" for m, f in FAMILIES.items()) + ".")
    add_options(p, CompareConfig)
    add_options(p, CompareJob)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..bench.compare import CompareConfig, run_compare, summary

    job = config_from_args(CompareJob, args)
    out = job.out or f"results/compare-{_dt.datetime.now(_dt.timezone.utc).strftime('%Y%m%d-%H%M%S')}"
    cfg = config_from_args(CompareConfig, args, models=list(dict.fromkeys(job.models)))
    rows = run_compare(cfg, out, progress=job.progress)
    print(summary(rows))
    print(f"\nmax|diff|: largest |logit difference| on the same clip; x ref: clips/s over the reference's; peak "
          f"memory: see mem_method. {len(rows)} rows -> {out}/compare.csv")
    return 0

