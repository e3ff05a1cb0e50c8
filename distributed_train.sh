#!/usr/bin/env bash
# Train on NUM_PROC processes per node with torchrun (DDP: nccl on CUDA, gloo on CPU).
#
#   ./distributed_train.sh NUM_PROC DATA_DIR [train.py flags]
#   ./distributed_train.sh 8 /data/imagenet -c configs/dynamixer_s_in1k.yaml
#
# Environment:
#   NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT   multi-node training (set them on every node)
#   RDZV_BACKEND=c10d, RDZV_ID   elastic multi-node rendezvous at MASTER_ADDR:MASTER_PORT (torchrun's
#                                recommendation for restarts across nodes; node ranks are then assigned
#                                by the rendezvous and NODE_RANK is not used)
#   MAX_RESTARTS=N (default 0)   restart failed workers up to N times; a restarted run resumes from its
#                                latest checkpoint (train.py: TORCHELASTIC_RESTART_COUNT > 0 -> --resume auto).
#                                Add --recovery-interval STEPS to lose at most STEPS steps, and
#                                --experiment NAME on multi-node runs.
#   PYTHON (default python)      the interpreter that has torch, timm and dynamixer
set -euo pipefail
if [ "$#" -lt 2 ]; then
  echo "usage: $0 NUM_PROC DATA_DIR [train.py flags]" >&2
  exit 2
fi
NUM_PROC=$1
shift
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NNODES=${NNODES:-1}
MAX_RESTARTS=${MAX_RESTARTS:-0}

if [ "$NNODES" = "1" ] && [ -z "${MASTER_ADDR:-}" ] && [ -z "${MASTER_PORT:-}" ]; then
  # one node: a private rendezvous on a free port, so several jobs can share a machine
  RDZV=(--standalone)
elif [ "${RDZV_BACKEND:-static}" = "c10d" ]; then
  RDZV=(--nnodes="$NNODES" --rdzv-backend=c10d --rdzv-endpoint="${MASTER_ADDR:-127.0.0.1}:${MASTER_PORT:-29500}"
        --rdzv-id="${RDZV_ID:-dynamixer}")
else
  RDZV=(--nnodes="$NNODES" --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}"
        --master_port="${MASTER_PORT:-29500}")
fi
exec "${PYTHON:-python}" -m torch.distributed.run "${RDZV[@]}" --nproc_per_node="$NUM_PROC" \
  --max-restarts="$MAX_RESTARTS" "$HERE/train.py" "$@"
