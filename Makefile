# sixboot: `make demo` and `make test` are the whole set-up (Debian 12, as root).
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all build deps test lint unit demo bench fuzz clean assets

all: build

deps:
	scripts/deps.sh test

build:
	$(CARGO) build --release

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Every test: unit, property and namespace integration tests (needs root).
test: deps lint assets
	$(CARGO) test --workspace --all-targets

# The burn-in image, from Debian packages (scripts/assets.sh) and the agent; rebuilt when
# its sources change, the agent's and the report schema's included.
BURNIN := assets/burnin/vmlinuz assets/burnin/initrd.img
AGENT_SRC := $(shell find agent/src report/src -name '*.rs') agent/Cargo.toml report/Cargo.toml Cargo.lock
assets: $(BURNIN)
$(BURNIN) &: scripts/assets.sh scripts/burnin/init scripts/burnin/dhclient-hook $(AGENT_SRC)
	scripts/deps.sh assets
	scripts/assets.sh

# Starts sixboot in a lab namespace with the example config; KEEP=1 leaves it running.
demo: assets
	scripts/deps.sh demo
	$(CARGO) build --release
	scripts/demo.sh

# Side-by-side benches against the peers (not tests); figures go to bench/results/*.json.
bench: assets
	scripts/deps.sh bench
	$(CARGO) build --release
	ROUNDS=2 bench/dhcp 4 4
	ROUNDS=2 bench/dhcp 6 3
	bench/resources
	bench/tftp
	bench/http
	bench/boot
	bench/summary

# Every fuzz target for FUZZ_SECONDS each (default 60), or FUZZ_RUNS executions; see RELIABILITY.md.
fuzz:
	scripts/deps.sh fuzz
	scripts/fuzz.sh

# The burn-in build folder and image; assets/cache (the downloaded packages) stays.
clean:
	$(CARGO) clean
	rm -rf assets/build assets/burnin
