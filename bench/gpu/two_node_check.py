#!/usr/bin/env python3
"""two-node.sh's check: the two "nodes" (one process per GPU, TCP rendezvous) against the one-process 2-GPU run.
Losses: mean of node 0's and node 1's logged loss per iteration vs the one-process loss (relative 1e-4, NcclGpuTests'
tolerance). Weights: node 0's checkpoint vs the one-process checkpoint, every tensor: max |a - b| / max(1e-3, max |b|) below
2e-2 (NcclGpuTests' tolerance). Bit equality is reported, not required: cuDNN's backward algorithms are chosen by timing
in each process (cudnnFind...AlgorithmEx), so two processes can accumulate in other orders. Exit 1 on a mismatch."""
import csv, os, sys
import torch
from safetensors.torch import load_file

d = sys.argv[1]


def losses(run):
    with open(os.path.join(d, run, "train.csv")) as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


one, n0, n1 = losses("one"), losses("n0"), losses("n1")
ok = len(one) == len(n0) == len(n1) and len(one) > 0
worst = 0.0
for i, (a, b, c) in enumerate(zip(one, n0, n1)):
    rel = abs((b + c) / 2 - a) / max(abs(a), 1e-12)
    worst = max(worst, rel)
    print(f"iteration {i + 1}: one process {a:.7f}, nodes (rank 0 {b:.7f} + rank 1 {c:.7f}) / 2 = {(b + c) / 2:.7f}, relative {rel:.2e}")
ok = ok and worst <= 1e-4
w1 = load_file(os.path.join(d, "one", "model.safetensors"))
w0 = load_file(os.path.join(d, "n0", "model.safetensors"))
diff, name, unequal, rel = 0.0, "", 0, 0.0
ok = ok and sorted(w1) == sorted(w0)
for k in w1:
    if k not in w0:
        continue
    a, b = w1[k], w0[k]
    if a.dtype != b.dtype or a.shape != b.shape:
        ok, name = False, f"{k}: {a.dtype} {tuple(a.shape)} vs {b.dtype} {tuple(b.shape)}"
        continue
    if not torch.equal(a, b):
        unequal += 1
        m = (a.double() - b.double()).abs().max().item() if a.is_floating_point() else float("inf")
        r = m / max(1e-3, b.double().abs().max().item()) if a.is_floating_point() else float("inf")
        if not r <= rel:
            rel, diff, name = r, m, k
ok = ok and rel < 2e-2
print(f"checkpoints: {len(w1)} tensors, {unequal} not bit-identical; worst {rel:.3g} of the tensor's largest magnitude ({diff:.3g} absolute, {name or '-'})")
print(f"two-node check: {'PASS' if ok else 'FAIL'} (worst loss difference {worst:.2e} relative)")
sys.exit(0 if ok else 1)
