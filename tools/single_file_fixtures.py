"""The single-file fixtures: Tests/AnySizeTests/Fixtures/tiny-sd1.safetensors and tiny-sd2.safetensors (+ tiny-sd2.yaml),
and their component reference cases (reference/<model>_single_file.safetensors, weights "single_file" in index.json).

A single .safetensors checkpoint carries no config: a loader infers the architecture from tensor shapes and takes the
rest from what every SD1/SD2 file implies, as LDM's code fixes it: GroupNorm with 32 groups everywhere, and text
encoders whose attention heads are 64 wide. So these models are independent of the tiny-sd1/ and tiny-sd2/ folders
(whose 8 and 4 groups keep them smaller) and load with nothing beside them:
  UNet: 2 levels of 32 and 64 channels (a cross-attention level and a plain one, as SD's last level; the widths
        differ so that a key mapped to the wrong level fails on its shape), 2 resnets per level, 32 groups.
        SD1: 8 heads per level (LDM's num_heads 8); SD2: 32-wide heads (num_head_channels in tiny-sd2.yaml).
  VAE:  4 levels (32, 32, 64, 64) as SD's (128, 256, 512, 512) pattern, 1 resnet per level, 32 groups.
  Text: 64 wide, 1 head of 64, the full 49408-token CLIP vocabulary (most of each file's size); SD1 transformers
        CLIP under cond_stage_model.transformer, SD2 open_clip with one resblock more than used.
The cross-attention width is the text width (64).

References come from diffusers' own single-file converter: StableDiffusionPipeline.from_single_file with a temporary
diffusers config folder describing the same models (SD1 has no yaml to build the text encoder from offline), and
the converted weights are checked to equal the generated ones; so the Swift loader, which infers everything from
the file, is checked against diffusers' key map.

Run alone (rewrites only the single files, their references and their entries in index.json; the folders and their
references are untouched):
    python tools/make_fixtures.py --single-files
then the end-to-end cases: python tools/fixtures_e2e.py --single-files
"""

import json
import math
import re
import shutil
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

import sd_checkpoint as ckpt
from verify_fixtures import same
from make_fixtures import (FIXTURES, FULL_VOCAB, MODELS, PROMPTS, REFERENCE, SD2_YAML, UNET_ATTENTION_GAIN,
                           f16, load_tokenizer, make_scheduler, randomize, schedule_buffers, token_ids, write_json,
                           write_tokenizer)

TEXT_HIDDEN = 64  # one head of 64, the width every SD text encoder's heads have
TEXT_LAYERS = 3
NORM_GROUPS = 32  # LDM's fixed GroupNorm group count
UNET_CHANNELS = (32, 64)
UNET_DOWN = ("CrossAttnDownBlock2D", "DownBlock2D")
UNET_UP = ("UpBlock2D", "CrossAttnUpBlock2D")
UNET_LAYERS = 2
VAE_CHANNELS = (32, 32, 64, 64)
VAE_LAYERS = 1
SD2_HEAD_WIDTH = 32

UNET_SIZES = [(8, 8), (25, 17)]
UNET_TIMESTEPS = [981, 1]
VAE_DECODE_SIZES = [(8, 8), (7, 5)]
VAE_ENCODE_SIZES = [(64, 64)]

SPECS = {
    "tiny-sd1": dict(seed=11, sd1=True, sample_size=64, vae_sample_size=512, heads=8, linear_projection=False,
                     upcast_attention=False),
    "tiny-sd2": dict(seed=12, sd1=False, sample_size=96, vae_sample_size=768,
                     heads=[c // SD2_HEAD_WIDTH for c in UNET_CHANNELS], linear_projection=True, upcast_attention=True),
}


def _without_layer(state, layer):
    """`state` without text encoder layer `layer` (keys with or without the "text_model." level)."""
    pattern = re.compile(rf"(^|\.)encoder\.layers\.{layer}\.")
    return {k: v for k, v in state.items() if not pattern.search(k)}


def _strip(state):
    return {k.removeprefix("text_model."): v for k, v in state.items()}


def _text_config(name, layers):
    from transformers import CLIPTextConfig

    model = MODELS[name]
    pad = FULL_VOCAB - 1 if model["pad_token"] == "<|endoftext|>" else 0
    return CLIPTextConfig(vocab_size=FULL_VOCAB, hidden_size=TEXT_HIDDEN, intermediate_size=4 * TEXT_HIDDEN,
                          num_hidden_layers=layers, num_attention_heads=TEXT_HIDDEN // 64, max_position_embeddings=77,
                          hidden_act=model["text_act"], projection_dim=TEXT_HIDDEN, pad_token_id=pad,
                          bos_token_id=FULL_VOCAB - 2, eos_token_id=FULL_VOCAB - 1)


def build(name):
    """The seeded single-file model of `name`: module objects (float16 weights) and their diffusers configs."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    spec = SPECS[name]
    seed = spec["seed"] * 100
    unet = UNet2DConditionModel(
        sample_size=spec["sample_size"], in_channels=4, out_channels=4, layers_per_block=UNET_LAYERS,
        norm_num_groups=NORM_GROUPS, block_out_channels=UNET_CHANNELS, down_block_types=UNET_DOWN,
        up_block_types=UNET_UP, cross_attention_dim=TEXT_HIDDEN, attention_head_dim=spec["heads"],
        use_linear_projection=spec["linear_projection"], upcast_attention=spec["upcast_attention"])
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=VAE_LAYERS, norm_num_groups=NORM_GROUPS,
        block_out_channels=VAE_CHANNELS, down_block_types=("DownEncoderBlock2D",) * len(VAE_CHANNELS),
        up_block_types=("UpDecoderBlock2D",) * len(VAE_CHANNELS), sample_size=spec["vae_sample_size"],
        scaling_factor=0.18215)
    # SD2 checkpoints hold one resblock more than the text encoder uses (it conditions on the penultimate layer).
    full_layers = TEXT_LAYERS + (0 if spec["sd1"] else 1)
    text = CLIPTextModel(_text_config(name, full_layers))
    unet = randomize(unet, seed + 1, attention_gain=UNET_ATTENTION_GAIN).half()
    vae = randomize(vae, seed + 2).half()
    text = randomize(text, seed + 4).eval().half()
    return dict(unet_model=unet, vae_model=vae, text_model=text, unet=f16(unet.state_dict()),
                vae=f16(vae.state_dict()), full_text=f16(text.state_dict()), unet_config=dict(unet.config),
                vae_config=dict(vae.config), full_layers=full_layers, seed=seed)


def save(name, built):
    """Writes the original-layout checkpoint; returns its path and the names of the extra tensors it carries."""
    state = {}
    state.update(ckpt.unet_to_original(built["unet"], built["unet_config"]))
    state.update(ckpt.vae_to_original(built["vae"], built["vae_config"]))
    extras = schedule_buffers()
    if SPECS[name]["sd1"]:
        state.update(ckpt.clip_to_original(built["full_text"]))
        extras[ckpt.CLIP_PREFIX + "text_model.embeddings.position_ids"] = torch.arange(77, dtype=torch.int64)[None]
    else:
        state.update(ckpt.clip_to_open_clip(built["full_text"], built["full_layers"]))
        g = torch.Generator().manual_seed(built["seed"] + 5)
        projection = torch.randn(TEXT_HIDDEN, TEXT_HIDDEN, generator=g) / math.sqrt(TEXT_HIDDEN)
        extras[ckpt.OPEN_CLIP_PREFIX + "text_projection"] = projection.to(torch.float16)
        extras[ckpt.OPEN_CLIP_PREFIX + "logit_scale"] = torch.tensor(math.log(1 / 0.07), dtype=torch.float16)
    assert not set(state) & set(extras)
    state.update(extras)
    path = FIXTURES / f"{name}.safetensors"
    save_file(state, str(path), metadata={"format": "pt"})
    path.chmod(0o644)
    return path, sorted(extras)


def write_sd2_yaml():
    """tiny-sd2.yaml in the format of Stability's v2-inference-v.yaml: the v parameterization and the head width,
    which shapes cannot tell."""
    header = ("# LDM config of Tests/AnySizeTests/Fixtures/tiny-sd2.safetensors, in the format of Stability's\n"
              "# v2-inference-v.yaml (written by tools/single_file_fixtures.py). The model is tiny and random: 32 and\n"
              "# 64 channels, heads 32 wide, text width 64; GroupNorm has LDM's 32 groups.\n")
    body = SD2_YAML[SD2_YAML.index("model:"):]
    body = body.replace("attention_resolutions: [ 4, 2, 1 ]", "attention_resolutions: [ 1 ]")
    body = body.replace("num_res_blocks: 2\n        channel_mult", f"num_res_blocks: {UNET_LAYERS}\n        channel_mult")
    body = body.replace("          num_res_blocks: 2\n", f"          num_res_blocks: {VAE_LAYERS}\n")
    text = header + body.format(
        model_channels=UNET_CHANNELS[0], channel_mult=", ".join(str(c // UNET_CHANNELS[0]) for c in UNET_CHANNELS),
        head_channels=SD2_HEAD_WIDTH, context_dim=TEXT_HIDDEN, vae_ch=VAE_CHANNELS[0],
        vae_mult="\n".join(f"          - {c // VAE_CHANNELS[0]}" for c in VAE_CHANNELS))
    path = FIXTURES / "tiny-sd2.yaml"
    path.write_text(text)
    return path


def config_folder(name, built, full_tokenizer, work):
    """A diffusers folder of the same models (weights included, it is temporary) with the full-vocabulary
    tokenizer, for from_single_file(config=...)."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel

    target = Path(work) / f"{name}-single-file-config"
    if target.exists():
        shutil.rmtree(target)
    text = CLIPTextModel(_text_config(name, TEXT_LAYERS)).half()
    text.load_state_dict(_without_layer(built["full_text"], TEXT_LAYERS), strict=True)
    pipe = StableDiffusionPipeline(vae=built["vae_model"], text_encoder=text, tokenizer=load_tokenizer(full_tokenizer),
                                   unet=built["unet_model"], scheduler=make_scheduler(MODELS[name]["scheduler"]),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(target), safe_serialization=True)
    shutil.rmtree(target / "tokenizer")
    shutil.copytree(full_tokenizer, target / "tokenizer")
    return target


def load_pipeline(name, config, dtype=torch.float32):
    from diffusers import StableDiffusionPipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return StableDiffusionPipeline.from_single_file(str(FIXTURES / f"{name}.safetensors"), config=str(config),
                                                        local_files_only=True, torch_dtype=dtype,
                                                        safety_checker=None)


def verify(name, path, yaml_path, built, config):
    """Our inverse map and diffusers' converter both give back the generated weights; every other tensor is one a
    loader must ignore; the yaml (SD2) describes the same UNet and VAE by diffusers' own yaml -> config mapping."""
    original = load_file(str(path))
    sd1 = SPECS[name]["sd1"]
    same(ckpt.unet_from_original(original, list(built["unet"]), built["unet_config"]), built["unet"],
         f"{name}: round trip unet")
    same(ckpt.vae_from_original(original, list(built["vae"]), built["vae_config"]), built["vae"],
         f"{name}: round trip vae")
    text = ckpt.clip_from_original(original) if sd1 else ckpt.open_clip_to_clip(original, built["full_layers"])
    same(_strip(text), _strip(built["full_text"]), f"{name}: round trip text")

    pipe = load_pipeline(name, config, torch.float16)
    same(pipe.unet.state_dict(), built["unet"], f"{name}: diffusers from_single_file unet")
    same(pipe.vae.state_dict(), built["vae"], f"{name}: diffusers from_single_file vae")
    same(_strip(pipe.text_encoder.state_dict()), _strip(_without_layer(built["full_text"], TEXT_LAYERS)),
         f"{name}: diffusers from_single_file text encoder")
    if yaml_path is not None:
        from diffusers.loaders.single_file_utils import (create_unet_diffusers_config_from_ldm,
                                                         create_vae_diffusers_config_from_ldm, fetch_original_config)

        original_config = fetch_original_config(str(yaml_path), local_files_only=True)
        for derived, config_dict in ((create_unet_diffusers_config_from_ldm(original_config, original),
                                      built["unet_config"]),
                                     (create_vae_diffusers_config_from_ldm(original_config, original),
                                      built["vae_config"])):
            for key, got_value in derived.items():
                want_value = config_dict.get(key)
                if key == "sample_size" or (got_value is None and want_value is None):
                    continue  # diffusers takes the size from the model type it detects, not from the yaml
                ok = (list(got_value) == list(want_value) if isinstance(want_value, (list, tuple))
                      else got_value == want_value)
                assert ok, f"{name}: yaml gives {key} = {got_value}, the model has {want_value}"
    print(f"{name}.safetensors: round trip, diffusers from_single_file and yaml verified")


def json_config(config):
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items() if not k.startswith("_")}


@torch.no_grad()
def reference_cases(name, config, cases):
    """Component cases of the single file, from diffusers' conversion of it (float32)."""
    short = name.removeprefix("tiny-")
    file = f"{short}_single_file.safetensors"
    pipe = load_pipeline(name, config)
    ids = token_ids(pipe.tokenizer)
    out = pipe.text_encoder(torch.tensor(ids), output_hidden_states=True)
    last = out.last_hidden_state
    encoder = getattr(pipe.text_encoder, "text_model", pipe.text_encoder)
    penultimate = encoder.final_layer_norm(out.hidden_states[-2])
    cases.add(file, name=f"{name}/text_encoder/single_file", model=name, weights="single_file",
              component="text_encoder", prompts=PROMPTS, input_ids=ids, inputs={},
              outputs={"last_hidden_state": cases.tensor(file, "text.last_hidden_state", last),
                       "penultimate_normed": cases.tensor(file, "text.penultimate_normed", penultimate)})
    context = cases.tensor(file, "encoder_hidden_states", last.clone())
    for index, (h, w) in enumerate(UNET_SIZES):
        sample = torch.randn((2, 4, h, w), generator=torch.Generator().manual_seed(4000 + 10 * index))
        sample_name = cases.tensor(file, f"{h}x{w}.sample", sample)
        outputs = []
        for t in UNET_TIMESTEPS:
            noise = pipe.unet(sample, torch.tensor(t), encoder_hidden_states=last).sample
            outputs.append(noise)
            cases.add(file, name=f"{name}/unet/single_file/{h}x{w}/t{t}", model=name, weights="single_file",
                      component="unet", timestep=t, inputs={"sample": sample_name, "encoder_hidden_states": context},
                      outputs={"noise_pred": cases.tensor(file, f"{h}x{w}.t{t}.noise_pred", noise)})
        # Degenerate weights would make cases that cannot fail: the timestep and the prompt must both matter.
        difference = (outputs[0] - outputs[1]).pow(2).mean().sqrt() / outputs[1].pow(2).mean().sqrt()
        assert difference > 0.02, f"{name}: timestep has no effect at {h}x{w}"
        swapped = pipe.unet(sample, torch.tensor(UNET_TIMESTEPS[0]), encoder_hidden_states=last.flip(0)).sample
        difference = (outputs[0] - swapped).pow(2).mean().sqrt() / swapped.pow(2).mean().sqrt()
        assert difference > 0.02, f"{name}: prompt has no effect at {h}x{w}"
    scale = pipe.vae.config.scaling_factor
    for index, (h, w) in enumerate(VAE_DECODE_SIZES):
        z = torch.randn((1, 4, h, w), generator=torch.Generator().manual_seed(5000 + 10 * index)) / scale
        cases.add(file, name=f"{name}/vae_decode/single_file/{h}x{w}", model=name, weights="single_file",
                  component="vae_decode", inputs={"latents": cases.tensor(file, f"decode.{h}x{w}.latents", z)},
                  outputs={"sample": cases.tensor(file, f"decode.{h}x{w}.sample", pipe.vae.decode(z).sample)})
    for index, (h, w) in enumerate(VAE_ENCODE_SIZES):
        image = torch.rand((1, 3, h, w), generator=torch.Generator().manual_seed(6000 + index)) * 2 - 1
        dist = pipe.vae.encode(image).latent_dist
        cases.add(file, name=f"{name}/vae_encode/single_file/{h}x{w}", model=name, weights="single_file",
                  component="vae_encode", inputs={"image": cases.tensor(file, f"encode.{h}x{w}.image", image)},
                  outputs={"mean": cases.tensor(file, f"encode.{h}x{w}.mean", dist.mean),
                           "std": cases.tensor(file, f"encode.{h}x{w}.std", dist.std)})
    return pipe


def write_all(full_tokenizers, work):
    """Builds, writes and verifies both single files, writes their reference cases and replaces the single-file
    parts of reference/index.json (folder cases, the e2e section and the folders' reference files are kept)."""
    from reference_fixtures import Cases

    cases = Cases()
    entries = {}
    for name in SPECS:
        built = build(name)
        path, extras = save(name, built)
        yaml_path = None if SPECS[name]["sd1"] else write_sd2_yaml()
        config = config_folder(name, built, full_tokenizers[name], work)
        verify(name, path, yaml_path, built, config)
        pipe = reference_cases(name, config, cases)
        entries[name] = {
            "single_file": path.name,
            "original_config": yaml_path.name if yaml_path else None,
            "single_file_ignored_tensors": extras,
            "single_file_unused_resblocks": list(range(TEXT_LAYERS, built["full_layers"])),
            "single_file_configs": {"unet": json_config(pipe.unet.config), "vae": json_config(pipe.vae.config),
                                    "text_encoder": {k: v for k, v in pipe.text_encoder.config.to_dict().items()
                                                     if k in ("vocab_size", "hidden_size", "intermediate_size",
                                                              "num_hidden_layers", "num_attention_heads",
                                                              "max_position_embeddings", "hidden_act")}},
            "note": "the single file is its own model (32 GroupNorm groups, 64-wide text heads: loads with nothing "
                    "beside it); cases with weights 'single_file' come from diffusers' from_single_file",
        }
        size = path.stat().st_size / 1e6
        print(f"{path.name}: {size:.1f} MB, UNet {UNET_CHANNELS}, VAE {VAE_CHANNELS}, text width {TEXT_HIDDEN}")
    cases.write()

    index_path = REFERENCE / "index.json"
    index = json.loads(index_path.read_text())
    index["cases"] = [c for c in index["cases"] if c.get("weights") != "single_file"] + cases.cases
    for name, entry in entries.items():
        index["models"][name].update(entry)
    write_json(index_path, index)
    # The single-file text cases used to live in the folders' text reference files: drop their tensors there.
    for name in SPECS:
        text_file = REFERENCE / f"{name.removeprefix('tiny-')}_text.safetensors"
        tensors = load_file(str(text_file))
        kept = {k: v for k, v in tensors.items() if not k.startswith("single_file.")}
        if len(kept) != len(tensors):
            save_file(kept, str(text_file), metadata={"format": "pt"})
    print(f"single-file references: {len(cases.cases)} cases")


def full_tokenizers(work):
    """The full-vocabulary CLIP tokenizer of each family (SD2 pads with "!"), written under `work`."""
    from make_fixtures import clip_bpe

    vocab, merges = clip_bpe(FULL_VOCAB - 512 - 2)
    result = {}
    for name in SPECS:
        folder = Path(work) / name / "tokenizer"
        write_tokenizer(folder, vocab, merges, MODELS[name]["pad_token"])
        result[name] = folder
    return result
