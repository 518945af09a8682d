"""vidbench train: train a video model on a clip dataset (single process, or under torchrun).

Options left unset take `vidbench.train.TrainConfig`'s defaults (not imported here, so building
the parser stays cheap)."""
from __future__ import annotations

import argparse
import json
from typing import Any, Dict, List

from ._args import positive_int


def _value(text: str) -> Any:
    """JSON (4, 0.1, true, [2, 8, 8], "x"), a comma list of those (2,8,8 -> (2, 8, 8)), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    if "," in text:
        return tuple(_value(part.strip()) for part in text.split(","))
    return text


def _model_args(items: List[str]) -> Dict[str, Any]:
    from ..errors import ConfigError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--model-arg expects KEY=VALUE (e.g. depth=4, tubelet_size=2,8,8), got {item!r}")
        out[key.strip()] = _value(value.strip())
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on a video dataset; writes checkpoint and train.csv",
                       description="Defaults in brackets are TrainConfig's.")
    p.add_argument("--model", default=None, help="registry name, e.g. vivit_m2_tiny (optional with --weights)")
    p.add_argument("--data", default="data/synthetic", help="dataset directory (default: data/synthetic)")
    p.add_argument("--out", required=True, help="results directory, e.g. results/m2")
    p.add_argument("--epochs", type=positive_int, help="[12]")
    p.add_argument("--batch-size", type=positive_int, help="clips per process [16]")
    p.add_argument("--lr", type=float, help="AdamW peak learning rate [5e-4]")
    p.add_argument("--min-lr", type=float, help="end of the cosine decay [1e-5]")
    p.add_argument("--weight-decay", type=float, help="[0.05]")
    p.add_argument("--warmup-epochs", type=float, help="linear warm-up [2]")
    p.add_argument("--label-smoothing", type=float, help="[0.1]")
    p.add_argument("--clip-grad", type=float, help="max gradient norm, 0: off [1.0]")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], help="autocast dtype [none]")
    p.add_argument("--workers", dest="num_workers", type=int, help="DataLoader workers per process [2]")
    p.add_argument("--seed", type=int, help="[0]")
    p.add_argument("--backend", choices=["decord", "pyav"], help="video decoder [decord where installed]")
    p.add_argument("--bad-items", choices=["skip", "raise"], help="unusable videos / annotation lines [skip]")
    p.add_argument("--init", help="image ViT checkpoint (.safetensors written by vidbench.checkpoint)")
    p.add_argument("--weights", help="fine-tune from published weights of the model itself (any supported format; "
                                     "frames, size and normalisation follow the checkpoint unless given)")
    p.add_argument("--weights-format", help="force a weights format instead of detecting it")
    p.add_argument("--init-mode", choices=["central_frame", "inflation", "random"], help="tubelet rule [central_frame]")
    p.add_argument("--init-label", help="the init column [the checkpoint's 'method' metadata, else its file name]")
    p.add_argument("--num-frames", type=positive_int, help="clip frames [the dataset's]")
    p.add_argument("--stride", type=positive_int, help="frame stride for dense sampling [the dataset's]")
    p.add_argument("--sampling", choices=["dense", "uniform"], help="[the dataset's]")
    p.add_argument("--size", type=positive_int, help="crop side [the dataset's, or the --init model's]")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE", help="model config override")
    p.add_argument("--val-views", help="views of the per-epoch validation [1x1]")
    p.add_argument("--eval-views", help="after training, evaluate the test split with these views, e.g. 4x3")
    p.add_argument("--device", help="auto, cpu or cuda [auto]")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train import TrainConfig, train

    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("func", "command", "model_arg",
                                                                                 "no_progress")}
    cfg = TrainConfig(**{"model": None, **given}, model_kwargs=_model_args(args.model_arg),
                      progress=not args.no_progress)
    row = train(cfg)
    test = row.pop("test", None)
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}))
    if test:
        print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in test.items()}))
    return 0
