"""vidbench ssl-eval --init FILE|random --data DIR --out DIR: kNN and linear-probe top-1 of a
frozen image backbone (a saved .safetensors, a published self-supervised checkpoint in its own
layout, or a random-init one as the baseline)."""
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

    init: str = option("", required=True, help="a backbone file: vidbench pretrain's .safetensors or a published "
                                                "self-supervised checkpoint (DINO, MAE, MoCo v3, DINOv2, timm); or "
                                                "'random'")
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
    if job.init != "random":  # a backbone trained here, or a published one (DINO, MAE, MoCo v3, DINOv2, timm)
        from ..ssl.run import eval_image_size

        size = eval_image_size(job.init, overrides.get("img_size"), overrides.get("num_heads"))
        overrides["img_size"] = size
    else:
        size = overrides.get("img_size") or 224
    data = open_frames(job.data, size, frames_per_clip=job.frames)
    row = evaluate_init(job.init, data, job.out, job.backbone, overrides, job.seed, job.knn_k, job.device)
    print(", ".join(f"{k}={row[k]}" for k in ("method", "epochs", "knn_top1", "linear_top1", "eval_feat_rank")))
    return 0
