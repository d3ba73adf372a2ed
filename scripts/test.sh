#!/usr/bin/env bash
# The test command of the README: builds everything and runs the test suite (GPU tests skip without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dotnet >/dev/null || { echo "the .NET 10 SDK is required (dotnet not found)" >&2; exit 1; }
dotnet build Osprey.slnx -c Release -nologo -v q
dotnet test tests/Osprey.Tests -c Release --no-build -nologo --logger "console;verbosity=minimal" "$@"
