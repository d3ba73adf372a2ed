#!/usr/bin/env python3
"""PyTorch side of `osprey-bench gpu-libs`: the same GEMM and ResNet-50 convolution cases, timed the same way.

Timing (both sides): warm-up, then SAMPLES samples; each sample is CUDA events around REPS back-to-back
calls (REPS chosen so a sample lasts about 2 ms); per-call time = sample / REPS; the median is reported.
Inputs are random normal (never zeros). Writes one JSON object per case to stdout (and --out).
"""
import argparse, json, statistics, sys, time
import torch
import torch.nn.functional as F

SAMPLES = 25


def bench(fn, target_ms=2.0):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    # calibrate repetitions
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record(); fn(); end.record(); torch.cuda.synchronize()
    one = max(start.elapsed_time(end), 1e-3)
    reps = max(1, min(200, int(target_ms / one)))
    times = []
    for _ in range(SAMPLES):
        start.record()
        for _ in range(reps):
            fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / reps)
    return statistics.median(times), reps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--convs", default="bench/gpu/resnet50_convs.json")
    ap.add_argument("--gemm", type=int, default=8192)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    dev = torch.device("cuda")
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    results = []
    meta = {"case": "meta", "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "device": torch.cuda.get_device_name(0)}
    results.append(meta)
    print(json.dumps(meta), flush=True)

    n = args.gemm
    flops = 2.0 * n * n * n
    for name, dtype, tf32 in (("gemm fp16", torch.float16, False), ("gemm bf16", torch.bfloat16, False),
                              ("gemm fp32", torch.float32, False), ("gemm tf32", torch.float32, True)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(n, n, device=dev, dtype=dtype)
        b = torch.randn(n, n, device=dev, dtype=dtype)
        ms, reps = bench(lambda: torch.matmul(a, b))
        r = {"case": f"{name} {n}^3", "ms": ms, "tflops": flops / ms / 1e9, "reps": reps}
        results.append(r); print(json.dumps(r), flush=True)
        del a, b
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.cuda.empty_cache()

    spec = json.load(open(args.convs))
    batch = spec["batch"]
    for c in spec["convs"]:
        x = torch.randn(batch, c["c"], c["h"], c["h"], device=dev, dtype=torch.float16).to(memory_format=torch.channels_last)
        w = torch.randn(c["o"], c["c"], c["k"], c["k"], device=dev, dtype=torch.float16).to(memory_format=torch.channels_last)
        w.mul_((c["c"] * c["k"] * c["k"]) ** -0.5)
        s, p = c["s"], c["p"]
        y = F.conv2d(x, w, stride=s, padding=p)
        oh = y.shape[2]
        fl = 2.0 * batch * c["o"] * oh * oh * c["c"] * c["k"] * c["k"]
        ms, reps = bench(lambda: F.conv2d(x, w, stride=s, padding=p))
        r = {"case": "conv " + c["name"], "ms": ms, "tflops": fl / ms / 1e9, "reps": reps, "count": c["count"]}
        results.append(r); print(json.dumps(r), flush=True)
        del x, w, y
    if args.out:
        with open(args.out, "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
