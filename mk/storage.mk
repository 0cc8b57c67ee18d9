# storage-align: right-aligned partitions for libvirt disk pools (doc/storage.md).
#
#   cargo test -p storage-align   unit + property tests, and the real binary against real
#                                 parted on sparse image files (needs parted: deps group storage)
#   make check-storage            (root) loop devices: msdos/gpt sequences read back from parted
#                                 and the kernel, busy-device refusal; then a real libvirt disk
#                                 pool (tests/e2e/rig.sh): `--mode libvirt` reproduces libvirt's
#                                 partitions byte for byte, `--mode exact` is never larger (unless
#                                 libvirt's is short); prints the bytes saved side by side
#                                 and vol-create into disk pools: --mode libvirt's volumes =
#                                 virsh vol-create-as's (table + vol-list), refusals change nothing
DEPS_GROUPS   += storage
CHECK_TARGETS += check-storage

.PHONY: check-storage

check-storage:
	@$(DEPS_SH) storage e2e >/dev/null
	$(CARGO) build --release -p storage-align
	@start=$$(date +%s); \
	storage-align/tests/storage-e2e.sh $(RELEASE_DIR)/storage-align; \
	echo "check-storage: $$(( $$(date +%s) - start )) s"
