#!/usr/bin/env python3
"""PNG fixtures for the PNG reader tests, in Tests/AnySizeTests/Fixtures/image/.

- pil_parameters.png: a 9x5 RGB image written by PIL with A1111-style text: key "parameters"
  (Latin-1, so PIL writes tEXt) and key "prompt_utf8" (CJK and emoji, so PIL writes iTXt).
  Pixel (x, y) channel c is (37 x + 11 y + 91 c) mod 256.
- formats/*.png: 5x3 images of other colour types and bit depths, written chunk by chunk with zlib
  (PIL cannot write all of them), and formats/expected.json with the 8-bit RGB each must read as:
  gray replicated, palette looked up, alpha dropped, 16-bit samples scaled to 8 bits with rounding.

Run: /work/venv/bin/python tools/fixtures_png.py   (Pillow, numpy)
"""
import json
import os
import struct
import zlib

import numpy as np
import PIL.Image
import PIL.PngImagePlugin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests/AnySizeTests/Fixtures/image")

PARAMETERS = ("a watercolour fox in a misty forest, highly detailed\n"
              "Negative prompt: blurry, lowres\n"
              "Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 1234, Size: 768x512, "
              "Model: v1-5-pruned-emaonly, Attention: scaled")
PROMPT_UTF8 = "猫と狐 🦊🐈 — café, naïve, 東京"


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def raw_png(width, height, bit_depth, color_type, rows, extra=b""):
    """rows: list of already packed scanline bytes (big-endian samples); filter type 0 on every row."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    data = b"".join(b"\0" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(data))
            + chunk(b"IEND", b""))


def pack_bits(values, bits):
    out, acc, n = bytearray(), 0, 0
    for v in values:
        acc = (acc << bits) | int(v)
        n += bits
        if n == 8:
            out.append(acc)
            acc, n = 0, 0
    if n:
        out.append(acc << (8 - n))
    return bytes(out)


def to8(v16):
    return (int(v16) * 255 + 32767) // 65535  # round(v * 255 / 65535)


def main():
    os.makedirs(os.path.join(OUT, "formats"), exist_ok=True)

    pixels = np.array([[[(37 * x + 11 * y + 91 * c) % 256 for c in range(3)] for x in range(9)] for y in range(5)],
                      dtype=np.uint8)
    info = PIL.PngImagePlugin.PngInfo()
    info.add_text("parameters", PARAMETERS)
    info.add_text("prompt_utf8", PROMPT_UTF8)
    PIL.Image.fromarray(pixels).save(os.path.join(OUT, "pil_parameters.png"), pnginfo=info)

    rng = np.random.default_rng(11)
    w, h = 5, 3
    expected = {}

    def save(name, png, rgb):
        with open(os.path.join(OUT, "formats", name + ".png"), "wb") as f:
            f.write(png)
        expected[name] = [int(v) for v in np.asarray(rgb, dtype=np.uint8).flatten()]

    g = rng.integers(0, 256, (h, w))
    save("gray8", raw_png(w, h, 8, 0, [bytes(r.astype(np.uint8)) for r in g]), np.repeat(g[..., None], 3, axis=2))

    g1 = rng.integers(0, 2, (h, w))
    save("gray1", raw_png(w, h, 1, 0, [pack_bits(r, 1) for r in g1]), np.repeat(g1[..., None] * 255, 3, axis=2))

    g16 = rng.integers(0, 65536, (h, w))
    save("gray16", raw_png(w, h, 16, 0, [b"".join(struct.pack(">H", v) for v in r) for r in g16]),
         np.repeat(np.vectorize(to8)(g16)[..., None], 3, axis=2))

    ga = rng.integers(0, 256, (h, w, 2))
    save("gray_alpha8", raw_png(w, h, 8, 4, [bytes(r.astype(np.uint8).flatten()) for r in ga]),
         np.repeat(ga[..., :1], 3, axis=2))

    rgb16 = rng.integers(0, 65536, (h, w, 3))
    save("rgb16", raw_png(w, h, 16, 2, [b"".join(struct.pack(">H", v) for v in r.flatten()) for r in rgb16]),
         np.vectorize(to8)(rgb16))

    rgba = rng.integers(0, 256, (h, w, 4))
    rgba[0, 0, 3] = 0  # fully transparent pixel keeps its colour
    save("rgba8", raw_png(w, h, 8, 6, [bytes(r.astype(np.uint8).flatten()) for r in rgba]), rgba[..., :3])

    rgba16 = rng.integers(0, 65536, (h, w, 4))
    rgba16[..., 3] = 65535  # opaque: 16-bit alpha images are otherwise converted through linear light
    save("rgba16", raw_png(w, h, 16, 6, [b"".join(struct.pack(">H", v) for v in r.flatten()) for r in rgba16]),
         np.vectorize(to8)(rgba16[..., :3]))

    palette = rng.integers(0, 256, (16, 3))
    index = rng.integers(0, 16, (h, w))
    plte = chunk(b"PLTE", bytes(palette.astype(np.uint8).flatten()))
    trns = chunk(b"tRNS", bytes([0, 128, 255]))
    save("palette4_trns", raw_png(w, h, 4, 3, [pack_bits(r, 4) for r in index], plte + trns), palette[index])

    with open(os.path.join(OUT, "formats", "expected.json"), "w") as f:
        json.dump({"width": w, "height": h, "images": expected}, f, indent=0)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
