"""vidbench flops MODEL [--frames N] [--img-size S]: params, GMACs, a per-module table and the ops
fvcore could not count."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..options import FRAMES, IMG_SIZE, WEIGHTS, WEIGHTS_FORMAT, device_check, option
from ._options import add_options, config_from_args

UNIT = "GMACs = 1e9 multiply-adds (1 MAC = 1 FLOP, the papers' convention), one view at batch 1"


@dataclass
class FlopsJob:
    """`vidbench flops`: the count of one model (or of the model a checkpoint holds)."""

    model: Optional[str] = option(None, positional="?", help="registry name (vidbench list); optional with --weights")
    weights: Optional[str] = WEIGHTS(help="count the model a checkpoint holds, at its own config")
    weights_format: Optional[str] = WEIGHTS_FORMAT()
    frames: Optional[int] = FRAMES(help="num_frames override (video models)", aliases=())
    img_size: Optional[int] = IMG_SIZE(help="img_size override", aliases=())
    max_depth: int = option(3, ge=0, help="module depth of the table")
    reference_attn: bool = option(False, help="trace the reference attention path instead of "
                                              "F.scaled_dot_product_attention")
    device: str = option("meta", check=device_check(auto=False, meta=True),
                         help="where to build the model: meta (no compute) or cpu")
    crosscheck: bool = option(False, help="also count with torch's FlopCounterMode")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flops", help="params, GMACs and a per-module FLOP table of one model")
    add_options(p, FlopsJob)
    p.set_defaults(func=run)


def _ops(ops: Dict[str, int]) -> str:
    return ", ".join(f"{op} x{n}" for op, n in ops.items()) or "none"


def render(report: Any, max_depth: int = 3, published: Any = None, crosscheck: Any = None) -> str:
    """The text `vidbench flops` prints for a FlopReport (a function so notebooks can call it).
    `crosscheck`: FlopCounterMode multiply-adds (with fvcore's LayerNorm rule, without it)."""
    from fvcore.nn import flop_count_table

    size = "x".join(str(s) for s in report.input_size)
    path = "fused SDPA" if report.fused_attn else "reference matmul"
    lines: List[str] = [
        f"{report.model}: input {size} (per view, batch 1), attention path: {path}",
        f"params: {report.params:,} ({report.params / 1e6:.2f}M)",
        f"GMACs: {report.gmacs:.3f}   [{UNIT}]",
    ]
    if published is not None and published.gmacs:
        lines.append(f"published: {published.gmacs} GMACs ({published.source}); "
                     f"vidbench is {100 * (report.gmacs / published.gmacs - 1):+.2f}%")
    if crosscheck is not None:
        with_norms, plain = crosscheck
        lines.append(f"torch FlopCounterMode (halved): {with_norms / 1e9:.3f} GMACs with fvcore's LayerNorm rule "
                     f"(fvcore is {100 * (report.macs / with_norms - 1):+.2f}%); {plain / 1e9:.3f} GMACs without "
                     "norms (torchvision's convention)")
    lines += ["", "per-module table (fvcore; its '#flops' column counts multiply-adds):"]
    if report.analysis is not None:
        lines.append(flop_count_table(report.analysis, max_depth=max_depth))
    lines += [
        "",
        f"elementwise, reduction and data-movement ops not counted (papers' convention): {_ops(report.elementwise_ops)}",
        f"UNCOUNTED ops (no FLOP handle; may hide real arithmetic): {_ops(report.uncounted_ops)}",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..bench import count_flops, flop_counter_by_operator
    from ..bench.crosscheck import NORM_OP
    from ..errors import ConfigError
    from ..models import ModelMeta, model_entry
    from ..weights import find_published, inspect_weights

    job = config_from_args(FlopsJob, args)
    overrides = {"num_frames": job.frames, "img_size": job.img_size}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    published = None
    name, config = job.model, {}
    if job.weights:
        source, _, name, config = inspect_weights(job.weights, job.model, job.weights_format)
        pub = find_published(source.path, source)
        if pub is not None and pub.gmacs and not overrides:
            published = ModelMeta(gmacs=pub.gmacs, source=f"{pub.name}: {pub.paper or pub.source}")
    elif name is None:
        raise ConfigError("give a model name or --weights")
    entry = model_entry(name)
    config = {**config, **overrides}
    report = count_flops(name, device=job.device, fused=False if job.reference_attn else None, **config)
    check = None
    if job.crosscheck:
        by_op = flop_counter_by_operator(name, device=job.device, **config)
        check = (sum(by_op.values()), sum(n for op, n in by_op.items() if op != NORM_OP))
    if not job.weights and not overrides:
        published = entry.meta  # the paper's number is for the default input
    print(render(report, job.max_depth, published, check))
    return 0
