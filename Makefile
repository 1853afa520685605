# AnySize — two commands on a fresh Debian machine (as root):
#   make run    install system packages if missing, build (release), generate out/demo.png with the bundled demo model
#   make test   install system packages if missing, run the whole test suite (release build)
SWIFT ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)
DEMO_MODEL ?= Tests/AnySizeTests/Fixtures/tiny-sd1
OUT ?= out

.PHONY: deps build run test clean

deps:
	@bash tools/install-deps.sh

build: deps
	$(SWIFT) build -c release

run: build
	@mkdir -p $(OUT)
	$(SWIFT) run -c release anysize info --model $(DEMO_MODEL)
	$(SWIFT) run -c release anysize generate --model $(DEMO_MODEL) --prompt "a lighthouse on a cliff at sunset" \
		--width 256 --height 256 --steps 8 --seed 42 --output $(OUT)/demo.png

test: deps
	$(SWIFT) test -c release --disable-swift-testing

clean:
	rm -rf .build $(OUT)
