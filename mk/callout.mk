# mdevctl callout for vfio_ap (nodedev-helper callout; replaces s390-tools' ap-check).
#
#   make check-callout   the callout driven by the real mdevctl 1.4.0 (MDEVCTL_ENV_ROOT) and
#                        Debian's 1.2.0 (private mount namespace, root), mdevctl start over the
#                        FUSE-mounted AP simulator (root, /dev/fuse), then the fuzz target for
#                        the device JSON built and run briefly
#   make bench-callout   whole-process latency of the installed callout (1,000 autostart configs,
#                        200 active mdevs) for pre define / pre start, beside a bare process
#                        spawn, against ap-check's work (anchors, or AP_CHECK_BIN measured)
DEPS_GROUPS   += callout
CARGO_TOOLS   += cargo-fuzz
CHECK_TARGETS += check-callout
BENCH_TARGETS += bench-callout

CALLOUT_FUZZ_SECONDS ?= 20

.PHONY: check-callout fuzz-callout bench-callout

# callout_apsim mounts the AP simulator (root, /dev/fuse); callout_mdevctl runs mdevctl 1.2 in
# a private mount namespace (root)
check-callout: mdevctl-1.4
	@$(DEPS_SH) callout ap
	@start=$$(date +%s); \
	$(call ap_sim_guarded,check-callout,MDEVCTL_1_4=$(MDEVCTL_1_4) $(CARGO) test -p nodedev-helper \
	  --test callout_mdevctl --test callout_apsim -- --include-ignored); \
	$(call fuzz_run,nodedev-helper,$(CALLOUT_FUZZ_SECONDS)); \
	echo "check-callout: passed in $$(( $$(date +%s) - start )) s"

# the fuzz targets of nodedev-helper/fuzz built, each run briefly (fuzz_run in the Makefile)
fuzz-callout:
	@$(call fuzz_run,nodedev-helper,$(CALLOUT_FUZZ_SECONDS))

# What mdevctl runs: the file `make install` puts in its callout directory (00-nodedev-helper,
# a link to nodedev-helper-callout), installed into a scratch DESTDIR and spawned as mdevctl
# spawns it. AP_CHECK_BIN=/path/to/ap-check measures s390-tools' ap-check in the same loop.
bench-callout:
	@d=$$(mktemp -d /tmp/bench-callout.XXXXXX); trap 'rm -rf "$$d"' EXIT; \
	$(MAKE) --no-print-directory install-bins install-hooks DESTDIR=$$d HOOKS_MDEVCTL_UDEV_FIX=no >/dev/null; \
	python3 nodedev-helper/tests/callout_bench.py $$d$(MDEVCTL_LIB_CALLOUTS)/00-nodedev-helper
