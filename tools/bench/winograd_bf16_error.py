"""Error of Winograd convolutions whose transformed operands are rounded to bfloat16, against float64.

    /work/venv/bin/python tools/bench/winograd_bf16_error.py

For SD-sized 3x3 layers (SiLU of standard normal inputs, batch 2; weights uniform with std 1/sqrt(9 I), as
PyTorch initialises them) it prints the max-abs error / max|y| and the relative RMS error of:
  direct    bfloat16 inputs and weights, exact sums (what im2col in bfloat16 computes);
  F(m, 3)   Winograd with U = G g G^T and V = B^T d B rounded to bfloat16, exact sums, for F(2x2, 3x3)
            (points 0, 1, -1), F(3x3, 3x3) (0, 1, -1, 2) and F(4x4, 3x3) with Lavin's points (0, 1, -1, 2, -2)
            and two mixed sets.
The matrices for a point set come from the Toom-Cook construction (A^T and G from the points, B^T solved from the
convolution identity), checked by the exact float64 run (error ~1e-14). docs/PERFORMANCE.md ("bf16") quotes it:
this is why the bfloat16 path uses F(2x2, 3x3).
"""

import numpy as np
import torch


def bf16(x):
    return x.float().to(torch.bfloat16).double()


def matrices(m, points):
    """B^T, G, A^T of F(m x m, 3 x 3) for the finite `points` plus infinity."""
    r, n = 3, m + 2
    at, g = np.zeros((m, n)), np.zeros((n, r))
    for j, p in enumerate(points):
        at[:, j] = [p ** i for i in range(m)]
        norm = np.prod([p - q for q in points if q != p])
        g[j] = [p ** k / norm for k in range(r)]
    at[m - 1, n - 1], g[n - 1, r - 1] = 1, 1
    # sum_j AT[i, j] G[j, k] BT[j, t] = [t == i + k] for all i, k, t: linear in BT.
    rows, rhs = [], []
    for i in range(m):
        for k in range(r):
            for t in range(n):
                row = np.zeros((n, n))
                row[:, t] = at[i, :] * g[:, k]
                rows.append(row.ravel())
                rhs.append(1.0 if t == i + k else 0.0)
    bt = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0].reshape(n, n)
    return [torch.tensor(a, dtype=torch.float64) for a in (bt, g, at)]


def winograd(x, w, m, points, round_operands):
    bt, g, at = matrices(m, points)
    batch, channels, h, wd = x.shape
    a = m + 2
    th, tw = (h + m - 1) // m, (wd + m - 1) // m
    xp = torch.nn.functional.pad(x, (1, tw * m + 1 - wd, 1, th * m + 1 - h))
    patches = xp.unfold(2, a, m).unfold(3, a, m)                       # [B, I, th, tw, a, a]
    v = torch.einsum('ij,bctwjk,lk->bctwil', bt, patches, bt)
    u = torch.einsum('ij,ocjk,lk->ocil', g, w, g)
    if round_operands:
        v, u = bf16(v), bf16(u)
    mm = torch.einsum('ocil,bctwil->botwil', u, v)
    y = torch.einsum('ij,botwjk,lk->botwil', at, mm, at)
    return y.permute(0, 1, 2, 4, 3, 5).reshape(batch, w.shape[0], th * m, tw * m)[:, :, :h, :wd]


def main():
    torch.manual_seed(0)
    variants = [("F(2x2,3x3) 0,1,-1", 2, [0, 1, -1]), ("F(3x3,3x3) 0,1,-1,2", 3, [0, 1, -1, 2]),
                ("F(4x4,3x3) 0,1,-1,2,-2", 4, [0, 1, -1, 2, -2]), ("F(4x4,3x3) 0,1,-1,2,-1/2", 4, [0, 1, -1, 2, -0.5]),
                ("F(4x4,3x3) 0,1,-1,1/2,-1/2", 4, [0, 1, -1, 0.5, -0.5])]
    print("| layer | method | max-abs / max|y| | relative RMS |")
    print("|---|---|---|---|")
    for inputs, outputs, size in [(320, 320, 64), (640, 640, 32), (1280, 1280, 16)]:
        x = torch.nn.functional.silu(torch.randn(2, inputs, size, size, dtype=torch.float64))
        w = (torch.rand(outputs, inputs, 3, 3, dtype=torch.float64) * 2 - 1) * np.sqrt(1 / (inputs * 9)) * np.sqrt(3)
        ref = torch.nn.functional.conv2d(x, w, padding=1)
        scale = ref.abs().max()

        def row(name, y):
            print(f"| {inputs}->{outputs} @ {size}x{size} | {name} | {((y - ref).abs().max() / scale).item():.2e} | "
                  f"{((y - ref).norm() / ref.norm()).item():.2e} |")

        row("direct bf16", torch.nn.functional.conv2d(bf16(x), bf16(w), padding=1))
        for name, m, points in variants:
            exact = winograd(x, w, m, points, False)
            assert ((exact - ref).abs().max() / scale) < 1e-10, name
            row(name + " bf16", winograd(x, w, m, points, True))


if __name__ == "__main__":
    main()
