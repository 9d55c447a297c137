#!/bin/bash
# PPO on several GPU nodes under SLURM: one torchrun per node starts one rank per GPU, and the
# nodes join through torch's c10d rendezvous on the first node (README: Scaling out).
#
#   sbatch examples/slurm_train.sh                        # 4 nodes x 8 GPUs, the defaults below
#   sbatch --nodes=2 examples/slurm_train.sh --max-minutes 30   # extra flags go to `escape-room train`
#
# --num-envs is the run's total, split evenly among the ranks: this script asks for
# AGENTS_PER_GPU agents on every GPU. Rank 0 (on the first node) prints and writes
# runs/slurm_<job id>/ (progress.csv, args.json with world_size, policy.pt).
#SBATCH --job-name=escape-room-train
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=00:30:00
#SBATCH --output=%x-%j.log

set -euo pipefail

GPUS_PER_NODE=${GPUS_PER_NODE:-8}
AGENTS_PER_GPU=${AGENTS_PER_GPU:-16384}
PORT=${PORT:-29500}
HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
NUM_ENVS=$((AGENTS_PER_GPU * GPUS_PER_NODE * SLURM_NNODES))

# --kill-on-bad-exit: a node whose torchrun fails ends the job's other nodes at once. Within a
# node torchrun stops the other ranks when one fails; a rank that dies on another node ends the
# survivors within --dist-timeout (NCCL's watchdog). join_timeout bounds the wait for late nodes.
srun --kill-on-bad-exit=1 torchrun \
    --nnodes="$SLURM_NNODES" \
    --nproc_per_node="$GPUS_PER_NODE" \
    --rdzv-backend=c10d \
    --rdzv-endpoint="$HEAD_NODE:$PORT" \
    --rdzv-id="$SLURM_JOB_ID" \
    --rdzv-conf=join_timeout=600 \
    -m escape_room_env train \
    --device cuda \
    --num-envs "$NUM_ENVS" \
    --dist-timeout 300 \
    --no-progress-bar \
    --save-dir runs \
    --run-name "slurm_$SLURM_JOB_ID" \
    "$@"
