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

.PHONY: check-robust fuzz fuzz-long-nodedev fuzz-long-nss

check-robust:
	@start=$$(date +%s); \
	$(CARGO) test -p nodedev-helper --test fault_injection --test hostile_input -- --include-ignored; \
	echo "check-robust: passed in $$(( $$(date +%s) - start )) s"

# two prerequisites, so that -j2 runs them in parallel (cargo's lock orders the two builds)
fuzz: fuzz-long-nodedev fuzz-long-nss

fuzz-long-nodedev:
	@$(call fuzz_run,nodedev-helper,$(FUZZ_SECONDS))

fuzz-long-nss:
	@$(call fuzz_run,$(NSS_DIR),$(FUZZ_SECONDS))
