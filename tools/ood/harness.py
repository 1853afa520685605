"""OOD quality harness: generates with the AnySize binary at several canvas sizes and methods, then measures.

    /work/venv/bin/python tools/ood/harness.py --binary .build/release/anysize --out /tmp/ood-run \
        [--sizes 0.5,1,1.5,2,3,2x1] [--attention standard,scaled,local] [--compose none,redilate,...] [--seeds 32]

For every size x method it runs `anysize generate` on the toy model (Tests/AnySizeTests/Fixtures/ood-toy by
default) with --save-latents and --output, then scores the latents with metric.py and writes, under --out:
  table.md, table.csv      one row per size and method: the metric's classes (one / malformed / duplicates /
                           empty), mean objects per image, colour drift, seconds per image;
  per-image.csv            every image's measurement;
  grids/SIZE.png           per size: one row per method, the first --grid-columns images of that method;
  runs/SIZE/METHOD/        the PNGs and latents AnySize wrote, and its log.
Sizes are factors of the trained side (--trained, 128 px): "2" is 2x by 2x, "2x1" is 2x wide and 1x tall; sides
round to multiples of 8 (AnySize's rule) and at least 64. A method is an --attention value, optionally with a
--compose value ("scaled+hires"); --compose is passed only when --compose values are given. A --compose value
the binary rejects at a size (non-zero exit naming --compose, e.g. resize above the trained size) is skipped at
that size and listed as rejected.
Seeds: image i of a method uses prompt PROMPTS[i % 4] and seed --seed-base + i; the images of one prompt run as
one batch (--batch-size), so AnySize numbers the batch's seeds itself (same for every method and size).
"""

import argparse
import csv
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import metric  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_MODEL = ROOT / "Tests" / "AnySizeTests" / "Fixtures" / "ood-toy"
PROMPTS = ["a red disc", "a yellow square", "a blue triangle", "a purple disc"]


def parse_size(text, trained):
    """'2' -> (2 * trained, 2 * trained); '2x1' -> (2 * trained wide, trained tall), rounded to multiples of 8."""
    parts = text.split("x")
    fx, fy = (float(parts[0]), float(parts[-1])) if len(parts) == 2 else (float(text), float(text))

    def side(f):
        return max(64, int(round(f * trained / 8)) * 8)

    return side(fx), side(fy)


def run_method(args, size_name, width, height, attention, compose, folder):
    """Generates every image of one size x method; returns (latent files, png files, seconds, error or None)."""
    folder.mkdir(parents=True, exist_ok=True)
    per_prompt = -(-args.seeds // len(PROMPTS))
    latents, pngs, seconds = [], [], 0.0
    log = open(folder / "anysize.log", "w")
    for k, prompt in enumerate(PROMPTS):
        count = min(per_prompt, args.seeds - k * per_prompt)
        if count <= 0:
            break
        stem = folder / f"p{k}"
        command = [args.binary, "generate", "--model", args.model, "--prompt", prompt, "--width", str(width),
                   "--height", str(height), "--seed", str(args.seed_base + k * per_prompt), "--batch-size", str(count),
                   "--steps", str(args.steps), "--cfg-scale", str(args.cfg_scale), "--attention", attention,
                   "--output", f"{stem}.png", "--save-latents", f"{stem}.safetensors", "--quiet"]
        if args.trained_size_flag:
            command += ["--trained-size", f"{args.trained}x{args.trained}"]
        if compose is not None:
            command += ["--compose", compose]
        command += shlex.split(args.extra)
        start = time.time()
        done = subprocess.run(command, stdout=log, stderr=subprocess.PIPE, text=True)
        seconds += time.time() - start
        if done.returncode != 0:
            log.write(done.stderr)
            return [], [], seconds, done.stderr.strip() or f"exit status {done.returncode}"
        latents.append(stem.with_suffix(".safetensors"))
        pngs += [folder / (f"p{k}-{i + 1}.png" if count > 1 else f"p{k}.png") for i in range(count)]
    return latents, pngs, seconds, None


def grid(rows, labels, path, columns):
    """Tiles rows of PNGs (one row per method) into one PNG with a label strip on the left."""
    from PIL import Image, ImageDraw

    images = [[Image.open(p).convert("RGB") for p in row[:columns]] for row in rows]
    w = max(im.width for row in images for im in row)
    h = max(im.height for row in images for im in row)
    pad, label_w = 4, 120
    sheet = Image.new("RGB", (label_w + columns * (w + pad), len(rows) * (h + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(images):
        draw.text((4, r * (h + pad) + h // 2 - 6), labels[r], fill="black")
        for c, im in enumerate(row):
            sheet.paste(im, (label_w + c * (w + pad), r * (h + pad)))
    sheet.save(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", required=True, help="the anysize executable")
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--vae", default=None, help="VAE folder for the metric (default: MODEL/vae, or the fixture's)")
    parser.add_argument("--trained", type=int, default=128, help="the model's trained side in pixels")
    parser.add_argument("--trained-size-flag", action="store_true",
                        help="pass --trained-size (needed for the single file, which carries no size)")
    parser.add_argument("--sizes", default="0.5,1,1.5,2,3,2x1")
    parser.add_argument("--attention", default="standard,scaled,local")
    parser.add_argument("--compose", default="", help="comma-separated --compose values (empty: flag not passed)")
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--seed-base", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg-scale", type=float, default=7.5)
    parser.add_argument("--grid-columns", type=int, default=8)
    parser.add_argument("--extra", default="", help="more `anysize generate` arguments for every run, e.g. "
                        "\"--hires-strength 0.5\" (appended to each method's name)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    (out / "grids").mkdir(parents=True, exist_ok=True)
    vae_folder = args.vae or (Path(args.model) / "vae" if Path(args.model).is_dir() else metric.DEFAULT_VAE)
    vae = metric.load_vae(vae_folder)
    composes = [c for c in args.compose.split(",") if c] or [None]
    methods = [(a, c) for c in composes for a in args.attention.split(",") if a]
    rows, per_image, rejected = [], [], set()
    for size_name in args.sizes.split(","):
        width, height = parse_size(size_name, args.trained)
        grid_rows, grid_labels = [], []
        for attention, compose in methods:
            name = attention if compose is None else f"{attention}+{compose}"
            if args.extra:
                name += f" ({args.extra})"
            folder = out / "runs" / size_name / name
            latents, pngs, seconds, error = run_method(args, size_name, width, height, attention, compose, folder)
            if error:
                first = error.splitlines()[0]
                if compose is not None and "compose" in error:
                    rejected.add((size_name, compose))
                    print(f"{size_name} --compose {compose}: rejected by the binary ({first}); skipped", flush=True)
                    continue
                raise SystemExit(f"{size_name} {name}: anysize failed: {first} (log: {folder / 'anysize.log'})")
            results = metric.evaluate(latents, vae)
            summary = metric.aggregate(results)
            row = dict(size=size_name, width=width, height=height, method=name, **summary,
                       seconds_per_image=seconds / max(1, summary["images"]))
            rows.append(row)
            per_image += [dict(size=size_name, method=name, **r) for r in results]
            print(json.dumps(row), flush=True)
            grid_rows.append(pngs)
            grid_labels.append(name)
        if grid_rows:
            grid(grid_rows, grid_labels, out / "grids" / f"{size_name}.png", args.grid_columns)

    if not rows:
        raise SystemExit("no method ran: every --compose value was rejected by the binary ("
                         + ", ".join(sorted({c for _, c in rejected})) + "); omit --compose for a binary without it")
    with open(out / "table.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(out / "per-image.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(per_image[0]))
        writer.writeheader()
        writer.writerows(per_image)
    lines = ["| size | canvas | method | one | malformed | duplicates | empty | objects/image | colour drift | s/image |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['width']}x{r['height']} | {r['method']} | {r['one']:.2f} | "
                     f"{r['malformed']:.2f} | {r['duplicates']:.2f} | {r['empty']:.2f} | {r['objects']:.2f} | "
                     f"{r['drift']:.2f} | {r['seconds_per_image']:.2f} |")
    if rejected:
        lines.append("")
        lines.append("Rejected by the binary (skipped): " + ", ".join(f"--compose {c} at {n}" for n, c in sorted(rejected)))
    lines.append("")
    lines.append(f"{args.seeds} images per row (prompts {', '.join(PROMPTS)}; seeds from {args.seed_base}), "
                 f"{args.steps} steps, cfg {args.cfg_scale}, model {args.model}.")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
