#!/usr/bin/env python3
"""torchvision reference timing for bench/Osprey.Bench.Detect: same architecture, weights, image and input size.
Run: /usr/bin/python3 bench/detect/torch_detect.py ARCH WEIGHTS IMAGE [--min N] [--max N] [--runs N]"""
import statistics, sys, time
import torch
from PIL import Image
import torchvision.transforms.functional as TF
from torchvision.models import resnet
from torchvision.models.detection import RetinaNet, ssd300_vgg16
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops.feature_pyramid_network import LastLevelP6P7
from torchvision.ops import misc as misc_nn_ops

DEPTHS = {"retinanet_resnet18_fpn": 18, "retinanet_resnet34_fpn": 34, "retinanet_resnet50_fpn": 50,
          "retinanet_resnet101_fpn": 101, "retinanet_resnet152_fpn": 152}


def build(arch, min_size=800, max_size=1333):
    if arch in DEPTHS:
        body = getattr(resnet, f"resnet{DEPTHS[arch]}")(weights=None, norm_layer=misc_nn_ops.FrozenBatchNorm2d)
        bb = _resnet_fpn_extractor(body, 5, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
        return RetinaNet(bb, num_classes=91, min_size=min_size, max_size=max_size)
    return ssd300_vgg16(weights=None, weights_backbone=None)


if __name__ == "__main__":
    arch, weights, image = sys.argv[1:4]
    opts = dict(zip(sys.argv[4::2], map(int, sys.argv[5::2])))
    runs = opts.get("--runs", 5)
    model = build(arch, opts.get("--min", 800), opts.get("--max", 1333)).eval()
    model.load_state_dict(torch.load(weights))
    data = open(image, "rb").read()
    times = {"decode": [], "model (preprocess+network+postprocess)": [], "total": []}
    with torch.no_grad():
        for r in range(runs + 1):
            t0 = time.perf_counter()
            import io
            img = TF.to_tensor(Image.open(io.BytesIO(data)).convert("RGB"))
            t1 = time.perf_counter()
            out = model([img])
            t2 = time.perf_counter()
            if r == 0:
                continue
            times["decode"].append((t1 - t0) * 1e3)
            times["model (preprocess+network+postprocess)"].append((t2 - t1) * 1e3)
            times["total"].append((t2 - t0) * 1e3)
    print(f"torch {torch.__version__} {arch} on {torch.get_num_threads()} threads, {len(out[0]['scores'])} detections; median of {runs} runs:")
    for k, v in times.items():
        print(f"  {k:<40} {statistics.median(v):10.1f} ms")
