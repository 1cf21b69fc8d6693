# podctl: the two commands a new user needs are `make demo` and `make test`.
# Both install what is missing first (scripts/setup.sh, Debian packages; needs root).

CARGO ?= cargo
CARGO_FLAGS ?= --locked
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec

.PHONY: all setup build demo test unit lint fmt bench clean stop-containerd

all: build

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build $(CARGO_FLAGS) --release -p podctl

## demo: install what is missing, start a private containerd if none answers, build the demo
## image from the host's static busybox, import it, and run examples/init-demo.yaml.
demo: setup
	$(CARGO) build $(CARGO_FLAGS) --release -p podctl -p podctl-integration-tests --bins
	@bash scripts/demo.sh

## test: formatting, lints, unit tests and the integration tests (each starts its own private
## containerd under a temp dir; nothing is left behind).
test: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy $(CARGO_FLAGS) --workspace --all-targets -- -D warnings
	$(CARGO) build $(CARGO_FLAGS) -p podctl
	mkdir -p target
	bash scripts/cni-chains.sh save target/cni-chains.before
	status=0; $(CARGO) test $(CARGO_FLAGS) --workspace --all-targets 2>&1 | tee target/test.log || status=$$?; \
	  bash scripts/cni-chains.sh restore target/cni-chains.before; exit $$status
	@awk '/^test result:/ {p += $$4; f += $$6} END {printf "all tests: %d passed, %d failed\n", p, f}' target/test.log

unit:
	$(CARGO) test $(CARGO_FLAGS) -p podctl-runtime -p podctl

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy $(CARGO_FLAGS) --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## bench: the reference pod (2 init + main, emptyDir handoff, run to completion and removed)
## with podctl, as three `ctr run --rm`, and as three `runc run` (the floor), interleaved; then
## a cold pull of a 5-layer image from a loopback registry, `podctl image pull` vs `ctr pull`.
bench: setup
	$(CARGO) build $(CARGO_FLAGS) --release -p podctl -p podctl-integration-tests --bins
	@bash scripts/bench.sh

stop-containerd:
	@bash scripts/containerd.sh stop

clean:
	$(CARGO) clean
