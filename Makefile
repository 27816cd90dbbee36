# sixboot: `make demo` and `make test` are the whole set-up (Debian 12, as root).
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all build deps test lint unit demo bench clean

all: build

deps:
	scripts/deps.sh test

build:
	$(CARGO) build --release

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# Every test: unit, property and namespace integration tests (needs root).
test: deps lint
	$(CARGO) test --all-targets

# Starts sixboot in a lab namespace with the example config; KEEP=1 leaves it running.
demo:
	scripts/deps.sh demo
	$(CARGO) build --release
	scripts/demo.sh

# Side-by-side benches against the peers (not tests); figures go to bench/results/*.json.
bench:
	scripts/deps.sh bench
	$(CARGO) build --release
	ROUNDS=2 bench/dhcp 4 4
	ROUNDS=2 bench/dhcp 6 3
	bench/resources
	bench/tftp
	bench/http
	bench/boot
	bench/summary

clean:
	$(CARGO) clean
