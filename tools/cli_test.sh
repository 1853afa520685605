#!/usr/bin/env bash
# The CLI against hostile and careless input (issue 12; docs/RELIABILITY.md lists every case): runs the built
# `anysize` on copies of the tiny fixtures and checks exit codes, messages, and that no file was replaced.
# Run by `make test`; alone:  ANYSIZE=.build/release/anysize bash tools/cli_test.sh   (about half a minute)
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${ANYSIZE:-$ROOT/.build/release/anysize}"
FIX="$ROOT/Tests/AnySizeTests/Fixtures"
[ -x "$BIN" ] || { echo "cli_test: no anysize binary at $BIN; build first (swift build \$(make -s flags))" >&2; exit 2; }
W="$(mktemp -d /tmp/anysize-cli-test.XXXXXX)"
trap 'rm -rf "$W"' EXIT
cd "$W"
cp -r "$FIX/tiny-sd1" model
cp "$FIX/tiny-sd1.safetensors" single.safetensors
FAST=(--width 64 --height 64 --steps 1 --seed 1 --quiet --compose none)  # a direct run (auto would render 512x512)
fails=0 passes=0

# run NAME EXPECTED_STATUS MESSAGE_SUBSTRING -- ARGS...: runs anysize, checks the status and (if not empty) that
# stderr+stdout contain the substring.
run() {
  local name="$1" want="$2" text="$3"; shift 4
  local out status
  out="$("$BIN" "$@" 2>&1)"; status=$?
  if [ "$status" != "$want" ] || { [ -n "$text" ] && ! grep -qF -- "$text" <<<"$out"; }; then
    echo "FAIL $name: exit $status (want $want), output:" >&2
    sed 's/^/    /' <<<"$out" | head -8 >&2
    fails=$((fails + 1))
  else
    passes=$((passes + 1))
  fi
  LAST_OUTPUT="$out"
}
check() {  # check NAME CONDITION...
  local name="$1"; shift
  if "$@"; then passes=$((passes + 1)); else echo "FAIL $name: $*" >&2; fails=$((fails + 1)); fi
}
sum() { sha256sum "$1" | cut -d' ' -f1; }
not_in_output() { ! grep -qF -- "$1" <<<"$LAST_OUTPUT"; }

UNET="model/unet/diffusion_pytorch_model.safetensors"
unet_sum="$(sum "$UNET")"
run "txt2img" 0 "" -- generate --model model --prompt "a cat" "${FAST[@]}" --output ok.png
check "txt2img writes a PNG" test -s ok.png
cp ok.png init.png
init_sum="$(sum init.png)"

# --- files that must not be destroyed ---
run "/dev/null" 0 "" -- generate --model model --prompt x "${FAST[@]}" --output /dev/null
check "/dev/null stays a device" test -c /dev/null
echo old > target.png; ln -s target.png link.png
run "symlink" 0 "" -- generate --model model --prompt x "${FAST[@]}" --output link.png
check "symlink stays a link" test -L link.png
check "symlink target written" test "$(head -c 4 target.png | tail -c 3)" = "PNG"
mkdir adir
run "folder as output" 1 "is a folder" -- generate --model model --prompt x "${FAST[@]}" --output adir
check "folder intact" test -d adir
run "latents onto the model" 1 "input" -- generate --model model --prompt x "${FAST[@]}" --save-latents "$UNET" --skip-decode
run "output onto the init image" 1 "input" -- generate --model model --prompt x "${FAST[@]}" --init-image init.png --output init.png
ln "$UNET" hardlink.safetensors
run "latents onto a hard link of the model" 1 "input" -- generate --model model --prompt x "${FAST[@]}" --save-latents hardlink.safetensors
run "output onto the single file" 1 "input" -- generate --model single.safetensors --prompt x "${FAST[@]}" --output single.safetensors
check "model weights unchanged" test "$(sum "$UNET")" = "$unet_sum"
check "init image unchanged" test "$(sum init.png)" = "$init_sum"

# --- output paths checked before loading ("load:" never printed) ---
for case in "empty||the output path is empty" "trailing slash|adir/|names a folder" "/proc|/proc/x.png|does not accept new files" \
            "missing folder|nowhere/x.png|does not exist"; do
  IFS='|' read -r name path text <<<"$case"
  run "output $name" 1 "$text" -- generate --model model --prompt x --width 64 --height 64 --steps 1 --output "$path"
  check "output $name refused before loading" not_in_output "load:"
done
mkdir batch-2.png
run "batch member is a folder" 1 "batch-2.png" -- generate --model model --prompt x --width 64 --height 64 --steps 1 --batch-size 3 --output batch.png
check "batch refused before loading" not_in_output "load:"
long="$(printf 'n%.0s' $(seq 236)).png"
run "236-character name" 0 "" -- generate --model model --prompt x "${FAST[@]}" --output "$long"
check "236-character name written" test -s "$long"

# --- crashes that are now refusals ---
run "batch 1e9" 1 "needs about" -- generate --model model --prompt x --width 64 --height 64 --batch-size 1000000000
run "batch 1e12" 1 "needs about" -- generate --model model --prompt x --batch-size 1000000000000
run "bench 100000 px" 1 "4096" -- bench --model model --component unet --width 100000 --height 100000
run "bench batch 1e12" 1 "needs about" -- bench --model model --component unet --batch-size 1000000000000
run "bench vae batch 1e12" 1 "needs about" -- bench --model model --component vae-decode --batch-size 1000000000000

# --- silent or misleading answers ---
run "cfg 1e39" 1 "32-bit" -- generate --model model --prompt x "${FAST[@]}" --cfg-scale 1e39
run "attention memory" 1 "--attention-memory 999999999999999 MB" -- generate --model model --prompt x "${FAST[@]}" --attention-memory 999999999999999
run "strength without init image" 1 "--init-image" -- generate --model model --prompt x "${FAST[@]}" --strength 0.5
run "negative width" 1 "--width -8" -- generate --model model --prompt x --width -8
run "negative steps" 1 "--steps -3" -- generate --model model --prompt x "${FAST[@]}" --steps -3
run "typo in command" 64 "did you mean 'generate'" -- generat --model model --prompt x
run "long prompt" 0 "longer than CLIP's 75" -- generate --model model --prompt "$(printf 'a red cube, %.0s' $(seq 40))" \
  --width 64 --height 64 --steps 1 --seed 1 --output long.png
run "tokenizer.json folder: info" 0 "(tokenizer.json)" -- info --model "$FIX/tiny-sd1-saved"
run "tokenizer.json folder: generate" 0 "" -- generate --model "$FIX/tiny-sd1-saved" --prompt x "${FAST[@]}" --output saved.png
run "info lists unused tensors" 0 "unused tensors: none" -- info --model model

cp -r model badconfig
sed -i 's/"sample_size": [0-9]*/"sample_size": 0/' badconfig/unet/config.json
run "sample_size 0" 1 "sample_size = 0" -- generate --model badconfig --prompt x "${FAST[@]}"
cp -r model badbetas
sed -i 's/"beta_start": [0-9.e-]*/"beta_start": 1.5/' badbetas/scheduler/scheduler_config.json
run "beta_start 1.5" 1 "beta_start = 1.5" -- generate --model badbetas --prompt x "${FAST[@]}"
printf 'garbage\x01\x02 ::: [[\n' > single.yaml
run "garbage yaml" 1 "not an LDM config" -- generate --model single.safetensors --prompt x "${FAST[@]}"
printf 'model:\n  params:\n    parameterization: "x-pred"\n' > single.yaml
run "x-pred yaml" 1 "'x-pred'" -- info --model single.safetensors
rm single.yaml

# A header with a duplicate key.
header='{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
{ printf "$(printf '\\x%02x' ${#header} 0 0 0 0 0 0 0)"; printf '%s' "$header"; printf '\0\0\0\0'; } > dup.safetensors
run "duplicate header key" 1 "twice" -- info --model dup.safetensors

# NaN in the first tensor of the VAE (its data section starts after the 8-byte length and the header).
cp -r model nanmodel
VAE=nanmodel/vae/diffusion_pytorch_model.safetensors
hl=$(od -An -t u8 -N8 "$VAE" | tr -d ' ')
printf '\x00\x7e' | dd of="$VAE" bs=1 seek=$((8 + hl)) conv=notrunc status=none
run "NaN weights" 1 "nan" -- generate --model nanmodel --prompt x "${FAST[@]}" --output nan.png
check "no PNG from NaN weights" test ! -e nan.png

# Composition (issue 14): auto on a smaller canvas renders at the trained area and box-filters; bad values: one line.
run "compose auto" 0 "-> resize: 512x512, box-filtered to 64x64" -- generate --model model --prompt x --width 64 --height 64 \
  --steps 1 --seed 1 --output auto.png
check "compose auto writes the target size" test "$(od -An -tu1 -j16 -N8 auto.png | tr -s ' ')" = " 0 0 0 64 0 0 0 64"
run "compose unknown" 1 "--compose 'big' is unknown" -- generate --model model --prompt x "${FAST[@]}" --compose big
run "compose resize, larger canvas" 1 "use --compose hires" -- generate --model model --prompt x --width 576 --height 512 \
  --steps 1 --compose resize
run "hires strength 0" 1 "--hires-strength 0.0 is outside (0, 1]" -- generate --model model --prompt x "${FAST[@]}" --hires-strength 0
run "redilate until 1001" 1 "--redilate-until" -- generate --model model --prompt x "${FAST[@]}" --redilate-until 1001
run "deep shrink end 2" 1 "--deep-shrink-end" -- generate --model model --prompt x "${FAST[@]}" --deep-shrink-end 2
run "hires with an init image" 1 "cannot use --init-image" -- generate --model model --prompt x --width 64 --height 64 \
  --steps 1 --compose hires --init-image init.png --output hires-init.png
run "compose cascade" 0 "cascade: 64x64, 128x128, then 192x192 at strength 0.7" -- generate --model model --prompt x \
  --width 192 --height 192 --trained-size 64x64 --steps 2 --seed 1 --compose cascade --output cascade.png
check "cascade recorded in the PNG" grep -qaF 'Compose: "cascade: 64x64, 128x128, then 192x192 at strength 0.7"' cascade.png
run "cascade with an init image" 1 "--compose cascade starts from noise and cannot use --init-image" -- generate --model model \
  --prompt x --width 64 --height 64 --steps 1 --compose cascade --init-image init.png --output cascade-init.png

# Montage (the `make run` grid): panels side by side with labels; bad input: one line, nothing written or replaced.
run "montage" 0 "wrote grid.png" -- montage ok.png auto.png --labels "a" "b" --output grid.png
check "montage size: 8 + 64 + 8 + 64 + 8 wide, 8 + 26 + 64 + 8 high" \
  test "$(od -An -tu1 -j16 -N8 grid.png | tr -s ' ')" = " 0 0 0 152 0 0 0 106"
ok_sum="$(sum ok.png)"
run "montage onto an input" 1 "destroy the input" -- montage ok.png auto.png --output ok.png
check "montage input unchanged" test "$(sum ok.png)" = "$ok_sum"
run "montage label count" 1 "1 label(s) for 2 image(s)" -- montage ok.png auto.png --labels "a" --output g2.png
run "montage of a non-PNG" 1 "is not a PNG file" -- montage ok.png model/model_index.json --output g2.png
run "montage without images" 1 "at least one image" -- montage --output g2.png
check "no montage written on errors" test ! -e g2.png

# SIGTERM while writing (previews every step, a few kill times): no temporary file is left behind.
mkdir sig
for delay in 0.4 0.8 1.2; do
  "$BIN" generate --model model --prompt x --width 128 --height 128 --steps 6 --seed 1 --quiet --compose none --preview-every 1 \
    --decoder approx --output sig/s.png & pid=$!
  sleep "$delay"; kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
done
check "no temporary files after SIGTERM" test -z "$(find sig -name '*.tmp')"

echo "cli_test: $passes checks passed, $fails failed"
[ "$fails" -eq 0 ] || { echo "cli_test: FAILED" >&2; exit 1; }
