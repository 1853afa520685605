"""Trains the OOD toy model's AutoencoderKL on data.py's synthetic images (step 1 of 2; train_unet.py is step 2).

    /work/venv/bin/python tools/ood/train_vae.py --out /tmp/ood-work/vae --minutes 16 --seed 1
    (the committed model: docs/OOD.md "Provenance"; logs in tools/ood/logs/)

Architecture (diffusers AutoencoderKL, SD's layout at toy width): 4 levels (8x downsampling), block_out_channels
(64, 64, 64, 64), layers_per_block 1, 4 latent channels, GroupNorm with 32 groups (LDM's fixed count, so the
original-layout single file loads without a config), mid-block attention, quant/post-quant convs. 64 channels,
not 32: with one channel per group GroupNorm is an instance norm, and the decoder's last norm then erases the
absolute colour of a flat background (an argument from the structure, not a measurement).
Loss: L1 + MSE on [-1, 1] pixels plus 1e-5 x KL, Adam (--lr 1e-3, 0.3 x that for the last quarter), batch 4 of 128x128
images drawn fresh every step from a numpy Generator seeded with --seed (torch seeded with --seed too), cut to
one random --crop x --crop window (64 px, the same for the batch: 4x more updates for the same compute; --crop 0
trains on whole images). Training stops after --minutes of wall time, so a re-run is not step-for-step identical.
The posterior's log-variance bias starts at (at most) -6.
Checkpoints (diffusers save_pretrained, float32) every 100 steps and at the end; losses go to stdout.

After training, `scaling_factor` is fixed at SD's 0.18215 and the latent scale is folded into quant_conv and
post_quant_conv so that 0.18215 * latents has unit standard deviation (the single-file loader assumes 0.18215
when no .yaml is next to the file). That step runs at the end (or alone with --fold-only).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import data  # noqa: E402

SCALING = 0.18215


def make_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(64, 64, 64, 64), layers_per_block=1,
        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4, norm_num_groups=32,
        sample_size=data.SIDE, scaling_factor=SCALING)


@torch.no_grad()
def fold_scale(vae, seed, count=256):
    """Rescales the latent space so that SCALING * mean latents have unit std; returns (std before, after)."""
    rng = np.random.default_rng(seed + 1000)
    latents = []
    for _ in range(count // 16):
        images, _ = data.batch(rng, 16)
        latents.append(vae.encode(images).latent_dist.mean)
    before = torch.cat(latents).std().item()
    k = 1.0 / (SCALING * before)
    quant = vae.quant_conv  # 8 outputs: 4 means, 4 log-variances
    quant.weight[:4] *= k
    quant.bias[:4] *= k
    quant.bias[4:] += 2 * float(np.log(k))
    vae.post_quant_conv.weight[:, :4] /= k
    latents = []
    rng = np.random.default_rng(seed + 1000)
    for _ in range(count // 16):
        images, _ = data.batch(rng, 16)
        latents.append(vae.encode(images).latent_dist.mean)
    after = torch.cat(latents).std().item()
    return before, after


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes", type=float, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fold-only", action="store_true", help="only fold the latent scale of --out's model")
    parser.add_argument("--resume", action="store_true", help="continue training --out's (unfolded) checkpoint")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--crop", type=int, default=64, help="train on random crops of this side (0 = whole images)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)

    if args.fold_only:
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(out).eval()
    else:
        if args.resume:
            from diffusers import AutoencoderKL

            vae = AutoencoderKL.from_pretrained(out)
        else:
            vae = make_vae()
        with torch.no_grad():  # start the posterior narrow (std e^-3): a wide one makes the decoder learn a blur
            vae.quant_conv.bias[4:].clamp_(max=-6.0)
        optimizer = torch.optim.Adam(vae.parameters(), lr=args.lr)
        rng = np.random.default_rng(args.seed)
        start = time.time()
        step, losses = 0, []
        while time.time() - start < args.minutes * 60:
            if time.time() - start > args.minutes * 45:
                for group in optimizer.param_groups:
                    group["lr"] = args.lr * 0.3
            images, _ = data.batch(rng, 4)
            if args.crop:
                x, y = rng.integers(0, data.SIDE - args.crop + 1, size=2)
                images = images[:, :, y:y + args.crop, x:x + args.crop].contiguous()
            posterior = vae.encode(images).latent_dist
            decoded = vae.decode(posterior.sample()).sample
            rec = (decoded - images).abs().mean() + (decoded - images).pow(2).mean()
            kl = posterior.kl().mean() / images[0].numel()
            loss = rec + 1e-5 * kl * images[0].numel() / 64
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(rec.item())
            step += 1
            if step % 10 == 0:
                print(f"step {step} t={time.time() - start:.0f}s rec={np.mean(losses[-10:]):.4f} kl={kl.item():.3f}",
                      flush=True)
            if step % 100 == 0:
                vae.save_pretrained(out)
        vae.save_pretrained(out)
        vae.eval()
    before, after = fold_scale(vae, args.seed)
    vae.save_pretrained(out)
    print(f"latent std {before:.4f} -> {after:.4f} (x {SCALING} = {after * SCALING:.4f})", flush=True)


if __name__ == "__main__":
    main()
