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

.PHONY: e2e-build rig-up rig-down rig-status

# what the rig installs: the NSS module (+ the diagnostic CLI the demo shows), and its
# correctly SONAMEd copies $(RELEASE_DIR)/nss/libnss_libvirt{,_guest}.so.2 (mk/nss.mk), which
# the rig prefers; plus the packages the rig needs when make check/demo has not installed them
e2e-build:
	@$(DEPS_SH) e2e nss
	$(CARGO) build --release -p nss-libvirt-guest -p nss-libvirt-guest-cli
	$(MAKE) --no-print-directory nss-module

rig-up: e2e-build
	RIG_NSS_SO=$(E2E_NSS_SO) $(E2E_RIG) up

rig-down:
	$(E2E_RIG) down

rig-status:
	$(E2E_RIG) status

# ------------------------------------------------------------------ end-to-end tests, demo
CHECK_TARGETS += check-e2e
DEMO_TARGETS  += demo-nss
# the diagnostic CLI of nss-libvirt-guest, shown by the demo when it is built
E2E_NSS_CLI ?= $(RELEASE_DIR)/nss-libvirt-guest
DEMO_KEEP   ?= 0

.PHONY: check-e2e demo-nss

# our module against a real libvirtd: getent, reverse lookups, agreement with Debian's
# module, ssh by name, domain lifecycle, released and expired leases (~2 min: the expired
# lease is a 2-minute one, dnsmasq's minimum). E2E_NSS=debian runs it against Debian's.
# nss-noleases.sh (~10 s): an LXC domain with a static address on the bridge, no lease,
# resolved through the lxc hook's map and the neighbour table.
check-e2e: e2e-build
	shellcheck -S warning $(E2E_DIR)/*.sh
	RIG_NSS_SO=$(E2E_NSS_SO) $(E2E_DIR)/nss-e2e.sh
	RIG_NSS_SO=$(E2E_NSS_SO) NSS_CLI=$(E2E_NSS_CLI) $(E2E_DIR)/nss-noleases.sh

demo-nss: e2e-build
	RIG_NSS_SO=$(E2E_NSS_SO) NSS_CLI=$(E2E_NSS_CLI) DEMO_KEEP=$(DEMO_KEEP) $(E2E_DIR)/demo-nss.sh
