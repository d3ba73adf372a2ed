#!/usr/bin/python3
"""PyTorch CPU baseline for `osprey bench cpu` (bench/Osprey.Bench): SGEMM GFLOPS with torch.mm and
torchvision ResNet-50 forward latency (eval, no_grad, FP32, NCHW and channels_last), median of
several timed runs after warm-up, on 2 threads. Prints one JSON object on stdout.

usage: torch_cpu.py [--sizes 1024,4096 (empty: no GEMM)] [--batches 1,8] [--runs 5] [--warmup 2]
"""
import argparse
import json
import statistics
import time

import torch
import torchvision


def median_seconds(fn, runs, warmup, cpu_out=None, key=None):
    """Median wall seconds; also stores the median process CPU seconds per call in cpu_out[key]."""
    for _ in range(warmup):
        fn()
    times, cpu = [], []
    for _ in range(runs):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    if cpu_out is not None:
        cpu_out[key] = 1e3 * statistics.median(cpu)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1024,4096")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = {"torch": torch.__version__, "torchvision": torchvision.__version__,
           "threads": torch.get_num_threads(), "sgemm_gflops": {}, "resnet50_ms": {}, "resnet50_channels_last_ms": {},
           "resnet50_cpu_ms": {}, "resnet50_channels_last_cpu_ms": {}}
    for n in (int(s) for s in args.sizes.split(",") if s):
        a = torch.randn(n, n)
        b = torch.randn(n, n)
        runs = args.runs if n <= 2048 else max(3, args.runs // 2)
        t = median_seconds(lambda: torch.mm(a, b), runs, args.warmup)
        out["sgemm_gflops"][str(n)] = 2.0 * n * n * n / t / 1e9
    model = torchvision.models.resnet50().eval()
    with torch.no_grad():
        for batch in (int(s) for s in args.batches.split(",")):
            x = torch.randn(batch, 3, 224, 224)
            out["resnet50_ms"][str(batch)] = 1e3 * median_seconds(
                lambda: model(x), args.runs, args.warmup, out["resnet50_cpu_ms"], str(batch))
        model_cl = model.to(memory_format=torch.channels_last)
        for batch in (int(s) for s in args.batches.split(",")):
            x = torch.randn(batch, 3, 224, 224).to(memory_format=torch.channels_last)
            out["resnet50_channels_last_ms"][str(batch)] = 1e3 * median_seconds(
                lambda: model_cl(x), args.runs, args.warmup, out["resnet50_channels_last_cpu_ms"], str(batch))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
