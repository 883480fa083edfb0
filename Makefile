# quantd: the two commands of the README, and the pieces they are made of.
#   make run    start the daemon on built-in defaults (spool in $HOME/.local/state/quantd or /var/spool/quantd)
#   make test   run the whole test suite
#   make bench  run quantd-bench (README, Performance) with BENCH_ARGS, e.g. BENCH_ARGS="--size 2G --sizes 1G,2G,4G"
PREFIX ?= /usr/local
DESTDIR ?=
SWIFT ?= swift
RELEASE_FLAGS = -c release --static-swift-stdlib

.PHONY: deps build release test run install bench clean

deps:
	@scripts/deps.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build $(RELEASE_FLAGS)

# Tests run one at a time: the daemon tests watch real processes and sockets on deadlines, and other tests
# running in parallel block the test runner's few threads long enough to starve them (about 1 minute in all).
# As root (CI is root) the unit is also tested under a real systemd in a systemd-nspawn container; that needs the
# static release binary, built first (set QUANTD_SKIP_SYSTEMD_TEST=1 to leave it out); KernelEdgeProbe is built
# beside it, so that KernelEdgeTests sees the kernels' size checks hold in a release build.
test: deps
	$(SWIFT) build --build-tests
	@if [ "$$(id -u)" = 0 ] && [ -z "$$QUANTD_SKIP_SYSTEMD_TEST" ]; then \
		$(SWIFT) build $(RELEASE_FLAGS) --product quantd && \
		$(SWIFT) build $(RELEASE_FLAGS) --product KernelEdgeProbe && \
		export QUANTD_SYSTEMD_TEST=1 QUANTD_RELEASE_BIN="$$($(SWIFT) build $(RELEASE_FLAGS) --show-bin-path)/quantd"; \
	fi; \
	$(SWIFT) test --no-parallel

run: release
	$$($(SWIFT) build $(RELEASE_FLAGS) --show-bin-path)/quantd run

bench: release
	$$($(SWIFT) build $(RELEASE_FLAGS) --show-bin-path)/quantd-bench $(BENCH_ARGS)

install: release
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" BIN="$$($(SWIFT) build $(RELEASE_FLAGS) --show-bin-path)/quantd" \
		scripts/install.sh
