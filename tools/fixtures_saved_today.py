"""Writes Tests/AnySizeTests/Fixtures/tiny-sd1-saved/: the tiny-sd1 fixture folder loaded by diffusers and saved
again with `save_pretrained`, exactly as today's libraries write a folder (pinned: diffusers 0.42.1,
transformers 5.23; see tools/requirements.txt). transformers 5 writes the tokenizer as tokenizer.json (+
tokenizer_config.json) only, with no vocab.json / merges.txt, and the text encoder without the "text_model." key
level. The weights stay float16 and identical to tiny-sd1's, so tiny-sd1's end-to-end references apply.

Run from the repository root (called by tools/make_fixtures.py after it writes tiny-sd1/):
    /work/venv/bin/python tools/fixtures_saved_today.py
"""

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests" / "AnySizeTests" / "Fixtures"
SOURCE = FIXTURES / "tiny-sd1"
TARGET = FIXTURES / "tiny-sd1-saved"


def main():
    from diffusers import StableDiffusionPipeline

    torch.set_num_threads(1)
    pipe = StableDiffusionPipeline.from_pretrained(str(SOURCE), torch_dtype=torch.float16, safety_checker=None,
                                                   feature_extractor=None, requires_safety_checker=False)
    if TARGET.exists():
        shutil.rmtree(TARGET)
    pipe.save_pretrained(str(TARGET), safe_serialization=True)

    tokenizer_files = sorted(p.name for p in (TARGET / "tokenizer").iterdir())
    assert "tokenizer.json" in tokenizer_files and "vocab.json" not in tokenizer_files, tokenizer_files
    for component, name in [("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model")]:
        before = load_file(str(SOURCE / component / f"{name}.safetensors"))
        after = load_file(str(TARGET / component / f"{name}.safetensors"))
        assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before), component
    before = {k.removeprefix("text_model."): v for k, v in load_file(str(SOURCE / "text_encoder" / "model.safetensors")).items()}
    after = {k.removeprefix("text_model."): v for k, v in load_file(str(TARGET / "text_encoder" / "model.safetensors")).items()}
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before), "text_encoder"
    size = sum(p.stat().st_size for p in TARGET.rglob("*") if p.is_file())
    print(f"{TARGET.relative_to(ROOT)}: tokenizer files {tokenizer_files}, {size / 1e6:.2f} MB, weights equal to tiny-sd1's")


if __name__ == "__main__":
    main()
