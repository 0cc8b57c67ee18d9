# virt-hostkit -- build, test, demo, benchmark, install.
#
#   make demo      the main job: installs what it needs, builds, shows the product working
#   make check     every test (installs what the tests need; CI runs exactly this)
#   make bench     benchmarks, side by side with the tools we replace
#   make install DESTDIR=... PREFIX=/usr
#
# Each part adds itself in mk/<part>.mk by appending to the lists below; this file only
# orders them. Parts may use $(TARGET_DIR), $(CARGO), $(RELEASE_DIR) and $(DEBUG_DIR).
SHELL       := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO       ?= cargo
TARGET_DIR  ?= $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
RELEASE_DIR := $(TARGET_DIR)/release
DEBUG_DIR   := $(TARGET_DIR)/debug
export CARGO_TARGET_DIR := $(TARGET_DIR)

# install layout (packaging/ documents the distribution defaults)
DESTDIR     ?=
PREFIX      ?= /usr
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
LIBDIR      ?= $(shell if [ -d /usr/lib64 ] && [ ! -e /etc/debian_version ]; then echo $(PREFIX)/lib64; \
                 else echo $(PREFIX)/lib/$$(gcc -print-multiarch 2>/dev/null || echo .); fi)
MANDIR      ?= $(PREFIX)/share/man
SYSCONFDIR  ?= /etc

DEPS_GROUPS    := build
CARGO_TOOLS    :=
CHECK_TARGETS  :=
DEMO_TARGETS   :=
BENCH_TARGETS  :=
INSTALL_TARGETS :=

include $(sort $(wildcard mk/*.mk))

.PHONY: all deps tools build release lint test check demo bench install help

all: build

help:
	@sed -n '2,8p' Makefile | sed 's/^# \{0,1\}//'

deps:
	@scripts/deps.sh $(sort $(DEPS_GROUPS))

tools:
	@scripts/cargo-tools.sh $(sort $(CARGO_TOOLS))

build: deps
	$(CARGO) build --workspace --all-targets

release: deps
	$(CARGO) build --workspace --release

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: build release
	$(CARGO) test --workspace

check: deps tools
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory test
	@for t in $(CHECK_TARGETS); do echo "==> make $$t"; $(MAKE) --no-print-directory $$t; done
	@echo "make check: every step passed ($(words $(CHECK_TARGETS)) integration steps: $(CHECK_TARGETS))"

# the NSS walkthrough first (the product's main job), then the other parts' demos
demo: deps release
	@for t in $(filter demo-nss,$(DEMO_TARGETS)) $(filter-out demo-nss,$(DEMO_TARGETS)); do \
	  $(MAKE) --no-print-directory $$t; done

bench: deps release
	@for t in $(BENCH_TARGETS); do $(MAKE) --no-print-directory $$t; done

install: release $(INSTALL_TARGETS)
