"""Writes a full-size, random-weight Stable Diffusion 1.5 in diffusers layout for memory benchmarks.

Usage (from the repository root): /work/venv/bin/python tools/bench/make_sd15_random.py [--out models/sd15-random]

Nothing is downloaded: the UNet, VAE and CLIP text encoder are built from the SD1.5 configs written below
(runwayml/stable-diffusion-v1-5's unet/vae/text_encoder/scheduler config.json values) with a seeded PyTorch
default initialisation, and saved as float32 safetensors (about 4.3 GB, like v1-5-pruned-emaonly). The tokenizer
folder is the real CLIP BPE vocabulary (49408 tokens) built from open_clip's bpe_simple_vocab_16e6.txt.gz.
The images it makes are noise; only the sizes of the tensors matter. Does nothing if the folder exists.
"""

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from make_fixtures import clip_bpe, write_tokenizer  # noqa: E402

SEED = 15

UNET = dict(
    act_fn="silu", attention_head_dim=8, block_out_channels=[320, 640, 1280, 1280], center_input_sample=False,
    cross_attention_dim=768,
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    downsample_padding=1, flip_sin_to_cos=True, freq_shift=0, in_channels=4, layers_per_block=2,
    mid_block_scale_factor=1, norm_eps=1e-5, norm_num_groups=32, out_channels=4, sample_size=64,
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"])

VAE = dict(
    act_fn="silu", block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
    in_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32, out_channels=3, sample_size=512,
    up_block_types=["UpDecoderBlock2D"] * 4, scaling_factor=0.18215)

TEXT = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=768,
    bos_token_id=0, eos_token_id=2, pad_token_id=1)

SCHEDULER = dict(
    beta_end=0.012, beta_schedule="scaled_linear", beta_start=0.00085, num_train_timesteps=1000,
    set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="models/sd15-random")
    out = Path(parser.parse_args().out)
    if (out / "model_index.json").exists():
        print(f"{out}: exists")
        return
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(SEED)
    tmp = out.with_name(out.name + ".partial")
    vocab, merges = clip_bpe(49408 - 512 - 2)
    write_tokenizer(tmp / "tokenizer-src", vocab, merges, "<|endoftext|>")
    tokenizer = CLIPTokenizer.from_pretrained(str(tmp / "tokenizer-src"))
    with torch.no_grad():
        unet = UNet2DConditionModel(**UNET)
        vae = AutoencoderKL(**VAE)
        text = CLIPTextModel(CLIPTextConfig(**TEXT)).eval()
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                   scheduler=PNDMScheduler(**SCHEDULER), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(tmp), safe_serialization=True)
    # SD folders on the hub carry vocab.json + merges.txt (transformers 5 writes only tokenizer.json).
    import shutil
    shutil.rmtree(tmp / "tokenizer")
    shutil.rmtree(tmp / "tokenizer-src")
    write_tokenizer(tmp / "tokenizer", vocab, merges, "<|endoftext|>")
    tmp.rename(out)
    total = sum(f.stat().st_size for f in out.rglob("*.safetensors"))
    print(f"{out}: {total / 1e9:.2f} GB of float32 weights")


if __name__ == "__main__":
    main()
