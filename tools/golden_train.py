"""Golden fixtures for the training pieces (losses, matching, optimisers): torch 1.13 / torchvision 0.14, CPU.

    /usr/bin/python3 tools/golden_train.py    # writes tests/Osprey.Tests/Fixtures/train/{losses,optim}.json

Head outputs, parameters and gradients come from tools/formula.py values (the C# tests regenerate them); anchors and
ground-truth boxes are small and stored. Every array is base64 little-endian (float32, or int64 for matches).
"""
import base64
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection import retinanet as tv_retinanet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.ssd import SSD
from torchvision.ops import boxes as box_ops
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from formula import values

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "Osprey.Tests", "Fixtures", "train")


def enc(t):
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    a = np.ascontiguousarray(a.astype(np.int64 if a.dtype.kind in "iub" else np.float32))
    return {"shape": list(a.shape), "dtype": "int64" if a.dtype == np.int64 else "float32", "data": base64.b64encode(a.tobytes()).decode()}


def fv(key, shape, scale=1.0):
    n = int(np.prod(shape))
    return torch.from_numpy(values(key, n).reshape(shape) * np.float32(scale))


def anchors64():
    """60 anchors of a 64x64 input: sizes 16 and 32 at ratios 0.5, 1, 2 on 4x4 and 2x2 grids (torchvision AnchorGenerator)."""
    gen = AnchorGenerator(((16,), (32,)), ((0.5, 1.0, 2.0),) * 2)
    il = torchvision.models.detection.image_list.ImageList(torch.zeros(1, 3, 64, 64), [(64, 64)])
    return gen(il, [torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 2)])[0]


def gts():
    """Ground truths of two images (x1, y1, x2, y2) and their labels; the second image has one box."""
    b0 = torch.tensor([[4.0, 6.0, 22.0, 18.0], [30.0, 28.0, 62.0, 60.0], [10.0, 40.0, 20.0, 58.0]])
    b1 = torch.tensor([[20.0, 8.0, 44.0, 40.0]])
    return [b0, b1]


def retina_case(name, box_loss, beta, matcher, labels, boxes, k=5):
    anchors = anchors64()
    n, a = len(boxes), anchors.shape[0]
    cls = fv(name + ".cls", (n, a, k), 4.0).requires_grad_(True)
    reg = fv(name + ".reg", (n, a, 4), 0.5).requires_grad_(True)
    targets = [{"boxes": b, "labels": torch.tensor(l, dtype=torch.int64)} for b, l in zip(boxes, labels)]
    matched = []
    for t in targets:
        if t["boxes"].numel() == 0:
            matched.append(torch.full((a,), -1, dtype=torch.int64))
        else:
            matched.append(matcher(box_ops.box_iou(t["boxes"], anchors)))
    ch = tv_retinanet.RetinaNetClassificationHead(8, 1, k)
    rh = tv_retinanet.RetinaNetRegressionHead(8, 1)
    rh._loss_type = box_loss
    old = tv_retinanet._box_loss
    if beta is not None:
        tv_retinanet._box_loss = lambda *args: det_utils._box_loss(*args, cnf={"beta": beta})
    try:
        lc = ch.compute_loss(targets, {"cls_logits": cls}, matched)
        lr = rh.compute_loss(targets, {"bbox_regression": reg}, [anchors] * n, matched)
    finally:
        tv_retinanet._box_loss = old
    gc, = torch.autograd.grad(lc, cls)
    gr, = torch.autograd.grad(lr, reg)
    return {"name": name, "kind": "retinanet", "box_loss": box_loss, "beta": beta if beta is not None else 1.0,
            "odtk_matcher": not matcher.allow_low_quality_matches, "classes": k, "images": n,
            "anchors": enc(anchors), "boxes": [enc(b.reshape(-1, 4)) for b in boxes], "labels": labels,
            "matches": [enc(m) for m in matched],
            "cls_loss": lc.item(), "box_loss_value": lr.item(), "cls_grad": enc(gc), "box_grad": enc(gr)}


def ssd_case(name, labels, boxes, k=4):
    anchors = anchors64()
    n, a = len(boxes), anchors.shape[0]
    cls = fv(name + ".cls", (n, a, k), 4.0).requires_grad_(True)
    reg = fv(name + ".reg", (n, a, 4), 0.5).requires_grad_(True)
    targets = [{"boxes": b, "labels": torch.tensor(l, dtype=torch.int64)} for b, l in zip(boxes, labels)]
    matcher = det_utils.SSDMatcher(0.5)
    matched = [matcher(box_ops.box_iou(t["boxes"], anchors)) for t in targets]

    class Fake:
        box_coder = det_utils.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
        neg_to_pos_ratio = 3

    losses = SSD.compute_loss(Fake(), targets, {"cls_logits": cls, "bbox_regression": reg}, [anchors] * n, matched)
    gc, = torch.autograd.grad(losses["classification"], cls)
    gr, = torch.autograd.grad(losses["bbox_regression"], reg)
    return {"name": name, "kind": "ssd", "classes": k, "images": n, "anchors": enc(anchors),
            "boxes": [enc(b.reshape(-1, 4)) for b in boxes], "labels": labels, "matches": [enc(m) for m in matched],
            "cls_loss": losses["classification"].item(), "box_loss_value": losses["bbox_regression"].item(),
            "cls_grad": enc(gc), "box_grad": enc(gr)}


def element_cases():
    x = fv("elem.x", (64,), 6.0).requires_grad_(True)
    t = (fv("elem.t", (64,)) > 0.3).float()
    f = sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0, reduction="none")
    gx, = torch.autograd.grad(f.sum(), x)
    p = fv("elem.p", (64,), 0.4).requires_grad_(True)
    q = fv("elem.q", (64,), 0.4)
    sl = {}
    for beta in (0.11, 1.0):
        l = F.smooth_l1_loss(p, q, reduction="none", beta=beta)
        g, = torch.autograd.grad(l.sum(), p)
        sl[str(beta)] = {"loss": enc(l), "grad": enc(g)}
    l1 = F.l1_loss(p, q, reduction="none")
    g1, = torch.autograd.grad(l1.sum(), p)
    # boxes: random corners, some disjoint, some nested
    c = fv("elem.box", (32, 4), 20.0) + 30
    pb = torch.stack([torch.minimum(c[:, 0], c[:, 2]), torch.minimum(c[:, 1], c[:, 3]),
                      torch.maximum(c[:, 0], c[:, 2]) + 1, torch.maximum(c[:, 1], c[:, 3]) + 1], 1).detach()
    d = fv("elem.gbox", (32, 4), 20.0) + 30
    gb = torch.stack([torch.minimum(d[:, 0], d[:, 2]), torch.minimum(d[:, 1], d[:, 3]),
                      torch.maximum(d[:, 0], d[:, 2]) + 1, torch.maximum(d[:, 1], d[:, 3]) + 1], 1)
    pb.requires_grad_(True)
    gl = generalized_box_iou_loss(pb, gb, reduction="none")
    gg, = torch.autograd.grad(gl.sum(), pb)
    z = fv("elem.ce", (16, 7), 3.0).requires_grad_(True)
    y = torch.tensor([i % 7 for i in range(16)])
    ce = F.cross_entropy(z, y, reduction="none")
    gz, = torch.autograd.grad(ce.sum(), z)
    anchors = anchors64()
    gtb = torch.cat(gts(), 0)
    coder_r, coder_s = det_utils.BoxCoder((1.0, 1.0, 1.0, 1.0)), det_utils.BoxCoder((10.0, 10.0, 5.0, 5.0))
    ref = anchors[:4].repeat(1, 1)
    return {
        "focal": {"loss": enc(f), "grad": enc(gx)},
        "smooth_l1": sl,
        "l1": {"loss": enc(l1), "grad": enc(g1)},
        "giou": {"pred": enc(pb), "gt": enc(gb), "loss": enc(gl), "grad": enc(gg)},
        "cross_entropy": {"labels": y.tolist(), "loss": enc(ce), "grad": enc(gz)},
        "encode": {"boxes": enc(gtb), "refs": enc(ref), "retinanet": enc(coder_r.encode_single(gtb, ref)),
                   "ssd": enc(coder_s.encode_single(gtb, ref))},
    }


def matcher_cases():
    anchors = anchors64()
    out = []
    for name, boxes in [("three", gts()[0]), ("one", gts()[1]), ("far", torch.tensor([[0.0, 0.0, 3.0, 3.0], [50.0, 50.0, 64.0, 52.0]]))]:
        iou = box_ops.box_iou(boxes, anchors)
        out.append({"name": name, "boxes": enc(boxes), "iou": enc(iou),
                    "retinanet": enc(det_utils.Matcher(0.5, 0.4, allow_low_quality_matches=True)(iou)),
                    "odtk": enc(det_utils.Matcher(0.5, 0.4, allow_low_quality_matches=False)(iou)),
                    "ssd": enc(det_utils.SSDMatcher(0.5)(iou))})
    return {"anchors": enc(anchors), "cases": out}


def losses():
    b = gts()
    lab = [[0, 3, 4], [2]]
    tvm = det_utils.Matcher(0.5, 0.4, allow_low_quality_matches=True)
    odtk = det_utils.Matcher(0.5, 0.4, allow_low_quality_matches=False)
    cases = [
        retina_case("retina_l1", "l1", None, tvm, lab, b),
        retina_case("retina_smooth_l1_odtk", "smooth_l1", 0.11, odtk, lab, b),
        retina_case("retina_giou", "giou", None, tvm, lab, b),
        retina_case("retina_empty", "l1", None, tvm, [[0, 3, 4], []], [b[0], torch.zeros(0, 4)]),
        ssd_case("ssd", [[1, 2, 3], [3]], b),
        ssd_case("ssd_crowded", [[1, 2, 3] * 6, [3]], [torch.cat([b[0] + i for i in range(6)], 0).clamp(max=64), b[1]]),
    ]
    return {"format": "osprey-golden-train", "version": 1, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "elements": element_cases(), "matcher": matcher_cases(), "cases": cases}


def odtk_lr(it, warmup, milestones, gamma=0.1):
    if warmup and it <= warmup:
        return 0.9 * it / warmup + 0.1
    return gamma ** len([m for m in milestones if m <= it])


def optim():
    shapes = [(3, 4), (5,), (2, 2, 3)]
    out = {"format": "osprey-golden-train", "version": 1, "torch": torch.__version__, "shapes": [list(s) for s in shapes], "cases": []}
    steps = 6

    def run(name, make, schedule=None):
        ps = [fv(f"param{i}", s).clone().requires_grad_(True) for i, s in enumerate(shapes)]
        opt = make(ps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule) if schedule else None
        lrs = []
        for k in range(steps):
            for i, p in enumerate(ps):
                p.grad = fv(f"grad{i}.step{k}", p.shape, 0.5)
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if sched:
                sched.step()
        out["cases"].append({"name": name, "lrs": lrs, "params": [enc(p) for p in ps]})

    run("sgd", lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, weight_decay=1e-4))
    run("sgd_dampening", lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-3))
    run("sgd_plain", lambda ps: torch.optim.SGD(ps, lr=0.1))
    run("sgd_odtk_schedule", lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, weight_decay=1e-4),
        lambda it: odtk_lr(it, 2, [3, 5]))
    run("adamw", lambda ps: torch.optim.AdamW(ps, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2))
    run("adamw_amsgrad", lambda ps: torch.optim.AdamW(ps, lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True))
    # clipping
    gs = [fv(f"clip{i}", s, 2.0).clone() for i, s in enumerate(shapes)]
    ps = [torch.zeros(s, requires_grad=True) for s in shapes]
    for p, g in zip(ps, gs):
        p.grad = g.clone()
    norm = torch.nn.utils.clip_grad_norm_(ps, max_norm=1.5)
    out["clip"] = {"max_norm": 1.5, "norm": norm.item(), "grads": [enc(p.grad) for p in ps]}
    out["odtk_lr"] = [odtk_lr(it, 1000, [60000, 80000]) for it in [0, 1, 500, 999, 1000, 1001, 59999, 60000, 79999, 80000, 89999]]
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    for name, data in (("losses", losses()), ("optim", optim())):
        path = os.path.join(OUT, name + ".json")
        with open(path, "w") as f:
            json.dump(data, f, separators=(",", ":"))
        print(path, os.path.getsize(path))


if __name__ == "__main__":
    main()
