# quantd: the two commands of the README, and the pieces they are made of.
#   make run    start the daemon on built-in defaults (spool in $HOME/.local/state/quantd or /var/spool/quantd)
#   make test   run the whole test suite
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
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --no-parallel

run: release
	$$($(SWIFT) build $(RELEASE_FLAGS) --show-bin-path)/quantd run

install: release
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" BIN="$$($(SWIFT) build $(RELEASE_FLAGS) --show-bin-path)/quantd" \
		scripts/install.sh
