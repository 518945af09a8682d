#!/usr/bin/env bash
# The closing-note figures: every method, same budget, vit_tiny with the tiny video overrides.
set -u
cd /tmp/ssl_fig/snap
OUT=/work/wt/ssl/results/ssl_tiny_synthetic
DATA=/tmp/ssl_fig/frames
TINY="--backbone vit_tiny --img-size 32 --patch-size 8 --depth 4"
python -m vidbench ssl-eval --init random $TINY --data $DATA --out $OUT --threads 1
for m in byol simclr simclr_v2 wmse arb instdisc contrastive; do
  python -m vidbench pretrain --method $m $TINY --data $DATA --out $OUT --epochs 5 --batch-size 256 --threads 1 --resume --no-progress
done
