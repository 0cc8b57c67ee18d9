# Side by side with the real s390-tools (nodedev-helper ap vs chzdev/lszdev -t ap).
#
#   make check-s390tools   fetches Debian sid's s390x s390-tools (with libc6, libjson-c5) through
#                          a scratch apt configuration, unpacks it under $(S390TOOLS_DIR), and runs
#                          nodedev-helper/tests/s390tools.rs: the real chzdev and lszdev under
#                          qemu-s390x-static and `nodedev-helper ap` on one FUSE-mounted AP
#                          simulator (root, /dev/fuse, unshare). A failed download fails.
DEPS_GROUPS   += s390tools
CHECK_TARGETS += check-s390tools

S390TOOLS_DIR ?= $(TARGET_DIR)/s390-tools

.PHONY: s390-tools check-s390tools

s390-tools:
	@nodedev-helper/tests/s390-tools-fetch.sh $(S390TOOLS_DIR)

check-s390tools:
	@$(DEPS_SH) s390tools
	@$(MAKE) --no-print-directory s390-tools
	@echo "check-s390tools: against s390-tools $$(cat $(S390TOOLS_DIR)/version) (Debian sid, s390x, qemu-user)"
	@$(call ap_sim_guarded,check-s390tools,S390_TOOLS_TREE=$(S390TOOLS_DIR)/tree $(CARGO) test \
	  -p nodedev-helper --test s390tools -- --ignored)
