#!/usr/bin/python3
"""Golden fixtures for Osprey's conv2d and fused activations, computed with PyTorch (CPU, float64).

Inputs are not stored: both sides compute them with the same integer generator (Lcg below and
tests/Osprey.Tests/Core/Conv2dTests.cs), so the fixture holds only the case geometry and the outputs.
Run from the repository root:  /usr/bin/python3 tools/golden_conv.py
Writes tests/Osprey.Tests/Fixtures/conv_golden.json.
"""
import json
import torch
import torch.nn.functional as F


def lcg(seed, count):
    """Values in [-1, 1] in steps of 1/1000: state = (state * 1103515245 + 12345) mod 2^31."""
    s = seed & 0x7FFFFFFF
    out = []
    for _ in range(count):
        s = (s * 1103515245 + 12345) & 0x7FFFFFFF
        out.append(((s >> 8) % 2001 - 1000) / 1000.0)
    return out


def t(seed, *shape):
    n = 1
    for d in shape:
        n *= d
    return torch.tensor(lcg(seed, n), dtype=torch.float64).reshape(shape)


# name, N, C, H, W, O, KH, KW, stride, pad, dilation, groups, bias, residual, activation
CASES = [
    ("3x3_pad1_bias", 2, 3, 7, 7, 4, 3, 3, (1, 1), (1, 1), (1, 1), 1, True, False, "none"),
    ("3x3_stride2_odd", 1, 3, 9, 8, 5, 3, 3, (2, 2), (1, 1), (1, 1), 1, False, False, "none"),
    ("3x3_dilation2", 1, 2, 9, 9, 3, 3, 3, (1, 1), (2, 2), (2, 2), 1, True, False, "none"),
    ("3x3_groups2", 2, 4, 6, 5, 6, 3, 3, (1, 1), (1, 1), (1, 1), 2, True, False, "relu"),
    ("depthwise_3x3", 2, 5, 7, 6, 5, 3, 3, (1, 1), (1, 1), (1, 1), 5, True, False, "none"),
    ("depthwise_stride2_dil2_res_relu6", 1, 6, 9, 11, 6, 3, 3, (2, 2), (2, 2), (2, 2), 6, True, True, "relu6"),
    ("1x1_bias_residual_relu", 2, 8, 5, 3, 7, 1, 1, (1, 1), (0, 0), (1, 1), 1, True, True, "relu"),
    ("1x1_stride2", 1, 6, 7, 7, 9, 1, 1, (2, 2), (0, 0), (1, 1), 1, False, False, "none"),
    ("7x7_stride2_pad3_stem", 1, 3, 23, 21, 8, 7, 7, (2, 2), (3, 3), (1, 1), 1, True, False, "relu"),
    ("1x3_pad0_1", 1, 3, 5, 6, 4, 1, 3, (1, 1), (0, 1), (1, 1), 1, False, False, "none"),
    ("5x2_stride2_1", 2, 2, 11, 7, 3, 5, 2, (2, 1), (1, 0), (1, 1), 1, True, False, "none"),
    ("batch3_bias_residual_relu", 3, 5, 6, 6, 13, 3, 3, (1, 1), (1, 1), (1, 1), 1, True, True, "relu"),
    ("groups3_stride2_dil2", 1, 6, 10, 9, 9, 3, 3, (2, 2), (2, 2), (2, 2), 3, False, True, "none"),
]


def case(spec, seed):
    name, n, c, h, w, o, kh, kw, stride, pad, dil, groups, has_bias, has_res, act = spec
    x = t(seed, n, c, h, w)
    wt = t(seed + 1, o, c // groups, kh, kw)
    b = t(seed + 2, o) if has_bias else None
    y = F.conv2d(x, wt, b, stride, pad, dil, groups)
    if has_res:
        y = y + t(seed + 3, *y.shape)
    if act == "relu":
        y = F.relu(y)
    elif act == "relu6":
        y = F.relu6(y)
    return dict(name=name, n=n, c=c, h=h, w=w, o=o, kh=kh, kw=kw, stride=list(stride), pad=list(pad),
                dilation=list(dil), groups=groups, bias=has_bias, residual=has_res, activation=act,
                seed=seed, shape=list(y.shape), y=[float("%.9g" % v) for v in y.flatten().tolist()])


def activations():
    x = torch.linspace(-5, 5, 41, dtype=torch.float64)
    f = {
        "Neg": lambda v: -v, "Abs": torch.abs, "Sqrt": torch.sqrt, "Exp": torch.exp, "Log": torch.log,
        "Relu": F.relu, "Relu6": F.relu6, "LeakyRelu": lambda v: F.leaky_relu(v, 0.1), "Silu": F.silu,
        "Sigmoid": torch.sigmoid, "HardSigmoid": F.hardsigmoid, "HardSwish": F.hardswish, "Tanh": torch.tanh,
        "Gelu": F.gelu, "Clamp": lambda v: torch.clamp(v, -0.5, 0.7),
    }
    def enc(v):  # JSON has no NaN or infinity: null and "inf"/"-inf"
        if v != v:
            return None
        if v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        return float("%.9g" % v)
    return dict(x=x.tolist(), leaky_slope=0.1, clamp=[-0.5, 0.7],
                y={k: [enc(v) for v in fn(x).tolist()] for k, fn in f.items()})


if __name__ == "__main__":
    out = dict(generator="lcg: s=(s*1103515245+12345) mod 2^31; v=((s>>8) mod 2001 - 1000)/1000",
               torch=torch.__version__, cases=[case(s, 100 + 10 * i) for i, s in enumerate(CASES)],
               activations=activations())
    with open("tests/Osprey.Tests/Fixtures/conv_golden.json", "w") as fh:
        json.dump(out, fh, separators=(",", ":"))
    print(f"wrote {len(out['cases'])} conv cases")
