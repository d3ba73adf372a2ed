"""torchvision's side of `Osprey.Bench gpu-detect`: SSD300 post-processing of the same 64-image batch on the GPU.

usage: python3 detect_bench.py DIR
DIR holds what gpu-detect wrote: ssd_boxes.f32 (default boxes [8732, 4]), ssd_reg.f16 ([64, 8732, 4]),
ssd_{trained,random}.f16 (logits [64, 8732, 91]) and osprey-detect.json (Osprey's timings). Times
SSD.postprocess_detections (torchvision's code path: per image, softmax, per-class threshold + topk, decode,
clip, batched_nms, best 200) on float32 heads, and batched_nms alone over the same candidates (64 calls), with
torch.cuda.synchronize around each repeat; median. Prints one markdown table with both sides.
"""
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torchvision
from torchvision.ops import boxes as box_ops

N, A, C = 64, 8732, 91


def load(d, name, dtype, shape):
    return torch.from_numpy(np.fromfile(os.path.join(d, name), dtype=dtype).reshape(shape))


def timed(fn, reps):
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts), out


def candidates(model, logits, reg, anchors):
    """Per image: the boxes, scores and labels postprocess_detections hands to batched_nms."""
    out = []
    probs = torch.softmax(logits, dim=-1)
    for i in range(N):
        boxes = model.box_coder.decode_single(reg[i], anchors)
        boxes = box_ops.clip_boxes_to_image(boxes, (300, 300))
        bs, ss, ls = [], [], []
        for c in range(1, C):
            s = probs[i, :, c]
            keep = s > model.score_thresh
            s, b = s[keep], boxes[keep]
            k = min(model.topk_candidates, s.size(0))
            s, idx = s.topk(k)
            bs.append(b[idx]); ss.append(s); ls.append(torch.full_like(idx, c))
        out.append((torch.cat(bs), torch.cat(ss), torch.cat(ls)))
    return out


def main():
    d = sys.argv[1]
    dev = torch.device("cuda")
    model = torchvision.models.detection.ssd300_vgg16(weights=None, weights_backbone=None, num_classes=C).to(dev).eval()
    anchors = load(d, "ssd_boxes.f32", np.float32, (A, 4)).to(dev)
    reg = load(d, "ssd_reg.f16", np.float16, (N, A, 4)).to(dev).float()
    rows = {}
    with torch.no_grad():
        for dist in ("trained", "random"):
            logits = load(d, f"ssd_{dist}.f16", np.float16, (N, A, C)).to(dev).float()
            heads = {"cls_logits": logits, "bbox_regression": reg}
            reps = 7 if dist == "trained" else 3
            ms, dets = timed(lambda: model.postprocess_detections(heads, [anchors] * N, [(300, 300)] * N), reps)
            found = sum(int(x["scores"].numel()) for x in dets) / N
            cand = candidates(model, logits, reg, anchors)
            ncand = sum(int(c[1].numel()) for c in cand) / N
            nms_ms, _ = timed(lambda: [box_ops.batched_nms(b, s, l, model.nms_thresh) for b, s, l in cand], reps)
            rows[dist] = (ms, nms_ms, found, ncand)
            print(f"torchvision {dist}: postprocess_detections {ms:.2f} ms, batched_nms alone {nms_ms:.2f} ms, "
                  f"{ncand:.0f} candidates/image, {found:.1f} detections/image", file=sys.stderr)
    osp = json.load(open(os.path.join(d, "osprey-detect.json")))
    print(f"\n### GPU post-processing, SSD300 batch {N} ({torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"torchvision {torchvision.__version__})\n")
    print("| scores | candidates/image | torchvision postprocess_detections (ms) | torchvision batched_nms alone (ms) "
          "| Osprey fp32 (ms) | Osprey fp16 (ms) | Osprey fp32 + download (ms) | speed-up (fp32) | detections/image torchvision / Osprey |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dist, (ms, nms_ms, found, ncand) in rows.items():
        o32 = next(r for r in osp if r["family"] == "ssd" and r["dist"] == dist and r["dtype"] == "float32")
        o16 = next(r for r in osp if r["family"] == "ssd" and r["dist"] == dist and r["dtype"] == "float16")
        print(f"| {dist} | {ncand:.0f} | {ms:.2f} | {nms_ms:.2f} | {o32['ms']:.3f} | {o16['ms']:.3f} | {o32['ms_download']:.3f} "
              f"| {ms / o32['ms']:.0f}x | {found:.1f} / {o32['detections_per_image']:.1f} |")
    for r in osp:
        if r["family"] == "retinanet":
            print(f"\nOsprey {r['name']}: {r['ms']:.3f} ms ({r['ms_download']:.3f} ms with the download), "
                  f"{r['detections_per_image']:.1f} detections/image")


if __name__ == "__main__":
    main()
