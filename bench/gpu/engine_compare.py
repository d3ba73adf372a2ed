"""One table from the bench-engine step (bench/gpu/run-engine.sh): `osprey bench` JSON (engine-*.json) and
engine_torch.py JSON (torch-*.json) per architecture, with Osprey's best images/s against each PyTorch mode."""
import json
import sys

rows = {}
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            r = json.load(f)
    except (OSError, ValueError) as e:
        print(f"<!-- {path}: no result ({e}) -->")
        continue
    rows.setdefault(r["architecture"], []).append(r)

print("| model | batch | runner | images/s | p50 ms | p99 ms | notes |")
print("|---|---|---|---|---|---|---|")
summary = []
for arch, rs in rows.items():
    best = 0.0
    osprey_net = None
    torch_ips = {}
    torch_net = {}
    for r in rs:
        if "mode" in r:
            name = f"PyTorch {r['torch']} {r['mode']}"
            bits = [f"network {r['network_ms']:.2f} ms"] if "network_ms" in r else []
            bits.append(f"compile {r['compile_seconds']:.0f} s, autotune {r.get('conv_autotune', '')}" if r["compile_seconds"] else "fp16 channels_last")
            note = "; ".join(bits)
            if "network_ms" in r:
                torch_net[r["mode"]] = r["network_ms"]
            torch_ips["compiled" if r["mode"] != "eager" else "eager"] = (r["images_per_second"], r["mode"])
        else:
            name = f"Osprey engine, {r['streams']} context(s) on {r['device']}"
            note = (f"graphs {r['cuda_graphs']}; stages pre {r['stage_ms_preprocess']:.2f} / net {r['stage_ms_network']:.2f} / "
                    f"post {r['stage_ms_postprocess']:.2f} ms")
            per = r.get("per_device", [])
            if len(per) > 1:
                note += "; " + ", ".join(f"{p['device']} {p['images_per_second']:.0f}/s" for p in per)
            best = max(best, r["images_per_second"])
            osprey_net = r["stage_ms_network"] if osprey_net is None else min(osprey_net, r["stage_ms_network"])
        print(f"| {arch} | {r['batch']} | {name} | {r['images_per_second']:.1f} | {r['latency_ms_p50']:.2f} | {r['latency_ms_p99']:.2f} | {note} |")
    parts = [f"{arch}: Osprey best {best:.0f} images/s"]
    for k, (v, mode) in torch_ips.items():
        parts.append(f"{best / v:.2f}x PyTorch {mode}" if v > 0 else f"PyTorch {mode}: no result")
    if osprey_net is not None:
        for mode, ms in torch_net.items():
            parts.append(f"network alone (eager engine, no graph): {osprey_net:.2f} ms vs PyTorch {mode} {ms:.2f} ms per batch ({ms / osprey_net:.2f}x)")
    summary.append("; ".join(parts))
print()
for s in summary:
    print(f"- {s}")
