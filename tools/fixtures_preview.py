#!/usr/bin/env python3
"""Reference data for the image-conversion and latent-preview tests.

Writes Tests/AnySizeTests/Fixtures/image/preview_reference.json:
  approx     - Alex Birch's approximate decoder (per-pixel MLP, weights from
               Sources/AnySize/Resources/approx_decoder_sd15.json) run in torch on fixed latents
  linear     - ComfyUI's SD15 latent_rgb_factors applied with torch.nn.functional.linear
  postprocess- diffusers VaeImageProcessor.postprocess(..., output_type="pil") of a fixed tensor
  preprocess - diffusers VaeImageProcessor(do_resize=False).preprocess of a fixed PIL image
  lanczos    - PIL Image.resize(..., Image.LANCZOS) of a fixed image to several sizes, horizontal
               pass then vertical pass (the resample diffusers' VaeImageProcessor uses,
               config.resample = "lanczos")

Run: /work/venv/bin/python tools/fixtures_preview.py   (torch 2.x, diffusers 0.42, Pillow, numpy)
"""
import json
import os

import numpy as np
import PIL.Image
import torch
import diffusers
from diffusers.image_processor import VaeImageProcessor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "Sources/AnySize/Resources/approx_decoder_sd15.json")
OUT = os.path.join(ROOT, "Tests/AnySizeTests/Fixtures/image/preview_reference.json")

# ComfyUI comfy/latent_formats.py, class SD15: latent_rgb_factors[latent channel][R, G, B].
SD15_LATENT_RGB = [
    [0.3512, 0.2297, 0.3227],
    [0.3250, 0.4974, 0.2350],
    [-0.2829, 0.1762, 0.2721],
    [-0.2120, -0.2616, -0.7177],
]


class ApproxDecoder(torch.nn.Module):
    """Birch's module layout: in_proj, SiLU, hidden_layers = [Linear, SiLU], out_proj."""

    def __init__(self, inner=12):
        super().__init__()
        self.in_proj = torch.nn.Linear(4, inner)
        self.nonlin = torch.nn.SiLU()
        self.hidden_layers = torch.nn.ModuleList([torch.nn.Linear(inner, inner), torch.nn.SiLU()])
        self.out_proj = torch.nn.Linear(inner, 3)

    def forward(self, x):  # [..., 4] channels last
        x = self.nonlin(self.in_proj(x))
        for layer in self.hidden_layers:
            x = layer(x)
        return self.out_proj(x)


def tensor_entry(t):
    t = t.detach().to(torch.float32).contiguous()
    return {"shape": list(t.shape), "data": [float(v) for v in t.flatten().tolist()]}


def main():
    torch.manual_seed(1234)
    result = {}

    # Approximate decoder: latents as the sampler sees them (scaled by 0.18215), std 1.5 so some outputs leave [-1, 1].
    with open(WEIGHTS) as f:
        state = {k: torch.tensor(v, dtype=torch.float32) for k, v in json.load(f).items()}
    decoder = ApproxDecoder()
    decoder.load_state_dict(state)
    latents = torch.randn(2, 4, 5, 7) * 1.5
    with torch.no_grad():
        rgb = decoder(latents.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # [B, 3, h, w]
    # Preview image of batch element 1: postprocess as diffusers does, then 8x nearest upsampling.
    small = ((rgb[1:2] * 0.5 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype("uint8")[0]
    big = np.repeat(np.repeat(small, 8, axis=0), 8, axis=1)
    result["approx"] = {
        "latents": tensor_entry(latents),
        "rgb": tensor_entry(rgb),
        "image1_small": [int(v) for v in small.flatten()],
        "image1_shape": list(big.shape),
        "image1_sum": int(big.astype(np.int64).sum()),
    }

    factors = torch.tensor(SD15_LATENT_RGB).transpose(0, 1)  # [3, 4] like ComfyUI's Latent2RGBPreviewer
    with torch.no_grad():
        lin = torch.nn.functional.linear(latents.permute(0, 2, 3, 1), factors).permute(0, 3, 1, 2)
    result["linear"] = {"rgb": tensor_entry(lin)}

    processor = VaeImageProcessor(vae_scale_factor=8)
    decoded = torch.randn(2, 3, 4, 5) * 1.3
    flat = decoded.view(-1)
    flat[:6] = torch.tensor([-1.0, 1.0, 0.0, -0.2, 0.6, 2.0 / 255 - 1])
    pils = processor.postprocess(decoded, output_type="pil")
    result["postprocess"] = {
        "decoded": tensor_entry(decoded),
        "images": [[int(v) for v in np.asarray(p).flatten()] for p in pils],
    }

    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, size=(6, 9, 3), dtype=np.uint8)
    pre = VaeImageProcessor(do_resize=False).preprocess(PIL.Image.fromarray(pixels))
    result["preprocess"] = {"pixels": [int(v) for v in pixels.flatten()], "width": 9, "height": 6,
                            "tensor": tensor_entry(pre)}

    source = rng.integers(0, 256, size=(9, 13, 3), dtype=np.uint8)
    source[2:6, 3:9] = [250, 10, 128]  # a hard-edged block so ringing and clipping are exercised
    image = PIL.Image.fromarray(source)
    cases = []
    for width, height in [(20, 7), (7, 17), (32, 32), (5, 3), (13, 20), (40, 9), (4, 9), (6, 2)]:
        # Horizontal pass, then vertical pass, each a single-axis PIL resize (8-bit intermediate):
        # the pass order of Pillow <= 12. Pillow 13 (PR #9549) runs the vertical pass first when the
        # height shrinks much more than the width, which moves hard edges by a few levels.
        two_pass = image.resize((width, source.shape[0]), PIL.Image.LANCZOS).resize((width, height), PIL.Image.LANCZOS)
        out = np.asarray(two_pass)
        direct = np.asarray(image.resize((width, height), PIL.Image.LANCZOS))
        cases.append({"width": width, "height": height, "pixels": [int(v) for v in out.flatten()],
                      "direct_max_difference": int(np.abs(out.astype(int) - direct.astype(int)).max())})
    result["lanczos"] = {"width": 13, "height": 9, "pixels": [int(v) for v in source.flatten()], "cases": cases}

    result["versions"] = {"torch": torch.__version__, "diffusers": diffusers.__version__, "numpy": np.__version__, "pillow": PIL.__version__}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(result, f, separators=(",", ":"))
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
