#!/usr/bin/env python3
"""COCO evaluator cases for Osprey: deterministic edge cases and a val2017-sized synthetic benchmark set.

  coco_cases.py cases [OUT]        write the edge cases (default tests/Osprey.Tests/Fixtures/coco); when pycocotools is
                                   importable, also each case's reference stats and printed summary (expected.json)
  coco_cases.py bench-gen DIR      write the synthetic benchmark set (5,000 images, ~36,000 boxes, 100 detections/image)
  coco_cases.py bench-time DIR     time pycocotools on DIR (prints one JSON line: seconds per stage and the stats)

Needs numpy; the reference stats need an importable pycocotools (the official COCO API with its C extension).
"""
import contextlib
import io
import json
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def compact(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))


def r2(x):
    return round(x, 2)


def rand_box(rng, W, H, smin=2, smax=300):
    w = rng.uniform(smin, min(smax, W - 1))
    h = rng.uniform(smin, min(smax, H - 1))
    x = rng.uniform(0, W - w)
    y = rng.uniform(0, H - h)
    return [r2(x), r2(y), r2(w), r2(h)]


def jitter(rng, b, s):
    x, y, w, h = b
    return [r2(x + rng.gauss(0, s * w)), r2(y + rng.gauss(0, s * h)), r2(max(0.5, w * (1 + rng.gauss(0, s)))),
            r2(max(0.5, h * (1 + rng.gauss(0, s))))]


def dataset(images, cats, anns):
    return {"info": {"description": "osprey test case"}, "images": images, "annotations": anns,
            "categories": [{"id": c, "name": "class%d" % c, "supercategory": "thing"} for c in cats]}


def make_case(name, seed, n_images, cats, gt_per_image, dt_per_image, crowd_p=0.0, empty_gt_p=0.0, empty_dt_p=0.0,
              gt_cats=None, score_levels=None, area_snap_p=0.0, id_zero=False):
    """Random ground truth and detections near it (true positives, shifted ones, confusions, pure false positives)."""
    rng = random.Random(seed)
    gt_cats = gt_cats or cats
    images, anns, dets = [], [], []
    ann_id = 0 if id_zero else 1
    for i in range(n_images):
        img_id = 1000 + 7 * i
        W, H = rng.choice([(640, 480), (500, 375), (333, 500)])
        images.append({"id": img_id, "width": W, "height": H, "file_name": "%012d.jpg" % img_id})
        gts = []
        if rng.random() >= empty_gt_p:
            for _ in range(rng.randint(*gt_per_image)):
                b = rand_box(rng, W, H, 2, rng.choice([30, 100, 300]))
                area = b[2] * b[3] * rng.uniform(0.6, 1.0)
                if rng.random() < area_snap_p:
                    area = rng.choice([1024.0, 9216.0, 1023.99, 9216.01])
                crowd = 1 if rng.random() < crowd_p else 0
                if crowd:
                    b = rand_box(rng, W, H, 80, 400)
                    area = b[2] * b[3] * 0.7
                gts.append((b, rng.choice(gt_cats)))
                anns.append({"id": ann_id, "image_id": img_id, "category_id": gts[-1][1], "bbox": b, "area": r2(area),
                             "iscrowd": crowd, "segmentation": [[b[0], b[1], b[0] + b[2], b[1], b[0] + b[2], b[1] + b[3]]]})
                ann_id += 1
        if rng.random() < empty_dt_p:
            continue
        for _ in range(rng.randint(*dt_per_image)):
            u = rng.random()
            if gts and u < 0.6:
                b, c = rng.choice(gts)
                box = jitter(rng, b, rng.choice([0.02, 0.08, 0.2]))
                if rng.random() < 0.1:
                    c = rng.choice(cats)
            else:
                box, c = rand_box(rng, W, H, 2, rng.choice([30, 100, 300])), rng.choice(cats)
            score = rng.choice(score_levels) if score_levels else round(rng.random(), 4)
            dets.append({"image_id": img_id, "category_id": c, "bbox": box, "score": score})
    return name, dataset(images, cats, anns), dets


def cases():
    cats = [1, 2, 3, 5, 8]
    yield make_case("mixed", 11, 30, cats, (0, 8), (0, 25), crowd_p=0.05, area_snap_p=0.1)
    yield make_case("crowds", 12, 20, cats, (1, 6), (5, 30), crowd_p=0.35)
    yield make_case("empty_images", 13, 30, cats, (1, 5), (1, 12), empty_gt_p=0.3, empty_dt_p=0.3)
    yield make_case("categories_without_gt", 14, 20, [1, 2, 3, 4, 6, 9], (1, 5), (1, 15), gt_cats=[2, 3, 9])
    yield make_case("equal_scores", 15, 25, cats, (1, 6), (3, 20), crowd_p=0.05, score_levels=[0.9, 0.5, 0.5, 0.3, 0.1])
    yield make_case("many_detections", 16, 6, [1, 2], (5, 15), (120, 180), crowd_p=0.05)
    yield make_case("annotation_id_zero", 17, 10, [1, 2], (1, 4), (2, 8), id_zero=True)


def reference(gt_path, dt_path):
    """Stats and the printed summary from the official COCO API."""
    import numpy as np
    if not hasattr(np, "float"):
        np.float = float  # cocoeval.py's accumulate uses np.float, removed in numpy 1.24
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_path)
        dt = gt.loadRes(dt_path)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ev.summarize()
    return [float(x) for x in ev.stats], out.getvalue(), ev


def write_cases(out):
    try:
        import pycocotools  # noqa: F401
        have_api = True
    except ImportError:
        have_api = False
        print("pycocotools not importable: writing cases without reference stats", file=sys.stderr)
    for name, gt, dts in cases():
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        compact(gt, os.path.join(d, "gt.json"))
        compact(dts, os.path.join(d, "dt.json"))
        if have_api:
            stats, text, ev = reference(os.path.join(d, "gt.json"), os.path.join(d, "dt.json"))
            prec = ev.eval["precision"]
            per_class_ap = []
            for k in range(prec.shape[2]):
                s = prec[:, :, k, 0, -1]
                s = s[s > -1]
                per_class_ap.append(float(np.mean(s)) if s.size else -1.0)
            with open(os.path.join(d, "expected.json"), "w") as f:
                json.dump({"source": "pycocotools COCOeval(bbox) evaluate/accumulate/summarize", "stats": stats,
                           "summary": text, "per_class_ap": per_class_ap}, f, indent=1)
            print(name, " ".join("%.4f" % s for s in stats))


def bench_gen(out, seed=2017):
    """val2017-sized: 5,000 images, 80 categories, ~36,000 boxes (~1% crowds), 100 detections per image."""
    import numpy as np
    rng = np.random.default_rng(seed)
    cat_ids = [c for c in range(1, 91) if c not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]
    images, anns, dets = [], [], []
    ann_id = 1
    n_gt = rng.poisson(7.3, 5000)
    for i in range(5000):
        img_id = 100000 + 13 * i
        W, H = 640, int(rng.choice([480, 427, 426, 640]))
        images.append({"id": img_id, "width": W, "height": H, "file_name": "%012d.jpg" % img_id})
        k = int(n_gt[i])
        ws = np.minimum(np.exp(rng.uniform(np.log(4), np.log(600), k)), W - 1)
        hs = np.minimum(ws * np.exp(rng.normal(0, 0.5, k)), H - 1)
        xs = rng.uniform(0, W - ws)
        ys = rng.uniform(0, H - hs)
        cs = rng.choice(cat_ids, k)
        crowd = rng.random(k) < 0.01
        gts = []
        for j in range(k):
            b = [round(float(xs[j]), 2), round(float(ys[j]), 2), round(float(ws[j]), 2), round(float(hs[j]), 2)]
            anns.append({"id": ann_id, "image_id": img_id, "category_id": int(cs[j]), "bbox": b, "iscrowd": int(crowd[j]),
                         "area": round(b[2] * b[3] * float(rng.uniform(0.5, 0.9)), 2), "segmentation": []})
            gts.append((b, int(cs[j])))
            ann_id += 1
        for j in range(100):
            if gts and rng.random() < 0.5:
                b, c = gts[int(rng.integers(len(gts)))]
                s = 0.15 * rng.random()
                b = [b[0] + rng.normal(0, s * b[2]), b[1] + rng.normal(0, s * b[3]), b[2] * (1 + rng.normal(0, s)),
                     b[3] * (1 + rng.normal(0, s))]
                b = [b[0], b[1], max(b[2], 1.0), max(b[3], 1.0)]
                if rng.random() < 0.1:
                    c = int(rng.choice(cat_ids))
            else:
                w = float(np.exp(rng.uniform(np.log(4), np.log(600))))
                h = w * float(np.exp(rng.normal(0, 0.5)))
                b = [float(rng.uniform(0, W)), float(rng.uniform(0, H)), w, h]
                c = int(rng.choice(cat_ids))
            dets.append({"image_id": img_id, "category_id": c, "bbox": [round(v, 2) for v in b],
                         "score": round(float(rng.random()), 5)})
    os.makedirs(out, exist_ok=True)
    ds = dataset(images, cat_ids, anns)
    compact(ds, os.path.join(out, "gt.json"))
    compact(dets, os.path.join(out, "dt.json"))
    print("wrote %d images, %d boxes, %d detections to %s" % (len(images), len(anns), len(dets), out))


def bench_time(d):
    import numpy as np
    if not hasattr(np, "float"):
        np.float = float
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    t = {}
    with contextlib.redirect_stdout(io.StringIO()):
        c0 = time.process_time()
        t0 = time.perf_counter()
        gt = COCO(os.path.join(d, "gt.json"))
        dt = gt.loadRes(os.path.join(d, "dt.json"))
        ev = COCOeval(gt, dt, "bbox")
        t1 = time.perf_counter()
        ev.evaluate()
        t2 = time.perf_counter()
        ev.accumulate()
        t3 = time.perf_counter()
        ev.summarize()
        t4 = time.perf_counter()
        c4 = time.process_time()
    t = {"cpu": c4 - c0, "load": t1 - t0, "evaluate": t2 - t1, "accumulate": t3 - t2, "summarize": t4 - t3, "total": t4 - t0,
         "stats": [float(x) for x in ev.stats]}
    print(json.dumps(t))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "cases"
    if cmd == "cases":
        import numpy as np
        write_cases(sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "..", "tests", "Osprey.Tests", "Fixtures", "coco"))
    elif cmd == "bench-gen":
        bench_gen(sys.argv[2])
    elif cmd == "bench-time":
        bench_time(sys.argv[2])
    else:
        sys.exit(__doc__)
