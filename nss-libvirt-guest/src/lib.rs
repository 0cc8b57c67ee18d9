//! NSS module for libvirt guests (work in progress, see issue 2).
