"""End-to-end pipeline references for the tiny fixture models (run after make_fixtures.py, same environment):
    /tmp/anysize-fixtures/bin/python tools/fixtures_e2e.py

For each model (tiny-sd1, tiny-sd2), each sampler, txt2img at two sizes and img2img at the non-square one, diffusers'
StableDiffusionPipeline / StableDiffusionImg2ImgPipeline run in float32 with output_type="latent" and
generator=torch.Generator("cpu").manual_seed(SEED); the final latents (before the VAE, i.e. not divided by the
scaling factor) are stored. Writes reference/e2e_inputs.safetensors (the init image as uint8, the initial noise),
reference/e2e_<model>_<mode>.safetensors (float32 latents) and the "e2e" section of reference/index.json.

Random draws, all from the one generator of a run, in this order:
  txt2img: latents = randn([2, 4, h, w]) (then times the scheduler's init_noise_sigma);
  img2img: the VAE posterior sample (mean + std * randn([2, 4, h, w])), then noise = randn([2, 4, h, w]) for
           scheduler.add_noise; the init image is the same picture twice (batch of 2);
  ancestral samplers then draw randn([2, 4, h, w]) once per step.
"""

import json

import numpy as np
import PIL.Image
import torch
from safetensors.torch import save_file

from make_fixtures import FIXTURES, PROMPTS, REFERENCE, write_json

SEED = 42
STEPS = 5
GUIDANCE = 7.5
STRENGTH = 0.6
NEGATIVE_PROMPTS = ["blurry, low quality", ""]
TXT2IMG_SIZES = [(64, 64), (200, 136)]  # pixels (height, width): 8x8 and 25x17 latents
IMG2IMG_SIZE = (200, 136)

# name -> (diffusers class, config overrides)
SAMPLERS = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_karras": ("EulerDiscreteScheduler", {"use_karras_sigmas": True}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "heun_karras": ("HeunDiscreteScheduler", {"use_karras_sigmas": True}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler",
                        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
    "ddim": ("DDIMScheduler", {}),
}


def init_image(height, width):
    """A seeded smooth picture (uint8 [height, width, 3]): low-resolution noise upsampled bilinearly, plus
    fine noise."""
    g = torch.Generator().manual_seed(7)
    coarse = torch.rand((1, 3, height // 8, width // 8), generator=g)
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    fine = torch.rand((1, 3, height, width), generator=g) * 0.2 - 0.1
    pixels = ((smooth + fine).clamp(0, 1) * 255).round().to(torch.uint8)
    return pixels[0].permute(1, 2, 0).contiguous()


def scheduler_for(folder_config, sampler):
    """The sampler built as diffusers users do: from_config on the folder's scheduler config (never on the
    previous sampler's config, whose overrides would carry over)."""
    import diffusers

    class_name, overrides = SAMPLERS[sampler]
    return getattr(diffusers, class_name).from_config(folder_config, **overrides)


def ids(tokenizer, texts):
    return tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True).input_ids


def effective_config(scheduler):
    return {k: v for k, v in dict(scheduler.config).items() if not k.startswith("_")}


@torch.no_grad()
def run(pipe, folder_config, sampler, height, width, image=None):
    pipe.scheduler = scheduler_for(folder_config, sampler)
    generator = torch.Generator("cpu").manual_seed(SEED)
    common = dict(prompt=PROMPTS, negative_prompt=NEGATIVE_PROMPTS, num_inference_steps=STEPS,
                  guidance_scale=GUIDANCE, generator=generator, output_type="latent")
    if sampler == "ddim":
        common["eta"] = 0.0
    if image is None:
        latents = pipe(height=height, width=width, **common).images
    else:
        latents = pipe(image=image, strength=STRENGTH, **common).images
    scheduler = pipe.scheduler
    record = {
        "scheduler_class": type(scheduler).__name__,
        "scheduler_config": effective_config(scheduler),
        "timesteps": [float(t) for t in scheduler.timesteps],
    }
    if hasattr(scheduler, "sigmas"):
        record["sigmas"] = [float(s) for s in scheduler.sigmas]
    return latents, record


def main():
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

    torch.set_num_threads(2)
    inputs = {}
    for height, width in TXT2IMG_SIZES:
        noise = torch.randn((2, 4, height // 8, width // 8), generator=torch.Generator("cpu").manual_seed(SEED))
        inputs[f"noise.{height // 8}x{width // 8}"] = noise
    picture = init_image(*IMG2IMG_SIZE)
    inputs["init_image"] = picture.permute(2, 0, 1)[None].contiguous()  # uint8 [1, 3, H, W]
    save_file(inputs, str(REFERENCE / "e2e_inputs.safetensors"), metadata={"format": "pt"})
    pil = PIL.Image.fromarray(picture.numpy())

    cases = []
    tokens = {}
    for name in ("tiny-sd1", "tiny-sd2"):
        short = name.removeprefix("tiny-")
        txt2img = StableDiffusionPipeline.from_pretrained(str(FIXTURES / name), torch_dtype=torch.float32,
                                                          local_files_only=True)
        img2img = StableDiffusionImg2ImgPipeline(**txt2img.components)
        folder_config = dict(txt2img.scheduler.config)
        for pipe in (txt2img, img2img):
            pipe.set_progress_bar_config(disable=True)
        tokenizer = txt2img.tokenizer
        tokens[name] = {"input_ids": ids(tokenizer, PROMPTS), "negative_input_ids": ids(tokenizer, NEGATIVE_PROMPTS)}
        for mode, pipe, sizes in (("txt2img", txt2img, TXT2IMG_SIZES), ("img2img", img2img, [IMG2IMG_SIZE])):
            file = f"e2e_{short}_{mode}.safetensors"
            tensors = {}
            for height, width in sizes:
                latent = f"{height // 8}x{width // 8}"
                for sampler in SAMPLERS:
                    image = [pil, pil] if mode == "img2img" else None
                    latents, record = run(pipe, folder_config, sampler, height, width, image)
                    assert torch.isfinite(latents).all(), (name, mode, sampler)
                    tensor = f"{sampler}.{latent}.latents"
                    tensors[tensor] = latents.float().contiguous()
                    case = {"name": f"{name}/{mode}/{sampler}/{latent}", "model": name, "mode": mode,
                            "sampler": sampler, "height": height, "width": width,
                            "latent_size": [height // 8, width // 8], "file": file, "output": tensor,
                            "output_stats": {"max_abs": float(latents.abs().max()),
                                             "rms": float(latents.pow(2).mean().sqrt())}}
                    if mode == "txt2img":
                        case["initial_noise"] = f"noise.{latent}"
                    else:
                        init_steps = min(int(STEPS * STRENGTH), STEPS)
                        case["t_start"] = STEPS - init_steps  # index into timesteps (times the scheduler order)
                        case["denoising_steps"] = init_steps
                    case.update(record)
                    cases.append(case)
                    print(f"{case['name']}: rms {case['output_stats']['rms']:.3f}")
            save_file(tensors, str(REFERENCE / file), metadata={"format": "pt"})

    index_path = REFERENCE / "index.json"
    index = json.loads(index_path.read_text())
    index["e2e"] = {
        "generated_by": "tools/fixtures_e2e.py",
        "inputs_file": "e2e_inputs.safetensors",
        "seed": SEED,
        "steps": STEPS,
        "guidance_scale": GUIDANCE,
        "strength": STRENGTH,
        "ddim_eta": 0.0,
        "prompts": PROMPTS,
        "negative_prompts": NEGATIVE_PROMPTS,
        "token_ids": tokens,  # per model: what its folder tokenizer produced for the prompts
        "init_image": {"tensor": "init_image", "dtype": "uint8 [1, 3, H, W]",
                       "preprocess": "float32(x) / 255 * 2 - 1 (diffusers VaeImageProcessor), same image twice"},
        "rng": "one torch.Generator('cpu').manual_seed(seed) per run; txt2img: latents = randn([2, 4, h, w]) "
               "(stored as initial_noise) times init_noise_sigma; img2img: VAE posterior sample randn first, then "
               "add_noise's randn; ancestral samplers: one randn([2, 4, h, w]) per step",
        "output": "final latents as the pipeline returns them with output_type='latent' (not divided by the VAE "
                  "scaling factor)",
        "cases": cases,
    }
    write_json(index_path, index)
    total = sum(p.stat().st_size for p in REFERENCE.glob("e2e_*.safetensors"))
    print(f"e2e: {len(cases)} cases, {total / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
