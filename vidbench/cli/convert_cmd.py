"""vidbench convert SRC DST.safetensors: any supported checkpoint -> vidbench's own checkpoint."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Optional

from ..options import FRAMES, IMG_SIZE, WEIGHTS_FORMAT, option
from ._options import add_options, config_from_args


@dataclass
class ConvertJob:
    """`vidbench convert`: published weights in, a vidbench checkpoint out."""

    src: str = option("", positional="1", help="checkpoint file or Hugging Face model directory")
    dst: str = option("", positional="1", help="output .safetensors file")
    model: Optional[str] = option(None, help="registry name (formats without a config: official .pyth, timm / "
                                             "torchvision state dicts)")
    weights_format: Optional[str] = WEIGHTS_FORMAT(help="force a format (default: detected); see --list-formats")
    frames: Optional[int] = FRAMES(help="num_frames of the converted model (embeddings resized)", aliases=())
    img_size: Optional[int] = IMG_SIZE(help="img_size of the converted model (embeddings resized)", aliases=())
    overwrite: bool = option(False, help="replace an existing DST")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert published weights (any supported format) to a vidbench checkpoint",
                       description="Reads SRC without running code (safetensors, weights_only torch.load, npz, "
                                   "Flax msgpack), works out the model, loads it strictly and writes DST with the "
                                   "model's name, config, class names and preprocessing in its metadata.")
    add_options(p, ConvertJob)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..weights.convert import convert_checkpoint

    job = config_from_args(ConvertJob, args)
    net = convert_checkpoint(job.src, job.dst, model=job.model, format=job.weights_format, overwrite=job.overwrite,
                             num_frames=job.frames, img_size=job.img_size)
    info = net.pretrained_cfg
    params = sum(p.numel() for p in net.parameters())
    print(f"{job.src} ({info.format}) -> {job.dst}: {info.label or info.model}, {params:,} params, input "
          f"{'x'.join(map(str, net.input_size))}" + (f"; published: {info.published.name}" if info.published else "")
          + "".join(f"\n  note: {n}" for n in info.notes))
    return 0
