"""torchvision 0.14 RetinaNet / SSD300 loss + backward on the CPU, the shapes of bench/Osprey.Bench/TrainLossBench.cs.

    /usr/bin/python3 bench/train/torch_loss.py [--runs N]

Times box_iou + Matcher + head compute_loss + autograd backward w.r.t. the head outputs (the part Osprey's closed-form
losses replace), with torch's default intra-op threads.
"""
import argparse
import time

import torch
import torchvision
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection import retinanet as tv_retinanet
from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.ssd import SSD
from torchvision.ops import boxes as box_ops


def targets(n, objects, w, h, k, first, gen):
    out = []
    for _ in range(n):
        bw = 20 + torch.rand(objects, generator=gen) * w / 3
        bh = 20 + torch.rand(objects, generator=gen) * h / 3
        x = torch.rand(objects, generator=gen) * (w - bw)
        y = torch.rand(objects, generator=gen) * (h - bh)
        out.append({"boxes": torch.stack([x, y, x + bw, y + bh], 1), "labels": torch.randint(first, k, (objects,), generator=gen)})
    return out


def timed(runs, fn):
    fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[runs // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    runs = ap.parse_args().runs
    gen = torch.Generator().manual_seed(1)
    sizes = tuple((x, int(x * 2 ** (1 / 3)), int(x * 2 ** (2 / 3))) for x in [32, 64, 128, 256, 512])
    ag = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * 5)
    grids = [(100, 136), (50, 68), (25, 34), (13, 17), (7, 9)]
    anchors = ag(ImageList(torch.zeros(2, 3, 800, 1088), [(800, 1088)] * 2), [torch.zeros(2, 1, h, w) for h, w in grids])
    a = anchors[0].shape[0]
    cls = (torch.rand(2, a, 91, generator=gen) * 8 - 6).requires_grad_(True)
    reg = (torch.rand(2, a, 4, generator=gen) - 0.5).requires_grad_(True)
    tg = targets(2, 10, 1088, 800, 91, 0, gen)
    matcher = det_utils.Matcher(0.5, 0.4, allow_low_quality_matches=True)
    ch = tv_retinanet.RetinaNetClassificationHead(8, 1, 91)
    rh = tv_retinanet.RetinaNetRegressionHead(8, 1)

    def retina():
        matched = [matcher(box_ops.box_iou(t["boxes"], an)) for t, an in zip(tg, anchors)]
        loss = ch.compute_loss(tg, {"cls_logits": cls}, matched) + rh.compute_loss(tg, {"bbox_regression": reg}, anchors, matched)
        torch.autograd.grad(loss, [cls, reg])

    dg = DefaultBoxGenerator([[2], [2, 3], [2, 3], [2, 3], [2], [2]], scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05],
                             steps=[8, 16, 32, 64, 100, 300])
    sg = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]
    priors = dg(ImageList(torch.zeros(32, 3, 300, 300), [(300, 300)] * 32), [torch.zeros(32, 1, h, w) for h, w in sg])
    p = priors[0].shape[0]
    scls = (torch.rand(32, p, 91, generator=gen) * 8 - 6).requires_grad_(True)
    sreg = (torch.rand(32, p, 4, generator=gen) - 0.5).requires_grad_(True)
    stg = targets(32, 5, 300, 300, 91, 1, gen)
    smatch = det_utils.SSDMatcher(0.5)

    class Fake:
        box_coder = det_utils.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
        neg_to_pos_ratio = 3

    def ssd():
        matched = [smatch(box_ops.box_iou(t["boxes"], pr)) for t, pr in zip(stg, priors)]
        l = SSD.compute_loss(Fake(), stg, {"cls_logits": scls, "bbox_regression": sreg}, priors, matched)
        torch.autograd.grad(l["classification"] + l["bbox_regression"], [scls, sreg])

    print(f"torch   retinanet loss+grad (2 x {a} anchors x 91): {timed(runs, retina) * 1e3:.1f} ms  (threads {torch.get_num_threads()})")
    print(f"torch   ssd300 loss+grad (32 x {p} boxes x 91): {timed(runs, ssd) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
