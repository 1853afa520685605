#!/usr/bin/env python3
"""Independent Python reference of AnySize's pipeline-level composition methods (/work/shared/METHODS.md,
"Composition methods": `hires`, `cascade`, `resize`, `auto`'s choice), on diffusers' pipelines.

Written from METHODS.md, not from the Swift code:

    trained-area canvas  w = sqrt(Wt Ht W / H), h = sqrt(Wt Ht H / W) (float64), each rounded to the nearest
                         multiple of 8 px, halves up: 8 * floor(x / 8 + 1/2), at least 8
    hires                pass 1: StableDiffusionPipeline(output_type="latent") at the trained-area canvas, all steps;
                         torch.nn.functional.interpolate(latents, size=target latent grid, mode="bicubic",
                         align_corners=False); pass 2: StableDiffusionImg2ImgPipeline with those latents as `image`
                         (diffusers takes 4-channel images as latents: no VAE encode, no scaling), strength s,
                         output_type="latent", the SAME torch.Generator (so its noise is drawn after pass 1's draws)
    cascade              passes: the trained-area canvas (w1, h1); then (2 w, 2 h) of the previous pass while 2 w < W
                         and 2 h < H; then the target (W, H). Pass 1 as hires' pass 1; every later pass as hires'
                         pass 2 (bicubic resize of the previous pass's latents to this pass's latent grid, img2img at
                         strength s, the same generator); two passes (= hires) up to 2x
    resize               StableDiffusionPipeline(output_type="latent") at the trained-area canvas (each side at least
                         the target's), VAE decode (latents / scaling_factor, unclamped), then an area-averaging box
                         filter down to the target; the latents area-averaged to the target's latent grid
    auto                 trained size -> none; no side larger than trained -> resize; otherwise cascade when its
                         passes include a middle one (more than two canvases), else hires (the same two passes)

Area averaging (`area_resize`): output sample i of a side shrunk from n to m covers input coordinates
[i n / m, (i + 1) n / m); every input sample weighs its overlap with that interval, divided by n / m. Built here as
explicit float64 weight matrices (out = Wy @ x @ Wx^T), independent of any library resize.
"""
import math

import torch
import torch.nn.functional as F


def trained_area_canvas(width, height, trained_width, trained_height):
    area = float(trained_width) * float(trained_height)
    w = math.sqrt(area * width / height)
    h = math.sqrt(area * height / width)

    def round8(x):
        return 8 * max(1, math.floor(x / 8 + 0.5))

    return round8(w), round8(h)


def auto_method(width, height, trained_width, trained_height):
    if (width, height) == (trained_width, trained_height):
        return "none"
    if width <= trained_width and height <= trained_height:
        return "resize"
    return "cascade" if len(cascade_canvases(width, height, trained_width, trained_height)) > 2 else "hires"


def area_weights(n, m):
    """[m, n] float64: row i holds the overlap of [j, j + 1) with [i n / m, (i + 1) n / m), divided by n / m."""
    assert 1 <= m <= n, (n, m)
    scale = n / m
    w = torch.zeros(m, n, dtype=torch.float64)
    for i in range(m):
        start, end = i * scale, (i + 1) * scale
        for j in range(n):
            overlap = min(end, j + 1) - max(start, j)
            if overlap > 0:
                w[i, j] = overlap / scale
    return w


def area_resize(x, height, width):
    """x [B, C, H, W] area-averaged to [B, C, height, width] (float64 weights, result in x's dtype)."""
    wy = area_weights(x.shape[2], height)
    wx = area_weights(x.shape[3], width)
    return torch.einsum("yh,bchw,xw->bcyx", wy, x.double(), wx).to(x.dtype)


def bicubic_resize(latents, height, width):
    return F.interpolate(latents, size=(height, width), mode="bicubic", align_corners=False)


@torch.no_grad()
def hires(txt2img, img2img, width, height, trained, strength, generator, **common):
    """Final latents [B, 4, height / 8, width / 8] of the two-pass hires fix."""
    first = trained_area_canvas(width, height, *trained)
    latents = txt2img(width=first[0], height=first[1], generator=generator, output_type="latent", **common).images
    factor = txt2img.vae_scale_factor
    start = bicubic_resize(latents, height // factor, width // factor)
    out = img2img(image=start, strength=strength, generator=generator, output_type="latent", **common).images
    return out, dict(first_pass=list(first), first_latents_shape=list(latents.shape))


def cascade_canvases(width, height, trained_width, trained_height):
    canvases = [trained_area_canvas(width, height, trained_width, trained_height)]
    while 2 * canvases[-1][0] < width and 2 * canvases[-1][1] < height:
        canvases.append((2 * canvases[-1][0], 2 * canvases[-1][1]))
    return canvases + [(width, height)]


@torch.no_grad()
def cascade(txt2img, img2img, width, height, trained, strength, generator, **common):
    """Final latents [B, 4, height / 8, width / 8] of hires through passes that double the side."""
    canvases = cascade_canvases(width, height, *trained)
    first = canvases[0]
    latents = txt2img(width=first[0], height=first[1], generator=generator, output_type="latent", **common).images
    factor = txt2img.vae_scale_factor
    for w, h in canvases[1:]:
        start = bicubic_resize(latents, h // factor, w // factor)
        latents = img2img(image=start, strength=strength, generator=generator, output_type="latent", **common).images
    return latents, dict(passes=[list(c) for c in canvases])


@torch.no_grad()
def resize(txt2img, width, height, trained, generator, **common):
    """(latents area-averaged to the target grid, decoded image area-averaged to the target, render canvas)."""
    canvas = trained_area_canvas(width, height, *trained)
    render = (max(canvas[0], width), max(canvas[1], height))
    latents = txt2img(width=render[0], height=render[1], generator=generator, output_type="latent", **common).images
    vae = txt2img.vae
    decoded = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
    factor = txt2img.vae_scale_factor
    return (area_resize(latents, height // factor, width // factor), area_resize(decoded, height, width),
            dict(render=list(render)))


if __name__ == "__main__":
    # Self-checks of the formulas.
    assert trained_area_canvas(1024, 1024, 512, 512) == (512, 512)
    assert trained_area_canvas(1024, 512, 512, 512) == (728, 360)
    assert trained_area_canvas(256, 384, 512, 512) == (416, 624)
    assert trained_area_canvas(256, 128, 128, 128) == (184, 88)
    assert cascade_canvases(256, 256, 128, 128) == [(128, 128), (256, 256)]
    assert cascade_canvases(384, 384, 128, 128) == [(128, 128), (256, 256), (384, 384)]
    assert cascade_canvases(512, 512, 128, 128) == [(128, 128), (256, 256), (512, 512)]
    assert cascade_canvases(640, 640, 128, 128) == [(128, 128), (256, 256), (512, 512), (640, 640)]
    assert cascade_canvases(256, 128, 64, 64) == [(88, 48), (176, 96), (256, 128)]
    assert cascade_canvases(256, 128, 128, 128) == [(184, 88), (256, 128)]
    assert [auto_method(s, s, 128, 128) for s in (64, 128, 256, 264, 384)] == ["resize", "none", "hires", "cascade",
                                                                               "cascade"]
    x = torch.randn(2, 3, 12, 18, dtype=torch.float64)
    assert torch.allclose(area_resize(x, 4, 6), F.avg_pool2d(x, 3))
    assert torch.allclose(area_resize(x, 12, 18), x)
    y = area_resize(x, 5, 7)  # fractional: the mean is kept
    assert torch.allclose(y.mean(dim=(2, 3)), x.mean(dim=(2, 3)))
    print("composition reference self-checks pass")
