"""vidbench make-dataset: the generated action dataset (static vs temporal classes, H.264 MP4s);
with --preset, the same classes at a real dataset's size, encoding and layout (kinetics, ssv2)."""
from __future__ import annotations

import argparse

from ._args import positive_int
from ._options import add_deprecated_flag

PRESET_NAMES = ("kinetics", "ssv2")  # vidbench.data.presets.PRESETS (not imported here: argparse stays light)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("make-dataset", help="generate the synthetic action dataset (H.264 MP4s + splits)")
    p.add_argument("--out", default=None, help="output directory (default: data/synthetic, or data/<preset>)")
    p.add_argument("--preset", choices=sorted(PRESET_NAMES), default=None,
                   help="real-size videos in a real dataset's layout: kinetics (10 s, 30 fps, short side 256, "
                        "H.264 with B-frames, train/<class>/<ytid>_<start>_<end>.mp4 + train.csv ...) or ssv2 "
                        "(VP9 WebM, 12 fps, height 240, 2-6 s, 20bn-something-something-v2/<id>.webm + labels.json, "
                        "train.json ...)")
    p.add_argument("--classes", default=None,
                   help="comma-separated class names (default: all 14; see --list-classes)")
    p.add_argument("--videos-per-class", type=positive_int, default=None, help="[60; a preset: 3]")
    p.add_argument("--frames", type=positive_int, default=None,
                   help="frames per video (odd keeps test clips symmetric) [17; not with --preset]")
    p.add_argument("--img-size", type=positive_int, default=None,
                   help="frame side in pixels, even [32; not with --preset] (deprecated alias: --size)")
    add_deprecated_flag(p, "--size", dest="img_size", new="--img-size", type=positive_int)
    p.add_argument("--duration-s", type=float, default=None,
                   help="--preset only: seconds per video [kinetics 10; ssv2 2-6, drawn per video]")
    p.add_argument("--short-side", type=positive_int, default=None,
                   help="--preset only: frame height in pixels, even [kinetics 256; ssv2 240]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=positive_int, default=None, help="[8; kinetics 30; ssv2 12]")
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--test-fraction", type=float, default=0.15)
    p.add_argument("--list-classes", action="store_true", help="print the classes and their groups, then exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from ..data.synthetic import CLASSES, make_dataset
    from ..errors import ConfigError

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
