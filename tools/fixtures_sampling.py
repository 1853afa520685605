#!/usr/bin/env python3
"""Reference data for AnySize's Sampling/ (TorchRandom and the schedulers).

Writes Tests/AnySizeTests/Fixtures/sampling/{randn.json, schedules.json, loops.json}.
Float arrays are stored as base64 of little-endian float32 ("f32") or float64 ("f64").

Pinned versions: torch 2.15.0, diffusers 0.42.1 (see the check below). torch's CPU `normal_`
for >= 16 float32 values takes a vectorised path whose exact bits depend on the CPU build
(AVX2/AVX512 vs. the portable build); these fixtures come from an x86-64 AVX2/AVX512 machine.

Run: /work/venv/bin/python tools/fixtures_sampling.py
"""
import base64
import json
import os

import numpy as np
import torch
import diffusers
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
)

assert torch.__version__.startswith("2.15."), torch.__version__
assert diffusers.__version__ == "0.42.1", diffusers.__version__

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "AnySizeTests", "Fixtures", "sampling")

# Stable Diffusion 1.5's scheduler_config.json (a PNDMScheduler config) and SD 2.1 (768, v-prediction).
SD1_CONFIG = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}
SD2V_CONFIG = {
    "_class_name": "DDIMScheduler",
    "_diffusers_version": "0.8.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}

SAMPLERS = {
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "heun": HeunDiscreteScheduler,
    "dpmpp_2m": DPMSolverMultistepScheduler,
    "ddim": DDIMScheduler,
}
KARRAS_OK = {"euler", "heun", "dpmpp_2m"}
SHAPE = [1, 4, 5, 7]


def f32(x):
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(-1))
    return base64.b64encode(a.astype("<f4").tobytes()).decode()


def f64(x):
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float64).reshape(-1))
    return base64.b64encode(a.astype("<f8").tobytes()).decode()


def randn_fixture():
    shapes = [[1], [3], [15], [16], [17], [2, 4, 8, 8], [1, 4, 25, 17], [2, 4, 13, 11], [5, 7]]
    cases = []
    for seed in [0, 42, 1234, 2**32 + 5]:
        for shape in shapes:
            g = torch.Generator("cpu").manual_seed(seed)
            cases.append({"seed": seed, "shape": shape, "values": f32(torch.randn(shape, generator=g))})
    # Successive draws on one generator: the stream (and the cached second Box-Muller value of the
    # scalar path) carries over between calls.
    sequence_shapes = [[3], [1], [16], [1], [2, 4, 5, 7], [5], [17], [1], [2], [33]]
    g = torch.Generator("cpu").manual_seed(7)
    sequence = [{"shape": s, "values": f32(torch.randn(s, generator=g))} for s in sequence_shapes]
    g = torch.Generator("cpu").manual_seed(7)
    rand = f32(torch.rand([40], generator=g))
    return {"cases": cases, "sequence": {"seed": 7, "draws": sequence}, "rand": {"seed": 7, "shape": [40], "values": rand}}


def make(sampler, config, karras, prediction=None):
    kwargs = {}
    if karras:
        kwargs["use_karras_sigmas"] = True
    if prediction is not None:
        kwargs["prediction_type"] = prediction
    return SAMPLERS[sampler].from_config(config, **kwargs)


def call_sigmas(sampler, sched, timesteps):
    """The noise level of each model call."""
    if sampler == "ddim":
        ac = sched.alphas_cumprod
        return [float(((1 - ac[int(t)]) / ac[int(t)]) ** 0.5) for t in timesteps]
    offset = len(sched.timesteps) - len(timesteps)
    return [float(sched.sigmas[offset + i]) for i in range(len(timesteps))]


def schedules_fixture():
    ref = EulerDiscreteScheduler.from_config(SD1_CONFIG)
    out = {"alphas_cumprod_sd1": f32(ref.alphas_cumprod), "schedules": []}
    for sampler in SAMPLERS:
        for karras in ([False, True] if sampler in KARRAS_OK else [False]):
            for spacing in [None, "leading", "linspace", "trailing"]:
                config = dict(SD1_CONFIG)
                if spacing is not None:
                    config["timestep_spacing"] = spacing
                for steps in [1, 4, 13]:
                    sched = make(sampler, config, karras)
                    sched.set_timesteps(steps)
                    ts = sched.timesteps.numpy().astype(np.float64)
                    entry = {
                        "sampler": sampler, "karras": karras, "timestep_spacing": spacing, "steps": steps,
                        "timesteps": f64(ts),
                        "call_sigmas": f32(call_sigmas(sampler, sched, ts)),
                        "init_noise_sigma": float(sched.init_noise_sigma),
                    }
                    if sampler != "ddim":
                        entry["sigmas"] = f32(sched.sigmas)
                    out["schedules"].append(entry)
    return out


def fake_denoiser(x_in, t):
    """A deterministic stand-in for the UNet: smooth, bounded, depends on the timestep."""
    return 0.3 * torch.tanh(x_in) + 0.01 * float(t) / 1000.0


def run_loop(sampler, sched, latents, timesteps, generator):
    """Runs the sampling loop; returns the final latents and, after each call, the values of channel 0
    (the schedulers and the fake denoiser are elementwise, so a slice checks every step)."""
    outputs = []
    for t in timesteps:
        x_in = sched.scale_model_input(latents, t)
        model_output = fake_denoiser(x_in, t)
        kwargs = {"generator": generator} if sampler == "euler_a" else {}
        latents = sched.step(model_output, t, latents, **kwargs).prev_sample
        outputs.append(f32(latents[:, 0]))
    return latents, outputs


def loops_fixture():
    runs = []
    steps = 6
    seed = 1234
    original = torch.linspace(-1.2, 1.1, 140, dtype=torch.float32).reshape(SHAPE).sin() * 0.9
    for config_name, config in [("sd1", SD1_CONFIG), ("sd2v", SD2V_CONFIG)]:
        for prediction in ["epsilon", "v_prediction"]:
            for sampler in SAMPLERS:
                for karras in ([False, True] if sampler in KARRAS_OK else [False]):
                    for mode in ["txt2img", "img2img"]:
                        sched = make(sampler, config, karras, prediction)
                        sched.set_timesteps(steps)
                        g = torch.Generator("cpu").manual_seed(seed)
                        run = {"sampler": sampler, "karras": karras, "config": config_name,
                               "prediction": prediction, "mode": mode, "steps": steps, "seed": seed}
                        if mode == "txt2img":
                            timesteps = sched.timesteps
                            start = torch.randn(SHAPE, generator=g) * sched.init_noise_sigma
                        else:
                            strength = 0.5
                            # StableDiffusionImg2ImgPipeline.get_timesteps
                            init_timestep = min(int(steps * strength), steps)
                            t_start = max(steps - init_timestep, 0)
                            timesteps = sched.timesteps[t_start * sched.order:]
                            if hasattr(sched, "set_begin_index"):
                                sched.set_begin_index(t_start * sched.order)
                            noise = torch.randn(SHAPE, generator=g)
                            start = sched.add_noise(original, noise, timesteps[:1])
                            run["strength"] = strength
                        run["timesteps"] = f64(timesteps.numpy().astype(np.float64))
                        run["call_sigmas"] = f32(call_sigmas(sampler, sched, timesteps))
                        run["start"] = f32(start)
                        final, outputs = run_loop(sampler, sched, start, timesteps, g)
                        run["outputs_channel0"] = outputs
                        run["final"] = f32(final)
                        runs.append(run)
    return {"configs": {"sd1": SD1_CONFIG, "sd2v": SD2V_CONFIG}, "shape": SHAPE, "original": f32(original),
            "runs": runs}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in [("randn", randn_fixture()), ("schedules", schedules_fixture()), ("loops", loops_fixture())]:
        path = os.path.join(OUT, name + ".json")
        with open(path, "w") as f:
            json.dump(data, f, separators=(",", ":"))
        print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
