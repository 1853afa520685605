#!/usr/bin/env python3
"""Times one diffusers / transformers component on the same seeded inputs as `anysize bench` and prints the
same JSON line (component, width, height, batch, repeats, seconds_median, seconds_min, gflops, peak_rss_mb).

torch.inference_mode, torch threads = --threads (default: cores), diffusers' default attention processor
(PyTorch SDPA). --precision fp32 (default) runs the float32 model as loaded; autocast-bf16 runs the same float32
model under torch.autocast("cpu", dtype=torch.bfloat16) (what a diffusers user gets from one line: linear
layers, convolutions and matrix products in bf16, the rest float32); bf16 casts the weights to bfloat16
(model.to(torch.bfloat16), inputs too). The output is compared for finiteness only (accuracy:
tools/bench/bf16_accuracy.py).
Inputs: torch.manual_seed(seed), then torch.randn for the latents [B, 4, h/8, w/8] and (UNet) the text context
[B, 77, 768]; UNet timestep 500; text-encoder ids as `Benchmark.tokenWindows` in Swift.
gflops uses the same analytic FLOP count as AnySize, passed in by compare.sh (--flops) or 0.

    python tools/bench/diffusers_bench.py --model models/sd15-random --component unet \
        --width 512 --height 512 --batch-size 2 --repeats 3 --warmup 1
"""
import argparse
import json
import os
import resource
import statistics
import time

import torch


def token_windows(count, vocabulary, seed):
    body = vocabulary - 2
    rows = []
    for window in range(count):
        offset = 104729 * (window + seed % 1000003)
        rows.append([vocabulary - 2] + [(7919 * (i + 1) + offset) % body for i in range(75)] + [vocabulary - 1])
    return torch.tensor(rows, dtype=torch.long)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--component", choices=["unet", "vae-decode", "text-encoder"], required=True)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=["fp32", "autocast-bf16", "bf16"], default="fp32")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: cores)")
    p.add_argument("--flops", type=float, default=0.0, help="analytic FLOPs of one call (from anysize bench)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dtype = torch.bfloat16 if a.precision == "bf16" else torch.float32
    torch.manual_seed(a.seed)
    h, w, b = a.height // 8, a.width // 8, a.batch_size
    with torch.inference_mode():
        if a.component == "unet":
            from diffusers import UNet2DConditionModel
            model = UNet2DConditionModel.from_pretrained(a.model, subfolder="unet", torch_dtype=dtype).eval()
            sample = torch.randn(b, 4, h, w).to(dtype)
            context = torch.randn(b, 77, model.config.cross_attention_dim).to(dtype)
            timesteps = torch.full((b,), 500.0)
            call = lambda: model(sample, timesteps, encoder_hidden_states=context).sample
        elif a.component == "vae-decode":
            from diffusers import AutoencoderKL
            model = AutoencoderKL.from_pretrained(a.model, subfolder="vae", torch_dtype=dtype).eval()
            latents = torch.randn(b, model.config.latent_channels, h, w).to(dtype)
            call = lambda: model.decode(latents).sample
        else:
            from transformers import CLIPTextModel
            model = CLIPTextModel.from_pretrained(a.model, subfolder="text_encoder", dtype=dtype).eval()
            ids = token_windows(b, model.config.vocab_size, a.seed)
            call = lambda: model(ids).last_hidden_state
        if a.precision == "autocast-bf16":
            plain = call
            def call():
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return plain()
        for _ in range(a.warmup):
            call()
        seconds = []
        for _ in range(a.repeats):
            start = time.perf_counter()
            out = call()
            seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    print(json.dumps({
        "component": a.component, "precision": a.precision, "threads": a.threads, "width": a.width, "height": a.height, "batch": b, "repeats": a.repeats,
        "seconds_median": round(median, 4), "seconds_min": round(min(seconds), 4),
        "gflops": round(a.flops / median / 1e9, 4) if a.flops else 0.0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10,
        "finite": bool(torch.isfinite(out).all()),
    }, separators=(",", ":")))


if __name__ == "__main__":
    main()
