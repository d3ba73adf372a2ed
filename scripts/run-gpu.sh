#!/usr/bin/env bash
# Runs on the GPU host, from a pack built by scripts/pack-gpu.sh (no .NET needed there):
#   bash PACK/run-gpu.sh [steps...]   steps: info doctor tests bench-core bench-libs bench-detect bench-infer bench-engine bench-ddp ddp-nodes bench-train bench-optim profile-engine (default: all but bench-detect, bench-infer and bench-engine, in that order)
# Unpacks the runtime and the apps, then runs each step with its output under $OUT (default ./gpu-results),
# eight files at most: info.txt, doctor.txt, tests.txt + tests.xml + tests.html (xunit), bench.md (the
# benchmark tables: gpu-core, then gpu-libs), bench-raw.tar.gz (raw JSON and logs of both sides), summary.txt.
# Prints a summary table last. Exit status: non-zero if any step failed. OSPREY_XUNIT_ARGS adds xunit filters to the
# tests step (e.g. "-class Osprey.Tests.Cuda.DetectionGpuTests").
set -uo pipefail
PACK=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$PWD/gpu-results}
mkdir -p "$OUT"
WORK=${OSPREY_GPU_WORK:-/tmp/osprey-gpu}
rm -rf "$WORK/app" && mkdir -p "$WORK/app"
tar -xJf "$PACK/dotnet.tar.xz" -C "$WORK"
tar -xJf "$PACK/app.tar.xz" -C "$WORK/app"
export DOTNET_ROOT="$WORK/dotnet" DOTNET_ROLL_FORWARD=Major DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
export OSPREY_CACHE_DIR=${OSPREY_CACHE_DIR:-$WORK/cache}
PY=${PYTHON:-python3}
rm -f "$OUT/bench.md"
RAW="$WORK/raw"
rm -rf "$RAW" && mkdir -p "$RAW"
export PYTHONUNBUFFERED=1
STEPS=("$@")
[ ${#STEPS[@]} -eq 0 ] && STEPS=(info doctor tests bench-core bench-libs)
SUMMARY=()
FAILED=0

run_step() {
  local name=$1; shift
  local t0=$SECONDS
  echo "=== $name: $*"
  "$@"
  local rc=$?
  SUMMARY+=("$(printf '| %-11s | %4s | %5ss |' "$name" "$rc" "$((SECONDS - t0))")")
  [ "$rc" -ne 0 ] && FAILED=1
  return 0
}

for step in "${STEPS[@]}"; do
  case "$step" in
    info) run_step info bash -c "'$WORK/app/osprey/osprey' info 2>&1 | tee '$OUT/info.txt'; exit \${PIPESTATUS[0]}" ;;
    doctor) run_step doctor bash -c "'$WORK/app/osprey/osprey' doctor 2>&1 | tee '$OUT/doctor.txt'; exit \${PIPESTATUS[0]}" ;;
    tests) run_step tests bash -c "cd '$WORK/app/tests' && '$DOTNET_ROOT/dotnet' xunit.console.dll Osprey.Tests.dll \
        -xml '$OUT/tests.xml' -html '$OUT/tests.html' -parallel none -noshadow ${OSPREY_XUNIT_ARGS:-} > '$OUT/tests.txt' 2>&1; rc=\$?; \
        grep -E '\\[FAIL\\]|Total:' '$OUT/tests.txt' | head -60; exit \$rc" ;;
    bench-core) run_step bench-core bash -c "'$PY' '$PACK/bench/gpu/core_bench.py' > '$RAW/torch-core.json' || echo 'torch side failed' >&2; \
        '$DOTNET_ROOT/dotnet' '$WORK/app/bench/Osprey.Bench.dll' gpu-core --torch '$RAW/torch-core.json' 2>&1 | tee -a '$OUT/bench.md'; exit \${PIPESTATUS[0]}" ;;
    # cuBLASLt/cuDNN benchmarks (cuda-libs): Osprey's gpu-libs mode, then torch_libs.py, then the comparison table
    bench-libs) run_step bench-libs bash -c "cd '$PACK/bench/gpu' && \
        timeout 200 '$DOTNET_ROOT/dotnet' '$WORK/app/bench/Osprey.Bench.dll' gpu-libs --convs resnet50_convs.json --out '$RAW/osprey-libs.jsonl' > '$RAW/osprey-libs.log' 2>&1; a=\$?; \
        timeout 60 '$DOTNET_ROOT/dotnet' '$WORK/app/bench/Osprey.Bench.dll' gpu-libs --tf32 --out '$RAW/osprey-libs.jsonl' >> '$RAW/osprey-libs.log' 2>&1; b=\$?; \
        timeout 200 '$PY' torch_libs.py --convs resnet50_convs.json --out '$RAW/torch-libs.jsonl' > '$RAW/torch-libs.log' 2>&1; c=\$?; \
        echo; '$PY' compare.py '$RAW/osprey-libs.jsonl' '$RAW/torch-libs.jsonl' | tee -a '$OUT/bench.md'; \
        echo \"gpu-libs exit \$a, gpu-libs --tf32 exit \$b, torch_libs.py exit \$c\"; [ \$a -eq 0 ] && [ \$b -eq 0 ] && [ \$c -eq 0 ]" ;;
    # GPU post-processing (gpu-post): Osprey's gpu-detect writes the inputs, detect_bench.py times torchvision on them
    bench-detect) run_step bench-detect bash -c "mkdir -p '$RAW/detect' && \
        '$DOTNET_ROOT/dotnet' '$WORK/app/bench/Osprey.Bench.dll' gpu-detect --dir '$RAW/detect' > '$RAW/osprey-detect.log' 2>&1; a=\$?; \
        '$PY' '$PACK/bench/gpu/detect_bench.py' '$RAW/detect' 2>&1 | tee -a '$OUT/bench.md'; b=\${PIPESTATUS[0]}; \
        cat '$RAW/osprey-detect.log'; exit \$((a | b))" ;;
    # end-to-end detection (issue 4 item 7): torchvision and Osprey on the same weights and images, same call
    bench-infer) run_step bench-infer bash -c "bash '$PACK/bench/gpu/run-infer.sh' '$WORK/app/bench/Osprey.Bench.dll' '$RAW' '$PY' 2>&1 | tee -a '$OUT/bench.md'; exit \${PIPESTATUS[0]}" ;;
    # inference engine (issue 6): `osprey bench` on seeded weights, fp16, CUDA graphs, 1 and 2 contexts; SSD300-VGG16 b64 and
    # RetinaNet-R50-FPN 800x800 b16; torchvision on the same weights (eager, torch.compile) in the same call (bench/gpu/run-engine.sh)
    bench-engine) run_step bench-engine bash -c "bash '$PACK/bench/gpu/run-engine.sh' '$WORK/app/osprey/osprey' '$RAW' '$PY' 2>&1 | tee -a '$OUT/bench.md'; exit \${PIPESTATUS[0]}" ;;
    # optimiser phase (issue 7 item 9): per-tensor vs multi-tensor kernels on RetinaNet-R50 / SSD300 parameter sets, whole amp
    # steps both ways, then torch's foreach/fused SGD + GradScaler + clip_grad_norm_ on the same shapes (bench/gpu/optim_bench.py)
    bench-optim) run_step bench-optim bash -c "timeout 300 '$DOTNET_ROOT/dotnet' '$WORK/app/bench/Osprey.Bench.dll' optim-step ${OSPREY_OPTIM_ARGS:-} --json '$RAW/optim.jsonl' 2>&1 | tee -a '$OUT/bench.md'; a=\${PIPESTATUS[0]}; \
        timeout 120 '$PY' '$PACK/bench/gpu/optim_bench.py' '$RAW/optim.jsonl' 2>&1 | tee -a '$OUT/bench.md'; b=\${PIPESTATUS[0]}; exit \$((a | b))" ;;
    # data-parallel training scaling (issue 7 item 6): images/s on 1 and 2 GPUs at the same per-GPU batch, fp32 and amp,
    # Osprey (train-ddp) and torch DDP (torchrun) in the same call, one table (bench/gpu/run-ddp.sh; OSPREY_DDP_* options)
    bench-ddp) run_step bench-ddp bash -c "bash '$PACK/bench/gpu/run-ddp.sh' '$WORK/app/bench/Osprey.Bench.dll' '$RAW' '$PY' 2>&1 | tee -a '$OUT/bench.md'; exit \${PIPESTATUS[0]}" ;;
    # multi-node data parallel on one host (issue 7 item 6): two `osprey train` processes, one GPU each, meeting through the
    # TCP rendezvous, against the one-process 2-GPU run (bench/gpu/two-node.sh; needs OSPREY_SHARED_DIR for coco128)
    ddp-nodes) run_step ddp-nodes bash -c "bash '$PACK/bench/gpu/two-node.sh' '$WORK/app/osprey/osprey' '$RAW' '$PY' 2>&1 | tee -a '$OUT/bench.md'; exit \${PIPESTATUS[0]}" ;;
    # training images/s (issue 7 item 9): torchvision with torch.amp and Osprey, same model, batch, size and loss, same call
    bench-train) run_step bench-train bash -c "bash '$PACK/bench/gpu/run-train.sh' '$WORK/app/bench/Osprey.Bench.dll' '$RAW' '$PY' 2>&1 | tee -a '$OUT/bench.md'; exit \${PIPESTATUS[0]}" ;;
    # engine profile and accuracy (issue 6 items 2, 7, 8): per-node GPU times of both benchmark engines; fp32 vs fp16 on coco128
    profile-engine) run_step profile-engine bash -c "dll='$WORK/app/bench/Osprey.Bench.dll'; d='$DOTNET_ROOT/dotnet'; \
        timeout 200 \"\$d\" \"\$dll\" engine-profile --arch ssd300_vgg16 --batch 64 --runs 20 --out '$OUT/profile.md' > '$RAW/profile-ssd300.log' 2>&1; a=\$?; \
        timeout 200 \"\$d\" \"\$dll\" engine-profile --arch retinanet_resnet50_fpn --size 800 --batch 16 --runs 20 --out '$OUT/profile.md' > '$RAW/profile-retinanet.log' 2>&1; b=\$?; \
        c=0; if [ -n \"\${OSPREY_SHARED_DIR:-}\" ]; then for m in 'ssd300_vgg16 --size 300' 'retinanet_resnet50_fpn --size 512'; do \
          timeout 200 \"\$d\" \"\$dll\" engine-accuracy --data \"\$OSPREY_SHARED_DIR/data/coco128\" --arch \$m --batch 16 --out '$OUT/profile.md' >> '$RAW/accuracy.log' 2>&1 || c=1; done; fi; \
        tail -n 30 '$RAW/profile-ssd300.log' '$RAW/profile-retinanet.log' '$RAW/accuracy.log' 2>/dev/null; cat '$OUT/profile.md' >> '$OUT/bench.md' 2>/dev/null; \
        echo \"engine-profile exit \$a (ssd300), \$b (retinanet); accuracy \$c\"; exit \$((a | b | c))" ;;
    *) echo "unknown step '$step' (info, doctor, tests, bench-core, bench-libs, bench-detect, bench-infer, bench-engine, bench-ddp, ddp-nodes, bench-train, bench-optim, profile-engine)" >&2; FAILED=1 ;;
  esac
done

tar -C "$RAW" -czf "$OUT/bench-raw.tar.gz" . 2>/dev/null
{
  echo "| step        | exit | time   |"
  echo "|-------------|------|--------|"
  printf '%s\n' "${SUMMARY[@]}"
} | tee "$OUT/summary.txt"
exit $FAILED
