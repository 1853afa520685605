#!/usr/bin/env bash
# oneDNN float32 and bfloat16 matmul / convolution speed on the SD UNet shapes of tools/bench/bf16_shapes.txt,
# one and two threads (docs/PERFORMANCE.md, "bf16: oneDNN vs our kernel"). A measurement tool only: AnySize does
# not depend on oneDNN. Installs Debian's libdnnl-dev (apt-get, needs root) when its header is missing.
#
#   tools/bench/onednn/run.sh                  # sizes 256 512, threads 1 2
#   SIZES=512 THREADS="2" MIN_SHARE=1 tools/bench/onednn/run.sh
#
# Environment: SIZES (256 512), THREADS (1 2), MIN_SHARE (0.5: rows below this % of the size's matrix-product
# FLOPs are skipped), MIN_SECONDS (0.3 per shape and type), DTYPES (f32,bf16), OUT (out/bench), VERBOSE=1 adds
# ONEDNN_VERBOSE=1 output (the dispatched kernel per primitive, e.g. brg:avx512_core_bf16) to the log.
set -euo pipefail
cd "$(dirname "$0")/../../.."

SIZES=${SIZES:-256 512}
THREADS=${THREADS:-1 2}
MIN_SHARE=${MIN_SHARE:-0.5}
MIN_SECONDS=${MIN_SECONDS:-0.3}
DTYPES=${DTYPES:-f32,bf16}
OUT=${OUT:-out/bench}
SHAPES=tools/bench/bf16_shapes.txt

if [[ ! -f /usr/include/oneapi/dnnl/dnnl.h ]]; then
    echo "installing libdnnl-dev (oneDNN) for this benchmark only" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libdnnl-dev >&2
fi
mkdir -p "$OUT"
BIN="$OUT/onednn_bench"
cc -O2 -std=c11 -D_DEFAULT_SOURCE -fopenmp tools/bench/onednn/onednn_bench.c -o "$BIN" -ldnnl -lm
LOG="$OUT/onednn-$(date +%Y%m%d-%H%M%S).txt"
echo "results: $LOG" >&2
{
    echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;" \
        "bf16 flags: $(grep -o -w 'avx512_bf16\|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
    echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$LOG"
for size in $SIZES; do
    for threads in $THREADS; do
        if [[ ${VERBOSE:-0} == 1 ]]; then
            OMP_NUM_THREADS=$threads ONEDNN_VERBOSE=1 DNNL_VERBOSE=1 "$BIN" "$SHAPES" "$size" "$MIN_SHARE" \
                "$MIN_SECONDS" "$DTYPES" | tee -a "$LOG"
        else
            OMP_NUM_THREADS=$threads "$BIN" "$SHAPES" "$size" "$MIN_SHARE" "$MIN_SECONDS" "$DTYPES" | tee -a "$LOG"
        fi
    done
done
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$LOG"
grep '^# total' "$LOG" >&2
# One Markdown row per shape: GFLOP/s per data type and thread count (docs/PERFORMANCE.md keeps this table).
awk '!/^#/ { key = $1 " " $2 " " $5 "x" $6 "x" $7 "x" $8; if (!(key in seen)) { seen[key] = 1; order[n++] = key; det[key] = $12 }
             g[key " " $3 " " $4] = $10; if (!($3 " " $4 in col)) { col[$3 " " $4] = 1; cols[m++] = $3 " " $4 } }
     END { printf "| size | kind | batch x M x K x N | detail |"; for (j = 0; j < m; j++) printf " %s thr GFLOP/s |", cols[j]
           printf "\n|---|---|---|---|"; for (j = 0; j < m; j++) printf "---|"; printf "\n"
           for (i = 0; i < n; i++) { k = order[i]; split(k, p, " "); printf "| %s | %s | %s | %s |", p[1], p[2], p[3], det[k]
               for (j = 0; j < m; j++) printf " %s |", g[k " " cols[j]]; printf "\n" } }' "$LOG" > "${LOG%.txt}.md"
echo "table: ${LOG%.txt}.md" >&2
