#!/usr/bin/env python3
"""PyTorch timing of the NVIDIA reference detectors (tools/ref_nvidia.py) for bench/Osprey.Bench.Detect: same architecture
(retinanet_mobilenetv2_fpn or ssd300_resnet50), weights (bench/detect/make_weights.py), image and input size, the same
stages (decode; pre-process + network; post-processing). The post-processing is the reference's eager PyTorch (ODTK's
CUDA decode/NMS semantics written with torch ops, DLE's decode_single loop), so it is a correctness reference, not
ODTK's CUDA speed.
Run: /usr/bin/python3 bench/detect/torch_nvidia.py ARCH WEIGHTS IMAGE [--min N] [--max N] [--runs N]"""
import io, os, statistics, sys, time
import torch
from PIL import Image
import torchvision.transforms.functional as TF
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import ref_nvidia  # noqa: E402
import golden_models as gm  # noqa: E402  (its nvidia_input is Osprey's pre-processing)

arch, weights, image = sys.argv[1:4]
opts = dict(zip(sys.argv[4::2], map(int, sys.argv[5::2])))
runs = opts.get("--runs", 5)
gm.NVIDIA["retinanet_mobilenetv2_fpn"] = (opts.get("--min", 800), opts.get("--max", 1333), 128)
model = (ref_nvidia.OdtkRetinaNet() if arch == "retinanet_mobilenetv2_fpn" else ref_nvidia.DleSsd300()).eval()
model.load_state_dict(torch.load(weights))
data = open(image, "rb").read()
times = {"decode": [], "network (incl. preprocess)": [], "postprocess": [], "total": []}
with torch.no_grad():
    for r in range(runs + 1):
        t0 = time.perf_counter()
        img = TF.to_tensor(Image.open(io.BytesIO(data)).convert("RGB"))
        t1 = time.perf_counter()
        batch, _, _ = gm.nvidia_input(arch, [img])
        out = model(batch)
        t2 = time.perf_counter()
        if arch == "retinanet_mobilenetv2_fpn":
            s, _, _ = ref_nvidia.odtk_postprocess([t[0] for t in out[1]], [t[0] for t in out[2]], batch.shape[-1])
        else:
            _, s, _ = ref_nvidia.dle_postprocess(out[1][0], out[2][0])
        t3 = time.perf_counter()
        if r == 0:
            continue
        for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            times[k].append(v * 1e3)
print(f"torch {torch.__version__} {arch} on {torch.get_num_threads()} threads, {len(s)} detections; median of {runs} runs:")
for k, v in times.items():
    print(f"  {k:<40} {statistics.median(v):10.1f} ms")
