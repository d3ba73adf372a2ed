#!/usr/bin/env bash
# Builds the GPU-host pack: one folder that runs Osprey's GPU tests, `osprey info`, `osprey doctor` and the
# GPU benchmarks on a machine with an NVIDIA GPU and no .NET (see docs/gpu.md).
#   scripts/pack-gpu.sh OUTDIR
# OUTDIR receives: dotnet.tar.xz (the .NET runtime, compressed), app.tar.xz (the trimmed self-contained
# `osprey`, the test suite, the benchmarks and the xunit console runner), run-gpu.sh and bench/gpu/*.py.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)
command -v dotnet >/dev/null || { echo "the .NET 10 SDK is required to build the pack" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
Q=(-nologo -v q -c Release)

echo "[pack] osprey (trimmed, self-contained, linux-x64)"
dotnet publish "$ROOT/src/Osprey.Cli" "${Q[@]}" -r linux-x64 --self-contained -p:PublishTrimmed=true \
  -p:DebugType=none -p:SatelliteResourceLanguages=en -o "$TMP/app/osprey"
echo "[pack] test suite and benchmarks (framework-dependent, run by the packed runtime)"
dotnet build "$ROOT/tests/Osprey.Tests" "${Q[@]}" -p:SatelliteResourceLanguages=en -o "$TMP/app/tests"
dotnet build "$ROOT/bench/Osprey.Bench" "${Q[@]}" -p:SatelliteResourceLanguages=en -o "$TMP/app/bench"

echo "[pack] xunit.runner.console 2.4.1"
XUNIT=${NUGET_PACKAGES:-$HOME/.nuget/packages}/xunit.runner.console/2.4.1/tools/netcoreapp2.0
if [ ! -f "$XUNIT/xunit.console.dll" ]; then
  mkdir -p "$TMP/fetch"
  cat > "$TMP/fetch/fetch.csproj" <<'XML'
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup>
  <ItemGroup><PackageDownload Include="xunit.runner.console" Version="[2.4.1]" /></ItemGroup>
</Project>
XML
  dotnet restore "$TMP/fetch/fetch.csproj" -nologo -v q
fi
# the runner goes beside the tests: AppContext.BaseDirectory (where tests find their fixtures) is the runner's folder
cp -rn "$XUNIT"/. "$TMP/app/tests/"

DOTNET_HOME=$(dirname "$(readlink -f "$(command -v dotnet)")")
RT=$(ls -d "$DOTNET_HOME"/shared/Microsoft.NETCore.App/10.* | sort -V | tail -1)
FXR=$(ls -d "$DOTNET_HOME"/host/fxr/10.* | sort -V | tail -1)
if [ -f "$OUTDIR/dotnet.tar.xz" ] && [ "$(cat "$OUTDIR/.runtime" 2>/dev/null)" = "$RT" ]; then
  echo "[pack] .NET runtime: reusing $OUTDIR/dotnet.tar.xz ($RT)"
else
  echo "[pack] .NET runtime: $RT"
  mkdir -p "$TMP/dotnet/shared/Microsoft.NETCore.App" "$TMP/dotnet/host/fxr"
  cp "$DOTNET_HOME/dotnet" "$TMP/dotnet/"
  cp -r "$RT" "$TMP/dotnet/shared/Microsoft.NETCore.App/"
  cp -r "$FXR" "$TMP/dotnet/host/fxr/"
  tar -C "$TMP" -cf - dotnet | xz -T0 -6 > "$OUTDIR/dotnet.tar.xz"
  echo "$RT" > "$OUTDIR/.runtime"
fi

echo "[pack] compressing the apps"
rm -rf "$OUTDIR"/app.tar.xz "$OUTDIR"/bench
tar -C "$TMP/app" -cf - . | xz -T0 -6 > "$OUTDIR/app.tar.xz"
cp "$ROOT/scripts/run-gpu.sh" "$OUTDIR/"
mkdir -p "$OUTDIR/bench/gpu"
cp "$ROOT"/bench/gpu/*.py "$OUTDIR/bench/gpu/"
cp "$ROOT"/bench/gpu/*.json "$OUTDIR/bench/gpu/" 2>/dev/null || true
cp "$ROOT"/bench/gpu/run-infer.sh "$ROOT"/bench/gpu/run-train.sh "$ROOT"/tools/formula.py "$OUTDIR/bench/gpu/"
du -sh "$OUTDIR"/* | sed 's/^/[pack] /'
echo "[pack] done: $OUTDIR ($(du -sh "$OUTDIR" | cut -f1)); run it there with: bash $(basename "$OUTDIR")/run-gpu.sh"
