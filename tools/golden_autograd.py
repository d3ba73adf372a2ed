#!/usr/bin/python3
"""Golden gradients for Osprey's autograd (torch 1.13 CPU).

Run: /usr/bin/python3 tools/golden_autograd.py
Writes
- tests/Osprey.Tests/Fixtures/ops/autograd.json (format osprey-golden-ops v1, family "autograd"): per case, the
  differentiable inputs and the output's gradient (all from the seeded generator of golden_ops.py, not stored)
  and torch's gradient of every input (stored raw);
- tests/Osprey.Tests/Fixtures/autograd/retinanet_resnet18_fpn.json: a whole RetinaNet-R18-FPN (formula weights of
  tools/formula.py, frozen batch norm) on a formula image, loss = sum(cls_logits^2) + sum(bbox_regression^2), and for
  every convolution the gradient of Osprey's folded parameters (weight' = weight * scale, bias' = (bias - mean) * scale + beta,
  so dL/dweight' = dL/dweight / scale and dL/dbias' = dL/dbeta) as summaries: sum, abs sum, rms and 32 evenly spaced values.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_ops import gen_input, case  # noqa: E402
from formula import weight, values  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OPS = os.path.join(ROOT, "tests", "Osprey.Tests", "Fixtures", "ops", "autograd.json")
MODEL = os.path.join(ROOT, "tests", "Osprey.Tests", "Fixtures", "autograd", "retinanet_resnet18_fpn.json")
torch.set_num_threads(2)


def grads(name, args, fn, shapes, seed, lo=-1.0, hi=1.0):
    """Runs fn on generated inputs (requires_grad), back-propagates a generated output gradient, returns one case."""
    ins = []
    for i, s in enumerate(shapes):
        spec, t = gen_input(s, seed=seed + i, lo=lo, hi=hi)
        ins.append((spec, t.requires_grad_(True)))
    y = fn(*[t for _, t in ins])
    gspec, g = gen_input(list(y.shape), seed=seed + 100)
    y.backward(g)
    return case(name, args, ins + [(gspec, g)], [t.grad for _, t in ins])


def conv_cases():
    cs = []
    geo = [("k3s1p1", [2, 3, 9, 8], [5, 3, 3, 3], 1, 1, 1, 1), ("k3s2p1", [2, 3, 9, 8], [5, 3, 3, 3], 2, 1, 1, 1),
           ("k7s2p3", [1, 3, 13, 11], [4, 3, 7, 7], 2, 3, 1, 1), ("k1s1", [2, 6, 5, 7], [4, 6, 1, 1], 1, 0, 1, 1),
           ("k3d2p2", [1, 4, 9, 9], [3, 4, 3, 3], 1, 2, 2, 1), ("k3g2p1", [1, 4, 7, 6], [6, 2, 3, 3], 1, 1, 1, 2)]
    for tag, xs, ws, s, p, d, g in geo:
        for nhwc in (False, True):
            args = {"op": "conv2d", "stride": s, "pad": p, "dilation": d, "groups": g, "nhwc": nhwc, "act": "Relu"}
            def fn(x, w, b, r, s=s, p=p, d=d, g=g):
                return F.relu(F.conv2d(x, w, b, s, p, d, g) + r)
            o = [xs[0], ws[0], (xs[2] + 2 * p - d * (ws[2] - 1) - 1) // s + 1, (xs[3] + 2 * p - d * (ws[3] - 1) - 1) // s + 1]
            cs.append(grads(f"conv2d_{tag}{'_nhwc' if nhwc else ''}", args, fn, [xs, ws, [ws[0]], o], seed=10 + len(cs) * 7))
    return cs


def other_cases():
    cs = []
    for tag, k, s, p, ceil in (("k3s2p1", 3, 2, 1, False), ("k2s2_ceil", 2, 2, 0, True), ("k3s1p1", 3, 1, 1, False)):
        for nhwc in (False, True):
            cs.append(grads(f"max_pool2d_{tag}{'_nhwc' if nhwc else ''}", {"op": "max_pool2d", "k": k, "s": s, "p": p, "ceil": ceil, "nhwc": nhwc},
                            lambda x, k=k, s=s, p=p, ceil=ceil: F.max_pool2d(x, k, s, p, ceil_mode=ceil), [[2, 3, 9, 7]], seed=200 + len(cs)))
    cs.append(grads("avg_pool2d_k3s2p1_nopad_ceil", {"op": "avg_pool2d", "k": 3, "s": 2, "p": 1, "ceil": True, "include_pad": False, "nhwc": False},
                    lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), [[2, 3, 9, 7]], seed=230))
    for mode in ("nearest", "bilinear"):
        for (oh, ow) in ((14, 10), (11, 9), (4, 3)):
            for nhwc in (False, True):
                kw = {} if mode == "nearest" else {"align_corners": False}
                cs.append(grads(f"interpolate_{mode}_{oh}x{ow}{'_nhwc' if nhwc else ''}", {"op": "interpolate", "mode": mode, "oh": oh, "ow": ow, "nhwc": nhwc},
                                lambda x, oh=oh, ow=ow, mode=mode, kw=kw: F.interpolate(x, size=(oh, ow), mode=mode, **kw), [[2, 3, 7, 5]], seed=300 + len(cs)))
    for log in (False, True):
        cs.append(grads(f"{'log_' if log else ''}softmax", {"op": "log_softmax" if log else "softmax", "axis": 1},
                        lambda x, log=log: (F.log_softmax if log else F.softmax)(x, 1), [[3, 7, 5]], seed=400 + len(cs), lo=-3, hi=3))
    cs.append(grads("matmul_batched_bias_relu", {"op": "linear_relu"},
                    lambda x, w, b: F.relu(torch.matmul(x, w.t()) + b), [[2, 5, 6], [4, 6], [4]], seed=500))
    cs.append(grads("l2norm", {"op": "l2norm"},
                    lambda x, sc: sc.view(1, -1, 1, 1) * (x / x.pow(2).sum(1, keepdim=True).sqrt().clamp(min=1e-12)), [[2, 5, 4, 3], [5]], seed=510))
    for act, fn in (("Sigmoid", torch.sigmoid), ("Silu", F.silu), ("Gelu", F.gelu), ("Tanh", torch.tanh),
                    ("HardSwish", F.hardswish), ("Relu6", F.relu6)):
        cs.append(grads(f"unary_{act}", {"op": "unary", "kind": act}, fn, [[4, 9, 5]], seed=600 + len(cs), lo=-4, hi=4))
    cs.append(grads("binary_div_broadcast", {"op": "div"}, lambda a, b: a / b, [[3, 1, 5], [4, 1]], seed=700, lo=0.5, hi=2))
    cs.append(grads("focal_like", {"op": "focal_like"},
                    lambda x: (torch.sigmoid(x).pow(2) * F.logsigmoid(x).neg()).mean(0), [[6, 7]], seed=710, lo=-3, hi=3))
    return cs


def retinanet():
    from torchvision.models import resnet
    from torchvision.models.detection import RetinaNet
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7
    from torchvision.ops import misc as misc_nn_ops
    body = resnet.resnet18(weights=None, norm_layer=misc_nn_ops.FrozenBatchNorm2d)
    backbone = _resnet_fpn_extractor(body, 5, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
    model = RetinaNet(backbone, num_classes=91).eval()
    sd = model.state_dict()
    model.load_state_dict({k: torch.from_numpy(weight(k, tuple(v.shape))) for k, v in sd.items()})
    for m in model.modules():
        if isinstance(m, misc_nn_ops.FrozenBatchNorm2d):   # its beta as a parameter, for dL/dbeta
            beta = m.bias.clone()
            del m._buffers["bias"]
            m.bias = torch.nn.Parameter(beta)
    shape = [2, 3, 64, 80]
    image = torch.from_numpy(values("autograd.image", int(np.prod(shape))).reshape(shape))
    params = dict(model.named_parameters())
    for p in params.values():
        p.requires_grad_(True)
    feats = list(model.backbone(image).values())
    head = model.head(feats)
    loss = head["cls_logits"].pow(2).sum() + head["bbox_regression"].pow(2).sum()
    loss.backward()
    buffers = dict(model.named_buffers())
    convs = []
    for name, p in params.items():
        if not name.endswith(".weight") or p.dim() != 4:
            continue
        conv = name[: -len(".weight")]
        bn = bn_of(conv)
        gw = p.grad.double()
        if bn is not None:
            scale = buffers[bn + ".weight"].double() / torch.sqrt(buffers[bn + ".running_var"].double() + 1e-5)
            gw = gw / scale.view(-1, 1, 1, 1)
            gb = params[bn + ".bias"].grad.double()
        else:
            gb = params[conv + ".bias"].grad.double()
        convs.append({"name": conv, "weight": stats(gw), "bias": stats(gb)})
    return {"arch": "retinanet_resnet18_fpn", "classes": 91, "image_shape": shape, "image_formula": "autograd.image",
            "loss": float(loss.item()), "cls_logits_shape": list(head["cls_logits"].shape), "convs": convs}


def bn_of(conv):
    """The frozen batch norm after a torchvision ResNet convolution, if any."""
    if conv.endswith(".conv1") and conv.count(".") == 2:
        return conv[: -len("conv1")] + "bn1"
    if ".layer" in conv and conv.split(".")[-1].startswith("conv"):
        return conv[: -len("convN")] + "bn" + conv[-1]
    if conv.endswith(".downsample.0"):
        return conv[:-1] + "1"
    return None


def stats(t):
    a = t.detach().double().numpy().ravel()
    idx = (np.arange(32) * a.size) // 32
    return {"shape": list(t.shape), "sum": float(a.sum()), "abs_sum": float(np.abs(a).sum()), "rms": float(np.sqrt((a * a).mean())),
            "sample_index": idx.tolist(), "sample": [float(v) for v in a[idx]]}


def main():
    os.makedirs(os.path.dirname(MODEL), exist_ok=True)
    cases = conv_cases() + other_cases()
    doc = {"format": "osprey-golden-ops", "version": 1, "torch": torch.__version__, "family": "autograd", "cases": cases}
    with open(OPS, "w") as fh:
        json.dump(doc, fh, separators=(",", ":"))
        fh.write("\n")
    print(f"autograd ops: {len(cases)} cases, {os.path.getsize(OPS)} bytes")
    m = retinanet()
    with open(MODEL, "w") as fh:
        json.dump(m, fh, separators=(",", ":"))
        fh.write("\n")
    print(f"retinanet: loss {m['loss']:.6g}, {len(m['convs'])} convolutions, {os.path.getsize(MODEL)} bytes")


if __name__ == "__main__":
    main()
