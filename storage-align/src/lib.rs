//! Partition boundary planning for libvirt disk pools (work in progress, see issue 6).
