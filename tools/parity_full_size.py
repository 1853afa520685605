"""Full-size parity check (heavy; not part of `make test`).

Builds (if absent) the seeded full-size random-weight SD1.5 in diffusers layout with
tools/bench/make_sd15_random.py, then runs the same txt2img generation with diffusers'
StableDiffusionPipeline and with `anysize generate --save-latents`, and prints the max-abs error of the
final latents normalised by max(1, max|reference|) (the unit tests' bound is 1e-3).

    python tools/parity_full_size.py [--model models/sd15-random] [--size 512] [--steps 2] [--sampler euler]

Needs the venv of tools/requirements.txt and a release build (`swift build -c release`).
"""
import argparse
import os
import subprocess
import sys
import time

import torch
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler,
                       StableDiffusionPipeline)
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEDULERS = {"euler": EulerDiscreteScheduler, "ddim": DDIMScheduler, "dpmpp_2m": DPMSolverMultistepScheduler}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "sd15-random"))
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--sampler", default="euler", choices=sorted(SCHEDULERS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prompt", default="a photo of an astronaut riding a horse on mars")
    args = ap.parse_args()
    if not os.path.isdir(args.model):
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench", "make_sd15_random.py"), args.model], check=True)
    torch.set_num_threads(os.cpu_count() or 1)
    pipe = StableDiffusionPipeline.from_pretrained(args.model, torch_dtype=torch.float32, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.scheduler = SCHEDULERS[args.sampler].from_config(pipe.scheduler.config)
    start = time.time()
    with torch.inference_mode():
        ref = pipe(args.prompt, height=args.size, width=args.size, num_inference_steps=args.steps, guidance_scale=7.5,
                   generator=torch.Generator("cpu").manual_seed(args.seed), output_type="latent").images
    print(f"diffusers: {time.time() - start:.1f} s")
    out = os.path.join("/tmp", f"anysize-parity-{os.getpid()}.safetensors")
    cmd = [os.path.join(ROOT, ".build", "release", "anysize"), "generate", "--model", args.model, "--prompt", args.prompt,
           "--width", str(args.size), "--height", str(args.size), "--steps", str(args.steps), "--sampler", args.sampler,
           "--no-karras", "--seed", str(args.seed), "--cfg-scale", "7.5", "--attention", "standard",
           "--save-latents", out, "--skip-decode", "--quiet"]
    start = time.time()
    subprocess.run(cmd, check=True)
    print(f"anysize: {time.time() - start:.1f} s")
    ours = load_file(out)["latents"]
    os.remove(out)
    err = (ours - ref).abs().max().item()
    scale = max(1.0, ref.abs().max().item())
    print(f"final latents {list(ref.shape)}: max-abs {err:.3g}, max|ref| {scale:.3g}, normalised {err / scale:.3g}")


if __name__ == "__main__":
    main()
