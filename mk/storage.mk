# storage-align (issue 6): right-aligned partitions for libvirt disk pools.
#
#   cargo test -p storage-align   unit + property tests, and the real binary against real
#                                 parted on sparse image files (needs parted: deps group storage)
DEPS_GROUPS += storage
