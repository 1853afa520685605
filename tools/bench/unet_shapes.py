#!/usr/bin/env python3
"""The GEMM / convolution / attention shapes of one SD UNet guided step, with their FLOP share, measured by
hooking diffusers' UNet2DConditionModel (forward hooks on every nn.Linear, nn.Conv2d and Attention module).

One guided step = one UNet call at batch 2 (classifier-free guidance: unconditional + conditional). FLOPs are
2 * multiply-adds of the matrix products only (linear layers, convolutions, QK^T and PV); normalisation,
softmax, activations and elementwise ops are left out (they are a few percent and not bf16 GEMM work).

Every row is written as a GEMM, C[M, N] = A[M, K] * B[K, N], repeated `batch` times per call:
  linear     M = tokens (batch * h * w or batch * 77), K = in features, N = out features
  conv       implicit GEMM: M = batch * Hout * Wout, K = Cin * kh * kw, N = Cout (detail: B,Cin,Cout,H,W,k,stride)
  attn-qk    QK^T per (sample, head): M = query tokens, K = head dim, N = key tokens; batch = B * heads
  attn-pv    PV   per (sample, head): M = query tokens, K = key tokens, N = head dim; batch = B * heads
Identical shapes are merged; `where` lists the UNet blocks they occur in and `count` the calls per UNet call.

    /work/venv/bin/python tools/bench/unet_shapes.py --model /tmp/newcomer-sd15-random \
        --sizes 256 512 --out tools/bench/bf16_shapes.txt

Only the UNet config is read (weights are initialised at random, which does not change shapes).
"""
import argparse
import collections
import re

import torch


def block_of(name):
    """down0 / mid / up2 / io from a diffusers module path."""
    m = re.match(r"(down|up)_blocks\.(\d+)", name)
    if m:
        return f"{m.group(1)}{m.group(2)}"
    if name.startswith("mid_block"):
        return "mid"
    return "io" if name.startswith(("conv_in", "conv_out")) else "time"


def linear_role(name):
    """What a linear layer is, from its diffusers path: attn1.to_q -> self.q, ff.net.0.proj -> ff.geglu-in."""
    if ".ff.net.0.proj" in name:
        return "ff.geglu-in"
    if ".ff.net.2" in name:
        return "ff.out"
    m = re.search(r"\.(attn[12])\.(to_q|to_k|to_v|to_out\.0)$", name)
    if m:
        return ("self." if m.group(1) == "attn1" else "cross.") + m.group(2).replace("to_", "").replace(".0", "")
    return name.split(".")[-1]


def collect(model, size, batch, context_len):
    from diffusers.models.attention_processor import Attention

    rows = collections.OrderedDict()  # key -> dict(count, flops, where)

    def add(kind, batch_, m, k, n, detail, where, role=None):
        key = (kind, batch_, m, k, n, detail)
        r = rows.setdefault(key, {"count": 0, "where": [], "roles": []})
        r["count"] += 1
        if where not in r["where"]:
            r["where"].append(where)
        if role and role not in r["roles"]:
            r["roles"].append(role)

    hooks = []
    for name, mod in model.named_modules():
        where = block_of(name)
        if isinstance(mod, torch.nn.Linear):
            def hook(mod, inp, out, where=where, role=linear_role(name)):
                x = inp[0]
                add("linear", 1, x.numel() // mod.in_features, mod.in_features, mod.out_features, "", where, role)
            hooks.append(mod.register_forward_hook(hook))
        elif isinstance(mod, torch.nn.Conv2d):
            def hook(mod, inp, out, where=where):
                b, cin, h, w = inp[0].shape
                _, cout, ho, wo = out.shape
                kh, kw = mod.kernel_size
                detail = f"B={b},Cin={cin},Cout={cout},H={h},W={w},k={kh},stride={mod.stride[0]}"
                add("conv", 1, b * ho * wo, cin // mod.groups * kh * kw, cout, detail, where)
            hooks.append(mod.register_forward_hook(hook))
        elif isinstance(mod, Attention):
            def hook(mod, args, kwargs, where=where):
                x = args[0] if args else kwargs["hidden_states"]
                ctx = kwargs.get("encoder_hidden_states")
                if ctx is None and len(args) > 1:
                    ctx = args[1]
                b, nq = x.shape[0], x.shape[1]
                nk = nq if ctx is None else ctx.shape[1]
                heads = mod.heads
                d = mod.inner_dim // heads
                cross = "cross" if ctx is not None else "self"
                detail = f"{cross},B={b},heads={heads},d={d},Nq={nq},Nk={nk}"
                add("attn-qk", b * heads, nq, d, nk, detail, where)
                add("attn-pv", b * heads, nq, nk, d, detail, where)
            hooks.append(mod.register_forward_pre_hook(hook, with_kwargs=True))

    h = size // 8
    torch.manual_seed(0)
    sample = torch.randn(batch, model.config.in_channels, h, h)
    context = torch.randn(batch, context_len, model.config.cross_attention_dim)
    with torch.inference_mode():
        model(sample, torch.full((batch,), 500.0), encoder_hidden_states=context)
    for hk in hooks:
        hk.remove()
    out = []
    for (kind, batch_, m, k, n, detail), r in rows.items():
        detail = detail or "roles=" + ",".join(r["roles"])
        flops = 2.0 * batch_ * m * k * n * r["count"]
        out.append((kind, batch_, m, k, n, r["count"], flops, "+".join(r["where"]), detail))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="diffusers folder (only unet/config.json is read)")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--context-length", type=int, default=77)
    p.add_argument("--out", default="tools/bench/bf16_shapes.txt")
    a = p.parse_args()
    torch.set_num_threads(2)
    from diffusers import UNet2DConditionModel
    config = UNet2DConditionModel.load_config(a.model, subfolder="unet")
    model = UNet2DConditionModel.from_config(config).eval()

    lines = [
        "# SD UNet guided-step shapes (one UNet call, batch %d, context %d tokens), written by tools/bench/unet_shapes.py"
        % (a.batch_size, a.context_length),
        "# model: %s/unet (block_out_channels %s, attention_head_dim %s)"
        % (a.model.rstrip("/").split("/")[-1], config["block_out_channels"], config["attention_head_dim"]),
        "# Each row is `batch` independent GEMMs C[M,N] = A[M,K] B[K,N], `count` times per UNet call.",
        "# gflop = 2*batch*M*K*N*count / 1e9; share = of the size's total matrix-product FLOPs; rows sorted by gflop.",
        "# Sections: '## size=S' then a summary by kind, then the rows. Parse lines not starting with '#'.",
        "# columns: size kind batch M K N count gflop share_pct where detail",
    ]
    for size in a.sizes:
        rows = collect(model, size, a.batch_size, a.context_length)
        total = sum(r[6] for r in rows)
        lines.append("")
        lines.append(f"## size={size} latent={size // 8}x{size // 8} total_gflop={total / 1e9:.1f}")
        by_kind = collections.defaultdict(float)
        for r in rows:
            key = r[0] if not r[0].startswith("attn") else r[0] + ("-cross" if "cross" in r[8] else "-self")
            if r[0] == "conv":
                key += "3x3" if ",k=3," in r[8] else "1x1"
            by_kind[key] += r[6]
        for kind, f in sorted(by_kind.items(), key=lambda kv: -kv[1]):
            lines.append(f"#   {kind:<16} {f / 1e9:9.1f} GFLOP  {100 * f / total:5.1f}%")
        for kind, batch_, m, k, n, count, flops, where, detail in sorted(rows, key=lambda r: -r[6]):
            lines.append(f"{size} {kind} {batch_} {m} {k} {n} {count} {flops / 1e9:.3f} {100 * flops / total:.2f} "
                         f"{where} {detail}")
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(l for l in lines if l.startswith("#")))


if __name__ == "__main__":
    main()
