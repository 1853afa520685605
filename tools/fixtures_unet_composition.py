#!/usr/bin/env python3
"""References for AnySize's in-UNet composition methods (Tests/AnySizeTests/UNetCompositionParityTests.swift).

UNet level: one call of the tiny fixture UNets (float32, CPU) through tools/composition_reference.py's
block-by-block diffusers forward with the composition its gate picks, on latent canvases larger than the trained
grid (square and non-square; integer and fractional re-dilation, Deep Shrink factors 2, 2.25 and 3) and smaller
(where both methods are inert). The trained latent grid is overridden to TRAINED (16x16, i.e. 128x128 px) so the
canvases stay small. Inputs come from torch.Generator("cpu").manual_seed(seed): sample = randn([B, 4, h, w]),
then context = randn([B, CONTEXT_TOKENS, cross_attention_dim]) from the same generator (Swift: `TorchRandom`),
so only outputs are stored. Each case records the gate's decision at several timesteps on both sides of its
threshold (redilate: t >= 400; deep-shrink: t >= (1 - 0.35) * 1000) and the output at the first of them; some
cases also store the output of a gated-off call.

Resize level: F.interpolate(bilinear | bicubic, align_corners=False) of randn inputs at a few size pairs.

Conditioning: every UNet case is also run in float64 (the same inputs, cast); the float32 output's deviation
from it, normalised by max(1, max|float64 output|), is stored as `float64_error` and must stay under a quarter
of the Swift test's 1e-3 bound.

End to end: diffusers' StableDiffusionPipeline (float32, CPU, txt2img, output_type="latent",
generator=torch.Generator("cpu").manual_seed(E2E_SEED), guidance E2E_CFG) with composition_reference's
`CompositionReference` forcing one method on the UNet, the trained size taken as E2E_TRAINED px (Swift:
`options.trainedSize`), Euler (4 steps: timesteps 751, 501, 251, 1) and DDIM (3 steps: 667, 334, 1), so each run
has calls on both sides of the gate; canvases larger than trained (square, non-square, fractional d) and one
smaller (the method is inert: the plain pipeline's latents). Each run is repeated in float64 (float32 random draws,
cast) for the same conditioning check. Final latents [1, 4, h, w] go to e2e.safetensors, the per-call timesteps and
factors to index.json's `e2e_cases`.

Writes Tests/AnySizeTests/Fixtures/unet-composition/{index.json, outputs.safetensors, e2e.safetensors}.
Pinned versions: torch 2.15.0, diffusers 0.42.1. Run: /work/venv/bin/python tools/fixtures_unet_composition.py
"""
import copy
import json
import os
import sys

import torch
import torch.nn.functional as F
import diffusers
from diffusers import DDIMScheduler, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from composition_reference import (CompositionReference, deep_shrink_factor, redilation_factor,  # noqa: E402
                                   unet_forward)

assert torch.__version__.startswith("2.15."), torch.__version__
assert diffusers.__version__ == "0.42.1", diffusers.__version__
torch.set_num_threads(1)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "AnySizeTests", "Fixtures")
OUT = os.path.join(ROOT, "unet-composition")
TRAINED = (16, 16)      # trained latent grid (h, w) for every case
CONTEXT_TOKENS = 7
UNTIL, END = 400.0, 0.35
BUDGET = 400 * 1024
CONDITIONING_LIMIT = 2.5e-4

# Timesteps per method: gate decisions are recorded at all of them, the output at the first (and, for cases
# marked `off`, also at the last, a gated-off call).
TIMESTEPS = {"redilate": [999.0, 400.0, 399.0], "deep-shrink": [999.0, 651.0, 649.0]}
# model -> [(method, latent h, latent w, batch, store the gated-off output)]
CASES = {
    "tiny-sd1": [("redilate", 32, 32, 2, False), ("redilate", 24, 24, 1, True), ("redilate", 20, 28, 1, False),
                 ("redilate", 48, 48, 1, False), ("redilate", 12, 12, 1, False),
                 ("deep-shrink", 32, 32, 2, False), ("deep-shrink", 24, 36, 1, True),
                 ("deep-shrink", 12, 16, 1, False)],
    "tiny-sd2": [("redilate", 32, 32, 2, False), ("redilate", 24, 24, 1, True), ("redilate", 20, 28, 1, False),
                 ("redilate", 12, 12, 1, False),
                 ("deep-shrink", 32, 32, 2, False), ("deep-shrink", 24, 36, 1, True),
                 ("deep-shrink", 48, 48, 1, False), ("deep-shrink", 12, 16, 1, False)],
}
E2E_SEED = 4321
E2E_PROMPT = "a red circle on a blue background"
E2E_CFG = 3.0
E2E_TRAINED = (128, 128)  # (width, height) px -> 16x16 latents
E2E_BUDGET = 200 * 1024
# Swift sampler name -> (diffusers class, steps)
E2E_SAMPLERS = {"euler": (EulerDiscreteScheduler, 4), "ddim": (DDIMScheduler, 3)}
# model -> [(method, width px, height px, sampler)]
E2E_CASES = {
    "tiny-sd1": [("redilate", 256, 256, "euler"), ("redilate", 320, 192, "ddim"), ("redilate", 192, 192, "euler"),
                 ("redilate", 96, 96, "ddim"), ("deep-shrink", 256, 256, "ddim"), ("deep-shrink", 320, 192, "euler"),
                 ("deep-shrink", 96, 128, "euler")],
    "tiny-sd2": [("redilate", 256, 256, "ddim"), ("redilate", 192, 320, "euler"), ("redilate", 96, 96, "euler"),
                 ("deep-shrink", 256, 256, "euler"), ("deep-shrink", 192, 320, "ddim"), ("deep-shrink", 96, 128, "ddim")],
}
# (in h, in w) -> (out h, out w), channels 2
RESIZES = [((7, 5), (11, 13)), ((24, 18), (32, 24)), ((13, 9), (5, 4)), ((16, 16), (8, 8)), ((6, 6), (15, 10))]


def factors(method, hw, t):
    if method == "redilate":
        return redilation_factor(hw, TRAINED, t, UNTIL), 1.0
    return 1.0, deep_shrink_factor(hw, TRAINED, t, END)


@torch.no_grad()
def unet_case(unets, model, index, method, h, w, batch, store_off):
    unet, unet64 = unets
    seed = 1000 + index
    g = torch.Generator("cpu").manual_seed(seed)
    sample = torch.randn([batch, 4, h, w], generator=g)
    context = torch.randn([batch, CONTEXT_TOKENS, unet.config.cross_attention_dim], generator=g)
    case_id = f"{model}.{method}.{h}x{w}.b{batch}"
    gates = []
    for t in TIMESTEPS[method]:
        d, f = factors(method, (h, w), t)
        gates.append(dict(timestep=t, dilation=d, deep_shrink_factor=f))
    tensors, outputs = {}, []
    for position, t in enumerate(TIMESTEPS[method]):
        if position != 0 and not (store_off and position == len(TIMESTEPS[method]) - 1):
            continue
        d, f = factors(method, (h, w), t)
        out = unet_forward(unet, sample, t, context, dilation=d, shrink=f)
        out64 = unet_forward(unet64, sample.double(), torch.tensor([t], dtype=torch.float64), context.double(),
                             dilation=d, shrink=f)
        scale = max(1.0, out64.abs().max().item())
        error64 = (out.double() - out64).abs().max().item() / scale
        assert error64 < CONDITIONING_LIMIT, (case_id, t, error64)
        plain = unet_forward(unet, sample, t, context)
        distance = (out - plain).abs().max().item() / max(1.0, plain.abs().max().item())
        name = f"{case_id}.t{int(t)}"
        tensors[name] = out.contiguous()
        outputs.append(dict(timestep=t, tensor=name, dilation=d, deep_shrink_factor=f, float64_error=error64,
                            distance_from_plain=distance, max_abs=out.abs().max().item()))
        print(f"{name}: d {d:g}, f {f:g}, float64 error {error64:.2g}, relative distance from the plain UNet "
              f"{distance:.3g}")
    return dict(id=case_id, model=model, method=method, height=h, width=w, batch=batch, seed=seed,
                context_tokens=CONTEXT_TOKENS, gates=gates, outputs=outputs), tensors


def resize_cases():
    g = torch.Generator("cpu").manual_seed(77)
    records, tensors = [], {}
    for (ih, iw), (oh, ow) in RESIZES:
        x = torch.randn([1, 2, ih, iw], generator=g)
        name = f"resize.{ih}x{iw}.to.{oh}x{ow}"
        tensors[name + ".input"] = x
        for mode in ("bilinear", "bicubic"):
            tensors[f"{name}.{mode}"] = F.interpolate(x, size=(oh, ow), mode=mode, align_corners=False).contiguous()
        records.append(dict(name=name, height=oh, width=ow))
    return records, tensors


@torch.no_grad()
def e2e_run(pipe, folder_config, method, width, height, sampler):
    cls, steps = E2E_SAMPLERS[sampler]
    pipe.scheduler = cls.from_config(folder_config)
    trained_latent = (E2E_TRAINED[1] // 8, E2E_TRAINED[0] // 8)
    reference = CompositionReference(pipe, method, trained_latent, until=UNTIL, end=END)
    try:
        extra = dict(eta=0.0) if sampler == "ddim" else {}
        latents = pipe(prompt=E2E_PROMPT, negative_prompt="", width=width, height=height, num_inference_steps=steps,
                       guidance_scale=E2E_CFG, generator=torch.Generator("cpu").manual_seed(E2E_SEED),
                       output_type="latent", **extra).images
    finally:
        reference.remove()
    return latents, reference.calls


def e2e_cases():
    from fixtures_e2e import float32_draws
    float32_draws()
    records, tensors = [], {}
    for model, cases in E2E_CASES.items():
        pipe = StableDiffusionPipeline.from_pretrained(os.path.join(ROOT, model), torch_dtype=torch.float32,
                                                       safety_checker=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        pipe64 = StableDiffusionPipeline.from_pretrained(os.path.join(ROOT, model), torch_dtype=torch.float64,
                                                         safety_checker=None, requires_safety_checker=False)
        pipe64.set_progress_bar_config(disable=True)
        config = dict(pipe.scheduler.config)
        for method, width, height, sampler in cases:
            case_id = f"{model}.{method}.{width}x{height}.{sampler}"
            latents, calls = e2e_run(pipe, config, method, width, height, sampler)
            latents64, _ = e2e_run(pipe64, config, method, width, height, sampler)
            plain, _ = e2e_run(pipe, config, "none", width, height, sampler)
            scale = max(1.0, latents64.abs().max().item())
            error64 = (latents.double() - latents64).abs().max().item() / scale
            assert error64 < CONDITIONING_LIMIT, (case_id, error64)
            distance = (latents - plain).abs().max().item() / max(1.0, plain.abs().max().item())
            active = [c for c in calls if c[1] != 1 or c[2] != 1]
            # Larger canvases must see the method on some calls and not on others; smaller ones never.
            larger = width > E2E_TRAINED[0] or height > E2E_TRAINED[1]
            assert (0 < len(active) < len(calls)) if larger else not active, (case_id, calls)
            tensors[case_id] = latents.contiguous()
            records.append(dict(id=case_id, model=model, method=method, width=width, height=height, sampler=sampler,
                                steps=E2E_SAMPLERS[sampler][1], seed=E2E_SEED, prompt=E2E_PROMPT, negative_prompt="",
                                cfg_scale=E2E_CFG, trained_size=list(E2E_TRAINED), redilate_until=UNTIL,
                                deep_shrink_end=END, tensor=case_id,
                                calls=[dict(timestep=t, dilation=d, deep_shrink_factor=f) for t, d, f in calls],
                                float64_error=error64, distance_from_plain=distance,
                                max_abs=latents.abs().max().item()))
            print(f"{case_id}: calls {[(t, round(d, 3), round(f, 3)) for t, d, f in calls]}, float64 error "
                  f"{error64:.2g}, relative distance from the plain pipeline {distance:.3g}")
    return records, tensors


def main():
    os.makedirs(OUT, exist_ok=True)
    e2e_records, e2e_tensors = e2e_cases()
    save_file(e2e_tensors, os.path.join(OUT, "e2e.safetensors"))
    e2e_size = os.path.getsize(os.path.join(OUT, "e2e.safetensors"))
    assert e2e_size < E2E_BUDGET, f"end-to-end fixtures take {e2e_size} bytes, over the {E2E_BUDGET}-byte budget"
    tensors, records = {}, []
    for model, cases in CASES.items():
        unet = UNet2DConditionModel.from_pretrained(os.path.join(ROOT, model, "unet"), torch_dtype=torch.float32).eval()
        unet64 = copy.deepcopy(unet).double()
        for index, (method, h, w, batch, store_off) in enumerate(cases):
            record, new = unet_case((unet, unet64), model, index, method, h, w, batch, store_off)
            records.append(record)
            tensors.update(new)
    resizes, new = resize_cases()
    tensors.update(new)
    save_file(tensors, os.path.join(OUT, "outputs.safetensors"))
    index = dict(generator="tools/fixtures_unet_composition.py", torch=torch.__version__, diffusers=diffusers.__version__,
                 trained_latent=list(TRAINED), redilate_until=UNTIL, deep_shrink_end=END, unet_cases=records,
                 resize_cases=resizes, e2e_cases=e2e_records)
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT)) - e2e_size
    print(f"{len(records)} UNet cases, {len(tensors)} tensors, {total / 1024:.0f} KB in {OUT}")
    assert total < BUDGET, f"composition fixtures take {total} bytes, over the {BUDGET}-byte budget"


if __name__ == "__main__":
    main()
