#!/usr/bin/env python3
"""Reference per-layer self-attention entropies of one UNet call (for AttentionReportTests).

Writes Tests/AnySizeTests/Fixtures/entropy/tiny_sd1_unet_entropy.json: fixed inputs (a latent sample [2, 4, 16, 24],
a timestep, text embeddings [2, 77, 8], values rounded to 3 decimals so the JSON is short and both sides read the same
float32 numbers) and, for several attention formulations, the mean entropy -sum_k p ln p of every self-attention
(attn1) layer of diffusers' UNet2DConditionModel on the tiny-sd1 fixture, in execution order (down, mid, up).
The mean runs over queries, heads and the batch of 2, as AnySize's entropy recording does.

Each formulation is written here from docs METHODS.md (shared brief), independently of the Swift code, as a custom
attention processor that forms the full logits matrix, applies the formulation, takes the softmax in float64 and
records the entropy; the attention output (p V) goes on through the UNet, so later layers see the formulation's
effect as in Swift. Cross-attention (attn2) keeps diffusers' AttnProcessor2_0.

Run: /work/venv/bin/python tools/fixtures_entropy.py   (pinned versions in tools/requirements.txt)
"""
import json
import math
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests/AnySizeTests/Fixtures"
OUT = FIXTURES / "entropy/tiny_sd1_unet_entropy.json"

LATENT = (16, 24)      # h x w of the sample: levels 16x24, 8x12, 4x6, 2x3
TIMESTEP = 500

# (name, formulation, trained latent grid, edge, sigma). Trained 12x12 makes the canvas larger than trained at every
# level (level 3: 2x3 against 2x2, so one dimension is spanned whole), which exercises the local windows.
CASES = [
    ("standard", "standard", 64, 0, 10.0),
    ("scaled", "scaled", 64, 0, 10.0),
    ("local", "local", 12, 0, 10.0),
    ("local-edge1", "local", 12, 1, 10.0),
    ("log-bias-early", "log-bias", 12, 0, 10.0),
    ("log-bias-late", "log-bias", 12, 0, 2.0),
]


def grid(size, level):
    for _ in range(level):
        size = (size + 1) // 2
    return size


def entropy_factor(keys, trained):
    return math.sqrt(math.log(max(keys, 2)) / math.log(max(trained, 2)))


def positions(h, w):
    ys = torch.arange(h, dtype=torch.float64).repeat_interleave(w)
    xs = torch.arange(w, dtype=torch.float64).repeat(h)
    return ys, xs


def local_allowed(h, w, th, tw, edge):
    """[N, N] boolean: may query q attend key k (METHODS.md formulation 2, with optional edge sinks)."""
    def window_rows(size, trained):
        if size <= trained:
            return [range(0, size)] * size, False
        win = trained - 2 * edge
        out = []
        for p in range(size):
            start = min(max(p - win // 2, 0), size - win)
            out.append(range(start, start + win))
        return out, True

    rows, narrow_rows = window_rows(h, th)
    cols, narrow_cols = window_rows(w, tw)
    n = h * w
    allowed = torch.zeros(n, n, dtype=torch.bool)
    sinks = torch.zeros(h, w, dtype=torch.bool)
    if edge > 0 and (narrow_rows or narrow_cols):
        sinks[:edge, :] = True
        sinks[h - edge:, :] = True
        sinks[:, :edge] = True
        sinks[:, w - edge:] = True
    for y in range(h):
        for x in range(w):
            m = sinks.clone()
            m[rows[y].start:rows[y].stop, cols[x].start:cols[x].stop] = True
            allowed[y * w + x] = m.flatten()
    return allowed


class EntropyProcessor:
    """Self-attention with a formulation applied to the full logits; records the mean entropy."""

    def __init__(self, name, level, case, canvas, records):
        self.name, self.level, self.records = name, level, records
        _, self.formulation, trained, self.edge, self.sigma = case
        self.h, self.w = grid(canvas[0], level), grid(canvas[1], level)
        self.th, self.tw = grid(trained, level), grid(trained, level)
        self.canvas_tokens = canvas[0] * canvas[1]
        self.trained_tokens = trained * trained

    def adjust(self, logits):  # logits [B, heads, N, N] float64
        n, t = self.h * self.w, self.th * self.tw
        if self.formulation == "standard":
            return logits
        if self.formulation == "scaled":
            return logits * entropy_factor(n, t)
        if self.formulation == "local":
            allowed = local_allowed(self.h, self.w, self.th, self.tw, self.edge)
            keys = allowed.sum(dim=1).tolist()
            scale = torch.tensor([entropy_factor(k, t) for k in keys], dtype=torch.float64)
            return torch.where(allowed, logits * scale[:, None], torch.tensor(-math.inf, dtype=torch.float64))
        if self.formulation == "log-bias":
            if self.canvas_tokens > self.trained_tokens:
                c = 1.0 if self.sigma > 4 else -0.1
            elif self.canvas_tokens < self.trained_tokens:
                c = 1.0
            else:
                return logits
            ys, xs = positions(self.h, self.w)
            dist = ((ys[:, None] - ys[None, :]) ** 2 + (xs[:, None] - xs[None, :]) ** 2).sqrt()
            bias = c * torch.clamp(torch.log(torch.where(dist > 0, dist, torch.ones_like(dist))), min=0)
            return logits + bias
        raise ValueError(self.formulation)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        assert encoder_hidden_states is None and attention_mask is None and hidden_states.ndim == 3
        b, n, _ = hidden_states.shape
        assert n == self.h * self.w, (self.name, n, self.h, self.w)
        q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        d = q.shape[-1] // attn.heads
        q, k, v = (x.view(b, n, attn.heads, d).transpose(1, 2).double() for x in (q, k, v))
        logits = self.adjust(q @ k.transpose(-1, -2) / math.sqrt(d))     # [B, heads, N, N]
        p = torch.softmax(logits, dim=-1)
        plogp = torch.where(p > 0, p * torch.log(torch.where(p > 0, p, torch.ones_like(p))), torch.zeros_like(p))
        entropy = float((-plogp.sum(dim=-1)).mean())
        self.records.append({"module": self.name, "level": self.level, "height": self.h, "width": self.w,
                             "entropy": entropy})
        out = (p @ v).float().transpose(1, 2).reshape(b, n, attn.heads * d)
        out = attn.to_out[1](attn.to_out[0](out))
        return out / attn.rescale_output_factor


def level_of(name, levels):
    parts = name.split(".")
    if parts[0] == "down_blocks":
        return int(parts[1])
    if parts[0] == "mid_block":
        return levels - 1
    return levels - 1 - int(parts[1])


def rounded(shape, seed):
    return torch.round(torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), decimals=3)


@torch.no_grad()
def main():
    unet = UNet2DConditionModel.from_pretrained(str(FIXTURES / "tiny-sd1"), subfolder="unet", torch_dtype=torch.float32)
    unet.eval()
    levels = len(unet.config.block_out_channels)
    sample = rounded((2, 4) + LATENT, 7)
    context = rounded((2, 77, unet.config.cross_attention_dim), 8)
    cases = []
    for case in CASES:
        records = []
        processors = {}
        for name in unet.attn_processors:
            module = name[: -len(".processor")]
            if module.endswith("attn1"):
                processors[name] = EntropyProcessor(module, level_of(module, levels), case, LATENT, records)
            else:
                processors[name] = AttnProcessor2_0()
        unet.set_attn_processor(processors)
        out = unet(sample.float(), TIMESTEP, encoder_hidden_states=context.float()).sample
        cases.append({"name": case[0], "attention": case[1], "trained_latent": case[2], "edge": case[3],
                      "sigma": case[4], "layers": records, "output_abs_mean": float(out.abs().mean())})
        print(case[0], " ".join(f"{r['entropy']:.4f}" for r in records))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "generator": "tools/fixtures_entropy.py",
        "model": "tiny-sd1",
        "timestep": TIMESTEP,
        "sample": {"shape": list(sample.shape), "data": sample.flatten().tolist()},
        "encoder_hidden_states": {"shape": list(context.shape), "data": context.flatten().tolist()},
        "cases": cases,
    }
    OUT.write_text(json.dumps(payload, separators=(",", ":")) + "\n")
    print("wrote", OUT.relative_to(ROOT), OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
