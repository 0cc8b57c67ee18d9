# libvirt's node device API end to end: `virsh nodedev-define|autostart|start|destroy|undefine`
# through a real libvirtd (node device driver only, private mount/network/PID namespaces) over
# the FUSE-mounted AP simulator, the real mdevctl and our callout installed as `make install`
# puts it. doc/nodedev-libvirt.md explains the host the test builds.
#
#   make check-nodedev   nodedev-helper/tests/nodedev-libvirt.sh with Debian's mdevctl 1.2 and
#                        with mdevctl 1.4.0 (vfio_ap loaded, not loaded, and a failing mdev
#                        create for passthrough's rollback), then `nodedev-helper doctor` on the
#                        simulator in healthy and broken states (tests/doctor_sim.rs) (root, /dev/fuse)
#   make demo-nodedev    the virsh nodedev-define path shown step by step, refusals included
DEPS_GROUPS   += nodedev
CHECK_TARGETS += check-nodedev
DEMO_TARGETS  += demo-nodedev

NODEDEV_DEST := $(TARGET_DIR)/nodedev-dest

.PHONY: check-nodedev nodedev-install demo-nodedev

# what the test installs: the callout and its mdevctl wrappers, where `make install` puts them
nodedev-install:
	@$(CARGO) build --release -p nodedev-helper -p ap-sim
	@rm -rf $(NODEDEV_DEST)
	@$(MAKE) --no-print-directory install-bins install-hooks DESTDIR=$(NODEDEV_DEST) \
	  PKG_BINS="nodedev-helper nodedev-helper-callout" >/dev/null

check-nodedev: mdevctl-1.4 nodedev-install
	@$(DEPS_SH) nodedev
	@$(call ap_sim_guarded,check-nodedev,for m in /usr/bin/mdevctl:1.2 $(MDEVCTL_1_4):1.4; do \
	  AP_SIM=$(RELEASE_DIR)/ap-sim DEST=$(NODEDEV_DEST) NODEDEV_HELPER=$(RELEASE_DIR)/nodedev-helper \
	    nodedev-helper/tests/nodedev-libvirt.sh $${m%:*} $${m##*:} || exit 1; \
	done)
	@$(call ap_sim_guarded,check-nodedev,$(CARGO) test -p nodedev-helper --test doctor_sim -- --ignored)

demo-nodedev: nodedev-install
	@$(DEPS_SH) nodedev
	@$(call ap_sim_guarded,demo-nodedev,NODEDEV_MODES=demo AP_SIM=$(RELEASE_DIR)/ap-sim DEST=$(NODEDEV_DEST) \
	  NODEDEV_HELPER=$(RELEASE_DIR)/nodedev-helper nodedev-helper/tests/nodedev-libvirt.sh /usr/bin/mdevctl demo)
