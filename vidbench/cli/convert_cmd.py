"""vidbench convert SRC DST.safetensors: any supported checkpoint -> vidbench's own checkpoint.
V-JEPA 2's official attentive probes come without their encoder: `vidbench convert ENCODER.pt
DST.safetensors --probe PROBE.pt` converts the pair (vidbench.weights.formats.vjepa2_official)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import ConfigError
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
    probe: Optional[str] = option(None, metavar="FILE", help="V-JEPA 2: an official attentive-probe file (e.g. "
                                  "ssv2-vitl-16x2x3.pt), converted with SRC as its encoder (e.g. vitl.pt)")
    probe_index: int = option(0, ge=0, help="which of the probe file's `classifiers` (--probe)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert published weights (any supported format) to a vidbench checkpoint",
                       description="Reads SRC without running code (safetensors, weights_only torch.load, npz, "
                                   "Flax msgpack), works out the model, loads it strictly and writes DST with the "
                                   "model's name, config, class names and preprocessing in its metadata.")
    add_options(p, ConvertJob)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..weights.convert import check_destination, convert_checkpoint

    job = config_from_args(ConvertJob, args)
    kw = dict(model=job.model, overwrite=job.overwrite, num_frames=job.frames, img_size=job.img_size)
    if job.probe is None:
        if job.probe_index:
            raise ConfigError("--probe-index picks one of a --probe file's classifiers: give --probe")
        net = convert_checkpoint(job.src, job.dst, format=job.weights_format, **kw)
    else:
        from ..weights.formats.vjepa2_official import combined_official

        if job.weights_format not in (None, "vjepa2-official"):
            raise ConfigError(f"--probe is V-JEPA 2's official attentive probe (format vjepa2-official), not "
                              f"--weights-format {job.weights_format}")
        check_destination(job.dst, job.overwrite)  # before combining (a ViT-g pair is ~4 GB)
        with combined_official(job.src, job.probe, job.probe_index, workdir=Path(job.dst).parent) as combined:
            net = convert_checkpoint(combined, job.dst, format="vjepa2-official",
                                     converted_from=f"{job.src} + {job.probe} (classifiers[{job.probe_index}])", **kw)
    info = net.pretrained_cfg
    params = sum(p.numel() for p in net.parameters())
    origin = job.src if job.probe is None else f"{job.src} + {job.probe}"
    print(f"{origin} ({info.format}) -> {job.dst}: {info.label or info.model}, {params:,} params, input "
          f"{'x'.join(map(str, net.input_size))}" + (f"; published: {info.published.name}" if info.published else "")
          + "".join(f"\n  note: {n}" for n in info.notes))
    return 0
