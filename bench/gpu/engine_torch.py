#!/usr/bin/env python3
"""PyTorch side of `scripts/run-gpu.sh bench-engine` (issue 6 item 8): torchvision's detector with the weights Osprey's
bench used (`osprey bench --save-weights`, safetensors), timed end to end as `osprey bench` times its engine.

One sample: the batch's decoded uint8 640x480 RGB images (the same synthetic pictures as BenchRunner.SyntheticImages),
held in pinned host memory -> upload -> float16 / 255 -> model(list) (torchvision's own transform: resize to the fixed
engine size + normalise, network, anchors, decode, per-image/per-class NMS) -> detections copied to the host. fp16
weights, channels_last, torch.inference_mode, cudnn.benchmark. The RetinaNet transform is given fixed_size=(800, 800),
so the network sees 800x800 like Osprey's engine (Osprey keeps the aspect ratio and zero-pads to 800x800; torchvision
stretches): the same network work, the same anchors.

Modes:
  eager    the model as is.
  compile  torch.compile(mode=--compile-mode) of the backbone and of the head (the parts without data-dependent shapes);
           transform, anchors and decode + NMS stay eager, as torchvision runs them. "max-autotune" includes CUDA graphs.
           --conv-autotune ATEN limits inductor's convolution autotuning to ATen (cuDNN) kernels: Triton convolution
           templates take about 9 s of benchmarking per convolution shape on the H100 and Triton matrix products (1x1
           convolutions) 5 to 20 s per shape (measured 2026-11-21): RetinaNet-R50-FPN did not finish in 190 s. --gemm-autotune
           ATEN does the same for matrix products. With both ATEN, max-autotune keeps its fusions and CUDA graphs.
           Compile time is reported; the caller bounds it with `timeout`.
Also reported: network_ms, the median of 10 timed backbone + head runs on the transformed batch (no pre/post-processing).
Prints one JSON object (also to --json): images_per_second, latency percentiles per batch, compile seconds.
"""
import argparse, json, os, statistics, sys, time

import numpy as np
import torch
from torchvision.models import resnet
from torchvision.models.detection import RetinaNet, ssd300_vgg16
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops import misc as misc_nn_ops
from torchvision.ops.feature_pyramid_network import LastLevelP6P7


def build(arch, size):
    if arch == "retinanet_resnet50_fpn":
        body = resnet.resnet50(weights=None, norm_layer=misc_nn_ops.FrozenBatchNorm2d)
        bb = _resnet_fpn_extractor(body, 5, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
        m = RetinaNet(bb, num_classes=91, min_size=size, max_size=size)
        m.transform.fixed_size = (size, size)
        return m
    if arch == "ssd300_vgg16":
        return ssd300_vgg16(weights=None, weights_backbone=None, num_classes=91)
    raise SystemExit(f"unknown arch {arch}")


def load_safetensors(path):
    """Minimal reader (8-byte header length, JSON header, raw little-endian data): no extra package needed."""
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


def seeded_state_dict(model, classes=91):
    """SeededWeights (src/Osprey.Engine/SeededWeights.cs) applied by parameter name: the same distributions per name
    (a numpy generator seeded by the name's CRC32 stands in for .NET's Random; SeededWeights' own seed goes through
    HashCode.Combine, which .NET randomises per process, so no two processes, Osprey's included, share exact values)."""
    import zlib
    out = {}
    for name, t in model.state_dict().items():
        shape = tuple(t.shape)
        numel = int(np.prod(shape)) if shape else 1
        x = np.random.default_rng(zlib.crc32(name.encode())).uniform(-1, 1, numel).astype(np.float32)
        if len(shape) >= 2:
            v = np.sqrt(3.0 / (numel / shape[0])) * x
        elif name.endswith("running_var"):
            v = 1 + 0.25 * (x + 1)
        elif name.endswith("scale_weight"):
            v = 20 + 2 * x
        elif name.endswith("cls_logits.bias"):
            v = x - 4.6
        elif name.startswith("head.classification_head.module_list.") and name.endswith(".bias"):
            v = np.where(np.arange(numel) % classes == 0, 6.0, 0.1 * x).astype(np.float32)
        elif name.endswith(".weight"):
            v = 1 + 0.1 * x
        else:
            v = 0.1 * x
        out[name] = torch.from_numpy(np.asarray(v, np.float32).reshape(shape)).to(t.dtype)
    return out


def synthetic_images(n):
    """BenchRunner.SyntheticImages: 640x480 gradients and blocks, HWC uint8."""
    y, x = np.mgrid[0:480, 0:640]
    imgs = np.empty((n, 480, 640, 3), np.uint8)
    for k in range(n):
        imgs[k, :, :, 0] = (x + 7 * k) & 255
        imgs[k, :, :, 1] = (y * 2 + 13 * k) & 255
        imgs[k, :, :, 2] = (((x // 40 + y // 40) & 1) * 200 + 20)
    return imgs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True)
    ap.add_argument("--weights", required=True, help="safetensors written by `osprey bench --save-weights`, or 'seeded' (the formula here)")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--size", type=int, default=800)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--mode", choices=["eager", "compile"], default="eager")
    ap.add_argument("--compile-mode", default="max-autotune")
    ap.add_argument("--conv-autotune", default="ATEN,TRITON", help="inductor max_autotune_conv_backends")
    ap.add_argument("--gemm-autotune", default="ATEN,TRITON", help="inductor max_autotune_gemm_backends (1x1 convolutions become matrix products)")
    ap.add_argument("--measure-lock", help="file locked around the timed part (compiles of several processes overlap, timings do not)")
    ap.add_argument("--barrier", help="DIR:N: wait (up to 60 s) until N processes have written DIR/*.ready before timing")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")

    model = build(a.arch, a.size).eval()
    sd = seeded_state_dict(model) if a.weights == "seeded" else load_safetensors(a.weights)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unused = [k for k in sd if k not in own]
    if missing:
        raise SystemExit(f"{len(missing)} torchvision parameters missing from {a.weights}: {missing[:5]}")
    model.load_state_dict({k: sd[k] for k in own}, strict=True)
    model = model.half().to(dev).to(memory_format=torch.channels_last)

    compile_s = 0.0
    if a.mode == "compile":
        import torch._inductor.config as ic
        ic.compile_threads = min(16, os.cpu_count() or 4)
        ic.max_autotune_conv_backends = a.conv_autotune
        ic.max_autotune_gemm_backends = a.gemm_autotune
        model.backbone = torch.compile(model.backbone, mode=a.compile_mode, fullgraph=True, dynamic=False)
        model.head = torch.compile(model.head, mode=a.compile_mode, fullgraph=True, dynamic=False)

    host = torch.from_numpy(synthetic_images(a.batch)).pin_memory()

    def step():
        # compiled parts run as CUDA graphs (cudagraph trees): each invocation starts a new step, so outputs of the last
        # one (consumed already) may be overwritten; without it, calling the backbone again outside model() fails
        if a.mode == "compile":
            torch.compiler.cudagraph_mark_step_begin()

    def sample():
        step()
        x = host.to(dev, non_blocking=True).permute(0, 3, 1, 2).half().div_(255)
        out = model(list(x.unbind(0)))
        return [(o["boxes"].float().cpu(), o["scores"].float().cpu(), o["labels"].cpu()) for o in out]

    def network():
        step()
        x = host.to(dev, non_blocking=True).permute(0, 3, 1, 2).half().div_(255)
        images, _ = model.transform(list(x.unbind(0)))
        torch.cuda.synchronize()
        t = time.perf_counter()
        feats = model.backbone(images.tensors)
        head = model.head(list(feats.values()))
        torch.cuda.synchronize()
        _ = head
        return (time.perf_counter() - t) * 1000

    lock = None
    with torch.inference_mode():
        t0 = time.perf_counter()
        dets = sample()   # compiles in compile mode
        torch.cuda.synchronize()
        if a.mode == "compile":
            compile_s = time.perf_counter() - t0
        for _ in range(3):
            dets = sample()
            network()
        torch.cuda.synchronize()
        if a.barrier:
            import glob
            d, n = a.barrier.rsplit(":", 1)
            os.makedirs(d, exist_ok=True)
            open(os.path.join(d, a.arch + ".ready"), "w").close()
            t_wait = time.perf_counter()
            while len(glob.glob(os.path.join(d, "*.ready"))) < int(n) and time.perf_counter() - t_wait < 60:
                time.sleep(0.2)
        if a.measure_lock:
            import fcntl
            lock = open(a.measure_lock, "w")
            fcntl.flock(lock, fcntl.LOCK_EX)
        net = sorted(network() for _ in range(10))
        lat = []
        start = time.perf_counter()
        while time.perf_counter() - start < a.seconds or len(lat) < 3:
            t = time.perf_counter()
            dets = sample()
            lat.append((time.perf_counter() - t) * 1000)
        elapsed = time.perf_counter() - start
        if lock:
            lock.close()
    lat.sort()

    def pct(p):
        r = p / 100 * (len(lat) - 1)
        lo = int(r)
        hi = min(lo + 1, len(lat) - 1)
        return lat[lo] + (lat[hi] - lat[lo]) * (r - lo)

    res = {
        "architecture": a.arch, "batch": a.batch, "mode": a.mode if a.mode == "eager" else f"torch.compile {a.compile_mode}",
        "images_per_second": len(lat) * a.batch / elapsed, "latency_ms_p50": pct(50), "latency_ms_p90": pct(90),
        "latency_ms_p99": pct(99), "runs": len(lat), "compile_seconds": compile_s, "network_ms": net[len(net) // 2],
        "weights": "seeded formula (python)" if a.weights == "seeded" else "osprey --save-weights",
        "conv_autotune": a.conv_autotune if a.mode == "compile" else "", "gemm_autotune": a.gemm_autotune if a.mode == "compile" else "",
        "detections_first_image": int(dets[0][0].shape[0]), "unused_weights": len(unused),
        "torch": torch.__version__, "device": torch.cuda.get_device_name(0),
        "peak_allocated_mib": torch.cuda.max_memory_allocated() / 2**20,
    }
    print(json.dumps(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f)


if __name__ == "__main__":
    main()
