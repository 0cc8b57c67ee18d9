# s390x (IBM Z, big-endian): cross-build the whole workspace with Debian's rustc 1.85 and run
# the whole test suite under qemu-s390x-static. This is what proves masks, bit orders, sysfs
# hex and binary layouts on big-endian. Recipe: packaging/s390x/ and hooks-packaging notes in
# packaging/README.md.
#
#   make check-s390x     build + run every test for s390x (skips listed, with reasons)
#   make build-s390x     release binaries for s390x ($(TARGET_DIR)/s390x-unknown-linux-gnu/release)
#                        that the packages ship
DEPS_GROUPS   += s390x
CHECK_TARGETS += check-s390x

S390X_TRIPLE    := s390x-unknown-linux-gnu
S390X_TOOLCHAIN := deb-1.85
S390X_SYSROOT   ?= $(TARGET_DIR)/s390x-sysroot
S390X_RELEASE   := $(TARGET_DIR)/$(S390X_TRIPLE)/release
S390X_SKIPS     := packaging/s390x/skip-under-qemu.txt
S390X_LIBS      := $(S390X_SYSROOT)/usr/lib/s390x-linux-gnu:$(S390X_SYSROOT)/lib/s390x-linux-gnu

# C libraries (libvirt, libudev, fuse3) come from the sysroot: pkg-config prefixes its paths,
# the linker resolves their own dependencies there, and the s390x dynamic loader under qemu
# finds them through LD_LIBRARY_PATH given to the guest only (QEMU_SET_ENV), never to host tools.
S390X_ENV := PKG_CONFIG_ALLOW_CROSS=1 PKG_CONFIG_SYSROOT_DIR=$(S390X_SYSROOT) \
  PKG_CONFIG_LIBDIR=$(S390X_SYSROOT)/usr/lib/s390x-linux-gnu/pkgconfig:$(S390X_SYSROOT)/usr/share/pkgconfig \
  CARGO_TARGET_S390X_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-Wl,-rpath-link,$(S390X_SYSROOT)/usr/lib/s390x-linux-gnu -C link-arg=-Wl,-rpath-link,$(S390X_SYSROOT)/lib/s390x-linux-gnu" \
  QEMU_SET_ENV=LD_LIBRARY_PATH=$(S390X_LIBS)
S390X_CARGO := env $(S390X_ENV) $(CARGO) +$(S390X_TOOLCHAIN)
# Test binaries are also exec'd by other tests, often with a cleared environment (libvirt
# hooks get only LC_ALL/PATH/...), so QEMU_SET_ENV does not reach them: the test build
# carries an rpath into the sysroot instead (never the release build that gets packaged);
# DT_RPATH, not RUNPATH, so that libvirt.so.0 finds its own dependencies there too.
S390X_TEST_CARGO := env $(S390X_ENV) \
  CARGO_TARGET_S390X_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-Wl,-rpath-link,$(S390X_SYSROOT)/usr/lib/s390x-linux-gnu -C link-arg=-Wl,-rpath-link,$(S390X_SYSROOT)/lib/s390x-linux-gnu -C link-arg=-Wl,--disable-new-dtags -C link-arg=-Wl,-rpath,$(S390X_LIBS)" \
  $(CARGO) +$(S390X_TOOLCHAIN)

.PHONY: s390x-toolchain s390x-sysroot build-s390x check-s390x

# rustup cannot add the s390x target here; Debian's rustc-web 1.85 (with libstd-rust-web-dev:s390x)
# is linked into rustup as a custom toolchain, once.
s390x-toolchain:
	@$(DEPS_SH) s390x >/dev/null
	@rustup toolchain list | grep -qx '$(S390X_TOOLCHAIN)' || rustup toolchain link $(S390X_TOOLCHAIN) /usr
	@test -d /usr/lib/rustlib/$(S390X_TRIPLE)/lib || { echo "s390x: no s390x std in /usr/lib/rustlib (libstd-rust-web-dev:s390x)" >&2; exit 1; }

s390x-sysroot:
	@$(DEPS_SH) packaging >/dev/null
	@packaging/s390x/sysroot.sh $(S390X_SYSROOT)

# what the packages ship: not the build-host tool vhk-completions (run natively, see
# install-completions) nor the test-only AP bus simulator (check-s390x builds both)
build-s390x: s390x-toolchain s390x-sysroot
	$(S390X_CARGO) build --workspace --release --target $(S390X_TRIPLE) --exclude vhk-completions --exclude ap-sim

check-s390x: s390x-toolchain s390x-sysroot
	@start=$$(date +%s); \
	$(S390X_TEST_CARGO) test --workspace --target $(S390X_TRIPLE) --no-run; \
	skips=(); while read -r name reason; do skips+=(--skip "$$name"); \
	  echo "check-s390x: SKIPPED $$name $$reason"; done < <(grep -v '^\s*\(#\|$$\)' $(S390X_SKIPS) || true); \
	echo "check-s390x: $$(( $${#skips[@]} / 2 )) test filter(s) skipped under qemu-user (listed above)"; \
	log=$(TARGET_DIR)/check-s390x.log; \
	rc=0; packaging/s390x/userns-binfmt.sh $(S390X_TEST_CARGO) test --workspace --target $(S390X_TRIPLE) --no-fail-fast \
	  -- "$${skips[@]}" 2>&1 | tee $$log || rc=$$?; \
	awk '/^test result:/ { p += $$4; f += $$6; i += $$8; fo += $$12 } \
	  END { printf "check-s390x: big-endian s390x under qemu: %d passed, %d failed, %d ignored, %d filtered out (skip list)\n", p, f, i, fo }' $$log; \
	echo "check-s390x: doc tests are not run for a cross target (cargo limitation); they run natively in make test"; \
	readelf -h $(TARGET_DIR)/$(S390X_TRIPLE)/debug/nodedev-helper | grep -q 'big endian' \
	  || { echo "check-s390x: the test build is not big-endian s390x" >&2; rc=1; }; \
	grep -q '^test result:' $$log || { echo "check-s390x: no test ran" >&2; rc=1; }; \
	echo "check-s390x: $$( [ $$rc = 0 ] && echo passed || echo FAILED) in $$(( $$(date +%s) - start )) s"; \
	exit $$rc
