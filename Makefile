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

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test

run: release
	$$($(SWIFT) build $(RELEASE_FLAGS) --show-bin-path)/quantd run

install: release
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" BIN="$$($(SWIFT) build $(RELEASE_FLAGS) --show-bin-path)/quantd" \
		scripts/install.sh
