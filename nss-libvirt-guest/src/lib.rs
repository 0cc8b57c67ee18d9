//! NSS module for libvirt guests: a drop-in for libvirt's `libnss_libvirt.so.2` (guests by
//! DHCP hostname) and `libnss_libvirt_guest.so.2` (guests by libvirt domain name).
//!
//! One shared object exports both services (`_nss_libvirt_*`, `_nss_libvirt_guest_*`, see
//! [`ffi`]); the logic lives in safe modules: [`json`] (bounded scanner), [`leases`] (the
//! `.status`/`.macs` files), [`lookup`] (libvirt's matching rules, cache), [`order`] (the
//! order and scope ids of forward answers), [`seen`] and [`neigh`] (running domains without a
//! lease, by the neighbour table). The rules and
//! the libvirt defects fixed here are in doc/nss.md.
//!
//! Bounds (the module runs inside sshd, sudo and systemd, and no lease file may make them
//! wait): a forward lookup answers at most [`lookup::MAX_ANSWERS`] (256) addresses, the
//! best-ranked; a lease file larger than [`lookup::MAX_FILE_BYTES`] (16 MiB) is ignored;
//! a lookup's work is linear in the bytes it reads; glibc's retry with a larger buffer after
//! ERANGE is answered from the first search ([`ffi`]). [`work`] counts searches, scans and
//! entries examined, so that tests check these bounds without timing.
//!
//! The diagnostic command `nss-libvirt-guest` is its own package (`cli/`), so that this one,
//! the module's, depends on libc (and memchr) only.

pub mod cache;
pub mod ffi;
pub mod json;
pub mod leases;
pub mod lookup;
pub mod matching;
pub mod neigh;
pub mod order;
pub mod prefilter;
pub mod seen;
pub mod work;

pub use lookup::{Answer, Family, Service, lookup, reverse};
