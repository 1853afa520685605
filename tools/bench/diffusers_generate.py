"""The diffusers run that tools/bench/memory measures beside `anysize generate` (same model, size, steps, guidance,
sampler: DPM++ 2M with Karras sigmas, float32 on the CPU, torch threads = cores).
--precision autocast-bf16 runs the float32 pipeline under torch.autocast("cpu", dtype=torch.bfloat16); bf16 loads
the whole pipeline in bfloat16 (torch_dtype=torch.bfloat16).

Usage: python tools/bench/diffusers_generate.py --model models/sd15-random --width 1024 --height 1024 \
    --steps 1 --cfg-scale 7.5 --output out.png [--vae-tiling]
"""

import argparse
import os
import resource
import time

import torch


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--prompt", default="a photo of a cat")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--cfg-scale", type=float, default=7.5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", default="diffusers.png")
    parser.add_argument("--precision", choices=["fp32", "autocast-bf16", "bf16"], default="fp32")
    parser.add_argument("--vae-tiling", action="store_true", help="pipe.vae.enable_tiling() (off by default)")
    args = parser.parse_args()

    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    torch.set_num_threads(os.cpu_count() or 1)
    start = time.time()
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    pipe = StableDiffusionPipeline.from_pretrained(args.model, torch_dtype=dtype, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, use_karras_sigmas=True)
    if args.vae_tiling:
        pipe.vae.enable_tiling()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    print(f"load: {time.time() - start:.1f} s, peak resident so far {peak:.2f} GB", flush=True)
    start = time.time()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "autocast-bf16"):
        image = pipe(args.prompt, width=args.width, height=args.height, num_inference_steps=args.steps,
                     guidance_scale=args.cfg_scale, generator=torch.Generator().manual_seed(args.seed)).images[0]
    print(f"generate: {time.time() - start:.1f} s", flush=True)
    image.save(args.output)


if __name__ == "__main__":
    main()
