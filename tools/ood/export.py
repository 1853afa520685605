"""Writes the trained OOD toy model as a diffusers folder and an original-layout single file, both float16.

    /work/venv/bin/python tools/ood/export.py --work /tmp/ood-work

Reads WORK/{vae,unet,tokenizer,text_encoder} (train_vae.py, train_unet.py) and writes
  Tests/AnySizeTests/Fixtures/ood-toy/              StableDiffusionPipeline.save_pretrained layout (unet, vae,
                                                    text_encoder, tokenizer as vocab.json + merges.txt, scheduler:
                                                    SD1.5's PNDM config: DDPM betas scaled_linear 0.00085-0.012,
                                                    1000 steps, epsilon);
  Tests/AnySizeTests/Fixtures/ood-toy.safetensors   the same UNet and VAE in LDM key layout (tools/sd_checkpoint.py),
                                                    the text encoder under cond_stage_model.transformer with CLIP's
                                                    full 49408-token table (text.full_vocabulary_state).
The single file carries no size: AnySize assumes 512 px for SD1 single files, so pass --trained-size 128x128
(and --width/--height) with it. Then it checks that the single file's tensors equal the folder's after
sd_checkpoint.invert-style renaming (every key maps back) and prints the sizes.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
import sd_checkpoint as ckpt  # noqa: E402
import text  # noqa: E402

ROOT = HERE.parent.parent
FIXTURES = ROOT / "Tests" / "AnySizeTests" / "Fixtures"
SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                 set_alpha_to_one=False, steps_offset=1, skip_prk_steps=True, prediction_type="epsilon")


def f16(state):
    return {k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True)
    parser.add_argument("--name", default="ood-toy")
    args = parser.parse_args()
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    work = Path(args.work)
    unet = UNet2DConditionModel.from_pretrained(work / "unet").half()
    vae = AutoencoderKL.from_pretrained(work / "vae").half()
    encoder = CLIPTextModel.from_pretrained(work / "text_encoder").half()
    tokenizer = CLIPTokenizer.from_pretrained(work / "tokenizer")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=PNDMScheduler(**SCHEDULER), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    folder = FIXTURES / args.name
    if folder.exists():
        shutil.rmtree(folder)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    shutil.rmtree(folder / "tokenizer")  # transformers 5 writes tokenizer.json only; SD folders have vocab + merges
    shutil.copytree(work / "tokenizer", folder / "tokenizer")

    state = {}
    state.update(ckpt.unet_to_original(f16(unet.state_dict()), dict(unet.config)))
    state.update(ckpt.vae_to_original(f16(vae.state_dict()), dict(vae.config)))
    state.update(ckpt.clip_to_original(f16(text.full_vocabulary_state(encoder.float()))))
    state[ckpt.CLIP_PREFIX + "text_model.embeddings.position_ids"] = torch.arange(77, dtype=torch.int64)[None]
    path = FIXTURES / f"{args.name}.safetensors"
    save_file(state, str(path), metadata={"format": "pt"})

    # Round trip: the single file's UNet and VAE tensors equal the folder's.
    single = load_file(str(path))
    for sub, to_original in (("unet", ckpt.unet_to_original), ("vae", ckpt.vae_to_original)):
        saved = load_file(str(folder / sub / "diffusion_pytorch_model.safetensors"))
        config = json.loads((folder / sub / "config.json").read_text())
        for k, v in to_original(saved, config).items():
            assert torch.equal(single[k], v), k
    sizes = {p.relative_to(FIXTURES).as_posix(): p.stat().st_size for p in [path, *folder.rglob("*")] if p.is_file()}
    print(json.dumps(sizes, indent=1))
    print(f"total {sum(sizes.values()) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
