#!/usr/bin/env python3
"""bfloat16 accuracy of one SD UNet call against float32 (issue 16), on a full-size random-weight model.

Error measures, `a` against the float32 reference `b`:
  rel max-abs = max|a - b| / max|b|        rel RMS = sqrt(mean((a - b)^2)) / sqrt(mean(b^2))

Part 1 (always): diffusers' own bf16 against its float32. One UNet2DConditionModel call at batch 2 on the inputs
of `anysize bench` / diffusers_bench.py (torch.manual_seed(seed); randn latents [2, 4, h/8, w/8], randn context
[2, 77, 768]; timestep --timestep, 500), float32 vs the same float32 model under
torch.autocast("cpu", dtype=torch.bfloat16)
(and, with --pure-bf16, vs the model cast to bfloat16). Reported for the raw batch-2 output and for the guided
noise prediction u + g (c - u) that a sampler uses (g = --cfg-scale, 7.5), which amplifies c - u.

Part 2 (with --anysize BINARY): AnySize against diffusers float32 through the one dump AnySize has,
`anysize generate --save-latents` (as tools/parity_full_size.py uses it). A one-step Euler generation (no Karras)
ends at x_T - sigma_max * eps_guided, so final latents - x_T is the guided noise prediction of one guided UNet call
(batch 2) scaled by sigma_max, and the scale-free measures above compare it directly. x_T is the seeded initial
noise both programs draw alike. This path includes the text encoder (same prompt in both); AnySize runs with
--compose none (its default, auto, would sample a 256 canvas at 512 and resize). Under autocast the pipeline also
forms u + g (c - u) from the UNet's bf16 output in bf16, so its error here exceeds the UNet call's. Runs AnySize
--precision fp32 and, when `anysize generate --help` lists it, --precision bf16; diffusers float32 and autocast bf16
run the same generation (StableDiffusionPipeline, EulerDiscreteScheduler) for the same comparison, once with the
whole pipeline under autocast and once with only the UNet under autocast (output widened to float32 before
guidance, as AnySize bf16 does it).

    /work/venv/bin/python tools/bench/bf16_accuracy.py --model /tmp/newcomer-sd15-random --sizes 256 512
    /work/venv/bin/python tools/bench/bf16_accuracy.py --model /tmp/newcomer-sd15-random --sizes 256 \
        --anysize .build/release/anysize
Prints a Markdown table; --json PATH also writes the numbers.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import torch


def errors(a, b):
    a, b = a.double(), b.double()
    d = a - b
    return {"rel_max_abs": (d.abs().max() / b.abs().max()).item(),
            "rel_rms": (d.pow(2).mean().sqrt() / b.pow(2).mean().sqrt()).item()}


def guided(out, scale):
    uncond, cond = out.chunk(2)
    return uncond + scale * (cond - uncond)


def unet_call(a, size, results):
    from diffusers import UNet2DConditionModel
    model = UNet2DConditionModel.from_pretrained(a.model, subfolder="unet", torch_dtype=torch.float32).eval()
    torch.manual_seed(a.seed)
    h = size // 8
    sample = torch.randn(2, 4, h, h)
    context = torch.randn(2, 77, model.config.cross_attention_dim)
    timesteps = torch.full((2,), float(a.timestep))
    with torch.inference_mode():
        start = time.time()
        ref = model(sample, timesteps, encoder_hidden_states=context).sample
        print(f"  {size}: diffusers fp32 UNet call {time.time() - start:.1f} s", flush=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            start = time.time()
            auto = model(sample, timesteps, encoder_hidden_states=context).sample.float()
        print(f"  {size}: diffusers autocast bf16 UNet call {time.time() - start:.1f} s", flush=True)
        variants = [("diffusers autocast bf16", auto)]
        if a.pure_bf16:
            model = model.to(torch.bfloat16)
            pure = model(sample.bfloat16(), timesteps, encoder_hidden_states=context.bfloat16()).sample.float()
            variants.append(("diffusers bf16 weights", pure))
    for name, out in variants:
        results.append({"size": size, "what": f"UNet call t={a.timestep}, batch 2 output", "compared": name,
                        "reference": "diffusers fp32", **errors(out, ref)})
        results.append({"size": size, "what": f"UNet call t={a.timestep}, guided eps (cfg {a.cfg_scale})",
                        "compared": name,
                        "reference": "diffusers fp32", **errors(guided(out, a.cfg_scale), guided(ref, a.cfg_scale))})


def anysize_supports_precision(binary):
    text = subprocess.run([binary, "generate", "--help"], capture_output=True, text=True).stdout
    return "--precision" in text


def one_step_generation(a, size, results):
    """final latents - x_T of a one-step Euler generation, diffusers fp32 / autocast and AnySize fp32 / bf16."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(a.model, torch_dtype=torch.float32, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, use_karras_sigmas=False)
    shape = (1, pipe.unet.config.in_channels, size // 8, size // 8)
    noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(a.seed))
    pipe.scheduler.set_timesteps(1)
    x_t = noise * pipe.scheduler.init_noise_sigma
    timestep = int(pipe.scheduler.timesteps[0])  # the one UNet call's timestep (the model's timestep_spacing)

    def diffusers_run(autocast):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            return pipe(a.prompt, height=size, width=size, num_inference_steps=1, guidance_scale=a.cfg_scale,
                        generator=torch.Generator("cpu").manual_seed(a.seed), output_type="latent").images.float()

    ref = diffusers_run(False) - x_t
    compared = [("diffusers pipeline under autocast bf16", diffusers_run(True) - x_t)]
    # Only the UNet under autocast, its output widened to float32 before the pipeline forms u + g (c - u): the
    # same quantity AnySize bf16 computes (bf16 products inside the UNet, float32 guidance and scheduler).
    forward = pipe.unet.forward

    def autocast_forward(*args, **kwargs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = forward(*args, **kwargs)
        return (out[0].float(),) + tuple(out[1:]) if isinstance(out, tuple) else out

    pipe.unet.forward = autocast_forward
    compared.append(("diffusers UNet under autocast bf16", diffusers_run(False) - x_t))
    pipe.unet.forward = forward
    precisions = ["fp32", "bf16"] if anysize_supports_precision(a.anysize) else [None]
    if precisions == [None]:
        print(f"  note: {a.anysize} generate has no --precision option; comparing its default (fp32) only")
    from safetensors.torch import load_file
    for precision in precisions:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "latents.safetensors")
            cmd = [a.anysize, "generate", "--model", a.model, "--prompt", a.prompt, "--width", str(size),
                   "--height", str(size), "--steps", "1", "--sampler", "euler", "--no-karras", "--seed", str(a.seed),
                   "--cfg-scale", str(a.cfg_scale), "--attention", "standard", "--compose", "none",
                   "--save-latents", out, "--skip-decode", "--quiet"]
            cmd += ["--precision", precision] if precision else []
            start = time.time()
            subprocess.run(cmd, check=True)
            print(f"  {size}: anysize {precision or 'default'} one-step generation {time.time() - start:.1f} s",
                  flush=True)
            compared.append((f"AnySize {precision or 'default (fp32)'}", load_file(out)["latents"] - x_t))
    for name, d in compared:
        results.append({"size": size, "what": f"one-step generation t={timestep}, guided eps (final - x_T)",
                        "compared": name,
                        "reference": "diffusers fp32", **errors(d, ref)})


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="full-size diffusers folder (tools/bench/make_sd15_random.py)")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cfg-scale", type=float, default=7.5)
    p.add_argument("--timestep", type=int, default=500, help="timestep of the part 1 UNet call (default 500)")
    p.add_argument("--prompt", default="a photo of an astronaut riding a horse on mars")
    p.add_argument("--pure-bf16", action="store_true", help="also diffusers with the weights cast to bfloat16")
    p.add_argument("--anysize", help="an anysize binary: also compare its one-step generation (part 2)")
    p.add_argument("--skip-unet-call", action="store_true", help="part 2 only")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    results = []
    for size in a.sizes:
        if not a.skip_unet_call:
            unet_call(a, size, results)
        if a.anysize:
            one_step_generation(a, size, results)
    print("| size | what | compared | reference | rel max-abs | rel RMS |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['size']}x{r['size']} | {r['what']} | {r['compared']} | {r['reference']} | "
              f"{r['rel_max_abs']:.2e} | {r['rel_rms']:.2e} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
