#!/usr/bin/python3
"""PyTorch baseline for `Osprey.Bench autograd`: torchvision RetinaNet-R18-FPN (frozen batch norm, all convolutions
trainable) on 2 threads: forward (no_grad) and forward + backward of sum(cls_logits^2) + sum(bbox_regression^2),
median wall milliseconds after one warm-up. Prints one line.

usage: torch_autograd.py [--batch N] [--size H W] [--runs N]
"""
import argparse
import statistics
import time

import torch
from torchvision.models import resnet
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops.feature_pyramid_network import LastLevelP6P7
from torchvision.ops import misc as misc_nn_ops


def median_ms(fn, runs):
    fn()
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--size", type=int, nargs=2, default=[256, 256])
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    body = resnet.resnet18(weights=None, norm_layer=misc_nn_ops.FrozenBatchNorm2d)
    backbone = _resnet_fpn_extractor(body, 5, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
    model = RetinaNet(backbone, num_classes=91).eval()
    x = torch.rand(a.batch, 3, *a.size) * 2 - 1

    def forward():
        with torch.no_grad():
            h = model.head(list(model.backbone(x).values()))
        return h

    def step():
        h = model.head(list(model.backbone(x).values()))
        loss = h["cls_logits"].pow(2).sum() + h["bbox_regression"].pow(2).sum()
        loss.backward()
        model.zero_grad(set_to_none=True)

    print(f"forward {median_ms(forward, a.runs):8.0f} ms   forward+backward {median_ms(step, a.runs):8.0f} ms   (torch {torch.__version__})")


if __name__ == "__main__":
    main()
