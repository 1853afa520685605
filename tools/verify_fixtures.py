"""Checks run by make_fixtures.py on the folders it wrote: they load back with the exact weights. (The single files
are checked by tools/single_file_fixtures.py.)"""

import torch


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
