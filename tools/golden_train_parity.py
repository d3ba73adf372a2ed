#!/usr/bin/env python3
"""Training parity fixture (issue 7 item 7): the first 50 iterations of torchvision's RetinaNet training, to be matched by
`osprey train`'s loop (tests/Osprey.Tests/Training/TrainParityTests.cs). torch 1.13 / torchvision 0.14, CPU.

    /usr/bin/python3 tools/golden_train_parity.py [SIZE ...]   # writes tests/Osprey.Tests/Fixtures/train/parity_SIZE.json (default 32)

The model is torchvision's RetinaNet class with its ResNet-18 FPN backbone (returned layers 2-4, P6/P7 from P5, all layers
trainable) and 4 classes, in the parametrisation Osprey trains: every frozen batch norm folded into its convolution
(weight x scale; a bias = beta - mean x scale), and that bias trained like every other parameter. (torchvision's
FrozenBatchNorm2d keeps beta fixed; Osprey folds batch norm at load and trains the folded tensors.) Initial weights:
tools/formula.py weight() by torchvision state_dict name (the C# test computes the same), folded as FrozenBatchNorm2d does
(scale = w * rsqrt(var + eps), float32).
Data: 4 images of size S x S, a textured grey background from formula values with solid rectangles at the stored boxes;
iteration i trains on images (2i mod 4, 2i + 1 mod 4); the transform is torchvision's at min_size = max_size = S (no
resize) with ImageNet normalisation. Loss: torchvision's (focal 0.25/2 over non-ignored anchors / max(1, foreground),
L1 box loss, Matcher 0.5/0.4 with low-quality matches). Step: clip_grad_norm_(10), SGD momentum 0.9, weight decay 1e-4,
lr 0.01 x ODTK's factor (warm-up 10 iterations from 0.1, x0.1 at iteration 40).
Stored: per iteration the two loss parts, the lr and the gradient norm before clipping; the final sum / abs sum of a few
named parameters. No augmentation.
"""
import json
import os
import sys

import numpy as np
import torch
from torch import nn
from torchvision.models import resnet
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops import misc as misc_nn_ops
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

sys.path.insert(0, os.path.dirname(__file__))
from formula import values, weight  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "Osprey.Tests", "Fixtures", "train")
torch.set_num_threads(2)

CLASSES = 4
ITERS = 50
# lr 0.002: at 0.01 this small model's trajectory turns chaotic once the warm-up passes ~0.007 (float32 rounding
# differences of 1e-6 grow ~10x per iteration from iteration 6), so no tolerance could tell a bug from rounding
LR, WARMUP, MILESTONES, MOMENTUM, WEIGHT_DECAY, CLIP = 0.002, 10, [40], 0.9, 1e-4, 10.0
# boxes (x1, y1, x2, y2) in units of S/64 (all even, so exact at S = 32) and labels of the 4 images
BOXES = [
    ([[6, 8, 30, 28], [36, 30, 60, 58]], [1, 2]),
    ([[10, 12, 50, 44]], [3]),
    ([[4, 36, 22, 60], [28, 6, 46, 24], [40, 34, 62, 52]], [2, 1, 3]),
    ([[16, 16, 48, 56]], [1]),
]
COLOURS = {1: (230, 40, 40), 2: (40, 200, 60), 3: (50, 70, 230)}
REPORT = ["head.classification_head.cls_logits.bias", "head.regression_head.bbox_reg.bias",
          "head.classification_head.conv.0.0.weight", "backbone.fpn.layer_blocks.0.0.weight", "backbone.body.conv1.weight",
          "backbone.body.layer4.1.conv2.weight"]


def image(i, s):
    """uint8 [s, s, 3]: background int((u + 1) * 64) + 64 from formula values, rectangles in their label's colour."""
    u = values(f"parity.image{i}", s * s * 3)
    img = (((u + np.float32(1)) * np.float32(64)).astype(np.int32) + 64).astype(np.uint8).reshape(s, s, 3)
    k = s // 32  # box coordinates are even: exact at 32 px
    for (x1, y1, x2, y2), label in zip(*BOXES[i]):
        img[y1 * k // 2:y2 * k // 2, x1 * k // 2:x2 * k // 2] = COLOURS[label]
    return img


class FoldedBias(nn.Module):
    """A frozen batch norm folded into the convolution before it: only a trainable per-channel bias remains."""

    def __init__(self, bias):
        super().__init__()
        self.bias = nn.Parameter(bias.clone())

    def forward(self, x):
        return x + self.bias.view(1, -1, 1, 1)


def build(s):
    body = resnet.resnet18(weights=None, norm_layer=misc_nn_ops.FrozenBatchNorm2d)
    backbone = _resnet_fpn_extractor(body, 5, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
    model = RetinaNet(backbone, num_classes=CLASSES, min_size=s, max_size=s)
    sd = {k: torch.from_numpy(weight(k, tuple(v.shape))) for k, v in model.state_dict().items()}
    model.load_state_dict(sd)
    # fold every FrozenBatchNorm2d into the convolution that feeds it (scale as FrozenBatchNorm2d computes it)
    pairs = [("conv1", "bn1")] + [(f"{l}.{b}.{c}", f"{l}.{b}.{n}") for l in ("layer1", "layer2", "layer3", "layer4")
                                  for b in (0, 1) for c, n in (("conv1", "bn1"), ("conv2", "bn2"))]
    pairs += [(f"layer{l}.0.downsample.0", f"layer{l}.0.downsample.1") for l in (2, 3, 4)]
    body = model.backbone.body  # the IntermediateLayerGetter holding the ResNet's modules (the model's own bn1 included)
    mods = dict(body.named_modules())
    with torch.no_grad():
        for conv_name, bn_name in pairs:
            conv, bn = mods[conv_name], mods[bn_name]
            scale = bn.weight * (bn.running_var + bn.eps).rsqrt()
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            folded = FoldedBias(bn.bias - bn.running_mean * scale)
            parent, _, leaf = bn_name.rpartition(".")
            setattr(mods[parent] if parent else body, leaf, folded)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def factor(it):
    if WARMUP > 0 and it <= WARMUP:
        return 0.9 * it / WARMUP + 0.1
    return 0.1 ** sum(1 for m in MILESTONES if m <= it)


def run(s, dtype=torch.float32):
    torch.manual_seed(0)
    model = build(s).to(dtype)
    model.train()
    params = [p for p in model.parameters()]
    named = dict(model.named_parameters())
    missing = [n for n in REPORT if n not in named]
    if missing:
        raise KeyError(f"no parameters {missing}")
    opt = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    imgs = [torch.from_numpy(image(i, s)).permute(2, 0, 1).to(dtype).div(255) for i in range(4)]
    k = s / 64
    targets = [{"boxes": torch.tensor(b, dtype=dtype) * k, "labels": torch.tensor(l, dtype=torch.int64)} for b, l in BOXES]
    rows = []
    for it in range(ITERS):
        idx = [(2 * it) % 4, (2 * it + 1) % 4]
        lr = LR * factor(it)
        for g in opt.param_groups:
            g["lr"] = lr
        losses = model([imgs[i] for i in idx], [targets[i] for i in idx])
        total = losses["classification"] + losses["bbox_regression"]
        opt.zero_grad()
        total.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        rows.append({"classification": float(losses["classification"]), "box": float(losses["bbox_regression"]),
                     "lr": lr, "grad_norm": float(norm)})
        print(f"{s}px {dtype} iter {it + 1}: cls {rows[-1]['classification']:.6f} box {rows[-1]['box']:.6f} norm {rows[-1]['grad_norm']:.4f}", flush=True)
    final = {}
    for name in REPORT:
        a = named[name].detach().double().numpy()
        final[name] = {"sum": float(a.sum()), "abs_sum": float(np.abs(a).sum())}
    return {"format": "osprey-golden-train-parity", "version": 1, "size": s, "classes": CLASSES, "iterations": ITERS, "lr": LR, "warmup": WARMUP, "milestones": MILESTONES,
            "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY, "clip": CLIP,
            "images": [{"boxes": [[c * k for c in b] for b in bx], "labels": lb} for bx, lb in BOXES],
            "colours": {str(k_): list(v) for k_, v in COLOURS.items()}, "iters": rows, "final": final}


def sensitivity(s):
    """torch float32 against torch float64 on the same 50 iterations: how far rounding alone moves this trajectory."""
    a, b = run(s, torch.float32), run(s, torch.float64)
    for i, (x, y) in enumerate(zip(a["iters"], b["iters"])):
        rel = {k: abs(x[k] - y[k]) / max(abs(y[k]), 1e-12) for k in ("classification", "box", "grad_norm")}
        print(f"iter {i + 1}: relative difference fp32 vs fp64: cls {rel['classification']:.2e} box {rel['box']:.2e} norm {rel['grad_norm']:.2e}")


def main():
    if sys.argv[1:2] == ["--sensitivity"]:
        sensitivity(int(sys.argv[2]) if len(sys.argv) > 2 else 32)
        return
    os.makedirs(OUT, exist_ok=True)
    sizes = [int(a) for a in sys.argv[1:]] or [32]
    for s in sizes:
        fixture = run(s)
        with open(os.path.join(OUT, f"parity_{s}.json"), "w") as f:
            json.dump(fixture, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
