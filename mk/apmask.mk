# AP masks, crypto inventory and one-command crypto passthrough (issue 5; nodedev-helper ap,
# nodedev-helper passthrough).
#
#   make check-apmask   the passthrough tests that run the real mdevctl 1.4.0 (MDEVCTL_ENV_ROOT)
#                       and the AP simulator mounted over FUSE (root); the rest of the
#                       ap/passthrough tests run in `cargo test`
#   make demo-crypto    the walkthrough on the FUSE-mounted AP simulator (root): inventory, the
#                       seed's mask examples, passthrough to a guest definition through the
#                       real mdevctl, a refused conflicting change, removal
CHECK_TARGETS += check-apmask
DEMO_TARGETS  += demo-crypto

# mdevctl >= 1.3 (honours MDEVCTL_ENV_ROOT); the same install mk/callout.mk uses, built from
# crates.io once (RST2MAN=/bin/true: no man page tool needed)
APMASK_MDEVCTL_ROOT ?= $(TARGET_DIR)/tools/mdevctl-1.4.0
APMASK_MDEVCTL      := $(APMASK_MDEVCTL_ROOT)/bin/mdevctl

.PHONY: apmask-mdevctl check-apmask demo-crypto

apmask-mdevctl:
	@test -x $(APMASK_MDEVCTL) || { mkdir -p $(APMASK_MDEVCTL_ROOT); \
	  echo "apmask: building mdevctl 1.4.0 into $(APMASK_MDEVCTL_ROOT)"; \
	  RST2MAN=/bin/true $(CARGO) install mdevctl --version 1.4.0 --locked --root $(APMASK_MDEVCTL_ROOT) \
	    >$(APMASK_MDEVCTL_ROOT).apmask.log 2>&1 || { cat $(APMASK_MDEVCTL_ROOT).apmask.log; exit 1; }; }

# passthrough_sim mounts the AP simulator over FUSE (root, /dev/fuse) and drives the real
# mdevctl down to an active device; passthrough checks the rollback on plain files
check-apmask: apmask-mdevctl
	NODEDEV_HELPER_TEST_MDEVCTL=$(APMASK_MDEVCTL) $(CARGO) test -p nodedev-helper \
	  --test passthrough --test passthrough_sim -- --ignored

demo-crypto: apmask-mdevctl
	@$(CARGO) build --release -p nodedev-helper -p ap-sim
	@NODEDEV_HELPER=$(RELEASE_DIR)/nodedev-helper AP_SIM=$(RELEASE_DIR)/ap-sim MDEVCTL=$(APMASK_MDEVCTL) \
	  nodedev-helper/tests/passthrough-demo.sh
