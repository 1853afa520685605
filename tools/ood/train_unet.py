"""Trains the OOD toy model's UNet on the latents of data.py's images (step 2; train_vae.py must have run).

    /work/venv/bin/python tools/ood/train_unet.py --work /tmp/ood-work --minutes 70 --seed 2

Architecture: diffusers UNet2DConditionModel with SD's block structure at toy width: down CrossAttnDownBlock2D x3 +
DownBlock2D, UNetMidBlock2DCrossAttn, up UpBlock2D + CrossAttnUpBlock2D x3; block_out_channels (32, 32, 64, 64),
layers_per_block 1 (SD has 2; one keeps training inside the time budget on a shared 2-core machine),
attention_head_dim 8 (SD1's "8 heads"), cross-attention width 16 (text.py), GroupNorm 32 groups, sample size 16
(128 px / 8).
Objective: SD1.5's (DDPM, 1000 steps, scaled_linear betas 0.00085-0.012, epsilon prediction), t uniform, the
prompt replaced by "" with probability 0.1 (for classifier-free guidance). AdamW lr 8e-4 (200 warm-up steps),
batch 16, weight EMA (decay min(0.999, (1 + step) / (10 + step))); the EMA weights are what is saved.
Data: a pool of up to 20000 latents (VAE posterior mean and std; a fresh posterior sample each time one is used),
4 new images encoded per step (1 once the pool holds 2000) or, with --pool-dir, the chunks
encode_pool.py writes in a second process (read every 20 steps), batch drawn uniformly from the pool. Seeds: numpy data stream and torch from --seed.
Checkpoints (EMA UNet, diffusers save_pretrained into WORK/unet) every 200 steps and at the end; losses to stdout.
"""

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import data  # noqa: E402
import text  # noqa: E402

POOL = 20000


def make_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=data.SIDE // 8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 32, 64, 64), down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=text.HIDDEN,
        attention_head_dim=8, norm_num_groups=32)


def alphas_cumprod():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0).float()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="folder with vae/ from train_vae.py; unet/ is written here")
    parser.add_argument("--minutes", type=float, default=70)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pool-dir", help="take latents from encode_pool.py's chunk files here instead of encoding")
    parser.add_argument("--resume", action="store_true", help="continue from WORK/unet (EMA weights)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from diffusers import AutoencoderKL, UNet2DConditionModel

    work = Path(args.work)
    vae = AutoencoderKL.from_pretrained(work / "vae").eval()
    scale = vae.config.scaling_factor
    tokenizer, encoder = text.build(work)
    prompts = data.all_prompts()
    embeddings = text.encode(tokenizer, encoder, prompts + [""])  # [P + 1, 77, HIDDEN]
    unet = UNet2DConditionModel.from_pretrained(work / "unet") if args.resume else make_unet()
    ema = copy.deepcopy(unet).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=8e-4, weight_decay=0.0)
    abar = alphas_cumprod()
    rng = np.random.default_rng(args.seed)
    means, stds, labels = [], [], []

    @torch.no_grad()
    def add(n):
        images, batch_prompts = data.batch(rng, n)
        posterior = vae.encode(images).latent_dist
        for i in range(n):
            item = (posterior.mean[i] * scale, posterior.std[i] * scale, prompts.index(batch_prompts[i]))
            if len(means) < POOL:
                means.append(item[0]), stds.append(item[1]), labels.append(item[2])
            else:
                j = int(rng.integers(POOL))
                means[j], stds[j], labels[j] = item

    loaded = set()

    def load_chunks():
        for path in sorted(Path(args.pool_dir).glob("chunk-*.pt")):
            if path.name in loaded or len(means) >= POOL:
                continue
            chunk = torch.load(path)
            means.extend(chunk["mean"]), stds.extend(chunk["std"]), labels.extend(chunk["label"].tolist())
            loaded.add(path.name)

    if args.pool_dir:
        while not means:
            load_chunks()
            time.sleep(0 if means else 5)
    else:
        add(64)
    start = time.time()
    step, losses = 0, []
    while time.time() - start < args.minutes * 60:
        if not args.pool_dir:
            add(4 if len(means) < 2000 else 1)
        elif step % 20 == 0:
            load_chunks()
        pick = rng.integers(len(means), size=16)
        x0 = torch.stack([means[i] + stds[i] * torch.randn_like(stds[i]) for i in pick])
        label = torch.tensor([labels[i] for i in pick])
        label[torch.from_numpy(rng.random(16) < 0.1)] = len(prompts)  # unconditional
        t = torch.randint(0, 1000, (16,))
        noise = torch.randn_like(x0)
        a = abar[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise
        prediction = unet(noisy, t, embeddings[label]).sample
        loss = (prediction - noise).pow(2).mean()
        for group in optimizer.param_groups:
            group["lr"] = 8e-4 * min(1.0, (step + 1) / 200)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), unet.parameters()):
                e.mul_(decay).add_(p.detach(), alpha=1 - decay)
        losses.append(loss.item())
        step += 1
        if step % 25 == 0:
            print(f"step {step} t={time.time() - start:.0f}s loss={np.mean(losses[-25:]):.4f} pool={len(means)}",
                  flush=True)
        if step % 200 == 0:
            ema.save_pretrained(work / "unet")
    ema.save_pretrained(work / "unet")
    print(f"done: {step} steps", flush=True)


if __name__ == "__main__":
    main()
