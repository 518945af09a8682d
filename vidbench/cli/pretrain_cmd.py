"""vidbench pretrain --method M --data DIR --epochs E --out results/<name>: self-supervised
pretraining of an image ViT, its backbone saved as <out>/<method>.safetensors, then evaluated
(kNN and linear probe) into <out>/ssl.csv. The training flags are
`vidbench.ssl.train.PretrainConfig`'s fields (the `TrainingOptions` vidbench train shares); the
others are `PretrainJob`'s (the backbone and data ones `SSLDataJob`'s, which ssl-eval shares)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Dict, Optional

from ..options import FRAMES, IMG_SIZE, THREADS, Alias, option
from ..ssl.methods import METHODS
from ._options import add_options, config_from_args

BACKBONE = "backbone (an image ViT from the registry; overrides as in create_model)"
TRAINING = "training (vidbench.ssl.train.PretrainConfig)"
METHOD = "method options (each applies to the methods that have it)"
# method-option flags: job field -> method config field
METHOD_FLAGS = {
    "temperature": "temperature", "tau_base": "tau_base", "w_size": "w_size", "w_iter": "w_iter", "w_eps": "w_eps",
    "views": "views", "nce_k": "num_negatives", "bank_momentum": "bank_momentum", "margin": "margin",
    "proj_dim": "proj_dim", "proj_hidden": "proj_hidden",
}


def _backbone(help: str = "") -> Any:
    return option(None, group=BACKBONE, help=help)


@dataclass
class SSLDataJob:
    """The backbone and data options `pretrain` and `ssl-eval` share."""

    backbone: str = option("vit_tiny", group=BACKBONE, help="registry name")
    img_size: Optional[int] = IMG_SIZE(help="", aliases=(), group=BACKBONE)
    patch_size: Optional[int] = _backbone()
    depth: Optional[int] = _backbone()
    embed_dim: Optional[int] = _backbone()
    num_heads: Optional[int] = _backbone()
    data: str = option("", required=True, help="image folder (class-per-folder, optionally train/ and val/ splits) "
                                               "or video dataset (e.g. vidbench make-dataset's)")
    frames: int = FRAMES(8, positive=True, aliases=[Alias("frames_per_clip")],
                         help="frames taken from each video of a video dataset")
    out: str = option("", required=True, help="results directory, e.g. results/ssl_tiny")
    knn_k: int = option(200, positive=True, help="neighbours of the weighted kNN")
    threads: Optional[int] = THREADS()

    def overrides(self) -> Dict[str, int]:
        """The backbone's create_model overrides given."""
        keys = ("img_size", "patch_size", "depth", "embed_dim", "num_heads")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


def _method(help: str) -> Any:
    return option(None, group=METHOD, help=help)


@dataclass
class PretrainJob(SSLDataJob):
    """`vidbench pretrain` besides the training loop's options (`PretrainConfig`)."""

    method: str = option("", required=True, choices=METHODS, help="")
    resume: bool = option(False, group=TRAINING, help="skip a finished run, continue an interrupted one")
    evaluate: bool = option(True, flag="eval", group=TRAINING, help="kNN / linear-probe evaluation")
    temperature: Optional[str] = _method("simclr, simclr_v2, instdisc")
    tau_base: Optional[str] = _method("byol: base EMA rate")
    w_size: Optional[str] = _method("wmse: whitening sub-batch size")
    w_iter: Optional[str] = _method("wmse: whitening iterations")
    w_eps: Optional[str] = _method("wmse: covariance shrinkage")
    views: Optional[str] = _method("wmse: 2 or 4 views per image")
    nce_k: Optional[str] = _method("instdisc: noise samples K")
    bank_momentum: Optional[str] = _method("instdisc: memory bank momentum")
    margin: Optional[str] = _method("contrastive: margin m")
    proj_dim: Optional[str] = _method("projection size (byol, simclr*, arb, contrastive)")
    proj_hidden: Optional[str] = _method("projection hidden width")
    opt: Dict[str, str] = option(default_factory=dict, parse=str, metavar="KEY=VALUE", group=METHOD,
                                 help="any other method config field")
    aug: Dict[str, str] = option(default_factory=dict, parse=str, metavar="KEY=VALUE", group=METHOD,
                                 help="augmentation override for every view, e.g. blur_p=0.5, crop_scale=0.2,1.0")

    def method_options(self) -> Dict[str, str]:
        """The method's options as given (text; `parse_method_options` types them)."""
        flags = {METHOD_FLAGS[k]: getattr(self, k) for k in METHOD_FLAGS if getattr(self, k) is not None}
        return {**flags, **self.opt}


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..ssl.train import PretrainConfig

    p = sub.add_parser("pretrain", help="self-supervised pretraining of an image ViT (BYOL, SimCLR, W-MSE, ...)",
                       description="The training flags are the fields of vidbench.ssl.train.PretrainConfig (the "
                                   "options vidbench train shares, with pretraining's defaults, in brackets).")
    for title in (BACKBONE, TRAINING, METHOD):  # the --help sections, in this order
        p.add_argument_group(title)
    add_options(p, PretrainConfig, group=TRAINING)
    add_options(p, PretrainJob, first=("method",))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..errors import TrainingStopped, UserError
    from ..results import run_lock
    from ..ssl.augment import parse_aug_overrides
    from ..ssl.methods import check_batch, method_config, parse_method_options
    from ..ssl.run import open_frames, run_pretraining
    from ..ssl.train import PretrainConfig

    job = config_from_args(PretrainJob, args)
    train = config_from_args(PretrainConfig, args)
    if job.threads:
        torch.set_num_threads(job.threads)
    options = parse_method_options(job.method, job.method_options())
    aug = parse_aug_overrides(job.aug)
    check_batch(method_config(job.method, **options), train.batch_size)  # before reading any data
    overrides = job.overrides()
    data = open_frames(job.data, overrides.get("img_size") or 224, frames_per_clip=job.frames, progress=train.progress)
    with run_lock(job.out, f"vidbench pretrain --method {job.method}"):
        try:
            row = run_pretraining(job.method, data, job.out, train, job.backbone, overrides, options, aug,
                                  resume=job.resume, evaluate=job.evaluate, knn_k=job.knn_k)
        except TrainingStopped as err:  # the project's own error (not a built-in): the run stopped, and says why
            raise UserError(f"stopped: {err}") from err
    shown = ", ".join(f"{k}={row[k]}" for k in ("method", "epochs", "knn_top1", "linear_top1", "pretrain_time_s",
                                                 "emb_std", "emb_rank", "file") if k in row)
    print(shown)
    return 0
