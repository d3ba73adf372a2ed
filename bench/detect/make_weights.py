#!/usr/bin/env python3
"""Writes formula weights (tools/formula.py) for an Osprey architecture as a torchvision state_dict .pth.
Run: /usr/bin/python3 bench/detect/make_weights.py ARCH OUT.pth"""
import os, sys
import torch
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
from formula import weight  # noqa: E402
from torch_detect import build  # noqa: E402

arch, out = sys.argv[1], sys.argv[2]
if arch in ("retinanet_mobilenetv2_fpn", "ssd300_resnet50"):
    import ref_nvidia  # noqa: E402
    sd = (ref_nvidia.OdtkRetinaNet() if arch.startswith("retina") else ref_nvidia.DleSsd300()).state_dict()
else:
    sd = build(arch).state_dict()
torch.save({k: v if k.endswith("num_batches_tracked") else torch.from_numpy(weight(k, tuple(v.shape))) for k, v in sd.items()}, out)
print("wrote", out, len(sd), "tensors")
