"""End-to-end pipeline references for the tiny fixture models (run after make_fixtures.py, same environment):
    /tmp/anysize-fixtures/bin/python tools/fixtures_e2e.py [--single-files]
(--single-files: only the single-file cases, replaced in index.json; the folder cases and files are kept.)

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

Conditioning: every case is also run in float64 (the same float32 random draws, cast), and its float32 result's
deviation from that run, normalised by max(1, max|float64 latents|), is stored as `float64_error`. A reference
whose own float32 rounding moves it by a sizeable part of the test's 1e-3 bound cannot judge another float32
implementation, so the script refuses cases above CONDITIONING_LIMIT (a quarter of the bound). The tiny models'
UNet's attention gain in make_fixtures.py was chosen with this measurement.

Single-file layout: for a subset of samplers, the same runs through StableDiffusionPipeline.from_single_file on
Fixtures/tiny-sd*.safetensors, which are models of their own (tools/single_file_fixtures.py; offline, with a
temporary diffusers config folder of the same models, so diffusers' converter maps the keys) and samplers built
from SD 1.5's published scheduler config (SD15_SCHEDULER_CONFIG). These cases have `"weights": "single_file"` and
their own token ids.
"""

import json
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from safetensors.torch import save_file

import single_file_fixtures
from make_fixtures import FIXTURES, PROMPTS, REFERENCE, write_json

SEED = 42
STEPS = 5
# Guidance 3: with the UNet's attention gain at 0.75 (make_fixtures.py) every case's float32-vs-float64 error is
# at most ~2e-5 at guidance 3, while at 7.5 DDIM on tiny-sd1 (8x8 latents) still reached 4.9e-4.
GUIDANCE = 3.0
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


CONDITIONING_LIMIT = 2.5e-4  # float64_error above this: the case cannot judge a float32 implementation
SINGLE_FILE_SAMPLERS = ["euler_a", "heun", "dpmpp_2m_karras"]  # txt2img at the non-square size, plus img2img
# A single file carries no scheduler config: samplers are built with from_config on SD 1.5's
# scheduler/scheduler_config.json as published (no timestep_spacing key, so each class's default applies) with
# the family's prediction type, as AnySize does (SchedulerConfig.sd15Default).
SD15_SCHEDULER_CONFIG = {"_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
                         "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "set_alpha_to_one": False,
                         "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None, "clip_sample": False}


def float32_draws():
    """Makes diffusers draw every random tensor in float32 and cast it, wherever randn_tensor is imported, so a
    float64 pipeline sees the same numbers as the float32 one (torch.randn in float64 gives other values)."""
    import importlib

    import diffusers.utils.torch_utils as torch_utils

    # diffusers imports lazily: load every module that draws in these runs now, so the scan below patches it.
    for name in ("pipelines.stable_diffusion.pipeline_stable_diffusion",
                 "pipelines.stable_diffusion.pipeline_stable_diffusion_img2img",
                 "schedulers.scheduling_euler_ancestral_discrete", "models.autoencoders.vae"):
        importlib.import_module("diffusers." + name)
    original = torch_utils.randn_tensor

    def randn_float32(shape, generator=None, device=None, dtype=None, layout=None):
        return original(shape, generator=generator, device=device, dtype=torch.float32,
                        layout=layout).to(dtype or torch.float32)

    for module in list(sys.modules.values()):
        if getattr(module, "randn_tensor", None) is original:
            module.randn_tensor = randn_float32


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


def pipelines(name, single_file_config=None):
    """{dtype: (txt2img, img2img)} for the folder, or for the single file when given its full-vocabulary config."""
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

    result = {}
    for dtype in (torch.float32, torch.float64):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if single_file_config is None:
                txt2img = StableDiffusionPipeline.from_pretrained(str(FIXTURES / name), torch_dtype=dtype,
                                                                  local_files_only=True)
            else:
                txt2img = StableDiffusionPipeline.from_single_file(
                    str(FIXTURES / f"{name}.safetensors"), config=str(single_file_config), local_files_only=True,
                    torch_dtype=dtype, safety_checker=None)
        img2img = StableDiffusionImg2ImgPipeline(**txt2img.components)
        for pipe in (txt2img, img2img):
            pipe.set_progress_bar_config(disable=True)
        result[dtype] = (txt2img, img2img)
    return result


def main():
    import argparse

    parser = argparse.ArgumentParser(description="End-to-end pipeline references for the tiny fixture models.")
    parser.add_argument("--single-files", action="store_true", help="only the single-file cases")
    args = parser.parse_args()
    torch.set_num_threads(2)
    float32_draws()
    inputs = {}
    for height, width in TXT2IMG_SIZES:
        noise = torch.randn((2, 4, height // 8, width // 8), generator=torch.Generator("cpu").manual_seed(SEED))
        inputs[f"noise.{height // 8}x{width // 8}"] = noise
    picture = init_image(*IMG2IMG_SIZE)
    inputs["init_image"] = picture.permute(2, 0, 1)[None].contiguous()  # uint8 [1, 3, H, W]
    if not args.single_files:
        save_file(inputs, str(REFERENCE / "e2e_inputs.safetensors"), metadata={"format": "pt"})
    pil = PIL.Image.fromarray(picture.numpy())

    work = Path(tempfile.mkdtemp())
    full_tokenizers = single_file_fixtures.full_tokenizers(work)
    cases = []
    tokens = {}
    for name in ("tiny-sd1", "tiny-sd2"):
        short = name.removeprefix("tiny-")
        single_file_config = single_file_fixtures.config_folder(name, single_file_fixtures.build(name),
                                                                full_tokenizers[name], work)
        layouts = [] if args.single_files else [("folder", pipelines(name), "", TXT2IMG_SIZES, list(SAMPLERS))]
        layouts.append(("single_file", pipelines(name, single_file_config), "_single_file", [IMG2IMG_SIZE],
                        SINGLE_FILE_SAMPLERS))
        for weights, pipes, suffix, txt2img_sizes, samplers in layouts:
            txt2img = pipes[torch.float32][0]
            folder_config = dict(txt2img.scheduler.config)
            if weights == "single_file":
                folder_config = dict(SD15_SCHEDULER_CONFIG, prediction_type=folder_config["prediction_type"])
            token_ids = {"input_ids": ids(txt2img.tokenizer, PROMPTS),
                         "negative_input_ids": ids(txt2img.tokenizer, NEGATIVE_PROMPTS)}
            if weights == "folder":
                tokens[name] = token_ids
            for mode, index, sizes in (("txt2img", 0, txt2img_sizes), ("img2img", 1, [IMG2IMG_SIZE])):
                file = f"e2e_{short}_{mode}{suffix}.safetensors"
                tensors = {}
                for height, width in sizes:
                    latent = f"{height // 8}x{width // 8}"
                    for sampler in samplers:
                        image = [pil, pil] if mode == "img2img" else None
                        latents, record = run(pipes[torch.float32][index], folder_config, sampler, height, width,
                                              image)
                        exact, _ = run(pipes[torch.float64][index], folder_config, sampler, height, width, image)
                        assert torch.isfinite(latents).all(), (name, mode, sampler)
                        error = (latents.double() - exact).abs().max().item() / max(1.0, exact.abs().max().item())
                        tensor = f"{sampler}.{latent}.latents"
                        tensors[tensor] = latents.float().contiguous()
                        layout = "" if weights == "folder" else " (single file)"
                        case = {"name": f"{name}/{mode}/{sampler}/{latent}", "model": name, "weights": weights,
                                "mode": mode, "sampler": sampler, "height": height, "width": width,
                                "latent_size": [height // 8, width // 8], "file": file, "output": tensor,
                                "output_stats": {"max_abs": float(latents.abs().max()),
                                                 "rms": float(latents.pow(2).mean().sqrt())},
                                "float64_error": error}
                        if weights == "single_file":
                            case.update(token_ids)
                        if mode == "txt2img":
                            case["initial_noise"] = f"noise.{latent}"
                        else:
                            init_steps = min(int(STEPS * STRENGTH), STEPS)
                            case["t_start"] = STEPS - init_steps  # index into timesteps (times the scheduler order)
                            case["denoising_steps"] = init_steps
                        case.update(record)
                        cases.append(case)
                        print(f"{case['name']}{layout}: rms {case['output_stats']['rms']:.3f}, "
                              f"float32 vs float64 {error:.2e}", flush=True)
                save_file(tensors, str(REFERENCE / file), metadata={"format": "pt"})
    shutil.rmtree(work)

    index_path = REFERENCE / "index.json"
    index = json.loads(index_path.read_text())
    if args.single_files:  # keep the folder cases and their token ids
        tokens = index["e2e"]["token_ids"]
        cases = [c for c in index["e2e"]["cases"] if c["weights"] != "single_file"] + cases
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
        "conditioning": f"float64_error: the float32 reference's deviation from the same run in float64, "
                        f"normalised by max(1, max|float64|); every case is at most {CONDITIONING_LIMIT}",
        "cases": cases,
    }
    write_json(index_path, index)
    total = sum(p.stat().st_size for p in REFERENCE.glob("e2e_*.safetensors"))
    print(f"e2e: {len(cases)} cases, {total / 1e3:.0f} kB")
    worst = sorted(cases, key=lambda c: -c["float64_error"])[:5]
    print("worst conditioned: " + ", ".join(f"{c['name']} {c['float64_error']:.2e}" for c in worst))
    bad = [c["name"] + (" (single file)" if c["weights"] == "single_file" else "") for c in cases
           if c["float64_error"] > CONDITIONING_LIMIT]
    assert not bad, f"ill-conditioned reference cases (float64_error > {CONDITIONING_LIMIT}): {bad}"


if __name__ == "__main__":
    main()
