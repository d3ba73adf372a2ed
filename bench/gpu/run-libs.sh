#!/usr/bin/env bash
# Runs on the GPU host from the repository root: .pack-libs/gpu/run-libs.sh [tests|bench|all]
# Unpacks .NET, runs the cuBLASLt/cuDNN GPU tests (xunit xml + log under $OUT), then gpu-libs and
# torch_libs.py in the same command, and prints the comparison table last.
set -uo pipefail
P=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-all}
OUT=${OUT:-/tmp/out}
mkdir -p /tmp/dn "$OUT"
tar -C /tmp/dn -xJf "$P/dotnet.tar.xz"
export DOTNET_ROOT=/tmp/dn DOTNET_ROLL_FORWARD=Major DOTNET_CLI_TELEMETRY_OPTOUT=1 PYTHONUNBUFFERED=1
DN=/tmp/dn/dotnet
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv | tee "$OUT/gpu.txt"
if [ "$what" = tests ] || [ "$what" = all ]; then
  ( cd "$P/tests" && timeout 200 $DN "$P/xunit/xunit.console.dll" Osprey.Tests.dll \
      -class Osprey.Tests.Cuda.MatMulGpuTests -class Osprey.Tests.Cuda.ConvGpuTests -class Osprey.Tests.Cuda.MatMulConvErrorTests \
      -xml "$OUT/tests.xml" -parallel none > "$OUT/tests.log" 2>&1 )
  echo "tests exit $?"
  grep -E "\[FAIL\]" "$OUT/tests.log" | head -40
  grep -E "Total:|Tests:|Errors:" "$OUT/tests.log" | tail -3
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
  cd "$P"
  rm -f "$OUT/osprey.jsonl"
  timeout 150 $DN bench/Osprey.Bench.dll gpu-libs --convs gpu/resnet50_convs.json --out "$OUT/osprey.jsonl" > "$OUT/osprey.log" 2>&1; echo "osprey exit $?"
  timeout 40 $DN bench/Osprey.Bench.dll gpu-libs --tf32 --out "$OUT/osprey.jsonl" >> "$OUT/osprey.log" 2>&1; echo "osprey tf32 exit $?"
  tail -3 "$OUT/osprey.log"
  timeout 150 python3 gpu/torch_libs.py --convs gpu/resnet50_convs.json --out "$OUT/torch.jsonl" > "$OUT/torch.log" 2>&1; echo "torch exit $?"
  tail -2 "$OUT/torch.log"
  python3 gpu/compare.py "$OUT/osprey.jsonl" "$OUT/torch.jsonl" | tee "$OUT/table.md"
fi
