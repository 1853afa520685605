#!/usr/bin/env bash
# Checks the web page of `anysize serve` in headless Chromium (Debian's `chromium`): loads it, submits a prompt
# against the tiny demo model (the page's ?...&autostart=1), waits for the image, checks the gallery holds it with
# its parameters, and writes a screenshot (default docs/serve-page.png).
#   tools/web_check.sh [SCREENSHOT]       (after swift build or swift test in release)
set -euo pipefail
cd "$(dirname "$0")/.."
SHOT=${1:-docs/serve-page.png}
BIN=${BIN:-.build/release/anysize}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
WORK=$(mktemp -d)
"$BIN" serve --model Tests/AnySizeTests/Fixtures/tiny-sd1 --port "$PORT" --state "$WORK/state" > "$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/internal/ping" > /dev/null && break; sleep 0.2; done
URL="http://127.0.0.1:$PORT/?prompt=a%20lighthouse%20(at%20sunset:1.2)&width=256&height=192&steps=8&seed=42&sampler=Euler%20a&autostart=1"
CHROME=(chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --virtual-time-budget=60000)
"${CHROME[@]}" --dump-dom "$URL" 2> /dev/null > "$WORK/dom.html"
grep -q '<figure><img src="data:image/png;base64,' "$WORK/dom.html" || { echo "web check: no image in the gallery" >&2; exit 1; }
grep -q 'Steps: 8, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 256x192' "$WORK/dom.html" \
  || { echo "web check: the image's parameters are missing" >&2; exit 1; }
grep -q 'done: seed 42' "$WORK/dom.html" || { echo "web check: status not done" >&2; exit 1; }
"${CHROME[@]}" --window-size=1100,760 --screenshot="$SHOT" "$URL" 2> /dev/null
echo "web check: OK (gallery image with its parameters; screenshot $SHOT)"
