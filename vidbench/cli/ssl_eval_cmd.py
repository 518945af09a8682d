"""vidbench ssl-eval --init FILE|random --data DIR --out DIR: kNN and linear-probe top-1 of a
frozen image backbone (a saved .safetensors, or a random-init one as the baseline)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from ..options import DEVICE, SEED, device_check, option
from ._options import add_options, config_from_args
from .pretrain_cmd import SSLDataJob


@dataclass
class SSLEvalJob(SSLDataJob):
    """`vidbench ssl-eval`: the backbone and data options pretrain takes, the backbone to evaluate,
    and the run's seed and device."""

    init: str = option("", required=True, help="a backbone .safetensors file, or 'random'")
    seed: int = SEED()
    device: str = DEVICE("cpu", check=device_check(auto=False), help="cpu, cuda or cuda:N")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ssl-eval", help="kNN / linear-probe evaluation of an image backbone (or random init)")
    add_options(p, SSLEvalJob, first=("init",))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..ssl.run import evaluate_init, open_frames

    job = config_from_args(SSLEvalJob, args)  # the device is checked here, before any data is opened
    if job.threads:
        torch.set_num_threads(job.threads)
    overrides = job.overrides()
    if job.init != "random":
        from ..checkpoint import read_backbone_meta

        size = read_backbone_meta(job.init)["config"]["img_size"]
        size = size[0] if isinstance(size, list) else size
    else:
        size = overrides.get("img_size") or 224
    data = open_frames(job.data, size, frames_per_clip=job.frames)
    row = evaluate_init(job.init, data, job.out, job.backbone, overrides, job.seed, job.knn_k, job.device)
    print(", ".join(f"{k}={row[k]}" for k in ("method", "epochs", "knn_top1", "linear_top1", "eval_feat_rank")))
    return 0
