#!/usr/bin/env python3
"""Resize sizes of torchvision 0.14's GeneralizedRCNNTransform (tests/Osprey.Tests/Fixtures/detect/resize.json).

For every coco128 image shape plus awkward ones, the resized (unpadded) size torchvision produces for several
(min_size, max_size) settings, and the padded batch size for size_divisible 32.
Run: /usr/bin/python3 tools/golden_preprocess.py
"""
import glob, json, os
import torch
from PIL import Image
from torchvision.models.detection.transform import _resize_image_and_masks

ROOT = os.path.join(os.path.dirname(__file__), "..")
COCO = os.path.join(ROOT, "..", "shared", "data", "coco128", "train2017")
shapes = sorted({Image.open(f).size[::-1] for f in glob.glob(os.path.join(COCO, "*.jpg"))})
shapes += [(1, 1), (7, 1000), (1000, 7), (799, 1333), (600, 1000), (481, 641), (3, 5), (1333, 800), (555, 555)]
cases = []
for mn, mx in [(800, 1333), (128, 192), (512, 512), (600, 1000), (300, 300)]:
    for h, w in shapes:
        img, _ = _resize_image_and_masks(torch.zeros(1, h, w), float(mn), float(mx))
        cases.append([mn, mx, h, w, img.shape[-2], img.shape[-1]])
json.dump({"cases": cases}, open(os.path.join(ROOT, "tests", "Osprey.Tests", "Fixtures", "detect", "resize.json"), "w"), separators=(",", ":"))
print(len(cases), "cases")
