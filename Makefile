# virt-hostkit -- build, test, demo, benchmark, install.
#
#   make           build (debug, all targets); changes nothing outside the tree
#   make demo      the main job: installs what it needs, builds, shows the product working
#   make check     every test (installs what the tests need; CI runs exactly this)
#   make bench     benchmarks, side by side with the tools we replace (after make deps)
#   make install DESTDIR=... PREFIX=/usr   (installs our files only, never a package)
#
# Each part adds itself in mk/<part>.mk by appending to the lists below; this file only
# orders them. Parts may use $(TARGET_DIR), $(CARGO), $(RELEASE_DIR), $(DEBUG_DIR), $(DEPS_SH),
# $(CARGO_TOOLS_SH), $(MDEVCTL_1_4) and the recipes ap_sim_guarded and fuzz_run defined here.
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

# Who installs packages: only `make deps`, `make check`, `make demo` and the check-*/demo-*
# steps they run (each installs what it needs, also when run alone). Every other target
# (build, release, install, deb, rpm, build-s390x, rig-up, bench and its bench-* steps) only checks:
# deps.sh --check names what is missing and the command that installs it, and changes nothing.
deps check check-% demo demo-%: export INSTALL_DEPS := yes
DEPS_SH        = scripts/deps.sh $(if $(filter yes,$(INSTALL_DEPS)),,--check)
CARGO_TOOLS_SH = scripts/cargo-tools.sh $(if $(filter yes,$(INSTALL_DEPS)),,--check)

# mdevctl >= 1.3 (honours MDEVCTL_ENV_ROOT, v2 callouts) is not packaged for Debian 12: the
# tests drive 1.4.0, built from crates.io into the target dir by `make mdevctl-1.4` (never into
# PATH, where it would shadow Debian's 1.2.0); tests read its path from $MDEVCTL_1_4.
MDEVCTL_1_4_ROOT := $(TARGET_DIR)/tools/mdevctl-1.4.0
MDEVCTL_1_4      := $(MDEVCTL_1_4_ROOT)/bin/mdevctl

# $(call ap_sim_guarded,STEP,COMMAND): COMMAND mounts the AP bus simulator over FUSE, which
# needs root and /dev/fuse (a missing prerequisite fails the step, never skips it); afterwards
# no ap-sim mount may be left behind.
define ap_sim_guarded
[ "$$(id -u)" = 0 ] || { echo "$(1): FAILED: needs root (FUSE mount of the AP simulator)" >&2; exit 1; }; \
[ -c /dev/fuse ] || { echo "$(1): FAILED: /dev/fuse is missing" >&2; exit 1; }; \
$(2); \
if grep -q ' - fuse ap-sim ' /proc/self/mountinfo; then \
  echo "$(1): FAILED: an ap-sim mount was left behind:" >&2; grep ' - fuse ap-sim ' /proc/self/mountinfo >&2; exit 1; fi
endef

# $(call fuzz_run,DIR,SECONDS): builds every fuzz target of DIR/fuzz (its own workspace; stable
# toolchain, RUSTC_BOOTSTRAP=1 for the sanitizer flags), then runs each for SECONDS, starting
# from the seed files in DIR/fuzz/seeds/<target>; the grown corpus stays in the target dir.
define fuzz_run
$(CARGO_TOOLS_SH) cargo-fuzz; \
cd $(1)/fuzz; export RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$(TARGET_DIR)/fuzz; cargo fuzz build; \
for t in $$(cargo fuzz list); do \
  mkdir -p $(TARGET_DIR)/fuzz/corpus/$$t; echo "fuzz: $(1) $$t for $(2) s"; \
  cargo fuzz run $$t $(TARGET_DIR)/fuzz/corpus/$$t seeds/$$t -- -max_total_time=$(2) -print_final_stats=1 2>&1 \
    | grep -E 'Done|stat::number_of_executed_units|ERROR|panicked|SUMMARY|Test unit written'; \
done
endef

DEPS_GROUPS    := build
CARGO_TOOLS    :=
CHECK_TARGETS  :=
DEMO_TARGETS   :=
BENCH_TARGETS  :=
INSTALL_TARGETS :=

include $(sort $(wildcard mk/*.mk))

.PHONY: all deps tools build release lint test check demo bench install help mdevctl-1.4

all: build

help:
	@sed -n '2,8p' Makefile | sed 's/^# \{0,1\}//'

deps:
	@$(DEPS_SH) $(sort $(DEPS_GROUPS))

tools:
	@$(CARGO_TOOLS_SH) $(sort $(CARGO_TOOLS))

build:
	@$(DEPS_SH) build
	$(CARGO) build --workspace --all-targets

release:
	@$(DEPS_SH) build
	$(CARGO) build --workspace --release

lint:
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

bench: release
	@$(DEPS_SH) build nss bench callout
	@for t in $(BENCH_TARGETS); do $(MAKE) --no-print-directory $$t; done

install: release $(INSTALL_TARGETS)

# Idempotent; a build into the target dir, not a package (RST2MAN=/bin/true: mdevctl's
# build.rs wants rst2man for its man page, the binary does not).
mdevctl-1.4:
	@if [ -x $(MDEVCTL_1_4) ] && $(CARGO) install --list --root $(MDEVCTL_1_4_ROOT) | grep -q '^mdevctl v1.4.0:'; then \
	  echo "mdevctl 1.4.0: $(MDEVCTL_1_4)"; \
	else \
	  echo "mdevctl-1.4: cargo install mdevctl 1.4.0 into $(MDEVCTL_1_4_ROOT)"; \
	  RST2MAN=/bin/true CARGO_TARGET_DIR=$(TARGET_DIR)/tools/build $(CARGO) install mdevctl \
	    --version 1.4.0 --locked --quiet --root $(MDEVCTL_1_4_ROOT); \
	fi
