# Hooks that fire by themselves (doc/hooks.md, doc/mdevctl.md): the libvirt qemu hook, the
# mdevctl callout and the udev rule that fixes mdevctl auto-start on Debian/Ubuntu. hooks/README.md explains each file.
#
#   make install-hooks DESTDIR=...   (part of make install) wrappers with $(SBINDIR) filled in
#   make check-hooks                 install into a temp DESTDIR and check the result, udev
#                                    rules through udevadm, the hook under a real namespaced
#                                    libvirtd (tests/e2e/rig.sh, RIG_NAME=hk<pid>), and the hook
#                                    as libvirt runs it over the FUSE-mounted AP simulator with
#                                    the real mdevctl 1.4.0 (check-hooks-sim: root, /dev/fuse)
DEPS_GROUPS     += hooks
INSTALL_TARGETS += install-hooks
CHECK_TARGETS   += check-hooks

# Where each consumer looks (libvirt 9, mdevctl 1.2 and >= 1.3, udev).
LIBVIRT_QEMU_HOOKS_DIR ?= $(SYSCONFDIR)/libvirt/hooks/qemu.d
LIBVIRT_LXC_HOOKS_DIR  ?= $(SYSCONFDIR)/libvirt/hooks/lxc.d
MDEVCTL_LIB_CALLOUTS   ?= $(PREFIX)/lib/mdevctl/scripts.d/callouts
MDEVCTL_ETC_CALLOUTS   ?= $(SYSCONFDIR)/mdevctl.d/scripts.d/callouts
UDEV_ETC_RULES         ?= $(SYSCONFDIR)/udev/rules.d
# The 60-mdevctl.rules replacement is only needed where the package rule is broken
# (Debian/Ubuntu); elsewhere the package's own rule is kept. Override with =yes/=no.
HOOKS_MDEVCTL_UDEV_FIX ?= $(if $(wildcard /etc/debian_version),yes,no)

# hooks_install SRC DEST MODE: copy with @SBINDIR@ replaced
define hooks_install
install -d $(dir $(2)) && sed 's|@SBINDIR@|$(SBINDIR)|g' $(1) > $(2).tmp && chmod $(3) $(2).tmp && mv -f $(2).tmp $(2) && echo "install: $(2)"
endef

# hooks_link LINK TARGET [-r]: LINK (under DESTDIR) -> TARGET, relative with -r (within /usr,
# as Debian policy wants), absolute otherwise (from /etc). mdevctl execs the callout directly:
# no shell in between (a /bin/sh wrapper cost ~0.85 ms a run, about a whole process start). A
# link whose target is gone (nodedev-helper removed) cannot be executed, and mdevctl 1.2 and
# 1.4 then go on with the next callout, as for "not my type".
define hooks_link
install -d $(dir $(DESTDIR)$(1)) && rm -f $(DESTDIR)$(1) && \
$(if $(3),ln -s $$(realpath -m --relative-to=$(dir $(1)) $(2)),ln -s $(2)) $(DESTDIR)$(1) && echo "install: $(DESTDIR)$(1) -> $$(readlink $(DESTDIR)$(1))"
endef

.PHONY: install-hooks check-hooks check-hooks-install check-hooks-udev check-hooks-e2e check-hooks-sim

install-hooks:
	@$(call hooks_install,hooks/libvirt/50-nodedev-helper,$(DESTDIR)$(LIBVIRT_QEMU_HOOKS_DIR)/50-nodedev-helper,0755)
	@$(call hooks_install,hooks/libvirt/60-nss-libvirt-guest-qemu,$(DESTDIR)$(LIBVIRT_QEMU_HOOKS_DIR)/60-nss-libvirt-guest,0755)
	@$(call hooks_install,hooks/libvirt/60-nss-libvirt-guest-lxc,$(DESTDIR)$(LIBVIRT_LXC_HOOKS_DIR)/60-nss-libvirt-guest,0755)
	@$(call hooks_link,$(MDEVCTL_LIB_CALLOUTS)/00-nodedev-helper,$(SBINDIR)/nodedev-helper-callout,-r)
	@$(call hooks_link,$(MDEVCTL_ETC_CALLOUTS)/00-nodedev-helper,$(SBINDIR)/nodedev-helper-callout,)
	@if [ "$(HOOKS_MDEVCTL_UDEV_FIX)" = yes ]; then \
	  $(call hooks_install,hooks/udev/60-mdevctl.rules,$(DESTDIR)$(UDEV_ETC_RULES)/60-mdevctl.rules,0644); \
	else echo "install-hooks: 60-mdevctl.rules not installed (HOOKS_MDEVCTL_UDEV_FIX=$(HOOKS_MDEVCTL_UDEV_FIX))"; fi

check-hooks: check-hooks-install check-hooks-udev check-hooks-sim check-hooks-e2e

check-hooks-install:
	@d=$$(mktemp -d /tmp/check-hooks.XXXXXX); trap 'rm -rf "$$d"' EXIT; \
	$(MAKE) --no-print-directory install-hooks DESTDIR=$$d HOOKS_MDEVCTL_UDEV_FIX=yes >/dev/null; \
	hooks/tests/check-install.sh "$$d" "$(SBINDIR)" "$(LIBVIRT_QEMU_HOOKS_DIR)" "$(MDEVCTL_LIB_CALLOUTS)" \
	  "$(MDEVCTL_ETC_CALLOUTS)" "$(UDEV_ETC_RULES)" "$(LIBVIRT_LXC_HOOKS_DIR)"

check-hooks-udev:
	@hooks/tests/check-udev.sh hooks/udev

check-hooks-e2e:
	@hooks/tests/e2e-libvirt-hook.sh $(RELEASE_DIR)/nodedev-helper

# nodedev-helper/tests/hook_sim.rs: #[ignore]d in cargo test (needs root, /dev/fuse, mdevctl
# 1.4.0), run here with --include-ignored; a missing prerequisite fails, never skips.
check-hooks-sim: mdevctl-1.4
	@$(call ap_sim_guarded,check-hooks-sim,MDEVCTL_1_4=$(MDEVCTL_1_4) $(CARGO) test -p nodedev-helper \
	  --test hook_sim -- --include-ignored)
