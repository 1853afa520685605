#!/usr/bin/env python3
"""End-to-end references for AnySize's pipeline-level composition (Tests/AnySizeTests/CompositionParityTests.swift),
from tools/composition_pipeline_reference.py on diffusers, and references for the two resize kernels.

The tiny fixture models (tiny-sd1: epsilon, tiny-sd2: v-prediction) in float32 with the trained size taken as
256x256 px (Swift: `options.trainedSize = (256, 256)`), guidance 3 (see fixtures_e2e.py on conditioning), standard
attention, one torch.Generator("cpu").manual_seed(SEED) per run:
  hires   384x384 (pass 1 256x256), 448x256 (pass 1 336x192: bicubic by non-integer factors, Euler ancestral:
          the generator's stream continues through pass 1's per-step draws into pass 2's noise)
  cascade 192x192 and 256x128 with the trained size taken as 64x64 (three passes: 64, 128, 192 and 88x48, 176x96,
          256x128; small tensors), and 384x384 on 256x256 (1.5x: two passes, the same tensor as hires)
  resize  64x64 (render 256x256, 4x box), 96x64 (render 312x208, box by 3.25 x 3.25)
  auto    cases that share a tensor with the method auto picks (recorded as `shared_with`): resize, hires (1.5x) and
          cascade (3x)
Every case is also run in float64 with the same float32 random draws; `float64_error` is the float32 result's
deviation from it, normalised by max(1, max|float64|), and must stay under a quarter of the test bound.

Kernels (Fixtures/composition/kernels.safetensors): torch bicubic interpolate (align_corners False) of a seeded
[2, 3, 7, 9] tensor to several sizes, larger and smaller, and the reference area average to smaller sizes.

Pinned versions: torch 2.15.0, diffusers 0.42.1. Run: /work/venv/bin/python tools/fixtures_composition.py
"""
import json
import os
import sys
import warnings

import torch
import diffusers
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from composition_pipeline_reference import (area_resize, auto_method, bicubic_resize, cascade,  # noqa: E402
                                            hires, resize, trained_area_canvas)
from fixtures_e2e import float32_draws  # noqa: E402

assert torch.__version__.startswith("2.15."), torch.__version__
assert diffusers.__version__ == "0.42.1", diffusers.__version__

ROOT = os.path.join(HERE, "..", "Tests", "AnySizeTests", "Fixtures")
OUT = os.path.join(ROOT, "composition")
SEED = 77
PROMPT = "a red cube on a table"
NEGATIVE = "blurry"
CFG = 3.0
STEPS = 5
TRAINED = (256, 256)
CONDITIONING_LIMIT = 2.5e-4
BUDGET = 480 * 1024
SAMPLERS = {  # key -> (diffusers class, overrides, Swift sampler, karras)
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, "dpmpp_2m", True),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}, "euler_a", False),
    "euler": ("EulerDiscreteScheduler", {}, "euler", False),
}
# (model, compose, width, height, sampler, hires strength[, trained size])
CASES = [
    ("tiny-sd1", "hires", 384, 384, "dpmpp_2m_karras", 0.7),
    ("tiny-sd1", "hires", 448, 256, "euler_a", 0.5),
    ("tiny-sd1", "cascade", 192, 192, "dpmpp_2m_karras", 0.7, (64, 64)),
    ("tiny-sd1", "cascade", 256, 128, "euler_a", 0.5, (64, 64)),
    ("tiny-sd1", "cascade", 384, 384, "dpmpp_2m_karras", 0.7),
    ("tiny-sd1", "resize", 64, 64, "dpmpp_2m_karras", 0.7),
    ("tiny-sd1", "resize", 96, 64, "euler", 0.7),
    ("tiny-sd1", "auto", 96, 64, "euler", 0.7),
    ("tiny-sd2", "hires", 384, 384, "dpmpp_2m_karras", 0.7),
    ("tiny-sd2", "hires", 448, 256, "euler_a", 0.5),
    ("tiny-sd2", "cascade", 192, 192, "dpmpp_2m_karras", 0.7, (64, 64)),
    ("tiny-sd2", "cascade", 256, 128, "euler_a", 0.5, (64, 64)),
    ("tiny-sd2", "cascade", 384, 384, "dpmpp_2m_karras", 0.7),
    ("tiny-sd2", "resize", 64, 64, "dpmpp_2m_karras", 0.7),
    ("tiny-sd2", "resize", 96, 64, "euler", 0.7),
    ("tiny-sd2", "auto", 384, 384, "dpmpp_2m_karras", 0.7),
    ("tiny-sd2", "auto", 192, 192, "dpmpp_2m_karras", 0.7, (64, 64)),
]


def pipelines(model, dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        txt2img = StableDiffusionPipeline.from_pretrained(os.path.join(ROOT, model), torch_dtype=dtype,
                                                          safety_checker=None, requires_safety_checker=False)
    img2img = StableDiffusionImg2ImgPipeline(**txt2img.components)
    for pipe in (txt2img, img2img):
        pipe.set_progress_bar_config(disable=True)
    return txt2img, img2img


def run(pipes, config, compose, width, height, sampler, strength, trained):
    txt2img, img2img = pipes
    cls, overrides, _, _ = SAMPLERS[sampler]
    scheduler = getattr(diffusers, cls).from_config(config, **overrides)
    txt2img.scheduler = scheduler
    img2img.scheduler = scheduler
    common = dict(prompt=PROMPT, negative_prompt=NEGATIVE, num_inference_steps=STEPS, guidance_scale=CFG)
    generator = torch.Generator("cpu").manual_seed(SEED)
    method = auto_method(width, height, *trained) if compose == "auto" else compose
    if method in ("hires", "cascade"):
        latents, info = (hires if method == "hires" else cascade)(txt2img, img2img, width, height, trained, strength,
                                                                  generator, **common)
        return method, {"latents": latents}, info
    latents, image, info = resize(txt2img, width, height, trained, generator, **common)
    return method, {"latents": latents, "image": image}, info


def main():
    torch.set_num_threads(2)
    float32_draws()
    os.makedirs(OUT, exist_ok=True)
    tensors, records, loaded = {}, [], {}
    for model, compose, width, height, sampler, strength, *rest in CASES:
        trained = rest[0] if rest else TRAINED
        if model not in loaded:
            pipes = {dtype: pipelines(model, dtype) for dtype in (torch.float32, torch.float64)}
            # The folder's own scheduler config, kept before any run replaces the scheduler (from_config on a
            # previous sampler's config would carry its overrides, e.g. Karras sigmas, over).
            loaded[model] = (pipes, dict(pipes[torch.float32][0].scheduler.config))
        pipes, config = loaded[model]
        method, outputs, info = run(pipes[torch.float32], config, compose, width, height, sampler, strength, trained)
        _, exact, _ = run(pipes[torch.float64], config, compose, width, height, sampler, strength, trained)
        case_id = f"{model}.{compose}.{width}x{height}.{sampler}" + ("" if trained == TRAINED else f".trained{trained[0]}")
        record = dict(id=case_id, model=model, compose=compose, method=method, width=width, height=height,
                      sampler=SAMPLERS[sampler][2], karras=SAMPLERS[sampler][3], hires_strength=strength,
                      prompt=PROMPT, negative_prompt=NEGATIVE, cfg_scale=CFG, steps=STEPS, seed=SEED,
                      trained_size=list(trained), **info)
        for kind, value in outputs.items():
            error = (value.double() - exact[kind]).abs().max().item() / max(1.0, exact[kind].abs().max().item())
            assert torch.isfinite(value).all(), case_id
            assert error <= CONDITIONING_LIMIT, f"{case_id} {kind}: float32 vs float64 {error:.2e}"
            record[f"{kind}_float64_error"] = error
            record[f"{kind}_max_abs"] = float(value.abs().max())
            name = f"{case_id}.{kind}"
            for other, tensor in tensors.items():
                if tensor.shape == value.shape and (tensor - value).abs().max().item() <= 1e-6 * max(1.0, record[f"{kind}_max_abs"]):
                    record[f"{kind}_shared_with"] = other
                    name = other
                    break
            else:
                tensors[name] = value.float().contiguous()
            record[f"{kind}_tensor"] = name
        records.append(record)
        print(f"{case_id}: {method} {info}, " + ", ".join(f"{k} float64 error {record[k + '_float64_error']:.2e}"
                                                          for k in outputs), flush=True)

    # Resize kernels against torch / the reference area average.
    g = torch.Generator("cpu").manual_seed(3)
    source = torch.randn((2, 3, 7, 9), generator=g)
    kernels = {"source": source}
    bicubic_sizes = [(14, 18), (11, 13), (5, 6), (7, 20), (3, 3)]
    area_sizes = [(7, 3), (2, 4), (5, 6), (1, 1)]
    for h, w in bicubic_sizes:
        kernels[f"bicubic.{h}x{w}"] = bicubic_resize(source, h, w).contiguous()
    for h, w in area_sizes:
        kernels[f"area.{h}x{w}"] = area_resize(source, h, w).contiguous()
    save_file(kernels, os.path.join(OUT, "kernels.safetensors"))
    save_file(tensors, os.path.join(OUT, "references.safetensors"))
    index = dict(generator="tools/fixtures_composition.py", torch=torch.__version__, diffusers=diffusers.__version__,
                 bicubic_sizes=[list(s) for s in bicubic_sizes], area_sizes=[list(s) for s in area_sizes],
                 cases=records)
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"{len(records)} cases, {len(tensors)} tensors, {total / 1024:.0f} KB in {OUT}")
    assert total < BUDGET, f"composition fixtures take {total} bytes, over {BUDGET}"


if __name__ == "__main__":
    main()
