#!/usr/bin/env python3
"""torch DistributedDataParallel side of `Osprey.Bench train-ddp` (issue 7 item 6), run in the same call by the bench-ddp
step of scripts/run-gpu.sh (bench/gpu/run-ddp.sh):

    torchrun --standalone --nproc_per_node N train_ddp_torch.py --per-gpu 4 --size 800 --precision fp32,amp [--json FILE]

The model is train_bench.py's: torchvision's RetinaNet-R50-FPN (FrozenBatchNorm2d ResNet-50, every layer trainable,
LastLevelP6P7(256, 256), RetinaNetHead, focal + L1 loss), random init (seed 0 on every rank, then DDP broadcasts rank 0's
weights), 91 classes. Each rank holds one fixed batch of --per-gpu random images at --size x --size already on its GPU (so
the transform only normalises) with 5 random boxes each (seeded by rank). One step: forward with the loss (torch.autocast
float16 for amp, channels_last model), backward (DDP all-reduces 25 MB gradient buckets while backward runs; GradScaler
for amp), unscale, clip_grad_norm_(10), SGD(momentum 0.9, weight decay 1e-4) step, loss.item(). DDP(broadcast_buffers=False):
the frozen batch norms' buffers never change, and Osprey does not broadcast them either. fp32 is exact float32 (TF32 off in
cuDNN and cuBLAS, as Osprey's fp32) unless --tf32. Warm-up steps, then --steps timed steps between two barriers; rank 0
prints one JSON line per precision (images/s of the whole world, the slowest rank's time) and appends it to --json.
"""
import argparse, json, os, sys, time
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_bench import build, targets  # noqa: E402  (the same model and target maker as the one-GPU benchmark)


def run(a, precision, rank, world, local, dev):
    """Warm-up and timed steps of one precision; rank 0 returns the JSON line."""
    torch.manual_seed(0)
    model = build(a.arch, a.size).to(dev).train()
    half = precision == "amp"
    if half:
        model = model.to(memory_format=torch.channels_last)
    model = DDP(model, device_ids=[local], broadcast_buffers=False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.001, momentum=0.9, weight_decay=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=half)
    gen = torch.Generator().manual_seed(1 + rank)
    images = list(torch.rand(a.per_gpu, 3, a.size, a.size, generator=gen).to(dev).unbind(0))
    tg = targets(a.per_gpu, a.size, gen, dev)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16, enabled=half):
            losses = model(images, tg)
            loss = sum(losses.values())
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        scaler.step(opt)
        scaler.update()
        return loss.item()

    torch.cuda.reset_peak_memory_stats(dev)
    for _ in range(a.warmup):
        step()
    torch.cuda.synchronize()
    dist.barrier()
    t0 = time.perf_counter()
    last = 0.0
    for _ in range(a.steps):
        last = step()
    torch.cuda.synchronize()
    dist.barrier()
    dt = torch.tensor([time.perf_counter() - t0], device=dev)
    dist.all_reduce(dt, op=dist.ReduceOp.MAX)   # the slowest rank's time
    dt = dt.item()
    line = json.dumps({"side": "torch", "arch": a.arch, "gpus": world, "per_gpu": a.per_gpu, "size": a.size,
                       "precision": precision, "tf32": a.tf32, "steps": a.steps, "warmup": a.warmup, "seconds": dt,
                       "images_per_s": world * a.per_gpu * a.steps / dt, "ms_per_iter": 1000 * dt / a.steps,
                       "last_loss": last, "torch": torch.__version__, "nccl": ".".join(map(str, torch.cuda.nccl.version())),
                       "max_mem_gib": torch.cuda.max_memory_allocated(dev) / 2**30})
    del model, opt, params
    torch.cuda.empty_cache()
    return line


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="retinanet_resnet50_fpn")
    ap.add_argument("--per-gpu", type=int, default=4)
    ap.add_argument("--size", type=int, default=800)
    ap.add_argument("--precision", default="fp32,amp", help="fp32, amp, or a comma-separated list (one model each, in order)")
    ap.add_argument("--tf32", action="store_true", help="let fp32 convolutions and matrix products use TF32")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    precisions = a.precision.split(",")
    if any(p not in ("fp32", "amp") for p in precisions):
        raise SystemExit(f"--precision {a.precision}: expected fp32, amp or a list of them")
    if os.environ.get("NCCL_NVLS_ENABLE") != "0":
        raise SystemExit("set NCCL_NVLS_ENABLE=0 (NVLink multicast must stay off on the shared GPU hosts)")
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local)
    dev = torch.device("cuda", local)
    dist.init_process_group("nccl")
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = a.tf32
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    for p in precisions:
        line = run(a, p, rank, world, local, dev)
        if rank == 0:
            print(line, flush=True)
            if a.json:
                with open(a.json, "a") as f:
                    f.write(line + "\n")
    dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
