#!/usr/bin/env python3
"""two-node.sh's check: the two "nodes" (one process per GPU, TCP rendezvous) against the one-process 2-GPU run.
Losses: mean of node 0's and node 1's logged loss per iteration vs the one-process loss (relative 1e-4, NcclGpuTests'
tolerance). Weights: node 0's checkpoint vs the one-process checkpoint, every model tensor: max |a - b| / max(1e-3, max |b|)
below 2e-2 (NcclGpuTests' tolerance); the optimiser state (momentum: its tiny values make that ratio meaningless) is
reported, not asserted. Bit equality is reported, not required: cuDNN's backward algorithms are chosen by timing in each
process (cudnnFind...AlgorithmEx), so two processes can accumulate in other orders. Exit 1 on a mismatch."""
import csv, json, os, struct, sys
import numpy as np


def load_file(path):
    """The tensors of a safetensors file as float64 (or int64) numpy arrays, keyed by name (no safetensors package needed)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        lo, hi = t["data_offsets"]
        raw = data[lo:hi]
        if t["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, dtype={"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1"}[t["dtype"]])
        out[name] = (t["dtype"], a.reshape(t["shape"]).astype(np.float64 if a.dtype.kind == "f" else np.int64))
    return out

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
ok = ok and sorted(w1) == sorted(w0)
worst_of = {}   # "weights" (asserted) and "optimizer state" (reported): (relative, absolute, name, tensors not bit-identical)
for k in sorted(w1):
    if k not in w0:
        continue
    part = "optimizer state" if k.startswith("osprey.") else "weights"
    rel, diff, name, unequal = worst_of.get(part, (0.0, 0.0, "-", 0))
    (da, a), (db, b) = w1[k], w0[k]
    if da != db or a.shape != b.shape:
        ok = False
        print(f"{k}: {da} {a.shape} vs {db} {b.shape}")
        continue
    if not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
        unequal += 1
        m = float(np.abs(a - b).max())
        r = m / max(1e-3, float(np.abs(b).max())) if a.dtype.kind == "f" else float("inf")
        if not r <= rel:
            rel, diff, name = r, m, k
    worst_of[part] = (rel, diff, name, unequal)
for part, (rel, diff, name, unequal) in worst_of.items():
    print(f"checkpoint {part}: {unequal} tensors not bit-identical; worst {rel:.3g} of max(1e-3, the tensor's largest magnitude) "
          f"({diff:.3g} absolute, {name})")
ok = ok and worst_of.get("weights", (0.0,))[0] < 2e-2
print(f"two-node check: {'PASS' if ok else 'FAIL'} (worst loss difference {worst:.2e} relative)")
sys.exit(0 if ok else 1)
