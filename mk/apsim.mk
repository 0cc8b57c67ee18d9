# AP bus simulator (issue 4): the FUSE-mounted simulator driven by unmodified programs — the
# shell, Debian's mdevctl 1.2 (private mount namespace) and mdevctl 1.4.0 (MDEVCTL_ENV_ROOT).
# These tests need root and /dev/fuse, so `cargo test` lists them as ignored and this target
# runs them. The in-process model's tests run in plain `cargo test`.
#
#   make check-apsim     mount tests (root, /dev/fuse, unshare, mdevctl 1.2 + 1.4.0)
#   make apsim-mdevctl14 install mdevctl 1.4.0 into $(TARGET_DIR)/tools (once)
DEPS_GROUPS   += ap
CHECK_TARGETS += check-apsim

APSIM_MDEVCTL14_ROOT := $(TARGET_DIR)/tools/mdevctl-1.4.0
APSIM_MDEVCTL14      := $(APSIM_MDEVCTL14_ROOT)/bin/mdevctl

.PHONY: check-apsim apsim-mdevctl14

# mdevctl's build.rs wants rst2man for its man page; the binary does not need it.
apsim-mdevctl14:
	@if [ ! -x $(APSIM_MDEVCTL14) ]; then \
	  echo "apsim-mdevctl14: cargo install mdevctl 1.4.0 into $(APSIM_MDEVCTL14_ROOT)"; \
	  RST2MAN=/bin/true $(CARGO) install --locked --quiet mdevctl --version 1.4.0 --root $(APSIM_MDEVCTL14_ROOT); \
	fi

check-apsim: apsim-mdevctl14
	@[ "$$(id -u)" = 0 ] || { echo "check-apsim: FAILED: needs root (FUSE mount, unshare -m)"; exit 1; }
	@[ -c /dev/fuse ] || { echo "check-apsim: FAILED: /dev/fuse is missing"; exit 1; }
	AP_SIM_MDEVCTL14=$(APSIM_MDEVCTL14) AP_SIM_MDEVCTL12=/usr/bin/mdevctl \
	  $(CARGO) test -p ap-sim --test mount -- --ignored
	@if grep -q ' - fuse ap-sim ' /proc/self/mountinfo; then \
	  echo "check-apsim: FAILED: an ap-sim mount was left behind:"; grep ' - fuse ap-sim ' /proc/self/mountinfo; exit 1; fi
	@echo "check-apsim: mount tests passed, no ap-sim mount left"
