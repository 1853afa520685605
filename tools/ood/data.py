"""Synthetic one-object images for the out-of-distribution (OOD) toy model (tools/ood/).

Every image is SIDE x SIDE pixels (128 by default) and shows exactly ONE object on a background:
  - object: a disc, a square or a triangle (squares and triangles rotated by a random angle), its size a random
    radius of 14-32 px (the circumscribed radius for squares and triangles), fully inside the image with a 4 px
    margin at a uniformly random position, filled with one of OBJECT_COLOURS;
  - background: one of BACKGROUND_COLOURS, plain (half of the images) or softly varying: a linear ramp of up to
    +-0.08 in every channel along a random direction;
  - edges anti-aliased by 4x supersampling.
The prompt names the object: "a red disc", "a yellow square", ... (`prompt_of`).

`sample(rng)` draws one image (float32 HxWx3 in [0, 1]) with its description; `batch(rng, n)` draws n as a torch
tensor in [-1, 1] (the VAE's range) and their prompts. Everything is driven by a numpy Generator, so a seed fixes the
data stream. metric.py uses the same palettes.
"""

import math

import numpy as np

SIDE = 128
SHAPES = ("disc", "square", "triangle")
# Object colours (RGB in [0, 1]) and their prompt words.
OBJECT_COLOURS = {
    "red": (0.90, 0.12, 0.10),
    "yellow": (0.96, 0.84, 0.10),
    "blue": (0.10, 0.22, 0.92),
    "purple": (0.86, 0.18, 0.82),
}
BACKGROUND_COLOURS = {
    "slate": (0.16, 0.17, 0.22),
    "beige": (0.86, 0.82, 0.70),
    "sky": (0.56, 0.72, 0.86),
    "moss": (0.30, 0.44, 0.30),
}
RADIUS = (14.0, 32.0)
MARGIN = 4.0
RAMP = 0.08
SUPERSAMPLE = 4


def prompt_of(colour, shape):
    return f"a {colour} {shape}"


def all_prompts():
    return [prompt_of(c, s) for c in OBJECT_COLOURS for s in SHAPES]


def _mask(shape, cx, cy, radius, angle, side):
    """Anti-aliased coverage in [0, 1] of the object, an array side x side."""
    n = side * SUPERSAMPLE
    coords = (np.arange(n, dtype=np.float32) + 0.5) / SUPERSAMPLE
    x, y = np.meshgrid(coords, coords)
    x, y = x - cx, y - cy
    if shape == "disc":
        inside = x * x + y * y <= radius * radius
    else:
        sides = 4 if shape == "square" else 3
        inside = np.ones_like(x, dtype=bool)
        apothem = radius * math.cos(math.pi / sides)
        for k in range(sides):
            a = angle + (k + 0.5) * 2 * math.pi / sides
            inside &= x * math.cos(a) + y * math.sin(a) <= apothem
    return inside.reshape(side, SUPERSAMPLE, side, SUPERSAMPLE).mean(axis=(1, 3)).astype(np.float32)


def sample(rng, side=SIDE):
    """One image (side x side x 3 float32 in [0, 1]) and its description (colour, shape, background, ...)."""
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour = list(OBJECT_COLOURS)[rng.integers(len(OBJECT_COLOURS))]
    background = list(BACKGROUND_COLOURS)[rng.integers(len(BACKGROUND_COLOURS))]
    radius = float(rng.uniform(*RADIUS))
    lo, hi = radius + MARGIN, side - radius - MARGIN
    cx, cy = float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi))
    angle = float(rng.uniform(0, 2 * math.pi))
    image = np.empty((side, side, 3), dtype=np.float32)
    image[:] = BACKGROUND_COLOURS[background]
    if rng.random() < 0.5:  # softly varying background: a linear ramp along a random direction
        direction = rng.uniform(0, 2 * math.pi)
        amount = rng.uniform(-RAMP, RAMP, size=3).astype(np.float32)
        coords = (np.arange(side, dtype=np.float32) + 0.5) / side - 0.5
        x, y = np.meshgrid(coords, coords)
        ramp = (x * math.cos(direction) + y * math.sin(direction)) * 2
        image += ramp[..., None] * amount
    m = _mask(shape, cx, cy, radius, angle, side)[..., None]
    image = image * (1 - m) + np.asarray(OBJECT_COLOURS[colour], dtype=np.float32) * m
    info = dict(shape=shape, colour=colour, background=background, radius=radius, cx=cx, cy=cy)
    return np.clip(image, 0, 1), info


def batch(rng, n, side=SIDE):
    """n images as a torch tensor [n, 3, side, side] in [-1, 1] and their prompts."""
    import torch

    images, prompts = [], []
    for _ in range(n):
        image, info = sample(rng, side)
        images.append(image)
        prompts.append(prompt_of(info["colour"], info["shape"]))
    array = np.stack(images).transpose(0, 3, 1, 2) * 2 - 1
    return torch.from_numpy(np.ascontiguousarray(array)), prompts


if __name__ == "__main__":  # writes a contact sheet of 16 samples to /tmp/ood-data.png
    from PIL import Image

    rng = np.random.default_rng(0)
    tiles = [sample(rng)[0] for _ in range(16)]
    rows = [np.concatenate(tiles[r * 4:(r + 1) * 4], axis=1) for r in range(4)]
    Image.fromarray((np.concatenate(rows, axis=0) * 255 + 0.5).astype(np.uint8)).save("/tmp/ood-data.png")
    print("wrote /tmp/ood-data.png")
