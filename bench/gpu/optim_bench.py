"""Torch side of `Osprey.Bench optim-step` (scripts/run-gpu.sh bench-optim): the optimiser phase of a torch.amp training step
on the same parameter shapes (read from the JSON lines Osprey wrote: mode "optim-shapes"): GradScaler.unscale_ (inf/NaN check),
clip_grad_norm_(10, foreach), GradScaler.step(SGD lr 1e-6, momentum 0.9, weight decay 1e-4), GradScaler.update; fp32 without
the scaler. torch keeps FP32 parameters and gradients under amp (Osprey: float16 weights and gradients, FP32 masters). SGD with
foreach=True (torch's default on CUDA) and fused=True; ms per step, synchronised each step. Prints one table and appends JSON lines.
    python3 optim_bench.py OSPREY_JSONL [--steps N] [--warmup N]
"""
import argparse
import json
import time

import torch

ap = argparse.ArgumentParser()
ap.add_argument("jsonl")
ap.add_argument("--steps", type=int, default=20)
ap.add_argument("--warmup", type=int, default=3)
a = ap.parse_args()

rows = [json.loads(l) for l in open(a.jsonl) if l.strip()]
osprey = {(r["arch"], r["precision"]): r for r in rows if r.get("mode") == "optim-step"}
out = []
print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}")
print()
print("| parameter set | precision | tensors | torch foreach ms | torch fused ms | Osprey per-tensor ms | Osprey multi-tensor ms |")
print("|---|---|---:|---:|---:|---:|---:|")
for r in rows:
    if r.get("mode") != "optim-shapes":
        continue
    amp = r["precision"] == "amp"
    g = torch.Generator(device="cuda").manual_seed(0)
    params = [torch.nn.Parameter(torch.rand(s, device="cuda", generator=g) * 0.1 - 0.05) for s in r["shapes"]]
    ms = {}
    for variant in ("foreach", "fused"):
        for p in params:
            p.grad = (torch.rand(p.shape, device="cuda", generator=g) * 2 - 1) * (1.0 if amp else 1e-3)
        opt = torch.optim.SGD(params, lr=1e-6, momentum=0.9, weight_decay=1e-4,
                              foreach=variant == "foreach", fused=variant == "fused")
        scaler = torch.amp.GradScaler("cuda", enabled=amp)
        scaler.scale(torch.ones((), device="cuda"))  # a training step scales its loss first; unscale_ needs the scale tensor

        def step():
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, 10.0, foreach=True)
            scaler.step(opt)
            scaler.update()

        for _ in range(a.warmup):
            step()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
            torch.cuda.synchronize()
        ms[variant] = (time.perf_counter() - t0) * 1000 / a.steps
    o = osprey.get((r["arch"], r["precision"]), {})
    print(f"| {r['arch']} | {r['precision']} | {len(params)} | {ms['foreach']:.3f} | {ms['fused']:.3f} | "
          f"{o.get('per_tensor_ms', float('nan')):.2f} | {o.get('multi_tensor_ms', float('nan')):.3f} |")
    out.append({"side": "torch", "mode": "optim-step", "arch": r["arch"], "precision": r["precision"],
                "foreach_ms": ms["foreach"], "fused_ms": ms["fused"], "steps": a.steps})
with open(a.jsonl, "a") as f:
    for o in out:
        f.write(json.dumps(o) + "\n")
