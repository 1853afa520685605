"""Encodes data.py images with the toy VAE into chunk files for train_unet.py --pool-dir (a second process, so the
encoder does not hold up the UNet's steps on a 2-core machine).

    /work/venv/bin/python tools/ood/encode_pool.py --work /tmp/ood-work --chunks 400 --seed 3

Chunk k (WORK/pool/chunk-00000k.pt) holds 64 images drawn from numpy default_rng(seed * 100000 + k): scaled
posterior means and standard deviations [64, 4, 16, 16] and prompt indices into data.all_prompts(). Written to
a temporary name and renamed, so a reader never sees half a file.
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import data  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True)
    parser.add_argument("--chunks", type=int, default=400)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from diffusers import AutoencoderKL

    work = Path(args.work)
    vae = AutoencoderKL.from_pretrained(work / "vae").eval()
    scale = vae.config.scaling_factor
    prompts = data.all_prompts()
    (work / "pool").mkdir(exist_ok=True)
    for k in range(args.chunks):
        path = work / "pool" / f"chunk-{k:06d}.pt"
        if path.exists():
            continue
        images, batch_prompts = data.batch(np.random.default_rng(args.seed * 100000 + k), 64)
        with torch.no_grad():
            posterior = vae.encode(images).latent_dist
        chunk = dict(mean=posterior.mean * scale, std=posterior.std * scale,
                     label=torch.tensor([prompts.index(p) for p in batch_prompts]))
        torch.save(chunk, str(path) + ".tmp")
        os.replace(str(path) + ".tmp", path)
        print(f"chunk {k}", flush=True)


if __name__ == "__main__":
    main()
