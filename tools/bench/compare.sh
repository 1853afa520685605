#!/usr/bin/env bash
# Side-by-side speed and memory of AnySize and diffusers on the same weights and inputs (docs/PERFORMANCE.md).
#
#   tools/bench/compare.sh                      # the standard cases below
#   tools/bench/compare.sh unet:512:2 vae-decode:512:1
#
# Each case is COMPONENT:SIZE:BATCH (square canvas). For every case and round the two programs run one after
# the other, the order swapping each round, so load from other processes hits both alike. Each run does
# WARMUP untimed and REPEATS timed calls and prints one JSON line; the summary reports per side the median over
# rounds of the per-run medians, the ratio AnySize / diffusers, and peak resident memory.
#
# Environment: MODEL (default models/sd15-random, built by make_sd15_random.py when absent), PYTHON (default
# python3; use a venv made from tools/requirements.txt), ROUNDS (1), REPEATS (3), WARMUP (1), OUT (out/bench).
set -euo pipefail
cd "$(dirname "$0")/../.."

MODEL=${MODEL:-models/sd15-random}
PYTHON=${PYTHON:-python3}
ROUNDS=${ROUNDS:-1}
REPEATS=${REPEATS:-3}
WARMUP=${WARMUP:-1}
OUT=${OUT:-out/bench}
CASES=("$@")
if [[ ${#CASES[@]} -eq 0 ]]; then CASES=(unet:256:2 unet:512:2 vae-decode:512:1 text-encoder:512:1); fi

if [[ ! -f "$MODEL/model_index.json" ]]; then
    echo "building the random-weight SD1.5 model in $MODEL (about 4.3 GB, a few minutes)" >&2
    "$PYTHON" tools/bench/make_sd15_random.py "$MODEL"
fi
# The build `make build` makes (native code generation unless PORTABLE=1; see the Makefile).
SWIFT_FLAGS=$(make -s --no-print-directory flags)
swift build $SWIFT_FLAGS --product anysize >&2
ANYSIZE=.build/release/anysize
mkdir -p "$OUT"
STAMP=$(date +%Y%m%d-%H%M%S)
RAW="$OUT/compare-$STAMP.jsonl"
echo "raw results: $RAW" >&2

run_anysize() {  # component size batch
    "$ANYSIZE" bench --model "$MODEL" --component "$1" --width "$2" --height "$2" --batch-size "$3" \
        --repeats "$REPEATS" --warmup "$WARMUP" | sed 's/^{/{"impl":"anysize",/'
}
run_diffusers() {
    "$PYTHON" tools/bench/diffusers_bench.py --model "$MODEL" --component "$1" --width "$2" --height "$2" \
        --batch-size "$3" --repeats "$REPEATS" --warmup "$WARMUP" | sed 's/^{/{"impl":"diffusers",/'
}

for case in "${CASES[@]}"; do
    IFS=: read -r component size batch <<< "$case"
    for ((round = 1; round <= ROUNDS; round++)); do
        if ((round % 2 == 1)); then order=(diffusers anysize); else order=(anysize diffusers); fi
        for impl in "${order[@]}"; do
            echo "$case round $round: $impl" >&2
            "run_$impl" "$component" "$size" "$batch" | tee -a "$RAW" >&2
        done
    done
done

"$PYTHON" - "$RAW" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
cases = {}
for r in rows:
    cases.setdefault((r["component"], r["width"], r["height"], r["batch"]), {}).setdefault(r["impl"], []).append(r)
print("| component | size | batch | diffusers s | AnySize s | AnySize / diffusers | AnySize GFLOP/s | diffusers peak MB | AnySize peak MB |")
print("|---|---|---|---|---|---|---|---|---|")
for (component, width, height, batch), runs in cases.items():
    d = statistics.median(r["seconds_median"] for r in runs.get("diffusers", [])) if "diffusers" in runs else float("nan")
    a = statistics.median(r["seconds_median"] for r in runs.get("anysize", [])) if "anysize" in runs else float("nan")
    g = statistics.median(r["gflops"] for r in runs.get("anysize", [])) if "anysize" in runs else float("nan")
    dm = max((r["peak_rss_mb"] for r in runs.get("diffusers", [])), default=0)
    am = max((r["peak_rss_mb"] for r in runs.get("anysize", [])), default=0)
    size = f"{width}x{height}" if component != "text-encoder" else "77 tokens"
    print(f"| {component} | {size} | {batch} | {d:.3f} | {a:.3f} | {a / d:.2f} | {g:.1f} | {dm} | {am} |")
PY
