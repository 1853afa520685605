# AnySize — two commands on a fresh Debian machine (as root):
#   make run    install system packages if missing, build (release), write out/demo.png (a grid of three images) with
#               the bundled demo model
#   make test   install system packages if missing, run the whole test suite (release build), then the CLI checks
#               of tools/cli_test.sh against the built binary
# `make` alone lists the targets.
SWIFT ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)
OOD_MODEL := Tests/AnySizeTests/Fixtures/ood-toy
DEMO_MODEL ?= $(OOD_MODEL)
OUT ?= out
# Code generation for this CPU, the way llama.cpp's GGML_NATIVE does it: on x86-64 Linux with AVX2 and FMA the
# Swift code is compiled with `-target-cpu native` (8- and 16-lane SIMD, FMA, AVX-512 where present; the
# attention kernel is about 25 % faster). Such a binary runs on this CPU and its like only.
# PORTABLE=1 builds for baseline x86-64 (SSE2) instead; TARGET_CPU=haswell (or any `swiftc -target-cpu` name)
# picks a CPU explicitly. Plain `swift build` is always portable.
ifeq ($(PORTABLE),1)
TARGET_CPU :=
else
TARGET_CPU ?= $(shell [ "$$(uname -m)" = x86_64 ] && grep -qw avx2 /proc/cpuinfo 2>/dev/null && \
	grep -qw fma /proc/cpuinfo && echo native)
endif
# A chosen CPU also defines FUSED_MULTIPLY_ADD (MicroKernel uses FMA instructions; every CPU this picks has them),
# and one with AVX-512 (32 vector registers of 16 floats: `native` on such a CPU, or an AVX-512 CPU name) defines
# REGISTER_TILES, which turns on the register-blocked attention and small-grid Winograd kernels; with 16 AVX2
# registers their tiles spill (attention 0.92 s vs 0.62 s with BLAS), so other builds keep BLAS / im2col there.
AVX512_CPUS := skylake-avx512 cascadelake cooperlake icelake-client icelake-server tigerlake rocketlake \
	sapphirerapids emeraldrapids graniterapids znver4 znver5
REGISTER_TILES := $(strip $(if $(filter native,$(TARGET_CPU)),$(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && \
	echo yes),$(if $(filter $(AVX512_CPUS),$(TARGET_CPU)),yes)))
# -Ounchecked drops Swift's overflow and bounds checks in our code (the kernels check their shapes with
# preconditions at their boundaries, which -Ounchecked removes as well). It lives here, not in Package.swift:
# SwiftPM refuses unsafe flags in a package used as a dependency. Release builds already optimise whole modules.
SWIFT_FLAGS := -c release -Xswiftc -Ounchecked $(if $(TARGET_CPU),-Xswiftc -target-cpu -Xswiftc $(TARGET_CPU) -Xswiftc -DFUSED_MULTIPLY_ADD) \
	$(if $(REGISTER_TILES),-Xswiftc -DREGISTER_TILES)

.PHONY: help deps build run test clean flags

help:
	@echo "AnySize make targets:"
	@echo "  make run      install system packages if missing, build, write $(OUT)/demo.png: the bundled toy model at its"
	@echo "                trained size, at twice its side sampled directly, and at twice its side composed (auto)"
	@echo "  make test     install system packages if missing, run the whole test suite (release build)"
	@echo "  make build    install system packages if missing, build .build/release/anysize"
	@echo "  make deps     install libopenblas-dev, libpng-dev, zlib1g-dev and pkg-config if missing (apt)"
	@echo "  make flags    print the swift build flags used here (target CPU here: $(if $(TARGET_CPU),$(TARGET_CPU),baseline x86-64))"
	@echo "  make clean    remove .build and $(OUT)"
	@echo "Variables: PORTABLE=1 (baseline x86-64), TARGET_CPU=NAME, DEMO_MODEL=PATH, DEMO_SIZE=N, DEMO_SEED=N, OUT=DIR"

deps:
	@bash tools/install-deps.sh

build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

# The demo: the bundled toy model (trained at 128x128 px on one-object images, docs/OOD.md) at its trained size, then
# at twice its trained side sampled directly (--compose none --attention standard) and as AnySize composes it by
# default (--compose auto), and the three side by side in one labelled grid ($(OUT)/demo.png, by `anysize montage`).
# Another model: make run DEMO_MODEL=PATH DEMO_SIZE=ITS_TRAINED_SIDE (the 2x panels are then 2 x DEMO_SIZE a side).
DEMO_SIZE ?= 128
DEMO_SEED ?= 3
DEMO_LARGE = $(shell echo $$(( $(DEMO_SIZE) * 2 )))
DEMO = $(SWIFT) run $(SWIFT_FLAGS) anysize generate --model $(DEMO_MODEL) --prompt "a red disc" --steps 20 --cfg-scale 1 \
	--seed $(DEMO_SEED)
run: build
	@mkdir -p $(OUT)
	$(SWIFT) run $(SWIFT_FLAGS) anysize info --model $(DEMO_MODEL)
	$(DEMO) --width $(DEMO_SIZE) --height $(DEMO_SIZE) --output $(OUT)/demo-trained.png
	$(DEMO) --width $(DEMO_LARGE) --height $(DEMO_LARGE) --compose none --attention standard --output $(OUT)/demo-standard.png
	$(DEMO) --width $(DEMO_LARGE) --height $(DEMO_LARGE) --output $(OUT)/demo-auto.png
	$(SWIFT) run $(SWIFT_FLAGS) anysize montage $(OUT)/demo-trained.png $(OUT)/demo-standard.png $(OUT)/demo-auto.png \
		--labels "trained $(DEMO_SIZE)x$(DEMO_SIZE)" "2x: standard" "2x: auto" --output $(OUT)/demo.png
ifeq ($(DEMO_MODEL),$(OOD_MODEL))
	@echo "$(OUT)/demo.png: the bundled toy model ($(DEMO_MODEL), trained at 128x128 on one-object images): left at its"
	@echo "trained size, one object; middle at 256x256 sampled directly (standard): the object repeats; right at 256x256"
	@echo "as AnySize composes it by default (--compose auto, plan printed above): one object again. The panels are"
	@echo "$(OUT)/demo-trained.png, demo-standard.png and demo-auto.png. The toy model is small and under-trained (blobby"
	@echo "shapes, it ignores the prompt); for real images: make run DEMO_MODEL=FILE.safetensors DEMO_SIZE=512, or README.md."
endif

# One build serves the tests and the CLI checks: `swift test` alone would build with testing enabled and a
# later `swift build` would rebuild every package without it (minutes with the server's dependencies).
test: deps
	$(SWIFT) build $(SWIFT_FLAGS) --build-tests
	$(SWIFT) test $(SWIFT_FLAGS) --skip-build --disable-swift-testing
	ANYSIZE="$$($(SWIFT) build $(SWIFT_FLAGS) --show-bin-path)/anysize" bash tools/cli_test.sh

# The flags above, for scripts that build their own products (tools/bench).
flags:
	@echo "$(SWIFT_FLAGS)"

clean:
	rm -rf .build $(OUT)
