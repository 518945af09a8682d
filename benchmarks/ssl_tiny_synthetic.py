"""Self-supervised vit_tiny backbones on frames of the generated video dataset, then video
accuracy of timesformer_tiny initialised from the best and the worst of them: what
results/ssl_tiny_synthetic holds, from a clone (about an hour on a 2-core CPU at the defaults).

    python benchmarks/ssl_tiny_synthetic.py --out results/ssl_tiny_synthetic

Steps (each a vidbench command of this checkout, printed before it runs; benchmarks/_commands.py):
1. `vidbench make-dataset --out DATA` unless DATA already holds a dataset (the defaults: 14
   classes x 60 videos of 17 frames at 32x32).
2. `vidbench ssl-eval --init random`: the random-init baseline row of ssl.csv.
3. `vidbench pretrain --method M` for every method, the same budget for each (5 epochs of 256
   frames a step, one warm-up epoch, each method's default heads and augmentations): a row of
   ssl.csv (kNN and linear probe on frames of the val split) and ssl_log.csv per epoch.
4. `vidbench train --model timesformer_tiny` from random init and `--init` the best and the
   worst backbone by linear probe (test split, 1 clip x 1 crop); each run's test row is copied
   into video_init.csv, with the run itself under OUT/video/<init>/.

Every command takes `--resume` where it can, so a stopped run continues where it was. A quick
check that it runs: `--videos-per-class 4 --epochs 1 --max-steps-per-epoch 1 --batch-size 8
--video-epochs 1 --methods byol,contrastive --data /tmp/ssl_data --out /tmp/ssl_check`.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import pandas as pd
from _commands import dataset_parser, ensure_dataset, vidbench

METHODS = ("byol", "simclr", "simclr_v2", "wmse", "arb", "instdisc", "contrastive")
# vit_tiny at the tiny video models' geometry: 32x32 frames, patch 8, embed 192, 3 heads, depth 4
BACKBONE = ("--backbone", "vit_tiny", "--img-size", "32", "--patch-size", "8", "--depth", "4")
VIDEO_MODEL = "timesformer_tiny"


def ranked_by_linear_probe(out: Path, methods: Sequence[str]) -> List[str]:
    """The pretrained methods of ssl.csv, best linear-probe top-1 first (last row per method)."""
    ssl = pd.read_csv(out / "ssl.csv").drop_duplicates("method", keep="last")
    ssl = ssl[ssl["method"].isin(methods) & (ssl["status"] == "ok")]
    return list(ssl.sort_values("linear_top1", ascending=False)["method"])


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = dataset_parser(__doc__, "results/ssl_tiny_synthetic")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods")
    p.add_argument("--epochs", type=int, default=5, help="pretraining epochs per method")
    p.add_argument("--batch-size", type=int, default=256, help="pretraining batch")
    p.add_argument("--max-steps-per-epoch", type=int, default=0, help="cap on pretraining steps per epoch (0: all)")
    p.add_argument("--video-epochs", type=int, default=5, help=f"{VIDEO_MODEL} training epochs")
    p.add_argument("--video-batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch threads of every command")
    args = p.parse_args(argv)
    out, data = Path(args.out), Path(args.data)
    methods = [m for m in args.methods.split(",") if m]
    threads = ["--threads", str(args.threads)]
    cap = ["--max-steps-per-epoch", str(args.max_steps_per_epoch)] if args.max_steps_per_epoch else []

    ensure_dataset(data, args.videos_per_class)
    have = pd.read_csv(out / "ssl.csv") if (out / "ssl.csv").exists() else pd.DataFrame(columns=["method"])
    if not (have["method"] == "random").any():
        vidbench(["ssl-eval", "--init", "random", *BACKBONE, "--data", str(data), "--out", str(out), *threads],
                 args.threads)
    for method in methods:
        vidbench(["pretrain", "--method", method, *BACKBONE, "--data", str(data), "--out", str(out),
                  "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), *cap, *threads, "--resume",
                  "--no-progress"], args.threads)

    ranked = ranked_by_linear_probe(out, methods)
    inits = ["random"] + list(dict.fromkeys([ranked[0], ranked[-1]]))  # best, worst (once if they are one)
    rows = []
    for init in inits:
        run = out / "video" / init
        extra = [] if init == "random" else ["--init", str(out / f"{init}.safetensors")]
        vidbench(["train", "--model", VIDEO_MODEL, "--data", str(data), "--out", str(run),
                  "--epochs", str(args.video_epochs), "--batch-size", str(args.video_batch_size), "--lr", "1e-3",
                  "--workers", "0", "--eval-views", "1x1", "--no-progress", "--resume", *extra], args.threads)
        acc = pd.read_csv(run / "accuracy.csv")
        rows.append(acc[acc["split"] == "test"].iloc[[-1]])
    pd.concat(rows, ignore_index=True).to_csv(out / "video_init.csv", index=False)
    print(f"wrote {out / 'ssl.csv'}, {out / 'ssl_log.csv'}, {out / 'video_init.csv'}")


if __name__ == "__main__":
    main()
