# AP masks, crypto inventory and one-command crypto passthrough (nodedev-helper ap,
# nodedev-helper passthrough).
#
#   make check-apmask   the passthrough tests that run the real mdevctl 1.4.0 (MDEVCTL_ENV_ROOT)
#                       and the AP simulator mounted over FUSE (root); the rest of the
#                       ap/passthrough tests run in `cargo test`
#   make demo-crypto    the walkthrough on the FUSE-mounted AP simulator (root): inventory, the
#                       documentation's mask examples (doc/ap-bus.md), passthrough to a guest
#                       definition through the real mdevctl, a refused conflicting change, removal
CHECK_TARGETS += check-apmask
DEMO_TARGETS  += demo-crypto

.PHONY: check-apmask demo-crypto

# passthrough_sim mounts the AP simulator over FUSE (root, /dev/fuse) and drives the real
# mdevctl down to an active device; passthrough checks the rollback on plain files
check-apmask: mdevctl-1.4
	@$(DEPS_SH) ap
	@$(call ap_sim_guarded,check-apmask,MDEVCTL_1_4=$(MDEVCTL_1_4) $(CARGO) test -p nodedev-helper \
	  --test passthrough --test passthrough_sim -- --ignored)

demo-crypto: mdevctl-1.4
	@$(DEPS_SH) ap
	@$(CARGO) build --release -p nodedev-helper -p ap-sim
	@NODEDEV_HELPER=$(RELEASE_DIR)/nodedev-helper AP_SIM=$(RELEASE_DIR)/ap-sim MDEVCTL=$(MDEVCTL_1_4) \
	  nodedev-helper/tests/passthrough-demo.sh
