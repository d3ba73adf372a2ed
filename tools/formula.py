"""Deterministic values that tools/ scripts and the C# tests (tests/Osprey.Tests/Support/Formula.cs) both compute.

values(key, n)[i] = float32 in [-1, 1) from splitmix64(fnv1a64(key) + (i + 1) * golden), top 24 bits:
exact in float32, so both sides produce bit-identical arrays without storing them.
"""
import numpy as np

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def fnv1a64(key: str) -> int:
    h = 0xCBF29CE484222325
    for b in key.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & M64
    return h


def values(key: str, n: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = np.uint64(fnv1a64(key)) + (np.arange(1, n + 1, dtype=np.uint64) * np.uint64(GOLDEN))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    top = (z >> np.uint64(40)).astype(np.float64)  # 24 bits
    return (top / float(1 << 23) - 1.0).astype(np.float32)


def weight(name: str, shape) -> np.ndarray:
    """Deterministic model parameter for a torchvision state_dict entry (mirrored by tests/.../Support/FormulaWeights.cs).

    conv weights: uniform(-b, b), b = sqrt(3 / fan_in) (activations shrink gently, so deep ResNets stay finite);
    ODTK's classification tower (cls_head.*) uses b = 1.5 sqrt(3 / fan_in), so its weak MobileNetV2 features still spread
    the scores;
    batch norm: weight 1 + 0.1u (every 1-D ".weight"), bias 0.1u, running_mean 0.1u, running_var 1 + 0.25(u + 1);
    classification biases 2.5u - 3 (RetinaNet: torchvision cls_logits, ODTK cls_head.8) / 2u (SSD: torchvision
    classification_head.module_list.i, NVIDIA conf.i) so that scores spread around the thresholds;
    other biases 0.1u; SSD's scale_weight 20 + 2u.
    """
    n = int(np.prod(shape)) if len(shape) else 1
    u = values(name, n)
    f = np.float32
    if len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        gain = 1.5 if name.startswith("cls_head.") else 1.0
        return (u * f(gain * np.sqrt(3.0 / fan_in))).reshape(shape)
    if name.endswith("running_var"):
        v = f(1) + f(0.25) * (u + f(1))
    elif name.endswith("running_mean"):
        v = f(0.1) * u
    elif name.endswith("scale_weight"):
        v = f(20) + f(2) * u
    elif name.endswith(".weight"):
        v = f(1) + f(0.1) * u
    elif name.endswith("cls_logits.bias") or name == "cls_head.8.bias":
        v = f(2.5) * u - f(3)
    elif (name.startswith("head.classification_head.module_list.") or name.startswith("conf.")) and name.endswith(".bias"):
        v = f(2) * u
    else:
        v = f(0.1) * u
    return v.astype(np.float32).reshape(shape)

