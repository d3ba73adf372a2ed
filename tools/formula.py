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
