#!/usr/bin/env python3
"""torchvision side of `Osprey.Bench gpu-train` (issue 7 item 9), run in the same call by the bench-train step of
scripts/run-gpu.sh.

Training images/s of torchvision's RetinaNet-R50-FPN (FrozenBatchNorm2d ResNet-50, every layer trainable, LastLevelP6P7(256,
256), RetinaNetHead, compute_loss: focal + L1 with Matcher(0.5, 0.4, low-quality)) and SSD300-VGG16 (SSD.compute_loss: smooth L1
+ 3:1 hard-negative cross-entropy), random init, 91 classes. One fixed batch of random images already on the GPU at the
network's size (800x800 / 300x300, so the model's transform only normalises and batches), 5 random boxes per image. One step:
forward with the loss (under torch.autocast(float16) for amp, bfloat16 for bf16), backward (GradScaler for amp), unscale,
clip_grad_norm_(10), SGD(momentum 0.9, weight decay 1e-4) step, and loss.item() (the logged loss, as Osprey reads it every
step). cudnn.benchmark on; channels_last model for 16-bit. Warm-up steps, then --steps timed steps; prints one JSON line.
"""
import argparse, json, sys, time
import torch
from torchvision.models import resnet
from torchvision.models.detection import RetinaNet, ssd300_vgg16
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops.feature_pyramid_network import LastLevelP6P7
from torchvision.ops import misc as misc_nn_ops


def build(arch, size):
    if arch == "retinanet_resnet50_fpn":
        body = resnet.resnet50(weights=None, norm_layer=misc_nn_ops.FrozenBatchNorm2d)
        bb = _resnet_fpn_extractor(body, 5, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
        return RetinaNet(bb, num_classes=91, min_size=size, max_size=size)
    if arch == "ssd300_vgg16":
        return ssd300_vgg16(weights=None, weights_backbone=None, num_classes=91)
    raise SystemExit(f"unknown arch {arch}")


def targets(batch, size, gen, dev):
    out = []
    for _ in range(batch):
        xy = torch.rand(5, 2, generator=gen) * (size * 0.6)
        wh = torch.rand(5, 2, generator=gen) * (size * 0.3) + size * 0.05
        boxes = torch.cat([xy, xy + wh], 1).clamp(max=size - 1)
        labels = torch.randint(1, 91, (5,), generator=gen)
        out.append({"boxes": boxes.to(dev), "labels": labels.to(dev)})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--precision", default="amp", choices=["amp", "bf16", "fp32"])
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--profile", type=int, default=0)
    a = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = build(a.arch, a.size).to(dev).train()
    half = a.precision != "fp32"
    if half:
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.001, momentum=0.9, weight_decay=1e-4)
    scaler = torch.cuda.amp.GradScaler(enabled=a.precision == "amp")
    dtype = torch.bfloat16 if a.precision == "bf16" else torch.float16
    gen = torch.Generator().manual_seed(1)
    images = list(torch.rand(a.batch, 3, a.size, a.size, generator=gen).to(dev).unbind(0))
    tg = targets(a.batch, a.size, gen, dev)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype, enabled=half):
            losses = model(images, tg)
            loss = sum(losses.values())
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        scaler.step(opt)
        scaler.update()
        return loss.item()

    for _ in range(a.warmup):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    last = 0.0
    for _ in range(a.steps):
        last = step()
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    print(json.dumps({"side": "torch", "arch": a.arch, "batch": a.batch, "size": a.size, "precision": a.precision,
                      "steps": a.steps, "seconds": dt, "images_per_s": a.batch * a.steps / dt, "ms_per_step": 1000 * dt / a.steps,
                      "last_loss": last, "torch": torch.__version__,
                      "max_mem_gib": torch.cuda.max_memory_allocated() / 2**30}))
    if a.profile > 0:
        profile(a, step, model, images, tg, opt, scaler, params, dtype, half, dt / a.steps)


def profile(a, step, model, images, tg, opt, scaler, params, dtype, half, step_s):
    """Per-phase times (synchronising between phases, so the step's body is spelled out here), then the torch profiler
    over whole steps (step(), the timed loop's own function)."""
    phases = {"forward+loss": 0.0, "backward": 0.0, "optimizer": 0.0}
    for _ in range(a.profile):
        torch.cuda.synchronize()
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype, enabled=half):
            losses = model(images, tg)
            loss = sum(losses.values())
        torch.cuda.synchronize(); u = time.perf_counter(); phases["forward+loss"] += (u - t) * 1000 / a.profile; t = u
        scaler.scale(loss).backward()
        torch.cuda.synchronize(); u = time.perf_counter(); phases["backward"] += (u - t) * 1000 / a.profile; t = u
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        scaler.step(opt)
        scaler.update()
        loss.item()
        torch.cuda.synchronize(); u = time.perf_counter(); phases["optimizer"] += (u - t) * 1000 / a.profile
    print(f"torch step profile: {a.arch} batch {a.batch} size {a.size} {a.precision}, {a.profile} steps, synchronising timers (ms/step); "
          f"free-running {1000 * step_s:.2f} ms/step")
    for k, v in phases.items():
        print(f"| {k} | {v:.2f} |")
    from torch.profiler import profile as tprof, ProfilerActivity
    with tprof(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(a.profile):
            step()
        torch.cuda.synchronize()
    ka = prof.key_averages()
    counts = {}
    for e in ka:
        if e.key in ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cudaStreamSynchronize", "cudaDeviceSynchronize",
                     "cudaMemcpyAsync", "cudaEventSynchronize", "cudaStreamWaitEvent"):
            counts[e.key] = e.count / a.profile
    print("torch per step:", ", ".join(f"{k} {v:.0f}" for k, v in sorted(counts.items())))
    print(ka.table(sort_by="cuda_time_total", row_limit=22, max_name_column_width=60))


if __name__ == "__main__":
    sys.exit(main())
