# Packaging: install layout, man pages, DEB and RPM, and the proof that the packages install
# and work (packaging/README.md explains the layout and every choice).
#
#   make install DESTDIR=... PREFIX=/usr [LIBDIR=...]   binaries, NSS module, man pages, hooks,
#                                 shell completions
#   make deb [DEB_ARCH=s390x]     .debs in $(TARGET_DIR)/deb/ (dpkg-buildpackage -b, -as390x)
#   make vendor                   $(TARGET_DIR)/rpm/SOURCES/virt-hostkit-VERSION{,-vendor}.tar.gz
#   make rpm [RPM_ARCH=s390x]     RPMs in $(TARGET_DIR)/rpm/RPMS/
#   make check-completions        the installed bash/zsh/fish completions load and complete
#   make check-packages           man pages vs --help, completions, build + lintian the .debs,
#                                 install them into a debootstrapped Debian 12 root and use them
#                                 there, the RPMs (check-rpm)
DEPS_GROUPS     += packaging
INSTALL_TARGETS += install-bins install-nss install-man install-completions
CHECK_TARGETS   += check-packages

PKG_VERSION  := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
# Admin tools (man section 8) go to sbin, like mdevctl; the hook wrappers call them there.
PKG_BINS     := nodedev-helper nodedev-helper-callout storage-align nss-libvirt-guest
# One shared object serves both NSS services; glibc dlopens libnss_<service>.so.2.
NSS_CDYLIB   ?= $(RELEASE_DIR)/libnss_libvirt_guest.so
NSS_NAMES    := libnss_libvirt.so.2 libnss_libvirt_guest.so.2
# 0644 is Debian policy for shared libraries, RHEL's spec passes 0755 (its convention).
NSS_MODE     ?= 0644
PKG_OUT      := $(TARGET_DIR)/packages
# Shell completions: bash-completion and fish look in the same place everywhere; zsh's
# vendor directory is vendor-completions on Debian, site-functions on RHEL/Fedora.
DATADIR      ?= $(PREFIX)/share
BASHCOMPDIR  ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR   ?= $(DATADIR)/zsh/$(if $(wildcard /etc/debian_version),vendor-completions,site-functions)
FISHCOMPDIR  ?= $(DATADIR)/fish/vendor_completions.d
# The generator (packaging/completions) always runs on the build host, also when RELEASE_DIR
# holds cross-built (s390x) binaries: the scripts are the same text for every architecture.
COMPLETIONS_GEN ?= $(TARGET_DIR)/release/vhk-completions

.PHONY: install-bins install-nss install-man install-completions install-only check-man completions-gen \
  check-completions deb check-packages vendor rpm check-rpm

# Installs what `make release` (or a cross build, RELEASE_DIR=...) produced, without building:
# the .deb/.rpm builds and cross builds call this.
install-only:
	@$(MAKE) --no-print-directory $(INSTALL_TARGETS)

install-bins:
	@for b in $(PKG_BINS); do \
	  if [ -x $(RELEASE_DIR)/$$b ]; then install -D -m 0755 $(RELEASE_DIR)/$$b $(DESTDIR)$(SBINDIR)/$$b; \
	    echo "install: $(DESTDIR)$(SBINDIR)/$$b"; \
	  else echo "install: SKIPPED $$b: $(RELEASE_DIR)/$$b is not built (not in the workspace yet)"; fi; \
	done

# Each copy gets its own SONAME (what `objdump -p` and the package tools expect of a library
# named libnss_x.so.2); the Rust cdylib has none.
install-nss:
	@[ -f $(NSS_CDYLIB) ] || { echo "install-nss: $(NSS_CDYLIB) missing (make release)" >&2; exit 1; }
	@command -v patchelf >/dev/null || { echo "install-nss: patchelf missing (scripts/deps.sh packaging)" >&2; exit 1; }
	@for n in $(NSS_NAMES); do \
	  install -D -m $(NSS_MODE) $(NSS_CDYLIB) $(DESTDIR)$(LIBDIR)/$$n; \
	  patchelf --set-soname $$n $(DESTDIR)$(LIBDIR)/$$n; \
	  echo "install: $(DESTDIR)$(LIBDIR)/$$n"; \
	done

install-man:
	@for p in packaging/man/*.8; do install -D -m 0644 $$p $(DESTDIR)$(MANDIR)/man8/$$(basename $$p); \
	  echo "install: $(DESTDIR)$(MANDIR)/man8/$$(basename $$p)"; done

# bash: completions/NAME (bash-completion loads it when NAME is completed), zsh: _NAME
# (#compdef), fish: NAME.fish; all generated from the clap definitions the binaries parse with.
install-completions:
	@[ -x $(COMPLETIONS_GEN) ] || { echo "install-completions: $(COMPLETIONS_GEN) missing (make release, or make completions-gen)" >&2; exit 1; }
	@t=$$(mktemp -d); trap 'rm -rf "$$t"' EXIT; \
	for p in $$($(COMPLETIONS_GEN) --list); do \
	  for f in bash:$(BASHCOMPDIR)/$$p zsh:$(ZSHCOMPDIR)/_$$p fish:$(FISHCOMPDIR)/$$p.fish; do \
	    $(COMPLETIONS_GEN) $${f%%:*} $$p > $$t/s; install -D -m 0644 $$t/s $(DESTDIR)$${f#*:}; \
	    echo "install: $(DESTDIR)$${f#*:}"; \
	  done; \
	done

# the host's generator alone (cross builds: make build-s390x builds only s390x binaries)
completions-gen:
	$(CARGO) build --release -p vhk-completions

COMPLETIONS_ROOT := $(TARGET_DIR)/completions-root
define check_completions
rm -rf $(COMPLETIONS_ROOT); \
$(MAKE) --no-print-directory install-bins install-completions DESTDIR=$(COMPLETIONS_ROOT) PREFIX=/usr >/dev/null; \
packaging/tests/completions.sh $(COMPLETIONS_ROOT) $(BASHCOMPDIR) $(ZSHCOMPDIR) $(FISHCOMPDIR) $(SBINDIR)
endef

check-completions: release
	@$(DEPS_SH) packaging >/dev/null
	@$(call check_completions)

check-man: release
	@python3 packaging/man/check-man.py $(RELEASE_DIR)

# ---- DEB -------------------------------------------------------------------------------
# dpkg-buildpackage needs debian/ at the top of the source: build from a copy of the tree
# (tracked + untracked-but-not-ignored files) with packaging/debian as debian/. The cargo
# target dir is shared, so dependencies are not rebuilt.
# The source the packages are built from: the working tree (default), or with PKG_TREE=head
# the last commit plus the working tree's packaging files (to work on packaging while other
# parts have edits in flight).
PKG_TREE ?= worktree
define pkg_tree
if [ "$(PKG_TREE)" = head ]; then git archive HEAD | tar -x -C $(1); \
  tar -c packaging mk/packaging.mk mk/s390x.mk .cargo | tar -x -C $(1); \
else git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c 'test -e "{}" && echo "{}"' \
  | tar -c -T - | tar -x -C $(1); fi
endef

DEB_ARCH  ?= $(shell dpkg --print-architecture)
DEB_DIR   = $(PKG_OUT)/deb/$(DEB_ARCH)
DEB_SRC   = $(PKG_OUT)/deb/src-$(DEB_ARCH)/virt-hostkit-$(PKG_VERSION)
DEB_CROSS = $(if $(filter $(DEB_ARCH),$(shell dpkg --print-architecture)),,-a$(DEB_ARCH) -d)

deb:
	@$(DEPS_SH) packaging >/dev/null
	@start=$$(date +%s); rm -rf $(dir $(DEB_SRC)) $(DEB_DIR); mkdir -p $(DEB_SRC) $(DEB_DIR); \
	$(call pkg_tree,$(DEB_SRC)); \
	rm -rf $(DEB_SRC)/debian; cp -a packaging/debian $(DEB_SRC)/debian; \
	cd $(DEB_SRC) && DEB_BUILD_OPTIONS=nocheck CARGO_TARGET_DIR=$(TARGET_DIR) \
	  dpkg-buildpackage -b -us -uc $(DEB_CROSS) >$(DEB_DIR).log 2>&1 \
	  || { tail -n 40 $(DEB_DIR).log >&2; echo "deb: dpkg-buildpackage failed, log: $(DEB_DIR).log" >&2; exit 1; }; \
	mv $(dir $(DEB_SRC))*.deb $(dir $(DEB_SRC))*.changes $(dir $(DEB_SRC))*.buildinfo $(DEB_DIR)/; \
	mv $(dir $(DEB_SRC))*.ddeb $(DEB_DIR)/ 2>/dev/null || true; \
	echo "deb: built in $$(( $$(date +%s) - start )) s:"; ls -l $(DEB_DIR)
	@lintian --fail-on error --tag-display-limit 0 $(DEB_DIR)/*.changes | tee $(DEB_DIR).lintian; \
	echo "deb: lintian: $$(grep -c '^E:' $(DEB_DIR).lintian || true) error(s), $$(grep -c '^W:' $(DEB_DIR).lintian || true) warning(s) (packaging/README.md explains the remaining ones)"

# ---- proof ----------------------------------------------------------------------------
DEBROOT := $(TARGET_DIR)/debroot
# Also build the .debs of these architectures (cross, dpkg-buildpackage -aARCH) and prove them
# in a debootstrapped root of that architecture under qemu-user; empty skips. The root is
# debootstrapped (network, one qemu thread) while the cross build runs.
PKG_CROSS_ARCHES ?= s390x

check-packages: $(if $(filter head,$(PKG_TREE)),,release)
	@start=$$(date +%s); \
	python3 packaging/man/check-man.py $(RELEASE_DIR); t0=$$(date +%s); \
	$(call check_completions); t1=$$(date +%s); \
	$(MAKE) --no-print-directory deb; t2=$$(date +%s); \
	packaging/tests/debroot.sh $(DEB_ARCH) $(DEBROOT)-$(DEB_ARCH); t3=$$(date +%s); \
	packaging/tests/deb-smoke.sh $(DEBROOT)-$(DEB_ARCH) $(DEB_DIR); t4=$$(date +%s); \
	cross=""; for a in $(PKG_CROSS_ARCHES); do \
	  c0=$$(date +%s); \
	  (packaging/tests/debroot.sh $$a $(DEBROOT)-$$a && echo "debootstrap $$(( $$(date +%s) - c0 )) s") \
	    >$(DEBROOT)-$$a.bg.log 2>&1 & bg=$$!; \
	  $(MAKE) --no-print-directory deb DEB_ARCH=$$a; c1=$$(date +%s); \
	  wait $$bg || { cat $(DEBROOT)-$$a.bg.log >&2; exit 1; }; c2=$$(date +%s); cat $(DEBROOT)-$$a.bg.log; \
	  s390t=""; if [ "$$a" = s390x ]; then $(MAKE) --no-print-directory s390-tools; \
	    s390t=$$(ls $(S390TOOLS_DIR)/apt/debs/s390-tools_*_s390x.deb); fi; \
	  packaging/tests/deb-smoke.sh $(DEBROOT)-$$a $(PKG_OUT)/deb/$$a $$s390t; c3=$$(date +%s); \
	  $(MAKE) --no-print-directory check-rpm RPM_ARCH=$$a; c4=$$(date +%s); \
	  cross="$$cross, $$a: cross deb+lintian $$((c1 - c0)) s ($$(tail -n1 $(DEBROOT)-$$a.bg.log) alongside, then waited $$((c2 - c1)) s), deb install+use under qemu $$((c3 - c2)) s, rpm+rpmlint+rpm --root $$((c4 - c3)) s"; \
	done; t5=$$(date +%s); \
	$(MAKE) --no-print-directory check-rpm; t6=$$(date +%s); \
	echo "check-packages: passed in $$((t6 - start)) s (man $$((t0 - start)) s, completions $$((t1 - t0)) s, deb+lintian $$((t2 - t1)) s, debootstrap $$((t3 - t2)) s, deb install+use $$((t4 - t3)) s$$cross, vendor+rpm+rpmlint+rpm --root $$((t6 - t5)) s)"

# ---- RPM -------------------------------------------------------------------------------
# rpmbuild runs here on Debian: --nodeps (Debian has no rpm database of the BuildRequires).
# CI builds with --nocheck (the unit tests have just run in `make test`); RPM_CHECK=1 runs
# the spec's %check too.
RPM_ARCH  ?= $(shell uname -m)
RPM_TOP   := $(PKG_OUT)/rpm
RPM_SRC   := $(RPM_TOP)/SOURCES
RPM_NAME  := virt-hostkit-$(PKG_VERSION)
# Recursive (=): S390X_RELEASE comes from mk/s390x.mk, included after this file.
RPM_DEFS   = --define '_topdir $(RPM_TOP)' --define '__brp_compress bash /usr/lib/rpm/brp-compress' $(if $(RPM_CHECK),,--nocheck)
ifeq ($(RPM_ARCH),s390x)
RPM_DEFS  += --target s390x --define 'vhk_prebuilt $(S390X_RELEASE)' \
  --define '__strip /usr/bin/s390x-linux-gnu-strip' --define '__objdump /usr/bin/s390x-linux-gnu-objdump'
endif

# Source0: the tree; Source1: every crate the workspace needs (cargo vendor), so rpmbuild
# (and a distribution build system) never needs the network.
vendor:
	@rm -rf $(RPM_SRC)/tree; mkdir -p $(RPM_SRC)/tree/$(RPM_NAME)
	@$(call pkg_tree,$(RPM_SRC)/tree/$(RPM_NAME))
	@tar -C $(RPM_SRC)/tree -czf $(RPM_SRC)/$(RPM_NAME).tar.gz $(RPM_NAME)
	@cd $(RPM_SRC)/tree/$(RPM_NAME) && $(CARGO) vendor --locked --versioned-dirs vendor >/dev/null
	@tar -C $(RPM_SRC)/tree/$(RPM_NAME) -czf $(RPM_SRC)/$(RPM_NAME)-vendor.tar.gz vendor
	@echo "vendor: $(RPM_SRC)/$(RPM_NAME).tar.gz ($$(du -h $(RPM_SRC)/$(RPM_NAME).tar.gz | cut -f1)), $(RPM_SRC)/$(RPM_NAME)-vendor.tar.gz ($$(ls $(RPM_SRC)/tree/$(RPM_NAME)/vendor | wc -l) crates, $$(du -h $(RPM_SRC)/$(RPM_NAME)-vendor.tar.gz | cut -f1))"

rpm: vendor $(if $(filter s390x,$(RPM_ARCH)),build-s390x completions-gen)
	@$(DEPS_SH) packaging >/dev/null
	@start=$$(date +%s); rm -rf $(RPM_TOP)/RPMS/$(RPM_ARCH) $(RPM_TOP)/RPMS/noarch; \
	rpmbuild -bb --nodeps $(RPM_DEFS) packaging/rpm/virt-hostkit.spec >$(RPM_TOP)/rpmbuild-$(RPM_ARCH).log 2>&1 \
	  || { tail -n 40 $(RPM_TOP)/rpmbuild-$(RPM_ARCH).log >&2; echo "rpm: rpmbuild failed, log: $(RPM_TOP)/rpmbuild-$(RPM_ARCH).log" >&2; exit 1; }; \
	echo "rpm: built in $$(( $$(date +%s) - start )) s:"; ls -l $(RPM_TOP)/RPMS/*/
	@rpmlint -r packaging/rpm/rpmlintrc packaging/rpm/virt-hostkit.spec $(RPM_TOP)/RPMS/$(RPM_ARCH)/*.rpm $(RPM_TOP)/RPMS/noarch/*.rpm \
	  2>&1 | tee $(RPM_TOP)/rpmlint-$(RPM_ARCH).log | tail -n 30; \
	grep -q ' 0 errors' $(RPM_TOP)/rpmlint-$(RPM_ARCH).log || { echo "rpm: rpmlint reports errors" >&2; exit 1; }

# The RPMs installed into an empty root (rpm --root) must hold exactly what `make install`
# installs with the RHEL layout (lib64), apart from rpm's own additions (compressed man pages,
# license files).
check-rpm: rpm
	@t=$(RPM_TOP)/root-$(RPM_ARCH); m=$(RPM_TOP)/make-install; rm -rf $$t $$m; mkdir -p $$t; \
	rpm --root $$t --initdb; \
	rpm --root $$t -i --nodeps --ignorearch --noscripts $(RPM_TOP)/RPMS/$(RPM_ARCH)/*.rpm $(RPM_TOP)/RPMS/noarch/*.rpm; \
	rpm --root $$t -qa | sort | sed 's/^/check-rpm: installed /'; \
	machine='$(if $(filter s390x,$(RPM_ARCH)),IBM S/390,$(if $(filter x86_64,$(RPM_ARCH)),X86-64))'; n=0; \
	for f in $$(find $$t/usr -type f); do \
	  readelf -h $$f >/dev/null 2>&1 || continue; n=$$((n + 1)); \
	  [ -z "$$machine" ] || readelf -h $$f | grep -q "Machine:.*$$machine" \
	    || { echo "check-rpm: $${f#$$t} in the $(RPM_ARCH) RPMs is not a $$machine ELF file" >&2; exit 1; }; \
	done; echo "check-rpm: $$n ELF files in the $(RPM_ARCH) RPMs, all $${machine:-(machine not checked)}"; \
	$(MAKE) --no-print-directory -C $(RPM_SRC)/tree/$(RPM_NAME) install-only DESTDIR=$$m PREFIX=/usr LIBDIR=/usr/lib64 NSS_MODE=0755 \
	  ZSHCOMPDIR=/usr/share/zsh/site-functions \
	  $(if $(filter s390x,$(RPM_ARCH)),RELEASE_DIR=$(S390X_RELEASE)) >/dev/null; \
	(cd $$m && find . -type f -o -type l | sed 's/^\.//' | sort) > $(RPM_TOP)/files-make; \
	rpm --root $$t -qal | grep -v -e '^/usr/share/licenses/' -e '^/usr/lib/\.build-id' | sed 's/\.gz$$//' \
	  | while read -r f; do [ -d "$$t$$f" ] && [ ! -L "$$t$$f" ] || echo "$$f"; done | sort > $(RPM_TOP)/files-rpm; \
	if diff -u $(RPM_TOP)/files-make $(RPM_TOP)/files-rpm; then \
	  echo "check-rpm: rpm --root file list = make install file list ($$(wc -l < $(RPM_TOP)/files-rpm) files)"; \
	else echo "check-rpm: file lists differ (- make install, + rpm)" >&2; exit 1; fi
