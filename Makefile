# The two set-up commands of the README: `make demo` and `make test`.
SWIFT ?= swift
SIM_SEEDS ?= 500

.PHONY: deps build test unit-test simulate demo demo-stop bench deb clean

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

# Everything CI runs: the deterministic simulation (release build, $(SIM_SEEDS) seeds with an entry
# digest and as many with the agent's cluster state and its snapshots), then every
# unit and integration test. Benchmarks are separate (`make bench`).
test: deps simulate unit-test

simulate: deps
	$(SWIFT) build -c release --product pgquorum-sim
	.build/release/pgquorum-sim --seeds $(SIM_SEEDS)
	.build/release/pgquorum-sim --seeds $(SIM_SEEDS) --application cluster-state

unit-test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# A local three-agent cluster on loopback, left running in the background (`make demo-stop`).
demo: deps
	$(SWIFT) build --product pgquorum
	scripts/demo.sh

demo-stop:
	scripts/demo.sh stop

bench: deps
	$(SWIFT) build -c release --product pgquorum-bench
	$(SWIFT) build -c release --product pgquorum
	.build/release/pgquorum-bench raft
	.build/release/pgquorum-bench storage
	.build/release/pgquorum-bench transport
	.build/release/pgquorum-bench election
	.build/release/pgquorum-bench lease-load
	@if [ "$$(id -u)" -eq 0 ]; then .build/release/pgquorum-bench failover; \
	 else echo "pgquorum-bench failover needs root (a lab in network namespaces): sudo .build/release/pgquorum-bench failover"; fi

# The Debian package (docs/install.md): release build with the Swift runtime linked in, man pages
# from the argument parser, then scripts/make-deb.sh. Writes .build/deb/pgquorum_VERSION_ARCH.deb.
deb: deps
	$(SWIFT) build --product generate-manual
	$(SWIFT) build -c release --product pgquorum --static-swift-stdlib
	rm -rf .build/man && mkdir -p .build/man
	.build/debug/generate-manual .build/release/pgquorum --multi-page --output-directory .build/man
	scripts/make-deb.sh --binary .build/release/pgquorum --man .build/man

clean:
	rm -rf .build
