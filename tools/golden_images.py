#!/usr/bin/env python3
"""Fixtures for Osprey's image decoders (tests/Osprey.Tests/Fixtures/images).

- coco128_jpeg.json: for every ../shared/data/coco128 JPEG, PIL's Image.open(f).convert('RGB') size, byte sum and
  FNV-1a 64 hash of the RGB bytes (Osprey must decode bit-exactly with the same libjpeg-turbo).
- *.png: small PNGs whose pixels come from tools/formula.py, written by a minimal encoder here so that every row
  filter, colour type and bit depth appears; png.json holds PIL's decode of each (hash) or the expected refusal.
Run: /usr/bin/python3 tools/golden_images.py
"""
import glob, json, os, struct, sys, zlib
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(__file__))
from formula import values, fnv1a64  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")
OUT = os.path.join(ROOT, "tests", "Osprey.Tests", "Fixtures", "images")
COCO = os.path.join(ROOT, "..", "shared", "data", "coco128", "train2017")


def fnv_bytes(b: bytes) -> str:
    h = 0xCBF29CE484222325
    a = np.frombuffer(b, dtype=np.uint8)
    for x in a.tolist():
        h = ((h ^ x) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return format(h, "016x")


def rgb_summary(im):
    a = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return {"width": im.size[0], "height": im.size[1], "sum": int(a.astype(np.int64).sum()), "fnv": fnv_bytes(a.tobytes())}


def formula_bytes(key, n):
    return ((values(key, n) + 1) * 128).astype(np.int64).clip(0, 255).astype(np.uint8)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def filter_row(ftype, row, prev, bpp):
    out = bytearray(len(row))
    for i in range(len(row)):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        pred = [0, a, b, (a + b) >> 1, paeth(a, b, c)][ftype]
        out[i] = (row[i] - pred) & 0xFF
    return bytes([ftype]) + bytes(out)


def chunk(t, body):
    return struct.pack(">I", len(body)) + t + body + struct.pack(">I", zlib.crc32(t + body) & 0xFFFFFFFF)


def write_png(path, w, h, color, depth, rows, palette=None, interlace=0):
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    bpp = max(1, channels * depth // 8)
    raw, prev = b"", bytes(len(rows[0]))
    for y, row in enumerate(rows):
        raw += filter_row(y % 5, row, prev, bpp)
        prev = row
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace))
    data += chunk(b"tEXt", b"Comment\x00osprey fixture")
    if palette is not None:
        data += chunk(b"PLTE", bytes(palette))
    z = zlib.compress(raw, 9)
    data += chunk(b"IDAT", z[: len(z) // 2]) + chunk(b"IDAT", z[len(z) // 2:]) + chunk(b"IEND", b"")
    open(path, "wb").write(data)


def pack_bits(samples, depth):
    out, acc, nbits = bytearray(), 0, 0
    for s in samples:
        acc = (acc << depth) | int(s)
        nbits += depth
        if nbits == 8:
            out.append(acc); acc, nbits = 0, 0
    if nbits:
        out.append(acc << (8 - nbits))
    return bytes(out)


os.makedirs(OUT, exist_ok=True)
png = {}
W, H = 17, 11
cases = []
for color, depth, name in [(2, 8, "rgb8"), (6, 8, "rgba8"), (0, 8, "gray8"), (4, 8, "gray_alpha8"), (3, 8, "palette8"),
                           (3, 4, "palette4"), (3, 2, "palette2"), (0, 1, "gray1"), (0, 2, "gray2"), (0, 4, "gray4"), (2, 16, "rgb16")]:
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    levels = 1 << depth if depth < 8 else 256
    palette = None
    if color == 3:
        levels = min(levels, 200)
        palette = list(formula_bytes(f"png.{name}.palette", levels * 3))
    s = (formula_bytes(f"png.{name}", W * H * channels).astype(np.int64) * levels // 256)
    rows = []
    for y in range(H):
        r = s[y * W * channels:(y + 1) * W * channels]
        rows.append(struct.pack(f">{len(r)}H", *[int(v) * 257 for v in r]) if depth == 16 else
                    (bytes(r.astype(np.uint8)) if depth == 8 else pack_bits(r, depth)))
    path = os.path.join(OUT, name + ".png")
    write_png(path, W, H, color, depth, rows, palette)
    png[name] = {"error": "16-bit"} if depth == 16 else rgb_summary(Image.open(path))
write_png(os.path.join(OUT, "interlaced.png"), 4, 4, 2, 8, [bytes(12)] * 4, interlace=1)
png["interlaced"] = {"error": "interlaced"}
# a PIL-written PNG (its own filter choice and zlib settings)
Image.fromarray(formula_bytes("png.pil", 23 * 13 * 3).reshape(13, 23, 3)).save(os.path.join(OUT, "pil_rgb.png"))
png["pil_rgb"] = rgb_summary(Image.open(os.path.join(OUT, "pil_rgb.png")))
json.dump(png, open(os.path.join(OUT, "png.json"), "w"), indent=0)

jpeg = {}
for f in sorted(glob.glob(os.path.join(COCO, "*.jpg"))):
    jpeg[os.path.basename(f)] = rgb_summary(Image.open(f))
json.dump(jpeg, open(os.path.join(OUT, "coco128_jpeg.json"), "w"), indent=0)
print("wrote", sorted(os.listdir(OUT)))
