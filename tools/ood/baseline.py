"""The metric's ceiling: training images (data.py) through the toy VAE, scored as if they were generated.

    /work/venv/bin/python tools/ood/baseline.py [--vae FOLDER] [--count 64] [--seed 99] [--out latents.safetensors]

Encodes --count fresh images (posterior mean, times the VAE's scaling_factor: the latents AnySize would save),
writes them in AnySize's --save-latents format and prints metric.py's aggregate of them. Whatever a generated
image loses against this row is the UNet's (or the method's) doing, not the VAE's.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import data  # noqa: E402
import metric  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vae", default=str(metric.DEFAULT_VAE))
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--seed", type=int, default=99)
    parser.add_argument("--out", default="/tmp/ood-baseline.safetensors")
    args = parser.parse_args()
    torch.set_num_threads(1)
    vae = metric.load_vae(args.vae)
    images, _ = data.batch(np.random.default_rng(args.seed), args.count)
    with torch.no_grad():
        latents = torch.cat([vae.encode(images[i:i + 16]).latent_dist.mean for i in range(0, args.count, 16)])
    save_file({"latents": (latents * vae.config.scaling_factor).contiguous()}, args.out)
    results = metric.evaluate([args.out], vae)
    summary = metric.aggregate(results)
    summary["areas"] = [r["area"] for r in results if r["class"] != "one"]
    summary["solidities"] = [round(r["solidity"], 2) for r in results if r["class"] != "one"]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
