#!/usr/bin/python3
"""PyTorch side of bench/Osprey.Bench.Ops: same sizes, same metric (median of 15 after 3 warm-ups).
Run: /usr/bin/python3 bench/ops_torch.py [elements]"""
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 22
torch.manual_seed(1)
torch.set_num_threads(int(os.environ.get("THREADS", "2")))  # this Debian build defaults to 1 thread
a = torch.rand(n) * 2 - 1
b = torch.rand(n) * 2 - 1
y = torch.empty(n)
one = torch.empty(1)
side = int(math.sqrt(n / 64.0))
img = a[: 64 * side * side].reshape(1, 64, side, side).contiguous()
img_cl = img.to(memory_format=torch.channels_last)
print(f"torch {torch.__version__} CPU ops, {n:,} float32 elements, {torch.get_num_threads()} threads")
print(f"{'op':<34} {'median ms':>10} {'GB/s':>8}")


def report(name, nbytes, fn):
    for _ in range(3):
        fn()
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    ms = times[len(times) // 2]
    print(f"{name:<34} {ms:10.3f} {nbytes / ms / 1e6:8.2f}")


report("relu kernel", 2 * n * 4, lambda: torch.clamp_min(a, 0, out=y))
report("relu op (allocates)", 2 * n * 4, lambda: torch.relu(a))
report("gelu kernel", 2 * n * 4, lambda: torch._C._nn.gelu(a, out=y))
report("sigmoid kernel", 2 * n * 4, lambda: torch.sigmoid(a, out=y))
report("add kernel", 3 * n * 4, lambda: torch.add(a, b, out=y))
report("add op (allocates)", 3 * n * 4, lambda: a + b)
report("mul by scalar (broadcast) kernel", 2 * n * 4, lambda: torch.mul(a, one, out=y))
report("sum (all) kernel", n * 4, lambda: torch.sum(a, 0, out=one.reshape(())))
report("exp kernel", 2 * n * 4, lambda: torch.exp(a, out=y))
report("max (all) kernel", n * 4, lambda: torch.amax(a, 0, out=one.reshape(())))
report("softmax rows of 1024 op", 2 * n * 4, lambda: torch.softmax(a.reshape(n // 1024, 1024), -1))
report(f"maxpool 3x3 s2 NCHW [1,64,{side},{side}] op", 4 * img.numel() * 5 // 4, lambda: F.max_pool2d(img, 3, 2, 1))
report("maxpool 3x3 s2 NHWC op", 4 * img.numel() * 5 // 4, lambda: F.max_pool2d(img_cl, 3, 2, 1))
report("bilinear x2 NCHW op", 4 * img.numel() * 5, lambda: F.interpolate(img, size=(2 * side, 2 * side), mode="bilinear", align_corners=False))
report("bilinear x2 NHWC op", 4 * img.numel() * 5, lambda: F.interpolate(img_cl, size=(2 * side, 2 * side), mode="bilinear", align_corners=False))
