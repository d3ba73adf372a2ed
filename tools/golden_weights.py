#!/usr/bin/env python3
"""Writes the small PyTorch checkpoints the weight-loading tests read (tests/Osprey.Tests/Fixtures/weights).

Values follow formulas the C# tests recompute (arange / 2 - 3), so the files hold no opaque data.
Run: /usr/bin/python3 tools/golden_weights.py   (torch >= 1.6, CPU)
"""
import collections, io, os, pickle, zipfile
import torch

out = os.path.join(os.path.dirname(__file__), "..", "tests", "Osprey.Tests", "Fixtures", "weights")
os.makedirs(out, exist_ok=True)

def ramp(n, dtype=torch.float32):
    return (torch.arange(n, dtype=torch.float64) / 2 - 3).to(dtype)

# A torchvision-style state_dict: OrderedDict with _metadata, shared storage, a transposed view, every dtype.
sd = collections.OrderedDict()
sd["conv.weight"] = ramp(2 * 3 * 3 * 3).reshape(2, 3, 3, 3)
sd["conv.weight_t"] = sd["conv.weight"].reshape(2, 27).t()          # shares storage, non-contiguous
sd["fc.bias"] = ramp(10)[4:9]                                       # offset into a larger storage
sd["half"] = ramp(7, torch.float16)
sd["bf16"] = ramp(5, torch.bfloat16)
sd["double"] = ramp(3, torch.float64)
sd["bn.num_batches_tracked"] = torch.tensor(42, dtype=torch.int64)  # 0-d
sd["mask"] = torch.tensor([True, False, True])
sd["bytes"] = torch.arange(4, dtype=torch.uint8)
sd["param"] = torch.nn.Parameter(ramp(4))
sd._metadata = collections.OrderedDict({"": {"version": 1}})
torch.save(sd, os.path.join(out, "state_dict.pth"))

# An ODTK-style training checkpoint: the weights under 'state_dict' beside other entries.
torch.save({"backbone": "ResNet50FPN", "classes": 80, "iteration": 1234,
            "state_dict": collections.OrderedDict(w=ramp(6).reshape(2, 3))}, os.path.join(out, "odtk_style.pth"))

# A malicious checkpoint: its pickle calls os.system. Osprey must refuse it without running anything.
class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
    z.writestr("evil/data.pkl", pickle.dumps({"w": Evil()}, protocol=2))
    z.writestr("evil/version", "3\n")
open(os.path.join(out, "evil.pth"), "wb").write(buf.getvalue())
print("wrote", sorted(os.listdir(out)))

# ODTK and NVIDIA SSD300 training checkpoints with the full state-dict layouts of tools/ref_nvidia.py, every tensor a
# stride-0 view into one shared 14-value storage (so the files stay small): parameter i holds 0.01 * ((i % 7) - 3)
# (batch norm running_var 1 + that); num_batches_tracked are 0-d views of one int64 zero.
import sys  # noqa: E402
sys.path.insert(0, os.path.dirname(__file__))
import ref_nvidia  # noqa: E402


def constant_state_dict(model):
    base = torch.tensor([0.01 * (j - 3) for j in range(7)] + [1 + 0.01 * (j - 3) for j in range(7)], dtype=torch.float32)
    zero = torch.zeros(1, dtype=torch.int64)
    sd = collections.OrderedDict()
    for i, (k, v) in enumerate(model.state_dict().items()):
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.as_strided(zero, (), (), 0)
            continue
        j = i % 7 + (7 if k.endswith("running_var") else 0)
        sd[k] = torch.as_strided(base, tuple(v.shape), (0,) * v.dim(), j)
    return sd


torch.save({"backbone": ["MobileNetV2FPN"], "classes": 80, "state_dict": constant_state_dict(ref_nvidia.OdtkRetinaNet()),
            "ratios": [1.0, 2.0, 0.5], "scales": ref_nvidia.OdtkRetinaNet.scales, "iteration": 90000},
           os.path.join(out, "odtk_mobilenetv2fpn.pth"))
torch.save({"epoch": 64, "iteration": 1000, "label_map": {i + 1: i + 1 for i in range(80)},
            "model": constant_state_dict(ref_nvidia.DleSsd300())}, os.path.join(out, "nvidia_ssd300.pth"))
print("wrote", sorted(os.listdir(out)))

# Training checkpoints as ODTK's Model.save and DLE's main.py write them, with SGD momentum state and the LR schedulers'
# states (DLE's MultiStepLR keeps its milestones in a collections.Counter); the weights are a 2x2 1x1 conv of arange / 2 - 3.
conv = torch.nn.Conv2d(2, 2, 1)
with torch.no_grad():
    conv.weight.copy_(ramp(4).reshape(2, 2, 1, 1))
    conv.bias.copy_(ramp(2))
opt = torch.optim.SGD(conv.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
conv(torch.ones(1, 2, 2, 2)).sum().backward()
opt.step()
with torch.no_grad():
    conv.weight.copy_(ramp(4).reshape(2, 2, 1, 1))
    conv.bias.copy_(ramp(2))
torch.save({"backbone": ["MobileNetV2FPN"], "classes": 80, "state_dict": conv.state_dict(), "ratios": [1.0, 2.0, 0.5],
            "scales": ref_nvidia.OdtkRetinaNet.scales, "iteration": 5, "optimizer": opt.state_dict(),
            "scheduler": torch.optim.lr_scheduler.LambdaLR(opt, lambda it: 1.0).state_dict()}, os.path.join(out, "odtk_training.pth"))
torch.save({"epoch": 1, "iteration": 5, "optimizer": opt.state_dict(),
            "scheduler": torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[43, 54]).state_dict(),
            "label_map": {0: "background", 1: "person"}, "model": conv.state_dict()}, os.path.join(out, "dle_training.pth"))
print("wrote", sorted(os.listdir(out)))
