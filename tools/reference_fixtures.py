"""Component reference tensors for the tiny fixture models (called by make_fixtures.py).

Writes Fixtures/reference/<model>_{text,unet,vae}.safetensors (float32) and reference/index.json (the single files'
cases are added by single_file_fixtures.py). Each case names
its inputs and outputs (tensor names inside its file) and its scalar inputs; the Swift tests feed exactly the stored
inputs. Models are loaded from the written fixture files in float32, so the weights are the stored f16 values.
"""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from make_fixtures import (FIXTURES, MODELS, PROMPTS, REFERENCE, load_tokenizer, token_ids,
                           write_json)

UNET_SIZES = [(8, 8), (25, 25), (24, 40)]
UNET_TIMESTEPS = [981, 1]
VAE_DECODE_SIZES = [(8, 8), (7, 5)]
VAE_ENCODE_SIZES = [(64, 64), (72, 40)]


def seeded(shape, seed, scale=1.0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale


def relative_difference(a, b):
    return float((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt())


def stats(t):
    return {"max_abs": float(t.abs().max()), "rms": float(t.pow(2).mean().sqrt())}


class Cases:
    def __init__(self):
        self.cases = []
        self.files = {}

    def tensor(self, file, name, value):
        self.files.setdefault(file, {})[name] = value.detach().float().contiguous()
        return name

    def add(self, file, **case):
        case["file"] = file
        case["output_stats"] = {n: stats(self.files[file][n]) for n in case["outputs"].values()}
        self.cases.append(case)

    def write(self):
        for file, tensors in self.files.items():
            save_file(tensors, str(REFERENCE / file), metadata={"format": "pt"})


@torch.no_grad()
def text_outputs(model, ids):
    out = model(torch.tensor(ids), output_hidden_states=True)
    # diffusers' clip_skip=1 (A1111 "CLIP skip 2"): penultimate layer's output through the final layer norm.
    return out.last_hidden_state, model.final_layer_norm(out.hidden_states[-2])


def text_cases(cases, name, pipe):
    short = name.removeprefix("tiny-")
    file = f"{short}_text.safetensors"
    sources = [("folder", pipe.text_encoder, load_tokenizer(FIXTURES / name / "tokenizer"))]
    result = {}
    for weights, model, tokenizer in sources:
        ids = token_ids(tokenizer)
        last, penultimate = text_outputs(model, ids)
        result[weights] = (ids, last)
        cases.add(file, name=f"{name}/text_encoder/{weights}", model=name, weights=weights,
                  component="text_encoder", prompts=PROMPTS, input_ids=ids, inputs={},
                  outputs={"last_hidden_state": cases.tensor(file, f"{weights}.last_hidden_state", last),
                           "penultimate_normed": cases.tensor(file, f"{weights}.penultimate_normed", penultimate)})
    return result


@torch.no_grad()
def unet_cases(cases, name, pipe, context):
    short = name.removeprefix("tiny-")
    file = f"{short}_unet.safetensors"
    context_name = cases.tensor(file, "encoder_hidden_states", context)
    for index, (h, w) in enumerate(UNET_SIZES):
        sample = seeded((2, 4, h, w), 1000 + 10 * index + MODELS[name]["seed"])
        sample_name = cases.tensor(file, f"{h}x{w}.sample", sample)
        outputs = []
        for t in UNET_TIMESTEPS:
            out = pipe.unet(sample, torch.tensor(t), encoder_hidden_states=context).sample
            outputs.append(out)
            cases.add(file, name=f"{name}/unet/{h}x{w}/t{t}", model=name, weights="folder", component="unet",
                      timestep=t, inputs={"sample": sample_name, "encoder_hidden_states": context_name},
                      outputs={"noise_pred": cases.tensor(file, f"{h}x{w}.t{t}.noise_pred", out)})
        # Guard against degenerate weights: the timestep and the prompt must both matter.
        assert relative_difference(outputs[0], outputs[1]) > 0.02, f"{name}: timestep has no effect at {h}x{w}"
        swapped = pipe.unet(sample, torch.tensor(UNET_TIMESTEPS[0]), encoder_hidden_states=context.flip(0)).sample
        assert relative_difference(outputs[0], swapped) > 0.02, f"{name}: prompt has no effect at {h}x{w}"


@torch.no_grad()
def vae_cases(cases, name, pipe):
    short = name.removeprefix("tiny-")
    file = f"{short}_vae.safetensors"
    scale = pipe.vae.config.scaling_factor
    for index, (h, w) in enumerate(VAE_DECODE_SIZES):
        # The decoder input is the sampler's latent divided by the scaling factor.
        z = seeded((1, 4, h, w), 2000 + 10 * index + MODELS[name]["seed"], 1 / scale)
        out = pipe.vae.decode(z).sample
        cases.add(file, name=f"{name}/vae_decode/{h}x{w}", model=name, weights="folder", component="vae_decode",
                  inputs={"latents": cases.tensor(file, f"decode.{h}x{w}.latents", z)},
                  outputs={"sample": cases.tensor(file, f"decode.{h}x{w}.sample", out)})
    for index, (h, w) in enumerate(VAE_ENCODE_SIZES):
        image = torch.rand((1, 3, h, w), generator=torch.Generator().manual_seed(3000 + index)) * 2 - 1
        dist = pipe.vae.encode(image).latent_dist
        cases.add(file, name=f"{name}/vae_encode/{h}x{w}", model=name, weights="folder", component="vae_encode",
                  inputs={"image": cases.tensor(file, f"encode.{h}x{w}.image", image)},
                  outputs={"mean": cases.tensor(file, f"encode.{h}x{w}.mean", dist.mean),
                           "std": cases.tensor(file, f"encode.{h}x{w}.std", dist.std)})


def versions():
    import diffusers
    import safetensors
    import transformers

    return {"torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
            "safetensors": safetensors.__version__}


def write_all(info):
    from diffusers import StableDiffusionPipeline

    REFERENCE.mkdir(parents=True, exist_ok=True)
    for old in REFERENCE.glob("*_*.safetensors"):
        if not old.name.startswith("e2e_"):
            old.unlink()
    cases = Cases()
    models = {}
    for name in info:
        pipe = StableDiffusionPipeline.from_pretrained(str(FIXTURES / name), torch_dtype=torch.float32,
                                                       local_files_only=True)
        text = text_cases(cases, name, pipe)
        unet_cases(cases, name, pipe, text["folder"][1])
        vae_cases(cases, name, pipe)
        unet = pipe.unet.config
        models[name] = {
            "folder": name,
            "prediction_type": pipe.scheduler.config.prediction_type,
            "scheduler": type(pipe.scheduler).__name__,
            "trained_latent_size": [unet.sample_size, unet.sample_size],
            "vae_scaling_factor": pipe.vae.config.scaling_factor,
            "text_encoder_key_prefix": "text_model." if MODELS[name]["text_model_prefix"] else "",
        }
    cases.write()
    index = {
        "format": 1,
        "generated_by": "tools/make_fixtures.py",
        "versions": versions(),
        "dtype": "float32 tensors; model weights are the stored float16 values widened to float32",
        "prompts": PROMPTS,
        "models": models,
        "cases": cases.cases,
    }
    e2e = REFERENCE / "index.json"
    if e2e.exists():  # keep the end-to-end section that fixtures_e2e.py adds
        previous = json.loads(e2e.read_text())
        if "e2e" in previous:
            index["e2e"] = previous["e2e"]
    write_json(e2e, index)
    print(f"reference: {len(cases.cases)} cases")
