//! NSS module for libvirt guests: a drop-in for libvirt's `libnss_libvirt.so.2` (guests by
//! DHCP hostname) and `libnss_libvirt_guest.so.2` (guests by libvirt domain name).
//!
//! One shared object exports both services (`_nss_libvirt_*`, `_nss_libvirt_guest_*`, see
//! [`ffi`]); the logic lives in safe modules: [`json`] (bounded scanner), [`leases`] (the
//! `.status`/`.macs` files), [`lookup`] (libvirt's matching rules, cache). The rules and
//! the libvirt defects fixed here are in the project's spec (docs: README of this crate).
//! The diagnostic command `nss-libvirt-guest` is its own package (`cli/`), so that this one,
//! the module's, depends on libc (and memchr) only.

pub mod ffi;
pub mod json;
pub mod leases;
pub mod lookup;

pub use lookup::{Answer, Family, Service, lookup, reverse};
