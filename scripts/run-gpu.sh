#!/usr/bin/env bash
# Runs on the GPU host, from a pack built by scripts/pack-gpu.sh (no .NET needed there):
#   bash PACK/run-gpu.sh [steps...]      steps: info doctor tests bench-core (default: all, in that order)
# Unpacks the runtime and the apps, then runs each step with its output under $OUT (default ./gpu-results):
# info.txt, doctor.txt, tests.txt + tests.xml + tests.html (xunit), torch-core.json + bench-core.md, summary.txt.
# Prints a summary table last. Exit status: non-zero if any step failed.
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
STEPS=("$@")
[ ${#STEPS[@]} -eq 0 ] && STEPS=(info doctor tests bench-core)
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
        -xml '$OUT/tests.xml' -html '$OUT/tests.html' -parallel none -noshadow > '$OUT/tests.txt' 2>&1; rc=\$?; \
        grep -E '\\[FAIL\\]|Total:' '$OUT/tests.txt' | head -60; exit \$rc" ;;
    bench-core) run_step bench-core bash -c "'$PY' '$PACK/bench/gpu/core_bench.py' > '$OUT/torch-core.json' || echo 'torch side failed' >&2; \
        '$DOTNET_ROOT/dotnet' '$WORK/app/bench/Osprey.Bench.dll' gpu-core --torch '$OUT/torch-core.json' 2>&1 | tee '$OUT/bench-core.md'; exit \${PIPESTATUS[0]}" ;;
    *) echo "unknown step '$step' (info, doctor, tests, bench-core)" >&2; FAILED=1 ;;
  esac
done

{
  echo "| step        | exit | time   |"
  echo "|-------------|------|--------|"
  printf '%s\n' "${SUMMARY[@]}"
} | tee "$OUT/summary.txt"
exit $FAILED
