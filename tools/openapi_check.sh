#!/usr/bin/env bash
# Validates the OpenAPI document `anysize serve` answers at GET /openapi.json with openapi-spec-validator (an
# independent implementation of the OpenAPI 3.0 schema; pinned in tools/requirements.txt), then checks that every
# route it lists answers on the server (not 404).
#   tools/openapi_check.sh          (after swift build in release; PYTHON defaults to the shared venv)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release/anysize}
PYTHON=${PYTHON:-/work/venv/bin/python}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
WORK=$(mktemp -d)
"$BIN" serve --model Tests/AnySizeTests/Fixtures/tiny-sd1 --port "$PORT" --state "$WORK/state" --api-auth check:secret \
  > "$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 300); do curl -sf -u check:secret "http://127.0.0.1:$PORT/internal/ping" > /dev/null && break; sleep 0.2; done
curl -sf -u check:secret "http://127.0.0.1:$PORT/openapi.json" > "$WORK/openapi.json"
"$PYTHON" - "$WORK/openapi.json" "$PORT" <<'PY'
import base64, json, sys, urllib.error, urllib.request
from openapi_spec_validator import validate
path, port = sys.argv[1], sys.argv[2]
document = json.load(open(path))
validate(document)  # raises on any violation of the OpenAPI 3.0 schema, with the path at fault
auth = "Basic " + base64.b64encode(b"check:secret").decode()
routes = 0
for route, operations in document["paths"].items():
    for method in operations:
        url = f"http://127.0.0.1:{port}" + route.replace("{id}", "no-such-job")
        body = b"{" if method == "post" else None
        request = urllib.request.Request(url, data=body, method=method.upper(), headers={"Authorization": auth})
        try:
            status = urllib.request.urlopen(request).status
        except urllib.error.HTTPError as error:
            status = error.code
        expected = 404 if "{id}" in route else (200 if method == "get" or route.endswith(("/interrupt", "/skip")) else 422)
        if status != expected:
            sys.exit(f"openapi check: {method.upper()} {route} answered {status}, expected {expected}")
        routes += 1
fields = document["components"]["schemas"]["Img2ImgRequest"]["properties"]
print(f"openapi check: OK (OpenAPI {document['openapi']} valid per openapi-spec-validator; {routes} routes answer; "
      f"{len(fields)} img2img fields, {sum(k.startswith('anysize_') for k in fields)} of them AnySize's)")
PY
