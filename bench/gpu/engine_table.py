"""Prints the `osprey bench` JSON results (bench-engine step of scripts/run-gpu.sh) as one markdown table."""
import json
import sys

print("| engine | batch | images/s | p50 ms | p90 ms | p99 ms | pre ms | network ms | post ms | weights MiB | arena MiB | reserved MiB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            r = json.load(f)
    except (OSError, ValueError) as e:
        print(f"| {path}: no result ({e}) |")
        continue
    mib = 1024.0 * 1024.0
    print(f"| {r['architecture']} {r['height']}x{r['width']} {r['precision']} | {r['batch']} | {r['images_per_second']:.1f} "
          f"| {r['latency_ms_p50']:.2f} | {r['latency_ms_p90']:.2f} | {r['latency_ms_p99']:.2f} "
          f"| {r['stage_ms_preprocess']:.2f} | {r['stage_ms_network']:.2f} | {r['stage_ms_postprocess']:.2f} "
          f"| {r['weights_bytes'] / mib:.1f} | {r['arena_bytes'] / mib:.1f} | {r['reserved_bytes'] / mib:.1f} |")
