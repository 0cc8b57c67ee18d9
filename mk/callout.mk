# mdevctl callout for vfio_ap (nodedev-helper callout; replaces s390-tools' ap-check).
#
#   make check-callout   the callout driven by the real mdevctl 1.4.0 (MDEVCTL_ENV_ROOT) and
#                        Debian's 1.2.0 (private mount namespace, root), mdevctl start over the
#                        FUSE-mounted AP simulator (root, /dev/fuse), then the fuzz target for
#                        the device JSON built and run briefly
#   make bench-callout   whole-process callout latency (1,000 autostart configs, 200 active
#                        mdevs) for pre define / pre start, beside a bare process spawn
DEPS_GROUPS   += callout
CARGO_TOOLS   += cargo-fuzz
CHECK_TARGETS += check-callout
BENCH_TARGETS += bench-callout

MDEVCTL_1_4_ROOT := $(TARGET_DIR)/tools/mdevctl-1.4.0
MDEVCTL_1_4      := $(MDEVCTL_1_4_ROOT)/bin/mdevctl
CALLOUT_FUZZ_SECONDS ?= 20

.PHONY: mdevctl-1.4 check-callout fuzz-callout bench-callout

# mdevctl >= 1.3 (root prefix, v2 callouts) is not packaged for Debian 12: built from crates.io
# into our target dir (never into PATH, where it would shadow Debian's 1.2.0). Idempotent.
mdevctl-1.4:
	@if [ -x $(MDEVCTL_1_4) ] && $(CARGO) install --list --root $(MDEVCTL_1_4_ROOT) | grep -q '^mdevctl v1.4.0:'; then \
	  echo "mdevctl 1.4.0: $(MDEVCTL_1_4)"; \
	else \
	  RST2MAN=/bin/true CARGO_TARGET_DIR=$(TARGET_DIR)/tools/build $(CARGO) install mdevctl \
	    --version 1.4.0 --locked --quiet --root $(MDEVCTL_1_4_ROOT); \
	fi

check-callout: mdevctl-1.4
	@start=$$(date +%s); \
	MDEVCTL_1_4=$(MDEVCTL_1_4) $(CARGO) test -p nodedev-helper --test callout_mdevctl --test callout_apsim \
	  -- --include-ignored; \
	$(MAKE) --no-print-directory fuzz-callout; \
	echo "check-callout: passed in $$(( $$(date +%s) - start )) s"

# Builds the fuzz targets of nodedev-helper/fuzz (stable toolchain, RUSTC_BOOTSTRAP for the
# sanitizer flags) and runs the callout JSON target for a few seconds from the seed corpus.
fuzz-callout:
	cd nodedev-helper/fuzz && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$(TARGET_DIR)/fuzz cargo fuzz build
	cd nodedev-helper/fuzz && mkdir -p $(TARGET_DIR)/fuzz/corpus-callout_json && \
	  RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$(TARGET_DIR)/fuzz cargo fuzz run callout_json \
	  $(TARGET_DIR)/fuzz/corpus-callout_json corpus/callout_json -- \
	  -max_total_time=$(CALLOUT_FUZZ_SECONDS) -print_final_stats=1 2>&1 | tail -n 15

# The dedicated executable (what mdevctl should run), then `nodedev-helper callout` for
# comparison (same code, but the binary links libvirt for `passthrough`).
bench-callout:
	python3 nodedev-helper/tests/callout_bench.py $(RELEASE_DIR)/nodedev-helper-callout
	python3 nodedev-helper/tests/callout_bench.py $(RELEASE_DIR)/nodedev-helper 100
