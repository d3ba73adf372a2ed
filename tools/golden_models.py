#!/usr/bin/env python3
"""Golden fixtures for Osprey's detection models (tests/Osprey.Tests/Fixtures/detect/models/<arch>.json).

Each torchvision architecture gets formula weights (tools/formula.py weight(), recomputed by the C# test, never
stored), runs on coco128 images at a reduced input size, and the fixture keeps only summaries: the transformed
input, every feature level and both head outputs (shape, sum, abs sum, 32 evenly spaced values), and the final
detections in original image pixels.
Run: /usr/bin/python3 tools/golden_models.py [arch ...]
"""
import json, os, sys
import numpy as np
import torch
from PIL import Image
from torchvision.models import resnet
from torchvision.models.detection import RetinaNet, ssd300_vgg16
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops.feature_pyramid_network import LastLevelP6P7
from torchvision.ops import misc as misc_nn_ops
import torchvision.transforms.functional as TF

sys.path.insert(0, os.path.dirname(__file__))
from formula import weight  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")
OUT = os.path.join(ROOT, "tests", "Osprey.Tests", "Fixtures", "detect", "models")
COCO = os.path.join(ROOT, "..", "shared", "data", "coco128", "train2017")
torch.set_num_threads(2)

RETINA = {"retinanet_resnet18_fpn": 18, "retinanet_resnet34_fpn": 34, "retinanet_resnet50_fpn": 50,
          "retinanet_resnet101_fpn": 101, "retinanet_resnet152_fpn": 152}
# reduced input sizes keep the CPU reference fast; the C# test uses the same settings
RETINA_MIN, RETINA_MAX = 128, 192
IMAGES = {"retina": ["000000000009.jpg", "000000000025.jpg"], "ssd": ["000000000009.jpg"]}


def build(arch):
    if arch in RETINA:
        body = getattr(resnet, f"resnet{RETINA[arch]}")(weights=None, norm_layer=misc_nn_ops.FrozenBatchNorm2d)
        backbone = _resnet_fpn_extractor(body, 5, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
        return RetinaNet(backbone, num_classes=91, min_size=RETINA_MIN, max_size=RETINA_MAX)
    if arch == "ssd300_vgg16":
        return ssd300_vgg16(weights=None, weights_backbone=None)
    raise ValueError(arch)


def stats(t):
    a = t.detach().double().numpy().ravel()
    idx = (np.arange(32) * a.size) // 32
    return {"shape": list(t.shape), "sum": float(a.sum()), "abs_sum": float(np.abs(a).sum()),
            "sample_index": idx.tolist(), "sample": [float(np.float32(v)) for v in a[idx]]}


def run(arch):
    model = build(arch).eval()
    sd = model.state_dict()
    model.load_state_dict({k: torch.from_numpy(weight(k, tuple(v.shape))) for k, v in sd.items()})
    names = IMAGES["retina" if arch in RETINA else "ssd"]
    imgs = [TF.to_tensor(Image.open(os.path.join(COCO, n)).convert("RGB")) for n in names]
    with torch.no_grad():
        images, _ = model.transform(imgs)
        feats = model.backbone(images.tensors)
        feats = list(feats.values()) if isinstance(feats, dict) else feats
        head = model.head(feats)
        dets = model(imgs)
    return {
        "arch": arch, "images": names, "min_size": RETINA_MIN if arch in RETINA else 300, "max_size": RETINA_MAX if arch in RETINA else 300,
        "parameters": len(sd),
        "image_sizes": [list(s) for s in images.image_sizes],
        "input": stats(images.tensors),
        "features": [stats(f) for f in feats],
        "cls_logits": stats(head["cls_logits"]),
        "bbox_regression": stats(head["bbox_regression"]),
        "detections": [{"boxes": d["boxes"].numpy().astype(np.float32).ravel().tolist(),
                        "scores": d["scores"].numpy().astype(np.float32).tolist(),
                        "labels": d["labels"].tolist()} for d in dets],
    }


os.makedirs(OUT, exist_ok=True)
for arch in sys.argv[1:] or list(RETINA) + ["ssd300_vgg16"]:
    res = run(arch)
    # keep the fixture small: the first 25 detections per image
    for d in res["detections"]:
        d["count"] = len(d["scores"])
        d["boxes"], d["scores"], d["labels"] = d["boxes"][:100], d["scores"][:25], d["labels"][:25]
    path = os.path.join(OUT, arch + ".json")
    json.dump(res, open(path, "w"), separators=(",", ":"))
    print(arch, os.path.getsize(path), "bytes,", [d["count"] for d in res["detections"]], "detections")
