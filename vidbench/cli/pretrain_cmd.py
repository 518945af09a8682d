"""vidbench pretrain --method M --data DIR --epochs E --out results/<name>: self-supervised
pretraining of an image ViT, its backbone saved as <out>/<method>.safetensors, then evaluated
(kNN and linear probe) into <out>/ssl.csv. The training flags are
`vidbench.ssl.train.PretrainConfig`'s fields (the `TrainingOptions` vidbench train shares)."""
from __future__ import annotations

import argparse
import sys

from ._args import positive_int
from ._options import add_deprecated_flag, add_options, config_from_args

# method-option flags: flag dest -> config field
METHOD_FLAGS = {
    "temperature": "temperature", "tau_base": "tau_base", "w_size": "w_size", "w_iter": "w_iter", "w_eps": "w_eps",
    "views": "views", "nce_k": "num_negatives", "bank_momentum": "bank_momentum", "margin": "margin",
    "proj_dim": "proj_dim", "proj_hidden": "proj_hidden",
}


def add_backbone_args(p: argparse.ArgumentParser, run: bool = True) -> None:
    """The backbone and data flags `pretrain` and `ssl-eval` share; `run`: also --seed and
    --device (pretrain takes them from PretrainConfig)."""
    g = p.add_argument_group("backbone (an image ViT from the registry; overrides as in create_model)")
    g.add_argument("--backbone", default="vit_tiny", help="registry name [vit_tiny]")
    for flag in ("img-size", "patch-size", "depth", "embed-dim", "num-heads"):
        g.add_argument(f"--{flag}", type=positive_int, default=None)
    p.add_argument("--data", required=True, help="image folder (class-per-folder, optionally train/ and val/ splits) "
                   "or video dataset (e.g. vidbench make-dataset's)")
    p.add_argument("--frames", type=positive_int, default=8,
                   help="frames taken from each video of a video dataset [8] (deprecated alias: --frames-per-clip)")
    add_deprecated_flag(p, "--frames-per-clip", dest="frames", new="--frames", type=positive_int)
    p.add_argument("--out", required=True, help="results directory, e.g. results/ssl_tiny")
    p.add_argument("--knn-k", type=positive_int, default=200, help="neighbours of the weighted kNN [200]")
    if run:
        p.add_argument("--seed", type=int, default=0, help="random seed [0]")
        p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N [cpu]")
    p.add_argument("--threads", type=positive_int, default=None, help="torch intra-op threads [torch's]")


def backbone_overrides(args: argparse.Namespace) -> dict:
    keys = ("img_size", "patch_size", "depth", "embed_dim", "num_heads")
    return {k: getattr(args, k) for k in keys if getattr(args, k) is not None}


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..ssl.methods import METHODS
    from ..ssl.train import PretrainConfig

    p = sub.add_parser("pretrain", help="self-supervised pretraining of an image ViT (BYOL, SimCLR, W-MSE, ...)",
                       description="The training flags are the fields of vidbench.ssl.train.PretrainConfig (the "
                                   "options vidbench train shares, with pretraining's defaults, in brackets).")
    p.add_argument("--method", required=True, choices=METHODS)
    add_backbone_args(p, run=False)
    t = p.add_argument_group("training (vidbench.ssl.train.PretrainConfig)")
    add_options(t, PretrainConfig)
    t.add_argument("--resume", action="store_true", help="skip a finished run, continue an interrupted one")
    t.add_argument("--no-eval", action="store_true", help="skip the kNN / linear-probe evaluation")
    m = p.add_argument_group("method options (each applies to the methods that have it)")
    m.add_argument("--temperature", help="simclr, simclr_v2, instdisc")
    m.add_argument("--tau-base", help="byol: base EMA rate")
    m.add_argument("--w-size", help="wmse: whitening sub-batch size")
    m.add_argument("--w-iter", help="wmse: whitening iterations")
    m.add_argument("--w-eps", help="wmse: covariance shrinkage")
    m.add_argument("--views", help="wmse: 2 or 4 views per image")
    m.add_argument("--nce-k", help="instdisc: noise samples K")
    m.add_argument("--bank-momentum", help="instdisc: memory bank momentum")
    m.add_argument("--margin", help="contrastive: margin m")
    m.add_argument("--proj-dim", help="projection size (byol, simclr*, arb, contrastive)")
    m.add_argument("--proj-hidden", help="projection hidden width")
    m.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE", help="any other method config field")
    m.add_argument("--aug", action="append", default=[], metavar="KEY=VALUE",
                   help="augmentation override for every view, e.g. blur_p=0.5, crop_scale=0.2,1.0")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..results import run_lock
    from ..ssl.augment import parse_aug_overrides
    from ..ssl.base import TrainingStopped
    from ..ssl.methods import check_batch, method_config, parse_method_options
    from ..ssl.run import open_frames, parse_key_values, run_pretraining
    from ..ssl.train import PretrainConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        raw = {field: getattr(args, dest) for dest, field in METHOD_FLAGS.items() if getattr(args, dest) is not None}
        raw.update(parse_key_values(args.opt, "--opt"))
        options = parse_method_options(args.method, raw)
        aug = parse_aug_overrides(args.aug)
        train = config_from_args(PretrainConfig, args)
        check_batch(method_config(args.method, **options), train.batch_size)  # before reading any data
        overrides = backbone_overrides(args)
        data = open_frames(args.data, overrides.get("img_size") or 224, frames_per_clip=args.frames,
                           progress=train.progress)
        with run_lock(args.out, f"vidbench pretrain --method {args.method}"):
            row = run_pretraining(args.method, data, args.out, train, args.backbone, overrides, options, aug,
                                  resume=args.resume, evaluate=not args.no_eval, knn_k=args.knn_k)
    except TrainingStopped as err:
        print(f"vidbench pretrain: stopped: {err}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, KeyError, FileNotFoundError) as err:
        print(f"vidbench pretrain: error: {err}", file=sys.stderr)
        return 2
    shown = ", ".join(f"{k}={row[k]}" for k in ("method", "epochs", "knn_top1", "linear_top1", "pretrain_time_s",
                                                 "emb_std", "emb_rank", "file") if k in row)
    print(shown)
    return 0
