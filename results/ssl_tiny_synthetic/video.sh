#!/usr/bin/env bash
# Scratch: video accuracy of timesformer_tiny from random init and from the best / worst SSL backbones,
# with branch data's `vidbench train` (a snapshot of its uncommitted work, 12:06 UTC) reading branch ssl's files.
set -u
cd /tmp/ssl_fig/data_snap
export OMP_NUM_THREADS=1
R=/work/wt/ssl/results/ssl_tiny_synthetic
E=${E:-5}
for init in random byol contrastive; do
  extra=""; [ $init != random ] && extra="--init $R/$init.safetensors"
  python -m vidbench train --model timesformer_tiny --data /tmp/ssl_fig/synthetic --out /tmp/ssl_fig/video/$init \
     --epochs $E --workers 0 --no-progress --eval-views 1x1 $extra
done
