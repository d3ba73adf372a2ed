#!/usr/bin/env bash
# The `bench-infer` step of scripts/run-gpu.sh: for SSD300-VGG16 (batch 64, 480x640 images) and RetinaNet-R50-FPN
# (batch 16, 800x800), bench/gpu/infer_bench.py writes the shared weights and images and times torchvision, then
# `Osprey.Bench gpu-infer` times Osprey on the same files and prints the comparison table.
#   bash run-infer.sh BENCH_DLL RAW_DIR [python]
set -uo pipefail
DLL=$1; RAW=$2; PY=${3:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
RUNS=${OSPREY_DETECT_RUNS:-20}
rc=0
for spec in "ssd300_vgg16 64 480 640" "retinanet_resnet50_fpn 16 800 800"; do
  set -- $spec
  A=$1 N=$2 H=$3 W=$4
  timeout 240 "$PY" "$HERE/infer_bench.py" --arch "$A" --batch "$N" --height "$H" --width "$W" --runs "$RUNS" \
    --weights "$RAW/$A.pth" --images "$RAW/$A.u8" --json "$RAW/torch-$A.json" > "$RAW/torch-$A.log" 2>&1 \
    || { echo "torch side failed for $A:"; tail -5 "$RAW/torch-$A.log"; rc=1; }
  [ -f "$RAW/$A.pth" ] || continue
  timeout 240 "$DOTNET_ROOT/dotnet" "$DLL" gpu-infer --arch "$A" --batch "$N" --height "$H" --width "$W" --runs "$RUNS" \
    --weights "$RAW/$A.pth" --images "$RAW/$A.u8" --json "$RAW/osprey-$A.json" --torch "$RAW/torch-$A.json" || rc=1
  rm -f "$RAW/$A.u8" "$RAW/$A.pth"
done
exit $rc
