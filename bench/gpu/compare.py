#!/usr/bin/env python3
"""Joins osprey (gpu-libs) and torch JSON-lines results into a markdown table with ratios.
ratio = torch time / osprey time (>= 1 means Osprey is at least as fast); target >= 0.90."""
import json, sys


def load(path):
    rows = {}
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            rows[r["case"]] = r
    return rows


def main():
    osp, tor = load(sys.argv[1]), load(sys.argv[2])
    print(f"torch meta: {json.dumps(tor.get('meta', {}))}")
    print(f"osprey meta: {json.dumps(osp.get('meta', {}))}")
    print()
    print("| case | Osprey ms | PyTorch ms | Osprey TFLOP/s | PyTorch TFLOP/s | ratio (torch/osprey time) |")
    print("|---|---:|---:|---:|---:|---:|")
    tot_o = tot_t = 0.0
    worst = None
    for case, t in tor.items():
        if case == "meta":
            continue
        o = osp.get(case)
        if o is None:
            print(f"| {case} | missing | {t['ms']:.4f} | | {t['tflops']:.1f} | |")
            continue
        ratio = t["ms"] / o["ms"]
        print(f"| {case} | {o['ms']:.4f} | {t['ms']:.4f} | {o['tflops']:.1f} | {t['tflops']:.1f} | {ratio:.3f} |")
        if case.startswith("conv"):
            tot_o += o["ms"] * t.get("count", 1)
            tot_t += t["ms"] * t.get("count", 1)
            if worst is None or ratio < worst[1]:
                worst = (case, ratio)
    if tot_o > 0:
        print(f"| all 53 ResNet-50 convs (count-weighted sum) | {tot_o:.3f} | {tot_t:.3f} | | | {tot_t / tot_o:.3f} |")
        print()
        print(f"worst conv ratio: {worst[0]} {worst[1]:.3f}")


if __name__ == "__main__":
    main()
