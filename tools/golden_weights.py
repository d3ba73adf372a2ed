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
