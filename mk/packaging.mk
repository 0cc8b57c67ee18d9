# Packaging: install layout, man pages, DEB and RPM, and the proof that the packages install
# and work (packaging/README.md explains the layout and every choice).
#
#   make install DESTDIR=... PREFIX=/usr [LIBDIR=...]   binaries, NSS module, man pages, hooks
#   make deb [DEB_ARCH=s390x]     .debs in $(TARGET_DIR)/deb/ (dpkg-buildpackage -b, -as390x)
#   make vendor                   $(TARGET_DIR)/rpm/SOURCES/virt-hostkit-VERSION{,-vendor}.tar.gz
#   make rpm [RPM_ARCH=s390x]     RPMs in $(TARGET_DIR)/rpm/RPMS/
#   make check-packages           man pages vs --help, build + lintian the .debs, install them
#                                 into a debootstrapped Debian 12 root and use them there
DEPS_GROUPS     += packaging
INSTALL_TARGETS += install-bins install-nss install-man
CHECK_TARGETS   += check-packages

PKG_VERSION  := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
# Admin tools (man section 8) go to sbin, like mdevctl; the hook wrappers call them there.
PKG_BINS     := nodedev-helper storage-align nss-libvirt-guest
# One shared object serves both NSS services; glibc dlopens libnss_<service>.so.2.
NSS_CDYLIB   ?= $(RELEASE_DIR)/libnss_libvirt_guest.so
NSS_NAMES    := libnss_libvirt.so.2 libnss_libvirt_guest.so.2
PKG_OUT      := $(TARGET_DIR)/packages

.PHONY: install-bins install-nss install-man install-only check-man deb check-packages vendor rpm check-rpm

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
	  install -D -m 0644 $(NSS_CDYLIB) $(DESTDIR)$(LIBDIR)/$$n; \
	  patchelf --set-soname $$n $(DESTDIR)$(LIBDIR)/$$n; \
	  echo "install: $(DESTDIR)$(LIBDIR)/$$n"; \
	done

install-man:
	@for p in packaging/man/*.8; do install -D -m 0644 $$p $(DESTDIR)$(MANDIR)/man8/$$(basename $$p); \
	  echo "install: $(DESTDIR)$(MANDIR)/man8/$$(basename $$p)"; done

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
DEB_DIR   := $(PKG_OUT)/deb/$(DEB_ARCH)
DEB_SRC   := $(PKG_OUT)/deb/src-$(DEB_ARCH)/virt-hostkit-$(PKG_VERSION)
DEB_CROSS := $(if $(filter $(DEB_ARCH),$(shell dpkg --print-architecture)),,-a$(DEB_ARCH) -d)

deb:
	@scripts/deps.sh packaging >/dev/null
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

check-packages: $(if $(filter head,$(PKG_TREE)),,release)
	@start=$$(date +%s); \
	python3 packaging/man/check-man.py $(RELEASE_DIR); t1=$$(date +%s); \
	$(MAKE) --no-print-directory deb; t2=$$(date +%s); \
	packaging/tests/debroot.sh $(DEB_ARCH) $(DEBROOT)-$(DEB_ARCH); t3=$$(date +%s); \
	packaging/tests/deb-smoke.sh $(DEBROOT)-$(DEB_ARCH) $(DEB_DIR); t4=$$(date +%s); \
	echo "check-packages: passed in $$((t4 - start)) s (man $$((t1 - start)) s, deb+lintian $$((t2 - t1)) s, debootstrap $$((t3 - t2)) s, install+use $$((t4 - t3)) s)"
