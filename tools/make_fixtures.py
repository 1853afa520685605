"""Builds the tiny random-weight Stable Diffusion fixtures that the Swift tests load, and their reference tensors.

How to run (from the repository root; CPU only, about a minute), in a venv made from tools/requirements.txt:
    python3.11 -m venv /tmp/anysize-fixtures
    /tmp/anysize-fixtures/bin/pip install -r tools/requirements.txt
    /tmp/anysize-fixtures/bin/python tools/make_fixtures.py [--single-files]
Then, for the end-to-end pipeline references: /tmp/anysize-fixtures/bin/python tools/fixtures_e2e.py [--single-files]
(--single-files: rewrite only the single files and their references; the folders stay as they are).

It writes Tests/AnySizeTests/Fixtures/ (everything is seeded; a re-run with the pinned versions rewrites the same
bytes):
  tiny-sd1/                 diffusers folder (StableDiffusionPipeline.save_pretrained), SD1-like: conv proj_in,
                            8 heads, quick_gelu CLIP, PNDM epsilon scheduler. Its text_encoder weights use the
                            "text_model." key level (as SD1 folders on the hub; transformers >= 5.6 writes without it).
  tiny-sd2/                 diffusers folder, SD2-768-v-like: linear proj_in, per-level heads, upcast attention,
                            gelu text encoder, DDIM v_prediction scheduler, tokenizer padding with "!" (id 0).
                            Its text_encoder weights are as transformers 5.23 writes them (no "text_model." level).
  tiny-sd1.safetensors      original (LDM) layout single files of their own models, with what every single file
  tiny-sd2.safetensors      implies (32 GroupNorm groups, 64-wide text heads, the full CLIP vocabulary), so they
  tiny-sd2.yaml             load with nothing beside them: see tools/single_file_fixtures.py.
  tokenizer-fast/           tiny-sd1's tokenizer as transformers 5.23 saves it (tokenizer.json only).
  tiny-sd1-saved/           tiny-sd1/ loaded and saved again by diffusers 0.42.1 / transformers 5.23
                            (tools/fixtures_saved_today.py): tokenizer.json only, same weights.
  reference/                float32 inputs and outputs of each component (index.json describes every case).

Weights are stored as float16. Every reference is computed in float32 from the weights as stored (f16 -> f32),
which is what the Swift loader sees.

Folder sizes: the real SD topology (4 levels, 2 resnets per level, the same block types, a wider last level as in
SD's channel_mult, so that skips, shortcuts and per-level heads all vary): UNet (16, 16, 16, 32) channels with
norm_num_groups 8, VAE (8, 16, 16, 16) with 4 groups. Not 32 groups: with 32 groups the channel count must be 64
or more for a group to hold more than one channel (below that GroupNorm is an instance norm, which cancels every
per-channel constant, the timestep embedding included: the UNet output would not depend on t), and 64-channel
models at this depth do not fit the fixture budget. The text hidden size (4) is also the cross-attention width.
"""

import gzip
import json
import math
import re
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests" / "AnySizeTests" / "Fixtures"
REFERENCE = FIXTURES / "reference"

TEXT_HIDDEN = 4
NORM_GROUPS = 8  # UNet
VAE_CHANNELS = (8, 16, 16, 16)  # narrow first level, as SD's (128, 256, 512, 512)
VAE_NORM_GROUPS = 4
TEXT_LAYERS = 3
SMALL_MERGES = 1000  # merges kept in the folders' small BPE vocabulary
FULL_VOCAB = 49408
PROMPTS = ["a photo of an astronaut riding a horse on mars", "A watercolor painting of a fox, 2 cats & 3 birds!"]
SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                set_alpha_to_one=False, steps_offset=1)

MODELS = {
    "tiny-sd1": dict(
        seed=1,
        unet=dict(sample_size=64, block_out_channels=(16, 16, 16, 32), attention_head_dim=8,
                  use_linear_projection=False, upcast_attention=False),
        vae_sample_size=512,
        text_act="quick_gelu",
        pad_token="<|endoftext|>",
        scheduler=("PNDMScheduler", dict(skip_prk_steps=True, prediction_type="epsilon")),
        text_model_prefix=True,
    ),
    "tiny-sd2": dict(
        seed=2,
        # SD2 keeps the head width fixed (64) and varies heads per level; here the width is 8 and the last level
        # is twice as wide, so heads are [2, 2, 2, 4] (the mid block uses 4).
        unet=dict(sample_size=96, block_out_channels=(16, 16, 16, 32), attention_head_dim=[2, 2, 2, 4],
                  use_linear_projection=True, upcast_attention=True),
        vae_sample_size=768,
        text_act="gelu",
        pad_token="!",
        scheduler=("DDIMScheduler", dict(clip_sample=False, prediction_type="v_prediction")),
        text_model_prefix=False,
    ),
}


# ---------------------------------------------------------------------------------------------------------------
# Tokenizers


def clip_bpe(merge_count):
    """(vocab list, merges list) of the CLIP BPE table cut to its first `merge_count` merges, in CLIP's order:
    256 byte symbols, the same with "</w>", one token per merge, then the two special tokens."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]][:merge_count]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == len(set(vocab))
    return vocab, merges


def added_token(content):
    return {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}


def write_tokenizer(folder, vocab, merges, pad_token):
    """vocab.json + merges.txt + tokenizer_config.json + special_tokens_map.json, as SD folders on the hub have."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    special = {"bos_token": added_token("<|startoftext|>"), "eos_token": added_token("<|endoftext|>"),
               "pad_token": pad_token, "unk_token": added_token("<|endoftext|>")}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    config = {"add_prefix_space": False, "do_lower_case": True, "errors": "replace", "model_max_length": 77,
              "tokenizer_class": "CLIPTokenizer"}
    config.update({k: ({"__type": "AddedToken", **v} if isinstance(v, dict) else v) for k, v in special.items()})
    (folder / "tokenizer_config.json").write_text(json.dumps(dict(sorted(config.items())), indent=2) + "\n")


def write_json(path, value):
    """Indented JSON with every list of numbers on one line (token ids, timesteps, shapes stay readable)."""
    text = json.dumps(value, indent=1)
    text = re.sub(r"\[\s*([-+0-9.eE,\s]+?)\s*\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)
    Path(path).write_text(text + "\n")


def load_tokenizer(folder):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(folder))


def token_ids(tokenizer):
    return tokenizer(PROMPTS, padding="max_length", max_length=77, truncation=True).input_ids


# ---------------------------------------------------------------------------------------------------------------
# Models


# The UNet's query/key gain. At 1.5 the random UNet's attention was so peaked that sampling was chaotic: diffusers'
# own float32 run deviated from float64 by up to 1.6e-2 (normalised) after 5 steps (Heun, SD2, 8x8 latents), 8e-3
# for DDIM on SD1, so the end-to-end references could not judge a float32 implementation to 1e-3. At 0.75 (logits
# a quarter as large) the same runs agree with float64 to ~4e-6, even at guidance 7.5, and the formulations still
# land far apart (tools/fixtures_attention.py prints the distances). tools/fixtures_e2e.py measures every case.
UNET_ATTENTION_GAIN = 0.75


def randomize(model, seed, attention_gain=1.5):
    """Seeded weights independent of the libraries' init schemes: weights N(0, 1/fan_in), attention query/key
    projections `attention_gain` times the others (so the softmax is far from uniform), norm scales
    1 + N(0, 0.2^2), every bias and norm shift N(0, 0.1^2) (nothing is 0 or 1, so swapped or missing tensors
    show)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module_name, module in model.named_modules():
            for name, p in module.named_parameters(recurse=False):
                noise = torch.randn(p.shape, generator=g)
                if isinstance(module, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
                    p.copy_(1 + 0.2 * noise if name == "weight" else 0.1 * noise)
                elif name == "bias":
                    p.copy_(0.1 * noise)
                elif isinstance(module, torch.nn.Embedding):
                    p.copy_(0.5 * noise)
                else:
                    gain = attention_gain if module_name.split(".")[-1] in ("to_q", "to_k", "q_proj", "k_proj") else 1
                    p.copy_(noise * gain / math.sqrt(p[0].numel()))
    return model


def make_unet(spec, seed):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(
        in_channels=4, out_channels=4, layers_per_block=2, norm_num_groups=NORM_GROUPS,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=TEXT_HIDDEN, **spec)
    return randomize(unet, seed, attention_gain=UNET_ATTENTION_GAIN)


def make_vae(sample_size, seed):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=VAE_NORM_GROUPS,
        block_out_channels=VAE_CHANNELS, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, sample_size=sample_size, scaling_factor=0.18215)
    return randomize(vae, seed)


def text_config(vocab_size, act, layers, pad_id, bos_id, eos_id):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=TEXT_HIDDEN, intermediate_size=4 * TEXT_HIDDEN, num_hidden_layers=layers,
        num_attention_heads=max(1, TEXT_HIDDEN // 64), max_position_embeddings=77, hidden_act=act,
        projection_dim=TEXT_HIDDEN, pad_token_id=pad_id, bos_token_id=bos_id, eos_token_id=eos_id)


def make_text_encoder(config, seed):
    from transformers import CLIPTextModel

    return randomize(CLIPTextModel(config), seed).eval()


def make_scheduler(spec):
    import diffusers

    name, extra = spec
    return getattr(diffusers, name)(**SCHEDULE, **extra)


def f16(state):
    return {k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}


def schedule_buffers():
    """The DDPM buffers LDM checkpoints carry (loaders must ignore them), as ldm's LatentDiffusion computes them."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, 0)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
    return {"betas": betas.float(), "alphas_cumprod": alphas_cumprod.float(), "alphas_cumprod_prev": prev.float(),
            "model_ema.decay": torch.tensor(0.9999, dtype=torch.float32),
            "model_ema.num_updates": torch.tensor(0, dtype=torch.int32)}


# ---------------------------------------------------------------------------------------------------------------
# Writing


def save_folder(name, spec, vocab, merges):
    """Builds one model, writes its diffusers folder, and returns the f16 state dicts."""
    from diffusers import StableDiffusionPipeline

    folder = FIXTURES / name
    seed = spec["seed"] * 100
    tmp = Path(tempfile.mkdtemp())
    write_tokenizer(tmp / "tokenizer", vocab, merges, spec["pad_token"])
    tokenizer = load_tokenizer(tmp / "tokenizer")
    pad_id = tokenizer.pad_token_id
    unet = make_unet(spec["unet"], seed + 1).half()
    vae = make_vae(spec["vae_sample_size"], seed + 2).half()
    text = make_text_encoder(text_config(len(vocab), spec["text_act"], TEXT_LAYERS, pad_id, len(vocab) - 2,
                                         len(vocab) - 1), seed + 3).half()
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                   scheduler=make_scheduler(spec["scheduler"]), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    if folder.exists():
        shutil.rmtree(folder)
    pipe.save_pretrained(str(folder), safe_serialization=True, variant=None)
    # The folder gets the tokenizer files SD folders on the hub have (transformers 5 writes only tokenizer.json).
    shutil.rmtree(folder / "tokenizer")
    write_tokenizer(folder / "tokenizer", vocab, merges, spec["pad_token"])
    text_state = f16(text.state_dict())
    if spec["text_model_prefix"]:
        save_file({"text_model." + k: v for k, v in text_state.items()}, str(folder / "text_encoder" / "model.safetensors"),
                  metadata={"format": "pt"})
    shutil.rmtree(tmp)

    return dict(unet=f16(unet.state_dict()), vae=f16(vae.state_dict()), text=text_state)


# The body of Stability's v2-inference-v.yaml with the tiny model's numbers as fields (tools/single_file_fixtures.py
# fills them in for tiny-sd2.yaml).
SD2_YAML = """\
model:
  base_learning_rate: 1.0e-4
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    parameterization: "v"
    linear_start: 0.00085
    linear_end: 0.0120
    num_timesteps_cond: 1
    log_every_t: 200
    timesteps: 1000
    first_stage_key: "jpg"
    cond_stage_key: "txt"
    image_size: 96
    channels: 4
    cond_stage_trainable: false
    conditioning_key: crossattn
    monitor: val/loss_simple_ema
    scale_factor: 0.18215
    use_ema: False # we set this to false because this is an inference only config

    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        use_checkpoint: True
        use_fp16: True
        image_size: 32 # unused
        in_channels: 4
        out_channels: 4
        model_channels: {model_channels}
        attention_resolutions: [ 4, 2, 1 ]
        num_res_blocks: 2
        channel_mult: [ {channel_mult} ]
        num_head_channels: {head_channels} # need to fix for flash-attn
        use_spatial_transformer: True
        use_linear_in_transformer: True
        transformer_depth: 1
        context_dim: {context_dim}
        legacy: False

    first_stage_config:
      target: ldm.models.autoencoder.AutoencoderKL
      params:
        embed_dim: 4
        monitor: val/rec_loss
        ddconfig:
          #attn_type: "vanilla-xformers"
          double_z: true
          z_channels: 4
          resolution: 256
          in_channels: 3
          out_ch: 3
          ch: {vae_ch}
          ch_mult:
{vae_mult}
          num_res_blocks: 2
          attn_resolutions: []
          dropout: 0.0
        lossconfig:
          target: torch.nn.Identity

    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder
      params:
        freeze: True
        layer: "penultimate"
"""


def main():
    import argparse

    import reference_fixtures
    import single_file_fixtures
    import verify_fixtures

    parser = argparse.ArgumentParser(description="Writes the tiny fixture models and their reference tensors.")
    parser.add_argument("--single-files", action="store_true",
                        help="rewrite only the single files (tools/single_file_fixtures.py) and their references")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp())
    full_tokenizers = single_file_fixtures.full_tokenizers(work)
    if not args.single_files:
        small_vocab, small_merges = clip_bpe(SMALL_MERGES)
        info = {}
        for name, spec in MODELS.items():
            built = save_folder(name, spec, small_vocab, small_merges)
            verify_fixtures.check_folder(FIXTURES / name, built)
            print(f"{name}: folder verified")
            info[name] = dict(built=built)

        fast = FIXTURES / "tokenizer-fast"
        if fast.exists():
            shutil.rmtree(fast)
        load_tokenizer(FIXTURES / "tiny-sd1" / "tokenizer").save_pretrained(str(fast))
        assert token_ids(load_tokenizer(fast)) == token_ids(load_tokenizer(FIXTURES / "tiny-sd1" / "tokenizer"))

        import fixtures_saved_today
        fixtures_saved_today.main()  # tiny-sd1-saved/: tiny-sd1 as today's save_pretrained writes it

        reference_fixtures.write_all(info)
    single_file_fixtures.write_all(full_tokenizers, work)
    shutil.rmtree(work)
    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file())
    print(f"fixtures: {total / 1e6:.2f} MB in {FIXTURES.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
