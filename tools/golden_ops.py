#!/usr/bin/python3
"""Generates the golden fixtures of the CPU op tests (tests/Osprey.Tests/Fixtures/ops/*.json) with PyTorch.

Run: /usr/bin/python3 tools/golden_ops.py   (torch 1.13 CPU). The format is described in tools/README.md.
Inputs are mostly not stored: they come from a seeded generator that tests/Osprey.Tests/Support/Golden.cs
implements identically. Outputs are stored raw (little-endian, their own dtype) in base64.
"""
import base64
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "Osprey.Tests", "Fixtures", "ops")
M64 = (1 << 64) - 1
DT = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "int8": torch.int8,
      "uint8": torch.uint8, "int32": torch.int32, "int64": torch.int64, "bool": torch.bool}
NAME = {v: k for k, v in DT.items()}


class Gen:
    """xorshift64* seeded by splitmix-style scrambling; the C# twin is Golden.Generator."""

    def __init__(self, seed):
        self.s = (seed * 0x9E3779B97F4A7C15 + 1) & M64 or 1

    def next(self):
        x = self.s
        x ^= x >> 12
        x ^= (x << 25) & M64
        x ^= x >> 27
        self.s = x
        return (x * 0x2545F4914F6CDD1D) & M64


def generate(spec, n):
    """Values (Python floats, exact in float64) of a 'gen' spec: floats lo + (hi-lo)*u/2^24 (or u/levels), ints lo + r % (hi-lo)."""
    g = Gen(spec["seed"])
    lo, hi = spec["lo"], spec["hi"]
    levels, ints, nonzero = spec.get("levels", 0), spec.get("int", False), spec.get("nonzero", False)
    out = []
    for _ in range(n):
        r = g.next()
        if ints:
            v = lo + (r >> 33) % (hi - lo)
        elif levels:
            v = lo + (hi - lo) * ((r >> 40) % levels) / levels
        else:
            v = lo + (hi - lo) * ((r >> 40) / 16777216.0)
        if nonzero and v == 0:
            v = 1
        out.append(v)
    return out


def numel(shape):
    return int(np.prod(shape)) if shape else 1


def gen_input(shape, dtype="float32", seed=1, lo=-1.0, hi=1.0, **kw):
    """An input described by its generator; returns (json spec, torch tensor)."""
    spec = {"seed": seed, "lo": lo, "hi": hi, **kw}
    vals = generate(spec, numel(shape))
    if kw.get("int") or dtype in ("bool",):
        t = torch.tensor(vals, dtype=torch.int64).reshape(shape).to(DT[dtype])
    else:
        t = torch.tensor(np.array(vals, dtype=np.float32)).reshape(shape).to(DT[dtype])
    return {"shape": list(shape), "dtype": dtype, "gen": spec}, t


def raw(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def data_input(t):
    """An input stored explicitly (special values)."""
    return {"shape": list(t.shape), "dtype": NAME[t.dtype], "data": base64.b64encode(raw(t)).decode()}, t


def out(t):
    return {"shape": list(t.shape), "dtype": NAME[t.dtype], "data": base64.b64encode(raw(t)).decode()}


def case(name, args, inputs, outputs):
    return {"name": name, "args": args, "inputs": [i[0] for i in inputs], "outputs": [out(o) for o in outputs]}


def f32(fn, x, dtype):
    """Reference of an op computed in float32 and rounded once to the input dtype."""
    return fn(x.float()).to(dtype)


# ---------------------------------------------------------------- families

UNARY = {
    "Identity": lambda x, a, b: x.clone(), "Neg": lambda x, a, b: -x, "Abs": lambda x, a, b: x.abs(),
    "Sqrt": lambda x, a, b: x.sqrt(), "Exp": lambda x, a, b: x.exp(), "Log": lambda x, a, b: x.log(),
    "Relu": lambda x, a, b: F.relu(x), "Relu6": lambda x, a, b: F.relu6(x),
    "LeakyRelu": lambda x, a, b: F.leaky_relu(x, a), "Silu": lambda x, a, b: F.silu(x),
    "Sigmoid": lambda x, a, b: torch.sigmoid(x), "HardSigmoid": lambda x, a, b: F.hardsigmoid(x),
    "HardSwish": lambda x, a, b: F.hardswish(x), "Tanh": lambda x, a, b: torch.tanh(x),
    "Gelu": lambda x, a, b: F.gelu(x), "Clamp": lambda x, a, b: torch.clamp(x, a, b),
}


def unary_cases():
    cases = []
    for k, fn in UNARY.items():
        a, b = {"LeakyRelu": (0.2, 0.0), "Clamp": (-0.75, 1.5)}.get(k, (0.0, 0.0))
        lo, hi = (0.01, 20.0) if k in ("Sqrt", "Log") else (-8.0, 8.0)
        for dt, shape, seed in (("float32", (7, 37), 11), ("float16", (3, 29), 12), ("bfloat16", (3, 29), 13)):
            x = gen_input(shape, dt, seed, lo, hi)
            y = f32(lambda v: fn(v, a, b), x[1], x[1].dtype)
            cases.append(case(f"{k}_{dt}", {"kind": k, "a": a, "b": b}, [x], [y]))
        # a strided (transposed) view and small magnitudes, float32
        x = gen_input((19, 5), "float32", 14, -0.05, 0.05)
        cases.append(case(f"{k}_small_transposed", {"kind": k, "a": a, "b": b, "transpose": True},
                          [x], [fn(x[1].t(), a, b).contiguous()]))
    return cases


def binary_cases():
    ops = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Max": torch.maximum, "Min": torch.minimum,
           "Eq": torch.eq, "Ne": torch.ne, "Lt": torch.lt, "Le": torch.le, "Gt": torch.gt, "Ge": torch.ge}
    shapes = [((3, 5, 7), (3, 5, 7)), ((4, 1, 6), (1, 5, 1)), ((2, 3, 1, 17), (17,)), ((), (2, 33)), ((37,), (1,))]
    cases = []
    for dt in ("float32", "float16", "bfloat16", "int32", "int64", "uint8", "int8"):
        is_int = dt not in ("float32", "float16", "bfloat16")
        names = list(ops) + ["Div", "Pow"]
        for name in names:
            for si, (sa, sb) in enumerate(shapes):
                if dt != "float32" and si not in (1, 2):
                    continue
                rng = dict(int=True, lo=-100, hi=100) if dt in ("int32", "int64") else \
                    dict(int=True, lo=0, hi=256) if dt == "uint8" else dict(int=True, lo=-128, hi=128) if dt == "int8" else \
                    dict(lo=-4.0, hi=4.0, levels=16)
                a = gen_input(sa, dt, 100 + si, **rng)
                brng = dict(rng)
                if name == "Div":
                    brng["nonzero"] = True
                if name == "Pow":
                    a = gen_input(sa, dt, 100 + si, **(dict(int=True, lo=-5, hi=6) if is_int else dict(lo=0.1, hi=3.0)))
                    brng = dict(int=True, lo=0, hi=4) if is_int else dict(lo=-2.0, hi=2.0)
                b = gen_input(sb, dt, 200 + si, **brng)
                if name == "Div":
                    ref = torch.div(a[1], b[1], rounding_mode="trunc") if is_int else f32lift(torch.div, a[1], b[1])
                elif name == "Pow":
                    ref = torch.pow(a[1], b[1]) if is_int else f32lift(torch.pow, a[1], b[1])
                elif is_int or name in ("Eq", "Ne", "Lt", "Le", "Gt", "Ge"):
                    ref = ops[name](a[1], b[1])
                else:
                    ref = f32lift(ops[name], a[1], b[1])
                cases.append(case(f"{name}_{dt}_{si}", {"op": name}, [a, b], [ref]))
    for name in ("Eq", "Ne"):
        a = gen_input((5, 6), "bool", 300, int=True, lo=0, hi=2)
        b = gen_input((6,), "bool", 301, int=True, lo=0, hi=2)
        cases.append(case(f"{name}_bool", {"op": name}, [a, b], [torch.eq(a[1], b[1]) if name == "Eq" else torch.ne(a[1], b[1])]))
    # where with three-way broadcasting
    c = gen_input((4, 1, 9), "bool", 400, int=True, lo=0, hi=2)
    for dt in ("float32", "int64", "float16"):
        a = gen_input((3, 9), dt, 401, **(dict(int=True, lo=-50, hi=50) if dt == "int64" else {}))
        b = gen_input((4, 3, 1), dt, 402, **(dict(int=True, lo=-50, hi=50) if dt == "int64" else {}))
        cases.append(case(f"Where_{dt}", {"op": "Where"}, [c, a, b], [torch.where(c[1], a[1], b[1])]))
    return cases


def f32lift(fn, a, b):
    return fn(a.float(), b.float()).to(a.dtype)


def reduce_cases():
    cases = []
    red = {"Sum": lambda x, d: torch.sum(x, d, keepdim=True), "Mean": lambda x, d: torch.mean(x, d, keepdim=True),
           "Max": lambda x, d: torch.amax(x, d, keepdim=True), "Min": lambda x, d: torch.amin(x, d, keepdim=True)}
    for op, fn in red.items():
        for axes in ([0], [1], [2], [0, 2], [1, 2], [0, 1, 2]):
            for dt in ("float32", "float16", "int32", "int64"):
                if op == "Mean" and dt.startswith("int"):
                    continue
                if dt in ("float16", "int64") and axes not in ([1], [0, 2]):
                    continue
                x = gen_input((4, 6, 10), dt, 500, **(dict(int=True, lo=-1000, hi=1000) if dt.startswith("int") else dict(lo=-3.0, hi=3.0)))
                if dt.startswith("int"):
                    ref = fn(x[1].long(), axes).to(x[1].dtype) if op == "Sum" else fn(x[1], axes)
                else:
                    ref = fn(x[1].double(), axes).to(x[1].dtype)
                cases.append(case(f"{op}_{dt}_{'_'.join(map(str, axes))}", {"op": op, "axes": axes}, [x], [ref]))
    # long rows: accuracy of float sums along and across the contiguous axis
    for shape, axes in (((3, 4099), [1]), ((4099, 3), [0]), ((2, 5, 33, 17), [2, 3]), ((2, 5, 33, 17), [0])):
        x = gen_input(shape, "float32", 501, 0.0, 10.0)
        for op in ("Sum", "Mean", "Max"):
            cases.append(case(f"{op}_long_{'x'.join(map(str, shape))}_{'_'.join(map(str, axes))}", {"op": op, "axes": axes}, [x],
                              [red[op](x[1].double(), axes).float()]))
    x = gen_input((3, 0, 2), "float32", 502)
    cases.append(case("Sum_empty_axis", {"op": "Sum", "axes": [1]}, [x], [torch.sum(x[1], [1], keepdim=True)]))
    cases.append(case("Mean_empty_axis", {"op": "Mean", "axes": [1]}, [x], [torch.mean(x[1], [1], keepdim=True)]))
    # argmax with ties and NaN
    for axis in (0, 1, 2):
        x = gen_input((4, 6, 10), "float32", 503, -2.0, 2.0, levels=5)
        cases.append(case(f"ArgMax_ties_{axis}", {"op": "ArgMax", "axis": axis}, [x], [torch.argmax(x[1], axis, keepdim=True)]))
    x = gen_input((5, 13), "int32", 504, int=True, lo=-3, hi=3)
    cases.append(case("ArgMax_int32", {"op": "ArgMax", "axis": 1}, [x], [torch.argmax(x[1], 1, keepdim=True)]))
    t = torch.tensor([[1.0, float("nan"), 3.0, float("nan")], [2.0, 5.0, 5.0, -1.0], [float("-inf")] * 4])
    x = data_input(t)
    cases.append(case("ArgMax_nan", {"op": "ArgMax", "axis": 1}, [x], [torch.argmax(t, 1, keepdim=True)]))
    return cases


def softmax_cases():
    cases = []
    for shape, axis in (((5, 37), 1), ((5, 37), 0), ((2, 3, 4, 5), 1), ((2, 3, 4, 5), 3), ((3, 1000), 1)):
        x = gen_input(shape, "float32", 600, -30.0, 30.0)
        for log in (False, True):
            fn = torch.log_softmax if log else torch.softmax
            cases.append(case(f"{'Log' if log else ''}Softmax_{'x'.join(map(str, shape))}_{axis}", {"log": log, "axis": axis}, [x], [fn(x[1], axis)]))
    x = gen_input((4, 21), "float16", 601, -8.0, 8.0)
    for log in (False, True):
        fn = torch.log_softmax if log else torch.softmax
        cases.append(case(f"{'Log' if log else ''}Softmax_float16", {"log": log, "axis": 1}, [x], [fn(x[1].float(), 1).half()]))
    return cases


def topk_cases():
    cases = []
    for shape, k, axis, largest, levels in (((4, 50), 5, 1, True, 0), ((4, 50), 5, 1, False, 0), ((4, 50), 7, 1, True, 7),
                                            ((4, 50), 9, 1, False, 7), ((30, 3, 2), 4, 0, True, 5), ((3, 17), 17, 1, True, 0),
                                            ((3, 17), 0, 1, True, 0), ((2, 300), 100, 1, True, 11)):
        x = gen_input(shape, "float32", 700, -5.0, 5.0, levels=levels)
        v, i = torch.topk(x[1], k, axis, largest=largest, sorted=True)
        cases.append(case(f"TopK_{'x'.join(map(str, shape))}_k{k}_a{axis}_{'largest' if largest else 'smallest'}_{levels}",
                          {"k": k, "axis": axis, "largest": largest}, [x], [v, i]))
    x = gen_input((3, 40), "int32", 701, int=True, lo=-5, hi=5)
    v, i = torch.topk(x[1], 6, 1)
    cases.append(case("TopK_int32_ties", {"k": 6, "axis": 1, "largest": True}, [x], [v, i]))
    t = torch.tensor([[3.0, 1.0, float("nan"), 2.0, float("nan"), 3.0]])
    for largest in (True, False):
        v, i = torch.topk(t, 4, 1, largest=largest)
        cases.append(case(f"TopK_nan_{largest}", {"k": 4, "axis": 1, "largest": largest}, [data_input(t)], [v, i]))
    return cases


def indexing_cases():
    cases = []
    x = gen_input((3, 4, 5), "float32", 800)
    for axis, ishape, idt in ((1, (3, 2, 5), "int64"), (0, (2, 4, 5), "int32"), (2, (2, 3, 3), "int64")):
        idx = gen_input(ishape, idt, 801 + axis, int=True, lo=0, hi=x[1].shape[axis])
        cases.append(case(f"Gather_{axis}_{idt}", {"op": "Gather", "axis": axis}, [x, idx], [torch.gather(x[1], axis, idx[1].long())]))
    xi = gen_input((4, 5, 6), "int64", 810, int=True, lo=-9, hi=9)
    for axis, n, idt in ((1, 7, "int64"), (0, 3, "int32"), (2, 1, "int64")):
        idx = gen_input((n,), idt, 811 + axis, int=True, lo=0, hi=xi[1].shape[axis])
        cases.append(case(f"IndexSelect_{axis}_{idt}", {"op": "IndexSelect", "axis": axis}, [xi, idx],
                          [torch.index_select(xi[1], axis, idx[1].long())]))
    return cases


def pool_cases():
    cases = []
    geos = [  # (name, H, W, kh, kw, sh, sw, ph, pw, ceil, include_pad)
        ("k2s2", 8, 8, 2, 2, 2, 2, 0, 0, False, True),
        ("k3s2p1", 7, 9, 3, 3, 2, 2, 1, 1, False, True),
        ("k3s2p1_ceil", 7, 9, 3, 3, 2, 2, 1, 1, True, True),
        ("k3s2_ceil_partial", 8, 8, 3, 3, 2, 2, 0, 0, True, True),
        ("k2s3p1_ceil_dropped", 4, 4, 2, 2, 3, 3, 1, 1, True, True),
        ("k3s2p1_exclude_pad", 7, 6, 3, 3, 2, 2, 1, 1, False, False),
        ("k3s2p1_ceil_exclude_pad", 6, 7, 3, 3, 2, 2, 1, 1, True, False),
        ("k2s3_stride_gt_kernel", 11, 10, 2, 2, 3, 3, 0, 0, False, True),
        ("k3x2s2x1p1x0", 9, 7, 3, 2, 2, 1, 1, 0, False, True),
        ("k5s1p2", 6, 5, 5, 5, 1, 1, 2, 2, False, False),
    ]
    for name, h, w, kh, kw, sh, sw, ph, pw, ceil, inc in geos:
        for fmt in ("nchw", "nhwc"):
            for dt in ("float32", "float16"):
                if dt == "float16" and name not in ("k3s2p1_ceil", "k3s2p1_exclude_pad"):
                    continue
                x = gen_input((2, 3, h, w), dt, 900)
                xt = x[1].float()
                if fmt == "nhwc":
                    xt = xt.to(memory_format=torch.channels_last)
                args = {"kh": kh, "kw": kw, "sh": sh, "sw": sw, "ph": ph, "pw": pw, "ceil": ceil, "includePad": inc, "format": fmt}
                mx = F.max_pool2d(xt, (kh, kw), (sh, sw), (ph, pw), ceil_mode=ceil).to(x[1].dtype)
                av = F.avg_pool2d(xt, (kh, kw), (sh, sw), (ph, pw), ceil_mode=ceil, count_include_pad=inc).to(x[1].dtype)
                cases.append(case(f"Max_{name}_{fmt}_{dt}", {"kind": "Max", **args}, [x], [mx]))
                cases.append(case(f"Avg_{name}_{fmt}_{dt}", {"kind": "Avg", **args}, [x], [av]))
    return cases


def resize_cases():
    cases = []
    for (h, w), (oh, ow) in (((5, 7), (11, 13)), ((5, 7), (3, 4)), ((5, 7), (5, 7)), ((5, 7), (10, 14)), ((6, 4), (9, 3)), ((1, 1), (3, 2))):
        for mode in ("Nearest", "Bilinear"):
            for fmt in ("nchw", "nhwc"):
                x = gen_input((2, 3, h, w), "float32", 1000)
                xt = x[1] if fmt == "nchw" else x[1].to(memory_format=torch.channels_last)
                kw = {"mode": "nearest"} if mode == "Nearest" else {"mode": "bilinear", "align_corners": False}
                y = F.interpolate(xt, size=(oh, ow), **kw)
                cases.append(case(f"{mode}_{h}x{w}_to_{oh}x{ow}_{fmt}", {"mode": mode, "h": oh, "w": ow, "format": fmt}, [x], [y]))
    x = gen_input((1, 2, 5, 7), "bfloat16", 1001)
    y = F.interpolate(x[1].float(), size=(8, 9), mode="bilinear", align_corners=False).bfloat16()
    cases.append(case("Bilinear_bfloat16", {"mode": "Bilinear", "h": 8, "w": 9, "format": "nchw"}, [x], [y]))
    return cases


def cast_cases():
    cases = []
    h = 2.0 ** -11
    f = torch.tensor([0.0, -0.0, 1.0, 1 + h, 1 + 3 * h, 1 + h + 2 ** -20, 65504.0, 65519.0, 65520.0, 1e10, -1e10,
                      2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26, 2.0 ** -26, 6.1e-5, 1e-8, 1.00390625, 1.01171875, 1.005859375,
                      3.389e38, 3.4028234e38, 1e-40, -2.5, 0.5, 1.5, 2.5, -3.7, 127.9, -128.5, 200.5, 300.0, -129.0, 255.9,
                      256.0, -1.0, 3e9, -3e9, 1e19, float("inf"), float("-inf"), float("nan")], dtype=torch.float32)
    ints = torch.tensor([0, 1, -1, 127, 128, -128, -129, 255, 256, 300, -300, 65519, 65520, 16777217, 16777219,
                         2 ** 31 - 1, -2 ** 31, 2 ** 31, 2 ** 53 + 1, -(2 ** 62) - 3, 2 ** 63 - 1], dtype=torch.int64)
    sources = {"float32": f, "float16": f.half(), "bfloat16": f.bfloat16(), "int64": ints, "int32": ints.to(torch.int32),
               "int8": ints.to(torch.int8), "uint8": ints.to(torch.uint8), "bool": torch.tensor([True, False, True])}
    for sname, src in sources.items():
        for dname, ddt in DT.items():
            if dname == sname:
                continue
            s = src
            if sname.startswith("float") or sname == "bfloat16":
                if dname in ("int32", "int64", "int8", "uint8"):
                    s = src[~torch.isnan(src.float())]  # NaN->int is checked separately in C#
            y = s.to(ddt)
            cases.append(case(f"{sname}_to_{dname}", {"to": dname}, [data_input(s)], [y]))
    # a strided source
    x = gen_input((6, 7), "float32", 1100, -300.0, 300.0)
    cases.append(case("float32_to_bfloat16_transposed", {"to": "bfloat16", "transpose": True}, [x], [x[1].t().bfloat16().contiguous()]))
    return cases


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    total = 0
    for fam, fn in (("unary", unary_cases), ("binary", binary_cases), ("reduce", reduce_cases), ("softmax", softmax_cases),
                    ("topk", topk_cases), ("indexing", indexing_cases), ("pool", pool_cases), ("resize", resize_cases),
                    ("cast", cast_cases)):
        doc = {"format": "osprey-golden-ops", "version": 1, "torch": torch.__version__, "family": fam, "cases": fn()}
        path = os.path.join(OUT, fam + ".json")
        with open(path, "w") as fh:
            json.dump(doc, fh, separators=(",", ":"))
            fh.write("\n")
        size = os.path.getsize(path)
        total += size
        print(f"{fam}: {len(doc['cases'])} cases, {size} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
