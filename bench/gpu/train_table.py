#!/usr/bin/env python3
"""Prints the training benchmark table from run-train.sh's JSON lines (one torch and one osprey line per configuration)."""
import json, sys

rows = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    rows.setdefault((r["arch"], r["batch"], r["size"], r["precision"]), {})[r["side"]] = r
print("| model | batch | size | precision | torch images/s | Osprey images/s | Osprey / torch | torch ms/step | Osprey ms/step |")
print("|---|---|---|---|---|---|---|---|---|")
for (arch, batch, size, prec), sides in rows.items():
    t, o = sides.get("torch"), sides.get("osprey")
    ti = f"{t['images_per_s']:.1f}" if t else "-"
    oi = f"{o['images_per_s']:.1f}" if o else "-"
    ratio = f"{o['images_per_s'] / t['images_per_s']:.2f}x" if t and o else "-"
    tm = f"{t['ms_per_step']:.1f}" if t else "-"
    om = f"{o['ms_per_step']:.1f}" if o else "-"
    print(f"| {arch} | {batch} | {size} | {prec} | {ti} | {oi} | {ratio} | {tm} | {om} |")
