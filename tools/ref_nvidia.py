"""Small PyTorch reference definitions of the two NVIDIA detectors Osprey reproduces, written for Osprey's golden
fixtures (tools/golden_models.py). They follow the upstream sources' structure, parameter names and arithmetic; no
upstream code is copied.

1. ODTK RetinaNet with the MobileNetV2-FPN backbone, following NVIDIA/retinanet-examples at commit
   65e63109bf5d12c9ad11b6f5bcdec12a117ee888: odtk/backbones/mobilenet.py (torchvision's MobileNetV2, C3/C4/C5 after
   features 6, 13, 17), odtk/backbones/fpn.py (lateral/smooth/pyramid convs, P6 from C5), odtk/model.py (4-conv heads,
   80 classes, 9 anchors, sigmoid), odtk/box.py (generate_anchors, delta2box) and the semantics of the CUDA kernels
   that `odtk infer` runs (csrc/cuda/decode.cu: threshold `>`, per-level top-n by a stable descending sort;
   csrc/cuda/nms.cu: per-class greedy NMS with +1 pixel areas, `overlap > nms`, stable descending sort).
   Box clamping follows box.py's delta2box (both sides of [0, size * stride - 1]); class and anchor indices use integer
   division, as decode.cu does (box.py's `/` became true division in torch >= 1.5).
2. NVIDIA DeepLearningExamples SSD300 v1.1 (ResNet-50), following NVIDIA/DeepLearningExamples at commit
   729963dd47e7c8bd462ad10bfac7a7b0b604e6dd: PyTorch/Detection/SSD/ssd/model.py (ResNet-50 children up to layer3 with
   layer3's first block at stride 1, additional_blocks, loc/conf heads, bbox_view) and ssd/utils.py (dboxes300_coco,
   Encoder.scale_back_batch, Encoder.decode_single) and ssd/evaluate.py (criteria 0.50, max_output 200, boxes times
   the original width/height).
"""
import itertools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import mobilenet_v2, resnet50

COCO_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33,
            34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61,
            62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]


# ---------------------------------------------------------------------------------------------------------- ODTK

class OdtkMobileNetFpn(nn.Module):
    """backbones.MobileNetV2FPN: `features` is torchvision's MobileNetV2 (its features.18 and classifier exist in the
    state dict but are unused), lateral3/4/5, smooth3/4/5, pyramid6 (on C5) and pyramid7 (on relu(P6))."""

    def __init__(self):
        super().__init__()
        self.features = mobilenet_v2()
        for name, cin in (("3", 32), ("4", 96), ("5", 320)):
            setattr(self, "lateral" + name, nn.Conv2d(cin, 256, 1))
            setattr(self, "smooth" + name, nn.Conv2d(256, 256, 3, padding=1))
        self.pyramid6 = nn.Conv2d(320, 256, 3, stride=2, padding=1)
        self.pyramid7 = nn.Conv2d(256, 256, 3, stride=2, padding=1)

    def forward(self, x):
        c = []
        for i in range(18):
            x = self.features.features[i](x)
            if i in (6, 13, 17):
                c.append(x)
        c3, c4, c5 = c
        p5 = self.lateral5(c5)
        p4 = F.interpolate(p5, scale_factor=2) + self.lateral4(c4)
        p3 = F.interpolate(p4, scale_factor=2) + self.lateral3(c3)
        p6 = self.pyramid6(c5)
        p7 = self.pyramid7(F.relu(p6))
        return [self.smooth3(p3), self.smooth4(p4), self.smooth5(p5), p6, p7]


def _odtk_head(out):
    layers = []
    for _ in range(4):
        layers += [nn.Conv2d(256, 256, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers, nn.Conv2d(256, out, 3, padding=1))


class OdtkRetinaNet(nn.Module):
    ratios = [1.0, 2.0, 0.5]
    scales = [4 * 2 ** (i / 3) for i in range(3)]

    def __init__(self, classes=80):
        super().__init__()
        self.backbones = nn.ModuleDict({"MobileNetV2FPN": OdtkMobileNetFpn()})
        self.classes = classes
        self.cls_head = _odtk_head(classes * 9)
        self.box_head = _odtk_head(4 * 9)

    def forward(self, x):
        feats = self.backbones["MobileNetV2FPN"](x)
        return feats, [self.cls_head(t) for t in feats], [self.box_head(t) for t in feats]


def odtk_anchors(stride, ratios, scales):
    """generate_anchors: scale-major (anchor a = scale * len(ratios) + ratio), float32 arithmetic."""
    s = torch.tensor(scales, dtype=torch.float32).repeat(len(ratios), 1).t().reshape(-1, 1)
    r = torch.tensor(ratios * len(scales), dtype=torch.float32)
    wh = torch.tensor([float(stride)]).repeat(len(r), 2)
    ws = torch.sqrt(wh[:, 0] * wh[:, 1] / r)
    dwh = torch.stack([ws, ws * r], dim=1)
    return torch.cat([0.5 * (wh - dwh * s), 0.5 * (wh + dwh * s)], dim=1)


def odtk_decode_level(cls_prob, box_head, stride, anchors, threshold, top_n):
    """One image, one level: scores over the threshold (ODTK flat index ((a*K + c)*H + y)*W + x), the top_n of them
    (stable descending sort) when there are more, decoded with delta2box's arithmetic."""
    num_anchors = anchors.shape[0]
    k = cls_prob.shape[0] // num_anchors
    h, w = cls_prob.shape[-2:]
    flat = cls_prob.reshape(-1)
    keep = torch.nonzero(flat > threshold).view(-1)
    if keep.numel() > top_n:
        _, order = torch.sort(flat[keep], descending=True, stable=True)
        keep = keep[order[:top_n]]
    scores = flat[keep]
    x = keep % w
    y = torch.div(keep, w, rounding_mode="floor") % h
    a = torch.div(keep, k * h * w, rounding_mode="floor")
    cls = torch.div(keep, h * w, rounding_mode="floor") % k
    deltas = box_head.reshape(num_anchors, 4, h, w)[a, :, y, x]
    grid = torch.stack([x, y, x, y], 1).float() * stride + anchors[a, :]
    awh = grid[:, 2:] - grid[:, :2] + 1
    ctr = grid[:, :2] + 0.5 * awh
    pred_ctr = deltas[:, :2] * awh + ctr
    pred_wh = torch.exp(deltas[:, 2:]) * awh
    hi = torch.tensor([w * stride - 1, h * stride - 1], dtype=torch.float32)
    lo = torch.zeros(2)
    clamp = lambda t: torch.max(lo, torch.min(t, hi))  # noqa: E731
    boxes = torch.cat([clamp(pred_ctr - 0.5 * pred_wh), clamp(pred_ctr + 0.5 * pred_wh - 1)], 1)
    return scores, boxes, cls


def odtk_nms(scores, boxes, classes, nms, detections):
    """nms.cu: stable descending sort, greedy per-class suppression with +1 areas (overlap > nms), best `detections`."""
    _, order = torch.sort(scores, descending=True, stable=True)
    scores, boxes, classes = scores[order], boxes[order], classes[order]
    n = scores.numel()
    alive = torch.ones(n, dtype=torch.bool)
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    for m in range(n):
        if not alive[m]:
            continue
        xy1 = torch.max(boxes[m + 1:, :2], boxes[m, :2])
        xy2 = torch.min(boxes[m + 1:, 2:], boxes[m, 2:])
        wh = torch.clamp(xy2 - xy1 + 1, min=0)
        inter = wh[:, 0] * wh[:, 1]
        overlap = inter / (areas[m + 1:] + areas[m] - inter)
        alive[m + 1:] &= ~((overlap > nms) & (classes[m + 1:] == classes[m]))
    keep = torch.nonzero(alive).view(-1)[:detections]
    return scores[keep], boxes[keep], classes[keep]


def odtk_postprocess(cls_heads, box_heads, input_width, threshold=0.05, top_n=1000, nms=0.5, detections=100):
    """Model.forward's inference branch for one image (batch index 0 of each head): sigmoid, per-level decode, NMS."""
    per_level = []
    for ch, bh in zip(cls_heads, box_heads):
        stride = input_width // ch.shape[-1]
        anchors = odtk_anchors(stride, OdtkRetinaNet.ratios, OdtkRetinaNet.scales)
        per_level.append(odtk_decode_level(torch.sigmoid(ch), bh, stride, anchors, threshold, top_n))
    scores, boxes, classes = (torch.cat(t) for t in zip(*per_level))
    return odtk_nms(scores, boxes, classes, nms, detections)


# ------------------------------------------------------------------------------------------------------ DLE SSD

class DleResNet(nn.Module):
    """ssd/model.py ResNet('resnet50'): torchvision resnet50 children[:7] (conv1, bn1, relu, maxpool, layer1-3) with
    layer3.0's conv1, conv2 and downsample at stride 1."""

    def __init__(self):
        super().__init__()
        body = resnet50(weights=None)
        self.feature_extractor = nn.Sequential(*list(body.children())[:7])
        block = self.feature_extractor[-1][0]
        block.conv1.stride = (1, 1)
        block.conv2.stride = (1, 1)
        block.downsample[0].stride = (1, 1)
        self.out_channels = [1024, 512, 512, 256, 256, 256]

    def forward(self, x):
        return self.feature_extractor(x)


class DleSsd300(nn.Module):
    num_defaults = [4, 6, 6, 6, 4, 4]
    label_num = 81

    def __init__(self):
        super().__init__()
        self.feature_extractor = DleResNet()
        oc = self.feature_extractor.out_channels
        blocks = []
        for i, (cin, cout, mid) in enumerate(zip(oc[:-1], oc[1:], [256, 256, 128, 128, 128])):
            stride, pad = (2, 1) if i < 3 else (1, 0)
            blocks.append(nn.Sequential(
                nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                nn.Conv2d(mid, cout, 3, padding=pad, stride=stride, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)))
        self.additional_blocks = nn.ModuleList(blocks)
        self.loc = nn.ModuleList([nn.Conv2d(c, nd * 4, 3, padding=1) for nd, c in zip(self.num_defaults, oc)])
        self.conf = nn.ModuleList([nn.Conv2d(c, nd * self.label_num, 3, padding=1) for nd, c in zip(self.num_defaults, oc)])

    def forward(self, x):
        x = self.feature_extractor(x)
        feed = [x]
        for b in self.additional_blocks:
            x = b(x)
            feed.append(x)
        n = x.shape[0]
        locs = torch.cat([l(s).reshape(n, 4, -1) for s, l in zip(feed, self.loc)], 2)
        confs = torch.cat([c(s).reshape(n, self.label_num, -1) for s, c in zip(feed, self.conf)], 2)
        return feed, locs, confs


def dle_dboxes300():
    """dboxes300_coco in xywh (relative), float32, clamped to [0, 1]: per level, per (w, h), row-major locations."""
    fig, feat, steps = 300, [38, 19, 10, 5, 3, 1], [8, 16, 32, 64, 100, 300]
    scales, ratios = [21, 45, 99, 153, 207, 261, 315], [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
    boxes = []
    for idx, sfeat in enumerate(feat):
        fk = fig / steps[idx]
        sk1, sk2 = scales[idx] / fig, scales[idx + 1] / fig
        sizes = [(sk1, sk1), (math.sqrt(sk1 * sk2), math.sqrt(sk1 * sk2))]
        for alpha in ratios[idx]:
            sizes += [(sk1 * math.sqrt(alpha), sk1 / math.sqrt(alpha)), (sk1 / math.sqrt(alpha), sk1 * math.sqrt(alpha))]
        for w, h in sizes:
            for i, j in itertools.product(range(sfeat), repeat=2):
                boxes.append(((j + 0.5) / fk, (i + 0.5) / fk, w, h))
    return torch.tensor(boxes, dtype=torch.float32).clamp(min=0, max=1)


def dle_postprocess(locs, confs, criteria=0.5, max_output=200, max_num=200, threshold=0.05):
    """Encoder.scale_back_batch + decode_single for one image (locs [4, 8732], confs [81, 8732]): relative ltrb boxes,
    labels 1..80 and scores, best first (decode_single returns them ascending)."""
    d = dle_dboxes300()
    b = locs.t().clone()
    xy = 0.1 * b[:, :2]
    wh = 0.2 * b[:, 2:]
    xy = xy * d[:, 2:] + d[:, :2]
    wh = wh.exp() * d[:, 2:]
    ltrb = torch.cat([xy - 0.5 * wh, xy + 0.5 * wh], 1)
    probs = F.softmax(confs.t(), dim=-1)
    out_b, out_s, out_l = [], [], []
    for c in range(1, probs.shape[1]):
        s = probs[:, c]
        mask = s > threshold
        bx, sc = ltrb[mask], s[mask]
        if sc.numel() == 0:
            continue
        order = torch.sort(sc, stable=True).indices[-max_num:]
        chosen = []
        while order.numel() > 0:
            i = order[-1].item()
            cand = bx[order]
            lt = torch.max(cand[:, :2], bx[i, :2])
            rb = torch.min(cand[:, 2:], bx[i, 2:])
            delta = (rb - lt).clamp(min=0)
            inter = delta[:, 0] * delta[:, 1]
            area = (cand[:, 2] - cand[:, 0]) * (cand[:, 3] - cand[:, 1])
            iou = inter / (area + (bx[i, 2] - bx[i, 0]) * (bx[i, 3] - bx[i, 1]) - inter)
            order = order[iou < criteria]
            chosen.append(i)
        out_b.append(bx[chosen])
        out_s.append(sc[chosen])
        out_l += [c] * len(chosen)
    if not out_b:
        return torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long)
    boxes, scores, labels = torch.cat(out_b), torch.cat(out_s), torch.tensor(out_l)
    top = torch.sort(scores, stable=True).indices[-max_output:].flip(0)
    return boxes[top], scores[top], labels[top]
