#!/usr/bin/env bash
# The test command of the README: builds everything and runs the test suite (GPU tests skip without a GPU),
# (except Category=Long, see below), then re-runs the SIMD-driver tests (Category=Simd) with AVX-512 off, with AVX2 off and with all hardware
# intrinsics off, so the Vector256, Vector128 and scalar paths are exercised on an AVX-512 machine too. Ends with one summary line
# "tests: N passed, N failed, N skipped" over all runs (preceded by the failed tests' names and first message lines, so
# the tail of a CI log says what failed), and exits non-zero if any run failed.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dotnet >/dev/null || { echo "the .NET 10 SDK is required (dotnet not found)" >&2; exit 1; }
. scripts/deps.sh
osprey_deps
dotnet build Osprey.slnx -c Release -nologo -v q

passed=0 failed=0 skipped=0 status=0
log=$(mktemp) failures=$(mktemp)
trap 'rm -f "$log" "$failures"' EXIT

# run LABEL [ENV=VALUE...] -- [dotnet test args...]: runs one pass, echoes its output, adds up its counts
run() {
    local label=$1; shift
    local envs=()
    while [[ $# -gt 0 && $1 != -- ]]; do envs+=("$1"); shift; done
    shift
    echo "== $label"
    local rc=0
    env "${envs[@]}" dotnet test tests/Osprey.Tests -c Release --no-build -nologo --logger "console;verbosity=minimal" "$@" \
        2>&1 | tee "$log" || rc=$?
    # summary line: "Passed!  - Failed:     0, Passed:   602, Skipped:     0, Total:   602, Duration: ..."
    local line
    line=$(grep -E '(Passed|Failed)! +- Failed: +[0-9]+, Passed: +[0-9]+, Skipped: +[0-9]+' "$log" | tail -n 1 || true)
    if [[ -z $line ]]; then
        echo "test.sh: no test summary in the output of '$label'" >&2
        status=1
        return
    fi
    # each failed test: "  Failed NAME [N ms]", then "  Error Message:" and the message; keep the name and 4 message lines
    awk -v label="$label" '
        /^  Failed [^ ]/ { print "[" label "] " substr($0, 3); grab = 0; next }
        /^  Error Message:/ { grab = 4; next }
        /^  Stack Trace:/ { grab = 0; next }
        grab > 0 { print "      " $0; grab-- }' "$log" >>"$failures"
    local f p s
    f=$(sed -E 's/.*Failed: +([0-9]+),.*/\1/' <<<"$line")
    p=$(sed -E 's/.*Passed: +([0-9]+),.*/\1/' <<<"$line")
    s=$(sed -E 's/.*Skipped: +([0-9]+),.*/\1/' <<<"$line")
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
    if [[ $rc -ne 0 || $f -ne 0 ]]; then status=1; fi
}

# Category=Long (the 50-iteration training parity on the CPU: minutes on a loaded 2-core machine) runs only with
# OSPREY_LONG_TESTS=1, as a pass of its own
run "all tests" -- --filter "Category!=Long" "$@"
if [[ ${OSPREY_LONG_TESTS:-0} == 1 ]]; then run "long tests" -- --filter Category=Long; fi
# .NET 10 ignores DOTNET_EnableAVX512F (its knob is DOTNET_EnableAVX512); both are set so either runtime drops to Vector256
run "SIMD drivers, AVX-512 off" DOTNET_EnableAVX512F=0 DOTNET_EnableAVX512=0 -- --filter Category=Simd
run "SIMD drivers, AVX2 off (Vector128 only)" DOTNET_EnableAVX2=0 -- --filter Category=Simd
run "SIMD drivers, hardware intrinsics off" DOTNET_EnableHWIntrinsic=0 -- --filter Category=Simd

if [[ -s $failures ]]; then echo "failed tests:"; cat "$failures"; fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $status
