# nodedev-helper under hostile input, full disks, killed processes and privileged runs.
#
#   make check-robust   the fault-injection tests that need root: `ap set` with the udev rules
#                       directory on a full tmpfs (private mount namespace), and a setuid copy of
#                       nodedev-helper run as nobody with hostile overrides (setpriv); the
#                       SIGKILL test and the hostile-file tests run in `cargo test` too
#   make fuzz           every fuzz target of nodedev-helper and of the NSS module for
#                       FUZZ_SECONDS each (default 600): the long run, not part of make check
#                       (make check runs each for a few seconds in check-callout / check-nss);
#                       `make -j2 fuzz` runs the two crates' targets side by side, one core each
CHECK_TARGETS += check-robust

FUZZ_SECONDS ?= 600

.PHONY: check-robust fuzz

check-robust:
	@start=$$(date +%s); \
	$(CARGO) test -p nodedev-helper --test fault_injection --test hostile_input -- --include-ignored; \
	echo "check-robust: passed in $$(( $$(date +%s) - start )) s"

# the two short-run targets with FUZZ_SECONDS instead of their own seconds (target-specific
# values reach prerequisites); as two prerequisites, -j2 runs them in parallel
fuzz: CALLOUT_FUZZ_SECONDS = $(FUZZ_SECONDS)
fuzz: NSS_FUZZ_SECONDS = $(FUZZ_SECONDS)
fuzz: fuzz-callout fuzz-nss
