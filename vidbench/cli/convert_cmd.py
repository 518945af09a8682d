"""vidbench convert SRC DST.safetensors: any supported checkpoint -> vidbench's own checkpoint."""
from __future__ import annotations

import argparse
import sys

from ._args import positive_int


def _formats_help() -> str:
    from ..weights import get_format, list_formats

    return "; ".join(f"{name}: {get_format(name).description}" for name in list_formats())


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert published weights (any supported format) to a vidbench checkpoint",
                       description="Reads SRC without running code (safetensors, weights_only torch.load, npz, "
                                   "Flax msgpack), works out the model, loads it strictly and writes DST with the "
                                   "model's name, config, class names and preprocessing in its metadata.")
    p.add_argument("src", help="checkpoint file or Hugging Face model directory")
    p.add_argument("dst", help="output .safetensors file")
    p.add_argument("--model", default=None, help="registry name (formats without a config: official .pyth, "
                                                 "timm / torchvision state dicts)")
    p.add_argument("--weights-format", default=None, help="force a format (default: detected); see --list-formats")
    p.add_argument("--frames", type=positive_int, default=None, help="num_frames of the converted model (embeddings resized)")
    p.add_argument("--img-size", type=positive_int, default=None, help="img_size of the converted model (embeddings resized)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing DST")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..weights import WeightsError
    from ..weights.convert import convert_checkpoint

    try:
        net = convert_checkpoint(args.src, args.dst, model=args.model, format=args.weights_format,
                                 overwrite=args.overwrite, num_frames=args.frames, img_size=args.img_size)
    except (WeightsError, KeyError, TypeError) as exc:
        print(f"vidbench convert: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    info = net.pretrained_cfg
    params = sum(p.numel() for p in net.parameters())
    print(f"{args.src} ({info.format}) -> {args.dst}: {info.label or info.model}, {params:,} params, input "
          f"{'x'.join(map(str, net.input_size))}" + (f"; published: {info.published.name}" if info.published else "")
          + "".join(f"\n  note: {n}" for n in info.notes))
    return 0
