#!/usr/bin/env bash
# vidbench bench on several machines under SLURM: the same command on every node, one torchrun per
# node (srun --ntasks-per-node=1) with --nproc GPUs each, all meeting at a c10d rendezvous on the
# first node of the allocation. Rank 0 writes the rows (bench.csv, environment.json) into OUT, which
# must be on a file system every node sees; each row records nnodes, the world size (nproc), the
# strategy, the backend, the hosts of the processes and the network variables set (NCCL_SOCKET_IFNAME,
# NCCL_IB_HCA, ...: export them below where the cluster needs them).
#
#   sbatch --nodes=2 --gpus-per-node=8 benchmarks/slurm_bench.sh
#   MODELS=videomae_large BATCH=4 SCALING=strong sbatch --nodes=4 benchmarks/slurm_bench.sh --grad-checkpointing on
#
# Extra arguments go to `vidbench bench` (on every node). The one-process row of each configuration
# is measured first, on rank 0's node, and each multi-process row's scaling_efficiency is relative to it.
#SBATCH --job-name=vidbench-scale
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=01:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"

export MODELS=${MODELS:-videomae_base,vivit_m1_base}
export BATCH=${BATCH:-8}                       # per process (weak) or global (strong)
export SCALING=${SCALING:-weak}
export STRATEGY=${STRATEGY:-ddp,fsdp}
export PRECISION=${PRECISION:-bf16}
export DEVICE=${DEVICE:-cuda}
export OUT=${OUT:-results/scale_${SLURM_JOB_ID:-local}}
export GPUS_PER_NODE=${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-8}}
export RDZV_HOST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export RDZV_PORT=${RDZV_PORT:-29500}
# export NCCL_SOCKET_IFNAME=ib0 NCCL_IB_HCA=mlx5    # the cluster's interconnect, where NCCL does not find it

# SLURM_JOB_ID is also the rendezvous id (vidbench.bench.ddp.torchrun_argv): two jobs never meet
srun --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c '
  exec python -m vidbench bench --models "$MODELS" --mode train --device "$DEVICE" \
    --strategy "$STRATEGY" --precision "$PRECISION" --batch-size "$BATCH" --scaling "$SCALING" \
    --nproc "$GPUS_PER_NODE" --nnodes "$SLURM_NNODES" --node-rank "$SLURM_NODEID" \
    --rdzv-endpoint "$RDZV_HOST:$RDZV_PORT" --out "$OUT" --no-progress "$@"' bash "$@"
