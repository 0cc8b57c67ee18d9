# AP bus simulator (what it simulates: doc/ap-bus.md): the FUSE-mounted simulator driven by
# unmodified programs — the shell, Debian's mdevctl 1.2 (private mount namespace) and mdevctl 1.4.0 (MDEVCTL_ENV_ROOT).
# These tests need root and /dev/fuse, so `cargo test` lists them as ignored and this target
# runs them. The in-process model's tests run in plain `cargo test`.
#
#   make check-apsim     mount tests (root, /dev/fuse, unshare, mdevctl 1.2 + 1.4.0)
DEPS_GROUPS   += ap
CHECK_TARGETS += check-apsim

.PHONY: check-apsim

check-apsim: mdevctl-1.4
	@$(DEPS_SH) ap
	@$(call ap_sim_guarded,check-apsim,MDEVCTL_1_4=$(MDEVCTL_1_4) AP_SIM_MDEVCTL12=/usr/bin/mdevctl \
	  $(CARGO) test -p ap-sim --test mount -- --ignored)
	@echo "check-apsim: mount tests passed, no ap-sim mount left"
