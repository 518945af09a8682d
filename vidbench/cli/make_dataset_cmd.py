"""vidbench make-dataset: the generated action dataset (static vs temporal classes, H.264 MP4s);
with --preset, the same classes at a real dataset's size, encoding and layout (kinetics, ssv2)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Optional

from ..options import IMG_SIZE, SEED, option
from ._options import add_options, config_from_args

PRESET_NAMES = ("kinetics", "ssv2")  # vidbench.data.presets.PRESETS (not imported here: argparse stays light)


@dataclass
class MakeDatasetJob:
    """`vidbench make-dataset`: the generated dataset, at its own size or a real dataset's (--preset)."""

    out: Optional[str] = option(None, help="output directory (default: data/synthetic, or data/<preset>)")
    preset: Optional[str] = option(None, choices=sorted(PRESET_NAMES),
                                   help="real-size videos in a real dataset's layout: kinetics (10 s, 30 fps, short "
                                        "side 256, H.264 with B-frames, train/<class>/<ytid>_<start>_<end>.mp4 + "
                                        "train.csv ...) or ssv2 (VP9 WebM, 12 fps, height 240, 2-6 s, "
                                        "20bn-something-something-v2/<id>.webm + labels.json, train.json ...)")
    classes: Optional[str] = option(None, help="comma-separated class names (default: all 14; see --list-classes)")
    videos_per_class: Optional[int] = option(None, help="[60; a preset: 3]")
    frames: Optional[int] = option(None, help="frames per video (odd keeps test clips symmetric) [17; not with "
                                              "--preset]")
    img_size: Optional[int] = IMG_SIZE(help="frame side in pixels, even [32; not with --preset]")
    # a float the preset checks (its message names the seconds), not check_fields: typed Any
    duration_s: Optional[Any] = option(None, parse=float, metavar="DURATION_S",
                                       help="--preset only: seconds per video [kinetics 10; ssv2 2-6, drawn per video]")
    short_side: Optional[int] = option(None, help="--preset only: frame height in pixels, even [kinetics 256; ssv2 "
                                                  "240]")
    seed: int = SEED(help="random seed of the generated videos and splits")
    fps: Optional[int] = option(None, help="[8; kinetics 30; ssv2 12]")
    val_fraction: float = option(0.15, ge=0, lt=1, help="share of each class's videos in the val split")
    test_fraction: float = option(0.15, ge=0, lt=1, help="share of each class's videos in the test split")
    list_classes: bool = option(False, help="print the classes and their groups, then exit")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("make-dataset", help="generate the synthetic action dataset (H.264 MP4s + splits)")
    add_options(p, MakeDatasetJob)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from ..data.synthetic import CLASSES, make_dataset
    from ..errors import ConfigError

    args = config_from_args(MakeDatasetJob, args)
    if args.list_classes:
        for c in CLASSES.values():
            print(f"{c.name:16s} {c.group}" + (" (reverse)" if c.reverse else "") + (" (no flip)" if c.mirror_sensitive else ""))
        return 0
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    tic = time.perf_counter()
    if args.preset:
        from ..data.presets import make_preset_dataset

        for flag, value in (("--frames", args.frames), ("--img-size", args.img_size)):
            if value is not None:
                raise ConfigError(f"{flag} does not apply to --preset {args.preset}: use --duration-s / --short-side")
        out = make_preset_dataset(args.out or f"data/{args.preset}", args.preset, classes, args.videos_per_class,
                                  args.duration_s, args.short_side, args.fps, args.seed, progress=True)
        videos = [p for p in out.rglob("*") if p.suffix in (".mp4", ".webm")]
        size = sum(p.stat().st_size for p in videos) / 2**20
        print(f"wrote {out} in {time.perf_counter() - tic:.1f}s ({len(videos)} videos, {size:.1f} MiB; "
              f"{args.preset} layout and annotations, dataset.json)")
        return 0
    for flag, value in (("--duration-s", args.duration_s), ("--short-side", args.short_side)):
        if value is not None:
            raise ConfigError(f"{flag} needs --preset (kinetics or ssv2); without one use --frames / --img-size")
    out = make_dataset(args.out or "data/synthetic", classes, args.videos_per_class or 60, args.frames or 17,
                       args.img_size or 32, args.seed, args.fps or 8, args.val_fraction, args.test_fraction,
                       progress=True)
    print(f"wrote {out} in {time.perf_counter() - tic:.1f}s (dataset.json, classes.txt, train/val/test.csv)")
    return 0
