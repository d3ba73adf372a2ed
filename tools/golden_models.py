#!/usr/bin/env python3
"""Golden fixtures for Osprey's detection models (tests/Osprey.Tests/Fixtures/detect/models/<arch>.json).

Each torchvision architecture gets formula weights (tools/formula.py weight(), recomputed by the C# test, never
stored), runs on coco128 images at a reduced input size, and the fixture keeps only summaries: the transformed
input, every feature level and both head outputs (shape, sum, abs sum, 32 evenly spaced values), and the final
detections in original image pixels.
The two NVIDIA architectures (retinanet_mobilenetv2_fpn: ODTK; ssd300_resnet50: DeepLearningExamples SSD300 v1.1)
use the reference definitions in tools/ref_nvidia.py. Their input is prepared as Osprey prepares it (normalise the
8-bit image, bilinear resize of the float image, zero padding; ODTK's size rule and 128 stride, or 300x300) because
that is the part Osprey does not reproduce bit for bit (ODTK and DLE resize the 8-bit PIL image); the network and
post-processing are the upstream ones. Their detections are stored as the upstream tools write them, in original
image pixels with COCO category ids (ODTK: x1 / ratio, y1 / ratio, x2 / ratio + 1, y2 / ratio + 1, so that x2 - x1 is
ODTK's JSON width; DLE: ltrb times the original width / height).
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
import torch.nn.functional as F
import torchvision.transforms.functional as TF

sys.path.insert(0, os.path.dirname(__file__))
from formula import weight  # noqa: E402
import ref_nvidia  # noqa: E402

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


NVIDIA = {"retinanet_mobilenetv2_fpn": (160, 256, 128), "ssd300_resnet50": (300, 300, 1)}


def nvidia_input(arch, imgs):
    """Osprey's preprocessing: (x / 255 - mean) / std, bilinear resize (align_corners=False), zero padding."""
    lo, hi, div = NVIDIA[arch]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    out, sizes, ratios = [], [], []
    for im in imgs:
        h, w = im.shape[-2:]
        if arch == "ssd300_resnet50":
            rh, rw, ratio = 300, 300, None
        else:
            ratio = lo / min(h, w)
            if ratio * max(h, w) > hi:
                ratio = hi / max(h, w)
            rh, rw = int(ratio * h), int(ratio * w)
        x = (im - mean) / std
        out.append(F.interpolate(x[None], size=(rh, rw), mode="bilinear", align_corners=False)[0])
        sizes.append((rh, rw))
        ratios.append(ratio)
    ph = max(s[0] for s in sizes)
    pw = max(s[1] for s in sizes)
    ph, pw = (ph + div - 1) // div * div, (pw + div - 1) // div * div
    batch = torch.zeros(len(imgs), 3, ph, pw)
    for i, x in enumerate(out):
        batch[i, :, :x.shape[1], :x.shape[2]] = x
    return batch, sizes, ratios


def run_nvidia(arch):
    model = ref_nvidia.OdtkRetinaNet() if arch == "retinanet_mobilenetv2_fpn" else ref_nvidia.DleSsd300()
    model = model.eval()
    sd = model.state_dict()
    model.load_state_dict({k: (v if k.endswith("num_batches_tracked") else torch.from_numpy(weight(k, tuple(v.shape))))
                           for k, v in sd.items()})
    names = IMAGES["retina" if arch.startswith("retina") else "ssd"]
    imgs = [TF.to_tensor(Image.open(os.path.join(COCO, n)).convert("RGB")) for n in names]
    batch, sizes, ratios = nvidia_input(arch, imgs)
    dets = []
    with torch.no_grad():
        if arch == "retinanet_mobilenetv2_fpn":
            feats, cls_heads, box_heads = model(batch)
            n, k = batch.shape[0], model.classes
            # Osprey's head layout: [N, H*W*A, K] and [N, H*W*A, 4] (the channel is anchor * K + class in both)
            flat = lambda t, c: t.reshape(n, -1, c, *t.shape[-2:]).permute(0, 3, 4, 1, 2).reshape(n, -1, c)  # noqa: E731
            cls = torch.cat([flat(t, k) for t in cls_heads], 1)
            reg = torch.cat([flat(t, 4) for t in box_heads], 1)
            for i in range(n):
                s, b, c = ref_nvidia.odtk_postprocess([t[i] for t in cls_heads], [t[i] for t in box_heads], batch.shape[-1])
                r = torch.tensor(ratios[i], dtype=torch.float32)
                b = b / r
                b[:, 2:] += 1
                dets.append((b, s, [ref_nvidia.COCO_IDS[int(x)] for x in c]))
        else:
            feats, locs, confs = model(batch)
            cls, reg = confs.permute(0, 2, 1), locs.permute(0, 2, 1)
            for i, im in enumerate(imgs):
                b, s, c = ref_nvidia.dle_postprocess(locs[i], confs[i])
                h, w = im.shape[-2:]
                b = b * torch.tensor([w, h, w, h], dtype=torch.float32)
                dets.append((b, s, [ref_nvidia.COCO_IDS[int(x) - 1] for x in c]))
    lo, hi, _ = NVIDIA[arch]
    return {
        "arch": arch, "images": names, "min_size": lo, "max_size": hi,
        "parameters": sum(1 for key in sd if not key.endswith("num_batches_tracked")),
        "image_sizes": [list(s) for s in sizes],
        "input": stats(batch),
        "features": [stats(f) for f in feats],
        "cls_logits": stats(cls),
        "bbox_regression": stats(reg),
        "detections": [{"boxes": b.numpy().astype(np.float32).ravel().tolist(), "scores": s.numpy().astype(np.float32).tolist(),
                        "labels": c} for b, s, c in dets],
    }


def run(arch):
    if arch in NVIDIA:
        return run_nvidia(arch)
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


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for arch in sys.argv[1:] or list(RETINA) + ["ssd300_vgg16"] + list(NVIDIA):
        res = run(arch)
        # keep the fixture small: the first 25 detections per image
        for d in res["detections"]:
            d["count"] = len(d["scores"])
            d["boxes"], d["scores"], d["labels"] = d["boxes"][:100], d["scores"][:25], d["labels"][:25]
        path = os.path.join(OUT, arch + ".json")
        json.dump(res, open(path, "w"), separators=(",", ":"))
        print(arch, os.path.getsize(path), "bytes,", [d["count"] for d in res["detections"]], "detections")
