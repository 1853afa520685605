#!/usr/bin/env python3
"""End-to-end references for AnySize's attention formulations (Tests/AnySizeTests/AttentionParityTests.swift).

diffusers' StableDiffusionPipeline (float32, CPU) on the tiny fixture models runs txt2img with
output_type="latent" and generator=torch.Generator("cpu").manual_seed(SEED), with the self-attention
processors of tools/attention_reference.py installed and the trained size overridden to 256x256 px
(32x32 latents; Swift: `options.trainedSize = (256, 256)`), on canvases smaller than, larger than, and mixed
with respect to it. Writes Tests/AnySizeTests/Fixtures/attention/{index.json, latents.safetensors}:
index.json lists every case's settings, the sigma of each model call, the attention choice, and the name of
its final latents [1, 4, h, w] (sampler space, not divided by the VAE scaling factor) in latents.safetensors.

Cases whose reference latents equal an earlier case's to within DEDUPE (e.g. `local` on a canvas no larger
than trained, which is `scaled`; `auto`, which picks one of the others) share that case's tensor, keeping the
fixture under its size budget; index.json records the measured difference (`shared_with`, `shared_error`).
Each case is still computed by its own processor path here.

Pinned versions: torch 2.15.0, diffusers 0.42.1. Run: /work/venv/bin/python tools/fixtures_attention.py
"""
import json
import os
import sys

import torch
import diffusers
from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler, StableDiffusionPipeline
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attention_reference import AttentionReference  # noqa: E402

assert torch.__version__.startswith("2.15."), torch.__version__
assert diffusers.__version__ == "0.42.1", diffusers.__version__

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "AnySizeTests", "Fixtures")
OUT = os.path.join(ROOT, "attention")
SEED = 1234
PROMPT = "a photo of an astronaut riding a horse on mars"
NEGATIVE = ""
CFG = 7.5
TRAINED = (256, 256)  # (width, height) px -> 32x32 latents
DEDUPE = 1e-6         # relative: max-abs <= DEDUPE * max(1, max|ref|)

# name -> (width, height) px
CANVASES = {
    "small": (128, 128),   # 16x16 latents: smaller than trained in both dimensions
    "large": (384, 320),   # 40x48 latents: larger in both
    "mixed": (384, 192),   # 24x48 latents: larger in width, smaller in height (and larger in area)
}
# Samplers as the Swift side names them: (diffusers class, overrides, steps, Swift sampler, karras).
SAMPLERS = {
    "dpmpp_2m_karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}, 5, "dpmpp_2m", True),
    "euler": (EulerDiscreteScheduler, {}, 6, "euler", False),
}
# Cases per model: canvas -> [(attention mode, local edge, sampler)]. Two budgets shape the list: the fixture must
# stay under 400 KB (float32 latents: 4 KB small, 18 KB mixed, 30 KB large) and the Swift test under about a
# minute on 2 cores. tiny-sd1 has 8 heads of dimension 2, which makes its attention about 4x dearer than
# tiny-sd2's 2 heads of dimension 8, so tiny-sd2 (v-prediction) runs the full matrix (standard, scaled,
# local e0 / e2, log-bias with DPM++ and, on the mixed canvas, Euler, auto), leaving out only `standard` and
# `auto` on the large canvas (both already covered on the other canvases; auto there is `local` e0), and
# tiny-sd1 (epsilon) runs the small canvas in full plus `local` e2 on the mixed one. `local` on the small canvas
# and `auto` cost no fixture bytes: they share the tensor of the formulation they reduce to.
DPM, EULER = "dpmpp_2m_karras", "euler"
CASES = {
    "tiny-sd1": {
        "small": [("standard", 0, DPM), ("scaled", 0, DPM), ("local", 0, DPM), ("local", 2, DPM),
                  ("log-bias", 0, DPM), ("auto", 0, DPM)],
        "mixed": [("local", 2, DPM)],
    },
    "tiny-sd2": {
        "small": [("standard", 0, DPM), ("scaled", 0, DPM), ("local", 0, DPM), ("local", 2, DPM),
                  ("log-bias", 0, DPM), ("auto", 0, DPM)],
        "large": [("scaled", 0, DPM), ("local", 0, DPM), ("local", 2, DPM), ("log-bias", 0, DPM)],
        "mixed": [("standard", 0, DPM), ("scaled", 0, DPM), ("local", 0, DPM), ("local", 2, DPM),
                  ("log-bias", 0, DPM), ("log-bias", 0, EULER), ("auto", 0, DPM)],
    },
}
BUDGET = 400 * 1024


def cases():
    """Every case, in a fixed order."""
    return [dict(model=model, canvas=canvas, attention=mode, local_edge=edge, sampler_key=sampler)
            for model, canvases in CASES.items() for canvas, runs in canvases.items() for mode, edge, sampler in runs]


def case_id(c):
    edge = f".e{c['local_edge']}" if c["attention"] == "local" else ""
    return f"{c['model']}.{c['canvas']}.{c['attention']}{edge}.{c['sampler_key']}"


@torch.no_grad()
def run(pipe, folder_config, c):
    cls, overrides, steps, sampler, karras = SAMPLERS[c["sampler_key"]]
    pipe.scheduler = cls.from_config(folder_config, **overrides)
    width, height = CANVASES[c["canvas"]]
    reference = AttentionReference(pipe, c["attention"], TRAINED, edge=c["local_edge"])
    reference.reset()
    latents = pipe(prompt=PROMPT, negative_prompt=NEGATIVE, width=width, height=height, num_inference_steps=steps,
                   guidance_scale=CFG, generator=torch.Generator("cpu").manual_seed(SEED),
                   output_type="latent").images
    reference.remove()
    sigmas = [s for _, _, s in reference.state.calls]
    assert len(sigmas) == steps, (case_id(c), len(sigmas))
    record = dict(id=case_id(c), model=c["model"], prompt=PROMPT, negative_prompt=NEGATIVE, width=width,
                  height=height, seed=SEED, steps=steps, cfg_scale=CFG, sampler=sampler, karras=karras,
                  attention=c["attention"], local_edge=c["local_edge"], trained_size=list(TRAINED),
                  resolved=reference.state.concrete(), summary=reference.summary(), sigmas=sigmas,
                  timesteps=[float(t) for _, t, _ in reference.state.calls],
                  max_abs=float(latents.abs().max()))
    return latents.contiguous(), record


def main():
    os.makedirs(OUT, exist_ok=True)
    tensors, records = {}, []
    pipes = {}
    for c in cases():
        if c["model"] not in pipes:
            pipe = StableDiffusionPipeline.from_pretrained(os.path.join(ROOT, c["model"]), torch_dtype=torch.float32,
                                                           safety_checker=None, requires_safety_checker=False)
            pipe.set_progress_bar_config(disable=True)
            pipes[c["model"]] = (pipe, dict(pipe.scheduler.config))
        pipe, folder_config = pipes[c["model"]]
        latents, record = run(pipe, folder_config, c)
        if c["attention"] == "log-bias" and record["width"] * record["height"] > TRAINED[0] * TRAINED[1]:
            # The coefficient switches at sigma 4: the run must see both sides, and no sigma near the edge.
            assert any(s > 4 for s in record["sigmas"]) and any(s <= 4 for s in record["sigmas"]), record
            assert all(abs(s - 4) > 1e-3 for s in record["sigmas"]), record
        bound = DEDUPE * max(1.0, record["max_abs"])
        for name, other in tensors.items():
            if other.shape == latents.shape and (other - latents).abs().max().item() <= bound:
                record["shared_with"], record["shared_error"] = name, (other - latents).abs().max().item()
                record["tensor"] = name
                break
        else:
            record["tensor"] = record["id"]
            tensors[record["id"]] = latents
        records.append(record)
        print(f"{record['id']}: {record['summary']}, sigmas {[round(s, 3) for s in record['sigmas']]}, "
              f"max|latents| {record['max_abs']:.3f}" + (f", shared with {record['shared_with']} "
                                                          f"({record['shared_error']:.2g})" if "shared_with" in record else ""))
    # How far apart the formulations land: the test can only tell them apart if this is far above its bound.
    for record in records:
        mine = tensors[record["tensor"]]
        others = [(other["id"], (tensors[other["tensor"]] - mine).abs().max().item()) for other in records
                  if other["model"] == record["model"] and (other["width"], other["height"]) == (record["width"], record["height"])
                  and other["tensor"] != record["tensor"]]
        if others:
            name, distance = min(others, key=lambda item: item[1])
            record["nearest_other"], record["nearest_distance"] = name, distance
            print(f"{record['id']}: nearest other formulation {name} at max-abs {distance:.3g} "
                  f"(test bound {1e-3 * max(1.0, record['max_abs']):.3g})")
    save_file(tensors, os.path.join(OUT, "latents.safetensors"))
    index = dict(generator="tools/fixtures_attention.py", torch=torch.__version__, diffusers=diffusers.__version__,
                 trained_size=list(TRAINED), cases=records)
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"{len(records)} cases, {len(tensors)} tensors, {total / 1024:.0f} KB in {OUT}")
    assert total < BUDGET, f"attention fixtures take {total} bytes, over the {BUDGET}-byte budget"


if __name__ == "__main__":
    main()
