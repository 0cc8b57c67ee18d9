# End-to-end harness: a real libvirtd in namespaces (tests/e2e/rig.sh, see tests/e2e/README.md).
#
#   make rig-up / rig-down / rig-status   the interactive rig (RIG_NAME=vhk unless set)
#   make check-e2e                        NSS end-to-end tests against a real libvirt (root)
#   make demo-nss                         the walkthrough of `make demo` (DEMO_KEEP=1 keeps the rig up)
DEPS_GROUPS += e2e

E2E_DIR    := tests/e2e
E2E_RIG    := $(E2E_DIR)/rig.sh
# our module, as the release build leaves it (one .so exporting both services' symbols)
E2E_NSS_SO ?= $(RELEASE_DIR)/libnss_libvirt_guest.so

.PHONY: rig-up rig-down rig-status

rig-up: release
	RIG_NSS_SO=$(E2E_NSS_SO) $(E2E_RIG) up

rig-down:
	$(E2E_RIG) down

rig-status:
	$(E2E_RIG) status
