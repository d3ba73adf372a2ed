#!/usr/bin/env python3
"""torchvision side of `Osprey.Bench gpu-infer` (issue 4 item 7), run in the same call by bench/gpu/run-infer.sh.

Writes the shared inputs first: formula weights (tools/formula.py, copied beside this script by scripts/pack-gpu.sh)
as a torchvision state_dict .pth that Osprey loads, and formula images as raw uint8 [N, H, W, 3]. Then times
torchvision on them: a decoded uint8 batch already on the GPU -> model(list of fp16 images) -> final detections
(dicts of CUDA tensors), fp16 weights, channels_last, torch.inference_mode, cudnn.benchmark; each sample ends with
torch.cuda.synchronize(); median of --runs. Prints one JSON object (also to --json).
"""
import argparse, json, os, statistics, sys, time
import numpy as np
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from formula import weight, values  # noqa: E402
from torchvision.models import resnet  # noqa: E402
from torchvision.models.detection import RetinaNet, ssd300_vgg16  # noqa: E402
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor  # noqa: E402
from torchvision.ops.feature_pyramid_network import LastLevelP6P7  # noqa: E402
from torchvision.ops import misc as misc_nn_ops  # noqa: E402

DEPTHS = {"retinanet_resnet18_fpn": 18, "retinanet_resnet34_fpn": 34, "retinanet_resnet50_fpn": 50,
          "retinanet_resnet101_fpn": 101, "retinanet_resnet152_fpn": 152}


def build(arch, min_size, max_size):
    if arch in DEPTHS:
        body = getattr(resnet, f"resnet{DEPTHS[arch]}")(weights=None, norm_layer=misc_nn_ops.FrozenBatchNorm2d)
        bb = _resnet_fpn_extractor(body, 5, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
        return RetinaNet(bb, num_classes=91, min_size=min_size, max_size=max_size)
    return ssd300_vgg16(weights=None, weights_backbone=None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--height", type=int, required=True)
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--weights", required=True, help=".pth to write (Osprey loads it)")
    ap.add_argument("--images", required=True, help="raw uint8 NHWC file to write (Osprey reads it)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--min-size", type=int, default=800)
    ap.add_argument("--max-size", type=int, default=1333)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    model = build(a.arch, a.min_size, a.max_size).eval()
    sd = {k: torch.from_numpy(weight(k, tuple(v.shape))) for k, v in model.state_dict().items()}
    model.load_state_dict(sd)
    torch.save(sd, a.weights)
    n = a.batch * a.height * a.width * 3
    u8 = ((values("bench-images", n).astype(np.float64) + 1.0) * 127.5).astype(np.uint8)
    u8.tofile(a.images)
    dev = torch.device("cuda")
    model = model.half().to(dev).to(memory_format=torch.channels_last)
    imgs = torch.from_numpy(u8.reshape(a.batch, a.height, a.width, 3)).to(dev)

    def run():
        x = imgs.permute(0, 3, 1, 2).half().div_(255)
        return model(list(x.unbind(0)))

    def network_only(t):
        feats = model.backbone(t)
        return model.head(list(feats.values()))

    with torch.inference_mode():
        for _ in range(3):
            out = run()
        torch.cuda.synchronize()
        total, pre, net = [], [], []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            out = run()
            torch.cuda.synchronize()
            total.append((time.perf_counter() - t0) * 1e3)
        for _ in range(max(3, a.runs // 4)):
            t0 = time.perf_counter()
            x = imgs.permute(0, 3, 1, 2).half().div_(255)
            batch, _ = model.transform(list(x.unbind(0)))
            torch.cuda.synchronize()
            t1 = time.perf_counter()
            network_only(batch.tensors)
            torch.cuda.synchronize()
            t2 = time.perf_counter()
            pre.append((t1 - t0) * 1e3)
            net.append((t2 - t1) * 1e3)
    ms = statistics.median(total)
    r = {"side": "torch", "torch": torch.__version__, "arch": a.arch, "batch": a.batch, "ms": ms,
         "images_per_s": a.batch * 1e3 / ms, "pre_ms": statistics.median(pre), "network_ms": statistics.median(net),
         "post_ms": ms - statistics.median(pre) - statistics.median(net),
         "detections": int(sum(len(o["scores"]) for o in out)), "device": torch.cuda.get_device_name()}
    print(json.dumps(r))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f)


if __name__ == "__main__":
    main()
