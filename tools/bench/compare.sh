#!/usr/bin/env bash
# Side-by-side speed and memory of AnySize and diffusers on the same weights and inputs (docs/PERFORMANCE.md).
#
#   tools/bench/compare.sh                      # the standard cases below
#   tools/bench/compare.sh unet:512:2 vae-decode:512:1
#   tools/bench/compare.sh --bf16               # bfloat16 mode (issue 16): four programs per case, see below
#   tools/bench/compare.sh --bf16 unet:512:2
#
# Each case is COMPONENT:SIZE:BATCH (square canvas). For every case and round the programs run one after
# the other, the order reversing each round, so load from other processes hits all alike. Each run does
# WARMUP untimed and REPEATS timed calls and prints one JSON line; the summary reports per side the median over
# rounds of the per-run medians, the ratio AnySize / diffusers, and peak resident memory.
#
# --bf16 runs, per case and round: diffusers float32, diffusers under torch.autocast("cpu", dtype=bfloat16),
# AnySize --precision fp32 and AnySize --precision bf16, and reports AnySize bf16 / diffusers fp32 and
# AnySize bf16 / diffusers autocast (ratios of medians, and the median of the per-round ratios). If the AnySize
# binary has no --precision option (`anysize bench --help`), it says so and runs AnySize's default (fp32) only.
# Default cases in both modes: UNet guided step (batch 2) at 256 and 512, VAE decode 512, text encoder.
#
# Environment: MODEL (default models/sd15-random, built by make_sd15_random.py when absent), PYTHON (default
# python3; use a venv made from tools/requirements.txt), ROUNDS (1), REPEATS (3), WARMUP (1), OUT (out/bench),
# ANYSIZE (an anysize binary to time instead of building this checkout's), THREADS (torch threads; default the
# number of cores, which is what AnySize uses).
set -euo pipefail
cd "$(dirname "$0")/../.."

MODEL=${MODEL:-models/sd15-random}
PYTHON=${PYTHON:-python3}
ROUNDS=${ROUNDS:-1}
REPEATS=${REPEATS:-3}
WARMUP=${WARMUP:-1}
OUT=${OUT:-out/bench}
MODE=fp32
if [[ ${1:-} == --bf16 ]]; then MODE=bf16; shift; fi
THREADS=${THREADS:-$(nproc)}
CASES=("$@")
if [[ ${#CASES[@]} -eq 0 ]]; then CASES=(unet:256:2 unet:512:2 vae-decode:512:1 text-encoder:512:1); fi

if [[ ! -f "$MODEL/model_index.json" ]]; then
    echo "building the random-weight SD1.5 model in $MODEL (about 4.3 GB, a few minutes)" >&2
    "$PYTHON" tools/bench/make_sd15_random.py "$MODEL"
fi
if [[ -z ${ANYSIZE:-} ]]; then
    # The build `make build` makes (native code generation unless PORTABLE=1; see the Makefile).
    SWIFT_FLAGS=$(make -s --no-print-directory flags)
    swift build $SWIFT_FLAGS --product anysize >&2
    ANYSIZE=.build/release/anysize
fi
IMPLS=(diffusers anysize)
if [[ $MODE == bf16 ]]; then
    IMPLS=(diffusers diffusers-autocast anysize)
    if "$ANYSIZE" bench --help 2>&1 | grep -q -- --precision; then
        IMPLS+=(anysize-bf16)
    else
        echo "note: $ANYSIZE bench has no --precision option (a build without the bf16 path):" \
            "the AnySize bf16 rows are skipped; AnySize runs its default fp32" >&2
    fi
fi
mkdir -p "$OUT"
STAMP=$(date +%Y%m%d-%H%M%S)
RAW="$OUT/compare-$STAMP.jsonl"
echo "raw results: $RAW" >&2
echo "{\"impl\":\"machine\",\"mode\":\"$MODE\",\"threads\":$THREADS,\"load_start\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >> "$RAW"

anysize_bench() {  # impl component size batch [extra options]
    local impl=$1; shift
    "$ANYSIZE" bench --model "$MODEL" --component "$1" --width "$2" --height "$2" --batch-size "$3" \
        --repeats "$REPEATS" --warmup "$WARMUP" "${@:4}" | sed "s/^{/{\"impl\":\"$impl\",/"
}
diffusers_bench() {  # impl precision component size batch
    "$PYTHON" tools/bench/diffusers_bench.py --model "$MODEL" --component "$3" --width "$4" --height "$4" \
        --batch-size "$5" --repeats "$REPEATS" --warmup "$WARMUP" --precision "$2" --threads "$THREADS" \
        | sed "s/^{/{\"impl\":\"$1\",/"
}
run_anysize() { anysize_bench anysize "$@"; }
run_anysize-bf16() { anysize_bench anysize-bf16 "$@" --precision bf16; }
run_diffusers() { diffusers_bench diffusers fp32 "$@"; }
run_diffusers-autocast() { diffusers_bench diffusers-autocast autocast-bf16 "$@"; }

for case in "${CASES[@]}"; do
    IFS=: read -r component size batch <<< "$case"
    for ((round = 1; round <= ROUNDS; round++)); do
        order=("${IMPLS[@]}")
        if ((round % 2 == 0)); then
            for ((i = 0; i < ${#IMPLS[@]}; i++)); do order[i]=${IMPLS[${#IMPLS[@]} - 1 - i]}; done
        fi
        for impl in "${order[@]}"; do
            echo "$case round $round: $impl" >&2
            if ! "run_$impl" "$component" "$size" "$batch" | sed "s/}\$/,\"round\":$round}/" | tee -a "$RAW" >&2; then
                echo "$case round $round: $impl failed (row left out)" >&2
            fi
        done
    done
done
echo "{\"impl\":\"machine\",\"load_end\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >> "$RAW"

"$PYTHON" - "$RAW" "$MODE" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
machine = {k: v for r in rows if r["impl"] == "machine" for k, v in r.items()}
rows = [r for r in rows if r["impl"] != "machine"]
print(f"load average (1/5/15 min) at start {machine.get('load_start')}, at end {machine.get('load_end')}; "
      f"torch threads {machine.get('threads')}")
cases = {}
for r in rows:
    cases.setdefault((r["component"], r["width"], r["height"], r["batch"]), {}).setdefault(r["impl"], []).append(r)
if sys.argv[2] == "bf16":
    def med(runs, impl):
        return statistics.median(r["seconds_median"] for r in runs[impl]) if impl in runs else float("nan")
    def paired(runs, num, den):  # median over rounds of the per-round ratio
        by_round = {r["round"]: r["seconds_median"] for r in runs.get(den, [])}
        ratios = [r["seconds_median"] / by_round[r["round"]] for r in runs.get(num, []) if r["round"] in by_round]
        return statistics.median(ratios) if ratios else float("nan")
    def peak(runs, impl):
        return max((r["peak_rss_mb"] for r in runs.get(impl, [])), default=0)
    print("| component | size | batch | diffusers fp32 s | diffusers autocast bf16 s | AnySize fp32 s | AnySize bf16 s "
          "| AnySize bf16 / diffusers fp32 | AnySize bf16 / diffusers autocast | AnySize fp32 / diffusers fp32 "
          "| diffusers autocast / fp32 | peak MB: diffusers fp32 / autocast / AnySize fp32 / bf16 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (component, width, height, batch), runs in cases.items():
        d, dc, a, ab = (med(runs, i) for i in ("diffusers", "diffusers-autocast", "anysize", "anysize-bf16"))
        size = f"{width}x{height}" if component != "text-encoder" else "77 tokens"
        ratio = lambda x, y, nx, ny: f"{x / y:.2f} (per round {paired(runs, nx, ny):.2f})" if x == x else "-"
        print(f"| {component} | {size} | {batch} | {d:.3f} | {dc:.3f} | {a:.3f} | "
              + (f"{ab:.3f}" if ab == ab else "-") + " | "
              + ratio(ab, d, "anysize-bf16", "diffusers") + " | " + ratio(ab, dc, "anysize-bf16", "diffusers-autocast")
              + " | " + ratio(a, d, "anysize", "diffusers") + " | "
              + ratio(dc, d, "diffusers-autocast", "diffusers") + " | "
              + " / ".join(str(peak(runs, i)) if i in runs else "-"
                           for i in ("diffusers", "diffusers-autocast", "anysize", "anysize-bf16")) + " |")
    sys.exit(0)
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
