#!/usr/bin/env python3
"""Writes a seeded, random-weight, full-size Stable Diffusion 1.5 model as a diffusers folder (float32).

Used only for speed and memory benchmarks (tools/bench/compare.sh): it has SD1.5's exact architecture and
tensor shapes, so every op costs what it costs in the real model, but no downloaded weights. The configs are
SD1.5's, written out below; the tokenizer is the CLIP BPE table that open_clip ships (full 49408-token
vocabulary). About 4.3 GB; not committed (models/ is git-ignored).

    python tools/bench/make_sd15_random.py models/sd15-random [--seed 0]
"""
import argparse
import gzip
import json
import shutil
from pathlib import Path

import torch

UNET = dict(sample_size=64, in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True,
            freq_shift=0, down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                            "DownBlock2D"],
            up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
            block_out_channels=[320, 640, 1280, 1280], layers_per_block=2, downsample_padding=1,
            mid_block_scale_factor=1, act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=768,
            attention_head_dim=8)
VAE = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
           up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512], layers_per_block=2,
           act_fn="silu", latent_channels=4, norm_num_groups=32, sample_size=512, scaling_factor=0.18215)
TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
            num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5,
            projection_dim=768, bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                 set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1, trained_betas=None,
                 prediction_type="epsilon")
MODEL_INDEX = {"_class_name": "StableDiffusionPipeline", "feature_extractor": [None, None],
               "requires_safety_checker": False, "safety_checker": [None, None],
               "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
               "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
               "vae": ["diffusers", "AutoencoderKL"]}


def write_tokenizer(folder):
    """vocab.json + merges.txt (+ the two small config files) of the full CLIP BPE table."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == TEXT["vocab_size"] and len(set(vocab)) == len(vocab)
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
         "unk_token": "<|endoftext|>"}, indent=2) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True}, indent=2) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tmp = args.folder.with_name(args.folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # PyTorch's default initialisers, seeded per component so each can be regenerated alone.
    torch.manual_seed(args.seed)
    UNet2DConditionModel(**UNET).save_pretrained(tmp / "unet", safe_serialization=True)
    torch.manual_seed(args.seed + 1)
    AutoencoderKL(**VAE).save_pretrained(tmp / "vae", safe_serialization=True)
    torch.manual_seed(args.seed + 2)
    CLIPTextModel(CLIPTextConfig(**TEXT)).save_pretrained(tmp / "text_encoder", safe_serialization=True)
    PNDMScheduler(**SCHEDULER).save_pretrained(tmp / "scheduler")
    write_tokenizer(tmp / "tokenizer")
    (tmp / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2) + "\n")
    shutil.rmtree(args.folder, ignore_errors=True)
    tmp.rename(args.folder)
    print(f"wrote {args.folder}")


if __name__ == "__main__":
    main()
