"""PyTorch side of `Osprey.Bench gpu-core`: the same element-wise ops, copy bandwidth and small-op launch
overhead (eager and CUDA graph), timed the same way (CUDA events, warm-up, median of repeats).
Prints one JSON object; the C# bench reads it (--torch FILE) and prints both side by side."""
import json
import statistics
import sys

import torch

N = 64 * 1024 * 1024          # elements of the large element-wise operands (256 MiB of float32)
REPS, ITERS = 7, 10           # median over REPS timings of ITERS calls each
SMALL, EAGER_CALLS, GRAPH_OPS, GRAPH_REPLAYS = 1024, 20000, 100, 200


def timed(fn, iters=ITERS, reps=REPS):
    """Median milliseconds per call of fn, timed with CUDA events after a warm-up."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / iters)
    return statistics.median(times)


def main():
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda, "ops": {}}
    src = torch.rand(N, device=dev, generator=gen)
    dst = torch.empty_like(src)
    ms = timed(lambda: dst.copy_(src))
    result["copy_gbs"] = 2 * N * 4 / ms / 1e6
    for dtype, name in ((torch.float32, "float32"), (torch.float16, "float16")):
        es = torch.finfo(dtype).bits // 8
        a = (torch.rand(N, device=dev, generator=gen) * 4 - 2).to(dtype)
        b = (torch.rand(N, device=dev, generator=gen) * 4 - 2).to(dtype)
        rows = 16384
        m = a.view(rows, N // rows)
        bias = b[: N // rows].clone()
        ops = {
            "relu": (lambda: torch.relu(a), 2 * N * es),
            "gelu": (lambda: torch.nn.functional.gelu(a), 2 * N * es),
            "add": (lambda: a + b, 3 * N * es),
            "mul scalar": (lambda: a * 1.5, 2 * N * es),
            "add row bias": (lambda: m + bias, 2 * N * es),
            "cast to " + ("float16" if dtype == torch.float32 else "float32"):
                (lambda: a.to(torch.float16 if dtype == torch.float32 else torch.float32), N * (es + (2 if dtype == torch.float32 else 4))),
            "fill (write only)": (lambda: torch.full((N,), 1.0, dtype=dtype, device=dev), N * es),
        }
        for op, (fn, nbytes) in ops.items():
            ms = timed(fn)
            result["ops"][f"{op}|{name}"] = nbytes / ms / 1e6
        del a, b, m, bias
    x = torch.rand(SMALL, device=dev, generator=gen)
    for _ in range(100):
        torch.relu(x)
    torch.cuda.synchronize()
    import time
    t0 = time.perf_counter()
    for _ in range(EAGER_CALLS):
        torch.relu(x)
    torch.cuda.synchronize()
    result["eager_us_per_op"] = (time.perf_counter() - t0) / EAGER_CALLS * 1e6
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            y = x
            for _ in range(GRAPH_OPS):
                y = torch.relu(y)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y = x
        for _ in range(GRAPH_OPS):
            y = torch.relu(y)
    ms = timed(graph.replay, iters=GRAPH_REPLAYS, reps=5)
    result["graph_us_per_op"] = ms * 1e3 / GRAPH_OPS
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
