#!/bin/sh
# The attention kernel alone on one shape: AnySize (AnySizeKernelBench target) then torch's SDPA (PYTHON, default
# python3, with the packages of tools/requirements.txt).
#   tools/bench/attention_bench.sh [BATCH HEADS QUERIES KEYS HEAD_DIM]   (default: SD1.5 level 0 at 512x512, batch 2)
set -e
cd "$(dirname "$0")/../.."
B=${1:-2} H=${2:-8} N=${3:-4096} M=${4:-4096} D=${5:-40}
SWIFT_FLAGS=$(make -s --no-print-directory flags)  # as `make build` (native unless PORTABLE=1)
swift build $SWIFT_FLAGS --product AnySizeKernelBench >/dev/null
# The CLI picks the OpenBLAS kernel family itself (BLASCoreSelection); this bench does not, so pick it here.
if [ -z "$OPENBLAS_CORETYPE" ] && grep -q avx512bw /proc/cpuinfo 2>/dev/null; then export OPENBLAS_CORETYPE=SkylakeX; fi
.build/release/AnySizeKernelBench attention --batch "$B" --heads "$H" --queries "$N" --keys "$M" --head-dim "$D" --repeats 5
"${PYTHON:-python3}" tools/bench/torch_attention_bench.py --batch "$B" --heads "$H" --queries "$N" \
    --keys "$M" --head-dim "$D" --repeats 5
