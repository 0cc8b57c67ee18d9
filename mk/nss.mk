# NSS module (nss-libvirt-guest/): libnss_libvirt.so.2 + libnss_libvirt_guest.so.2; its
# diagnostic command nss-libvirt-guest is the package nss-libvirt-guest-cli (nss-libvirt-guest/cli).
#
#   make nss-module   $(RELEASE_DIR)/nss/libnss_libvirt{,_guest}.so.2, each with its own SONAME
#   make check-nss    the tests that go through the host's glibc tools as root (getaddrinfo,
#                     getent in a mount namespace, setuid as nobody, exports, `check`'s
#                     verdicts against getent's, running domains without a lease through the
#                     neighbour table of a private netns), the installed names' SONAMEs, the module
#                     package's dependencies (libc, memchr only), and the fuzz targets' build
#   make bench-nss    Debian's libnss_libvirt{,_guest} against ours (part of `make bench`)
DEPS_GROUPS   += nss
CHECK_TARGETS += check-nss

NSS_DIR     := nss-libvirt-guest
NSS_OUT     := $(RELEASE_DIR)/nss
NSS_SO      := $(RELEASE_DIR)/libnss_libvirt_guest.so

.PHONY: nss-module check-nss

# One cdylib serves both services; glibc dlopens libnss_<service>.so.2, and each installed
# name should carry that SONAME (objdump -p, dpkg-shlibdeps). patchelf is in deps group nss.
nss-module:
	$(CARGO) build --release -p nss-libvirt-guest --lib
	@mkdir -p $(NSS_OUT)
	@for n in libnss_libvirt.so.2 libnss_libvirt_guest.so.2; do \
	  cp $(NSS_SO) $(NSS_OUT)/$$n.tmp && patchelf --set-soname $$n $(NSS_OUT)/$$n.tmp && mv $(NSS_OUT)/$$n.tmp $(NSS_OUT)/$$n; \
	  echo "nss-module: $(NSS_OUT)/$$n (SONAME $$(objdump -p $(NSS_OUT)/$$n | awk '/SONAME/ {print $$2}'))"; \
	done

check-nss: nss-module fuzz-nss
	@start=$$(date +%s); \
	$(CARGO) test -p nss-libvirt-guest --test glibc -- --ignored --test-threads=1; \
	$(CARGO) test -p nss-libvirt-guest-cli --test doctor -- --ignored; \
	$(CARGO) test -p nss-libvirt-guest-cli --test seen -- --ignored; \
	for n in libnss_libvirt.so.2 libnss_libvirt_guest.so.2; do \
	  so=$$(objdump -p $(NSS_OUT)/$$n | awk '/SONAME/ {print $$2}'); \
	  [ "$$so" = "$$n" ] || { echo "check-nss: $(NSS_OUT)/$$n has SONAME '$$so'" >&2; exit 1; }; \
	done; \
	echo "check-nss: SONAMEs of $(NSS_OUT)/libnss_libvirt{,_guest}.so.2 are right"; \
	deps=$$($(CARGO) tree -p nss-libvirt-guest -e normal,build --prefix none --depth 1 | sed 1d | awk '{print $$1}' | sort -u | tr '\n' ' '); \
	[ "$$deps" = "libc memchr " ] || { echo "check-nss: nss-libvirt-guest depends on '$$deps', expected 'libc memchr ' (the CLI's dependencies belong to nss-libvirt-guest-cli)" >&2; exit 1; }; \
	echo "check-nss: the module package depends on $${deps% } only"; \
	echo "check-nss: passed in $$(( $$(date +%s) - start )) s"

BENCH_TARGETS += bench-nss
DEPS_GROUPS   += bench
.PHONY: bench-nss
bench-nss: nss-module
	python3 $(NSS_DIR)/bench/run.py --nss-dir $(NSS_OUT) $(if $(QUICK),--quick)

# Fuzz targets for the lease and mac-map parsers (nss-libvirt-guest/fuzz, its own workspace),
# built and each run for NSS_FUZZ_SECONDS from its seed files (fuzz_run in the Makefile).
# Part of check-nss.
CARGO_TOOLS     += cargo-fuzz
NSS_FUZZ_SECONDS ?= 10
.PHONY: fuzz-nss
fuzz-nss:
	@$(call fuzz_run,$(NSS_DIR),$(NSS_FUZZ_SECONDS))
