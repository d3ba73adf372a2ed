#!/usr/bin/env bash
# The `bench-train` step of scripts/run-gpu.sh (issue 7 item 9): training images/s of torchvision (bench/gpu/train_bench.py,
# torch.amp) and Osprey (`Osprey.Bench gpu-train`) on the same architecture, batch, image size, frozen batch norm and loss,
# one after the other in the same call, then one table (train_table.py).
#   bash run-train.sh BENCH_DLL RAW_DIR [python]      OSPREY_TRAIN_SPECS overrides the list ("arch batch size precision;...");
#   OSPREY_TRAIN_PROFILE=N adds N profiled steps on both sides (step profiles printed after the table).
set -uo pipefail
DLL=$1; RAW=$2; PY=${3:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
SPECS=${OSPREY_TRAIN_SPECS:-"retinanet_resnet50_fpn 8 800 amp;ssd300_vgg16 64 300 amp;retinanet_resnet50_fpn 8 800 fp32;ssd300_vgg16 64 300 fp32"}
STEPS=${OSPREY_TRAIN_STEPS:-20}
PROF=${OSPREY_TRAIN_PROFILE:-0}
OUTJ="$RAW/train.jsonl"
rm -f "$OUTJ"
rc=0
IFS=';' read -ra LIST <<< "$SPECS"
for spec in "${LIST[@]}"; do
  set -- $spec
  A=$1 N=$2 S=$3 P=$4
  timeout 150 "$PY" "$HERE/train_bench.py" --arch "$A" --batch "$N" --size "$S" --precision "$P" --steps "$STEPS" --profile "$PROF" \
    > "$RAW/torch-train-$A-$P.log" 2>&1 || { echo "torch side failed for $A $P:"; tail -5 "$RAW/torch-train-$A-$P.log"; rc=1; }
  grep '^{' "$RAW/torch-train-$A-$P.log" >> "$OUTJ"
  timeout 150 "$DOTNET_ROOT/dotnet" "$DLL" gpu-train --arch "$A" --batch "$N" --size "$S" --precision "$P" --steps "$STEPS" --profile "$PROF" \
    --json "$OUTJ" > "$RAW/osprey-train-$A-$P.log" 2>&1 || { echo "osprey side failed for $A $P:"; tail -8 "$RAW/osprey-train-$A-$P.log"; rc=1; }
done
"$PY" "$HERE/train_table.py" "$OUTJ"
if [ "$PROF" -gt 0 ]; then
  for spec in "${LIST[@]}"; do
    set -- $spec
    echo; sed -n '/step profile/,$p' "$RAW/osprey-train-$1-$4.log"
    echo; sed -n '/step profile/,$p' "$RAW/torch-train-$1-$4.log" | head -40
  done
fi
exit $rc
