#!/usr/bin/env bash
# The prepared GPU check: one script, under 8 minutes on one GPU, that writes its rows under
# results/<gpu-name>/ (bench/, max_batch/, compare/ and a report over all three). Run it whenever
# a GPU is at hand and commit the rows; the project never needs a GPU to pass its tests.
#
#   bash benchmarks/gpu_check.sh            # on a CUDA machine
#   SMOKE=1 bash benchmarks/gpu_check.sh    # the same commands on CPU with tiny models (checks the script)
#
# 1. paper-size inference and training rows, fp32 and bf16, batch 8, SDPA's own choice of kernel;
# 2. every attention backend (flash, efficient, cudnn, math, reference, flex) on three models whose
#    attention differs (joint, divided space-time, shifted windows with a mask), bf16;
# 3. the largest training batch that fits the GPU for two models, bf16;
# 4. the implementation comparison (timm, torchvision, Hugging Face) at batch 8, fp32;
# 5. DDP against FSDP2 training rows on every GPU of the machine (torchrun, NCCL); one GPU cannot
#    shard over processes, so there the stage says it is skipped and why;
# 6. the end-to-end step (`bench --data`): the model fed by the real loader beside the model alone
#    and the loader alone, with the wait share and the CPU cores per GPU the loader needs;
# 7. GPU decoding (torchcodec on CUDA) against torchcodec on the CPU, and the uint8 / float
#    transform pair (data_loading_cost.csv; where CUDA or torchcodec is missing the GPU row is a
#    skipped row with the reason).
# Stages 6 and 7 read one small Kinetics-preset tree (12 videos of 4 s), made here and removed after.
# Each stage is a results directory of its own; a stage that fails leaves its rows and the
# script goes on (each row is written as it is measured; a failing row says why).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [[ "${SMOKE:-0}" == 1 ]]; then
  device=cpu; name=smoke_cpu
  models=vit_tiny,vivit_m1_tiny,timesformer_tiny,swin3d_tiny
  backend_models=vivit_m1_tiny,timesformer_tiny,swin3d_tiny
  max_models=vit_tiny; max_extra=(--mem-limit 1.2GB --max-batch-cap 4)
  compare_models=(vit_base); compare_extra=(--img-size 32 --frames 8 --batch-size 1 --rounds 1 --iters 1 --warmup 1)
  iters=(--warmup 1 --iters 2); batch=2
  decode_data=(--classes red_disc,move_left --videos-per-class 3 --duration-s 3 --short-side 64)
  gpus=2; fsdp_models=vit_tiny,videomae_tiny; fsdp_extra=(--threads 1)
  e2e_models=videomae_tiny; e2e_extra=(--frames 8 --img-size 32 --precision fp32 --workers 1)
else
  device=cuda
  name=$(python -c "import torch; print(torch.cuda.get_device_name(0).lower().replace(' ', '_').replace('/', '_'))") || {
    echo "gpu_check.sh: no CUDA device (SMOKE=1 runs the script on CPU)" >&2; exit 2; }
  models=vit_base,vivit_m1_base,timesformer_base,mvit_b_16x4,mvitv2_s_16x4,swin3d_t,videomae_base
  backend_models=vivit_m1_base,timesformer_base,swin3d_t
  max_models=videomae_base,timesformer_base; max_extra=()
  compare_models=(vit_base vivit_m1_base timesformer_base mvit_b_16x4 mvitv2_s_16x4 swin3d_t videomae_base)
  compare_extra=(--batch-size 8 --rounds 3)
  iters=(--warmup 3 --iters 10); batch=8
  decode_data=(--classes red_disc,move_left --videos-per-class 6 --duration-s 4)
  gpus=$(python -c "import torch; print(torch.cuda.device_count())")
  fsdp_models=videomae_base,timesformer_base; fsdp_extra=(--precision bf16)
  e2e_models=videomae_base,timesformer_base
  e2e_extra=(--frames 16 --img-size 224 --precision bf16 --workers "$(python -c "import os; print(min(8, os.cpu_count() or 1))")")
fi
out=${OUT:-results/$name}
stamp=$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out"
log() { echo "[gpu_check $(date -u +%H:%M:%S)] $*" >&2; }
start=$SECONDS

log "1/7 paper-size rows -> $out/bench"
python -m vidbench bench --device "$device" --models "$models" --batch-size "$batch" --precision fp32,bf16 \
  --mode infer,train "${iters[@]}" --out "$out/bench" --resume --no-progress --timeout-s 120 --detail

log "2/7 attention backends -> $out/backends"
python -m vidbench bench --device "$device" --models "$backend_models" --batch-size "$batch" --precision bf16 \
  --mode infer,train --attn-backend auto,flash,efficient,cudnn,math,reference,flex "${iters[@]}" \
  --out "$out/backends" --resume --no-progress --timeout-s 120

log "3/7 largest batch -> $out/max_batch"
python -m vidbench bench --device "$device" --models "$max_models" --batch-size max --precision bf16 --mode train \
  --warmup 2 --iters 5 "${max_extra[@]}" --out "$out/max_batch" --resume --no-progress

log "4/7 implementations side by side -> $out/compare"
python -m vidbench compare "${compare_models[@]}" --device "$device" --mode infer,train "${compare_extra[@]}" \
  --out "$out/compare-$stamp" --no-progress

if (( gpus >= 2 )); then
  log "5/7 DDP and FSDP2 on $gpus processes -> $out/fsdp"
  python -m vidbench bench --device "$device" --models "$fsdp_models" --mode train --nproc "$gpus" \
    --strategy ddp,fsdp --batch-size "$batch" --detail "${fsdp_extra[@]}" "${iters[@]}" --out "$out/fsdp" --resume \
    --no-progress
else
  log "5/7 DDP and FSDP2: skipped, $gpus GPU (FSDP shards over processes, one per GPU)"
fi

tree="$out/data/kinetics"
python -m vidbench make-dataset --preset kinetics "${decode_data[@]}" --out "$tree" >/dev/null || log "no dataset"

log "6/7 the end-to-end step -> $out/e2e"
python -m vidbench bench --device "$device" --data "$tree" --models "$e2e_models" --mode infer,train \
  --batch-size "$batch" "${e2e_extra[@]}" "${iters[@]}" --out "$out/e2e" --resume --no-progress

log "7/7 GPU decoding -> $out/data_loading"
python benchmarks/data_loading.py --data "$tree" --loaders vidbench --backends pyav \
  --sampling dense16x4 --workers 0 --passes 3 --views none --profile-clips 0 --cost gpu-decode transform \
  --out "$out/data_loading"
rm -rf "$out/data"

runs=("$out/bench" "$out/backends" "$out/max_batch" "$out/compare-$stamp")
[[ -d "$out/fsdp" ]] && runs+=("$out/fsdp")
[[ -f "$out/e2e/e2e.csv" ]] && runs+=("$out/e2e")
python -m vidbench report "${runs[@]}" --out "$out"
log "done in $((SECONDS - start)) s: $out/report.md"
