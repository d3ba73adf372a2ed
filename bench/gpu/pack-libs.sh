#!/usr/bin/env bash
# Builds the cuda-libs device pack (tests + gpu-libs benchmark + a compressed .NET runtime + the xunit
# console runner + bench/gpu scripts) into the folder given (default /work/main/.pack-libs), for the
# device tool's `carry`. Run from the repository root. The host has no .NET: bench/gpu/run-libs.sh unpacks it.
set -euo pipefail
out=${1:-/work/main/.pack-libs}
root=$(pwd)
dotnet build tests/Osprey.Tests -c Release -nologo -v q
dotnet build bench/Osprey.Bench -c Release -nologo -v q
rm -rf "$out.tmp" && mkdir -p "$out.tmp"/{tests,bench,gpu,xunit}
cp -r tests/Osprey.Tests/bin/Release/net10.0/. "$out.tmp/tests/"
cp -r bench/Osprey.Bench/bin/Release/net10.0/. "$out.tmp/bench/"
cp bench/gpu/*.py bench/gpu/*.json bench/gpu/run-libs.sh "$out.tmp/gpu/"
cp -r ~/.nuget/packages/xunit.runner.console/2.4.1/tools/netcoreapp2.0/. "$out.tmp/xunit/"
dn=$(dirname "$(readlink -f "$(command -v dotnet)")")
rt=$(ls -d "$dn"/shared/Microsoft.NETCore.App/10.* | sort -V | tail -1)
cache=/tmp/osprey-dotnet-runtime-$(basename "$rt").tar.xz
if [ ! -f "$cache" ]; then
  tar -C "$dn" -cf - dotnet host "shared/Microsoft.NETCore.App/$(basename "$rt")" | xz -T0 -6 > "$cache"
fi
cp "$cache" "$out.tmp/dotnet.tar.xz"
rm -rf "$out" && mv "$out.tmp" "$out"
du -sh "$out"
