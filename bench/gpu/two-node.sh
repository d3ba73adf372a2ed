#!/usr/bin/env bash
# The `ddp-nodes` step of scripts/run-gpu.sh (issue 7 item 6, multi-node): `osprey train` as two "nodes" on one host, two
# processes that own one GPU each and meet through the TCP rendezvous (--nodes 2 --node-rank R --master 127.0.0.1:PORT),
# against the same run in one process on both GPUs (--devices 0,1). Same data (coco128 from OSPREY_SHARED_DIR), seed,
# global batch and iterations, so the two runs compute the same ranks and slices: two_node_check.py compares the logged
# losses (each node logs its own rank's loss; their mean is the one-process run's loss) and node 0's checkpoint with the
# one-process checkpoint (model tensors within NcclGpuTests' tolerance; not bit-identical in general, because each process
# times its own cuDNN backward algorithms).
#   bash two-node.sh OSPREY_APP RAW_DIR [python] [precision]
set -uo pipefail
APP=$1; RAW=$2; PY=${3:-python3}; PREC=${4:-fp32}
HERE=$(cd "$(dirname "$0")" && pwd)
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
DATA=${OSPREY_SHARED_DIR:?set OSPREY_SHARED_DIR}/data/coco128
D="$RAW/two-node"; rm -rf "$D"; mkdir -p "$D/one" "$D/n0" "$D/n1"
COMMON=(--arch retinanet_resnet18_fpn --annotations "$DATA/annotations/instances_train2017.json" --images "$DATA/train2017"
  --batch 4 --iters 6 --lr 0.01 --warmup 2 --resize 320 --max-size 320 --seed 3 --checkpoint-iters 100 --precision "$PREC")
t0=$SECONDS
timeout 120 "$APP" train "$D/one/model.safetensors" "${COMMON[@]}" --devices 0,1 --log-dir "$D/one" > "$D/one.log" 2>&1
a=$?
echo "one process, --devices 0,1: exit $a ($((SECONDS - t0)) s)"
PORT=$((29500 + RANDOM % 400))
t0=$SECONDS
timeout 150 "$APP" train "$D/n1/model.safetensors" "${COMMON[@]}" --device cuda:1 --nodes 2 --node-rank 1 --master "127.0.0.1:$PORT" --log-dir "$D/n1" > "$D/n1.log" 2>&1 &
p1=$!
timeout 150 "$APP" train "$D/n0/model.safetensors" "${COMMON[@]}" --device cuda:0 --nodes 2 --node-rank 0 --master "127.0.0.1:$PORT" --log-dir "$D/n0" > "$D/n0.log" 2>&1
b=$?
wait $p1; c=$?
echo "two processes (--nodes 2, rendezvous 127.0.0.1:$PORT): node 0 exit $b, node 1 exit $c ($((SECONDS - t0)) s)"
for f in one n0 n1; do echo "--- $f.log (tail)"; tail -n 4 "$D/$f.log"; done
[ $a -eq 0 ] && [ $b -eq 0 ] && [ $c -eq 0 ] || exit 1
"$PY" "$HERE/two_node_check.py" "$D"
