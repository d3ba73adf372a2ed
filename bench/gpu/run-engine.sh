#!/usr/bin/env bash
# The `bench-engine` step of scripts/run-gpu.sh (issue 6 item 8): for SSD300-VGG16 (batch 64) and RetinaNet-R50-FPN
# (800x800, batch 16), fp16: `osprey bench` with 1 and 2 execution contexts (each its own stream, CUDA graphs), which
# also writes the weights it used; then torchvision on those weights, eager and torch.compile, in the same call; then
# one comparison table (engine_compare.py).
#   bash run-engine.sh OSPREY RAW_DIR [python]
# OSPREY_ENGINE_SECONDS (default 5): measuring time per run; OSPREY_COMPILE_TIMEOUT (default 240): seconds allowed for
# torch.compile mode max-autotune (compile + measurement); past it the compiled side is re-run with mode
# "reduce-overhead" (CUDA graphs without autotuning), bounded the same way, and the table says so. OSPREY_ENGINE_BUDGET
# (default 480): seconds for the whole step; the compiles (run last) get what is left.
set -uo pipefail
O=$1; RAW=$2; PY=${3:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
SECS=${OSPREY_ENGINE_SECONDS:-5}
CT=${OSPREY_COMPILE_TIMEOUT:-240}
DEVICES=${OSPREY_ENGINE_DEVICES:-0}
# inductor's autotuning backends for convolutions and matrix products: Triton templates cost 5 to 20 s of benchmarking
# per shape on the H100 (RetinaNet-R50-FPN: over 190 s), so by default only ATen (cuDNN/cuBLAS) choices are benchmarked;
# OSPREY_TORCH_AUTOTUNE=ATEN,TRITON gives full max-autotune where time allows
AUTOTUNE=${OSPREY_TORCH_AUTOTUNE:-ATEN}
rc=0
results=()
T0=$SECONDS
BUDGET=${OSPREY_ENGINE_BUDGET:-480}   # seconds for the whole step: compiles get what is left, the table is always printed
left() { echo $(( BUDGET - (SECONDS - T0) )); }
SPECS=("ssd300_vgg16 64 300" "retinanet_resnet50_fpn 16 800")
for spec in "${SPECS[@]}"; do
  set -- $spec
  A=$1 N=$2 S=$3
  for st in 1 2; do
    timeout 240 "$O" bench --arch "$A" --size "$S" --batch "$N" --precision fp16 --seconds "$SECS" --streams "$st" --devices "$DEVICES" \
      --save-weights "$RAW/$A.safetensors" --json "$RAW/engine-$A-s$st.json" > "$RAW/engine-$A-s$st.log" 2>&1 \
      || { echo "osprey bench failed for $A --streams $st:"; tail -5 "$RAW/engine-$A-s$st.log"; rc=1; }
    results+=("$RAW/engine-$A-s$st.json")
  done
  [ -f "$RAW/$A.safetensors" ] || { rc=1; continue; }
  timeout 120 "$PY" "$HERE/engine_torch.py" --arch "$A" --weights "$RAW/$A.safetensors" --batch "$N" --size "$S" --seconds "$SECS" \
    --mode eager --json "$RAW/torch-$A-eager.json" > "$RAW/torch-$A-eager.log" 2>&1 \
    || { echo "torch eager failed for $A:"; tail -5 "$RAW/torch-$A-eager.log"; rc=1; }
  results+=("$RAW/torch-$A-eager.json")
done
for spec in "${SPECS[@]}"; do
  set -- $spec
  A=$1 N=$2 S=$3
  [ -f "$RAW/$A.safetensors" ] || continue
  results+=("$RAW/torch-$A-compile.json")
  t=$(left); [ "$t" -gt "$CT" ] && t=$CT
  if [ "$t" -lt 30 ]; then echo "no time left for torch.compile of $A"; rc=1; continue; fi
  if ! timeout "$t" "$PY" "$HERE/engine_torch.py" --arch "$A" --weights "$RAW/$A.safetensors" --batch "$N" --size "$S" --seconds "$SECS" \
      --mode compile --compile-mode max-autotune --conv-autotune "$AUTOTUNE" --gemm-autotune "$AUTOTUNE" --json "$RAW/torch-$A-compile.json" > "$RAW/torch-$A-compile.log" 2>&1; then
    echo "torch.compile max-autotune for $A did not finish within $t s (or failed):"; tail -3 "$RAW/torch-$A-compile.log"
    t=$(left); [ "$t" -gt "$CT" ] && t=$CT
    if [ "$t" -lt 30 ]; then echo "no time left for torch.compile reduce-overhead of $A"; rc=1; continue; fi
    timeout "$t" "$PY" "$HERE/engine_torch.py" --arch "$A" --weights "$RAW/$A.safetensors" --batch "$N" --size "$S" --seconds "$SECS" \
      --mode compile --compile-mode reduce-overhead --json "$RAW/torch-$A-compile.json" > "$RAW/torch-$A-compile-ro.log" 2>&1 \
      || { echo "torch.compile reduce-overhead failed for $A:"; tail -5 "$RAW/torch-$A-compile-ro.log"; rc=1; }
  fi
done
rm -f "$RAW"/*.safetensors
cat "$RAW"/engine-*-s1.log
"$PY" "$HERE/engine_table.py" "$RAW"/engine-*-s1.json
echo
"$PY" "$HERE/engine_compare.py" "${results[@]}"
exit $rc
