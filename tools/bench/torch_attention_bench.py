"""Times torch.nn.functional.scaled_dot_product_attention on one attention shape (CPU, float32).

Counterpart of `anysize-kernel-bench attention` (tools/bench/attention_bench.sh runs both):
q, k, v of shape [B, heads, N, D] / [B, heads, M, D] from torch.randn with seed 0; prints one JSON line
with the median seconds and GFLOP/s counted as 4 * N * M * D * heads * B.
"""
import argparse
import json
import statistics
import time

import torch


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--queries", type=int, default=4096)
    parser.add_argument("--keys", type=int, default=4096)
    parser.add_argument("--head-dim", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    q = torch.randn(args.batch, args.heads, args.queries, args.head_dim)
    k = torch.randn(args.batch, args.heads, args.keys, args.head_dim)
    v = torch.randn(args.batch, args.heads, args.keys, args.head_dim)
    seconds = []
    with torch.inference_mode():
        for i in range(args.warmup + args.repeats):
            start = time.perf_counter()
            torch.nn.functional.scaled_dot_product_attention(q, k, v)
            if i >= args.warmup:
                seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    flops = 4.0 * args.queries * args.keys * args.head_dim * args.heads * args.batch
    print(json.dumps({"impl": "torch-sdpa", "batch": args.batch, "heads": args.heads, "queries": args.queries,
                      "keys": args.keys, "head_dim": args.head_dim, "threads": torch.get_num_threads(),
                      "seconds_median": round(median, 4), "seconds_min": round(min(seconds), 4),
                      "gflops": round(flops / median / 1e9, 2)}))


if __name__ == "__main__":
    main()
