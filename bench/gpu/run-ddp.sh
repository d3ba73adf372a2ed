#!/usr/bin/env bash
# The `bench-ddp` step of scripts/run-gpu.sh (issue 7 item 6): data-parallel training images/s on 1 and 2 GPUs, Osprey
# (`Osprey.Bench train-ddp`, one process, one thread per GPU, NCCL) and torch DDP (train_ddp_torch.py under torchrun, one
# process per GPU), same model, per-GPU batch and size, fp32 and amp (each side: one process per GPU count, both precisions
# in it), one after the other in the same call; one table last.
#   bash run-ddp.sh BENCH_DLL RAW_DIR [python]
# OSPREY_DDP_PRECISIONS (default "fp32,amp"), OSPREY_DDP_SIZE (800), OSPREY_DDP_PER_GPU (4), OSPREY_DDP_ITERS (Osprey timed
# iterations, 6), OSPREY_DDP_TORCH_STEPS (10), OSPREY_DDP_ARGS (more Osprey options).
set -uo pipefail
DLL=$1; RAW=$2; PY=${3:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1   # NVLink multicast stays off
SIZE=${OSPREY_DDP_SIZE:-800}; PER=${OSPREY_DDP_PER_GPU:-4}
OUTJ="$RAW/ddp.jsonl"
rm -f "$OUTJ"
NG=$("$PY" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 1)
GPUS=1; [ "$NG" -ge 2 ] && GPUS=1,2
rc=0
PRECS=${OSPREY_DDP_PRECISIONS:-fp32,amp}
timeout 240 "$DOTNET_ROOT/dotnet" "$DLL" train-ddp --arch retinanet_resnet50_fpn --size "$SIZE" --per-gpu "$PER" --precision "$PRECS" \
  --warmup 2 --iters "${OSPREY_DDP_ITERS:-6}" --gpus "$GPUS" --json "$OUTJ" ${OSPREY_DDP_ARGS:-} > "$RAW/osprey-ddp.log" 2>&1 \
  || { echo "osprey side failed:"; tail -8 "$RAW/osprey-ddp.log"; rc=1; }
for N in ${GPUS//,/ }; do
  timeout 180 "$PY" -m torch.distributed.run --standalone --nproc_per_node "$N" "$HERE/train_ddp_torch.py" --per-gpu "$PER" \
    --size "$SIZE" --precision "$PRECS" --warmup 3 --steps "${OSPREY_DDP_TORCH_STEPS:-10}" --json "$OUTJ" > "$RAW/torch-ddp-$N.log" 2>&1 \
    || { echo "torch side failed on $N GPU(s):"; tail -8 "$RAW/torch-ddp-$N.log"; rc=1; }
done
"$PY" "$HERE/ddp_table.py" "$OUTJ"
exit $rc
