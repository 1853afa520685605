#!/usr/bin/env bash
# Load test of `anysize serve`: N concurrent txt2img requests (curl) against one server on the tiny demo model.
# Reports answers by status, throughput, latency percentiles and the server's peak memory (VmHWM).
#   tools/bench/serve_load.sh [N=20] [STEPS=10] [SIZE=256]     (build first: swift build $(make -s flags))
# COMPOSE (default none: the SIZE canvas sampled directly; auto would render the tiny model's 512 area) sets
# anysize_compose.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-20}; STEPS=${2:-10}; SIZE=${3:-256}
BIN=${BIN:-.build/release/anysize}
MODEL=${MODEL:-Tests/AnySizeTests/Fixtures/tiny-sd1}
QUEUE=${QUEUE:-$N}
COMPOSE=${COMPOSE:-none}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
WORK=$(mktemp -d)
"$BIN" serve --model "$MODEL" --port "$PORT" --queue-limit "$QUEUE" --state "$WORK/state" > "$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/internal/ping" > /dev/null && break; sleep 0.2; done
START=$(date +%s.%N)
for i in $(seq 1 "$N"); do
  curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "http://127.0.0.1:$PORT/sdapi/v1/txt2img" \
    -H 'Content-Type: application/json' \
    -d "{\"prompt\": \"load test $i\", \"seed\": $i, \"steps\": $STEPS, \"width\": $SIZE, \"height\": $SIZE, \"anysize_compose\": \"$COMPOSE\"}" \
    > "$WORK/r$i.txt" &
done
wait $(jobs -p | grep -v "^$SERVER$") 2>/dev/null || true
END=$(date +%s.%N)
PEAK=$(awk '/VmHWM/ {print $2}' /proc/$SERVER/status)
cat "$WORK"/r*.txt | python3 -c "
import sys
rows = [l.split() for l in sys.stdin if l.strip()]
ok = sorted(float(t) for c, t in rows if c == '200')
codes = {}
for c, _ in rows: codes[c] = codes.get(c, 0) + 1
wall = $END - $START
def pct(p): return ok[min(len(ok) - 1, int(round(p / 100 * (len(ok) - 1))))] if ok else float('nan')
print(f'requests: $N concurrent, {$STEPS} steps, ${SIZE}x${SIZE}, compose $COMPOSE, tiny-sd1; answers: {codes}')
print(f'wall {wall:.2f} s, throughput {len(ok) / wall:.2f} images/s')
print(f'latency p50 {pct(50):.2f} s, p90 {pct(90):.2f} s, p99 {pct(99):.2f} s, max {max(ok) if ok else 0:.2f} s')
print(f'server peak memory (VmHWM): {$PEAK / 1024:.0f} MB')
"
