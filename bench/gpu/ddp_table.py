#!/usr/bin/env python3
"""Prints the data-parallel scaling table from run-ddp.sh's JSON lines: per precision, Osprey (`Osprey.Bench train-ddp`) and
torch DDP (train_ddp_torch.py) images/s on 1 and 2 GPUs, and each side's scaling efficiency ips(N) / (N x ips(1))."""
import json, sys

rows = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        r = json.loads(line)
        rows[(r["precision"], r["side"], r["gpus"])] = r
gpus = sorted({k[2] for k in rows})
precisions = sorted({k[0] for k in rows}, key=lambda p: ["fp32", "amp", "bf16"].index(p) if p in ("fp32", "amp", "bf16") else 9)
some = next(iter(rows.values()), {})
print(f"\ndata-parallel training, {some.get('arch', '?')} {some.get('size', '?')}x{some.get('size', '?')}, "
      f"{some.get('per_gpu', '?')} images per GPU (global batch = GPUs x that)\n")
print("| precision | GPUs | Osprey images/s | Osprey ms/iter | Osprey scaling | torch DDP images/s | torch ms/iter | torch scaling | Osprey / torch |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")


def cell(p, side, g):
    r = rows.get((p, side, g))
    one = rows.get((p, side, 1))
    if r is None:
        return "-", "-", "-"
    eff = f"{100 * r['images_per_s'] / (g * one['images_per_s']):.0f} %" if one else "-"
    return f"{r['images_per_s']:.1f}", f"{r['ms_per_iter']:.1f}", eff


for p in precisions:
    for g in gpus:
        oi, om, oe = cell(p, "osprey", g)
        ti, tm, te = cell(p, "torch", g)
        o, t = rows.get((p, "osprey", g)), rows.get((p, "torch", g))
        ratio = f"{o['images_per_s'] / t['images_per_s']:.2f}x" if o and t else "-"
        print(f"| {p} | {g} | {oi} | {om} | {oe} | {ti} | {tm} | {te} | {ratio} |")
