//! glibc's side of the NSS module ABI, as the tests call it: the status and `h_errno`
//! values, `struct gaih_addrtuple`, and the signatures of the six entry points. Written
//! from glibc's headers (`nss.h`, `netdb.h`), not taken from the module, so that a test
//! checks the module against the ABI rather than against the module's own declarations.

use std::ffi::{c_char, c_int, c_void};

use libc::{hostent, socklen_t};

/// `enum nss_status`.
pub const SUCCESS: c_int = 1;
pub const NOTFOUND: c_int = 0;
pub const UNAVAIL: c_int = -1;
pub const TRYAGAIN: c_int = -2;

/// `h_errno` values (`netdb.h`).
pub const NETDB_INTERNAL: c_int = -1;
pub const NETDB_SUCCESS: c_int = 0;
pub const HOST_NOT_FOUND: c_int = 1;
pub const NO_RECOVERY: c_int = 3;
pub const NO_DATA: c_int = 4;

/// `struct gaih_addrtuple` (`nss.h`): what `gethostbyname4_r` answers, a list.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Tuple {
    pub next: *mut Tuple,
    pub name: *mut c_char,
    pub family: c_int,
    pub addr: [u32; 4],
    pub scopeid: u32,
}

/// `_nss_*_gethostbyname_r(name, result, buffer, buflen, errnop, h_errnop)`
pub type Ghbn = unsafe extern "C" fn(
    *const c_char,
    *mut hostent,
    *mut c_char,
    usize,
    *mut c_int,
    *mut c_int,
) -> c_int;
/// `_nss_*_gethostbyname2_r(name, af, result, buffer, buflen, errnop, h_errnop)`
pub type Ghbn2 = unsafe extern "C" fn(
    *const c_char,
    c_int,
    *mut hostent,
    *mut c_char,
    usize,
    *mut c_int,
    *mut c_int,
) -> c_int;
/// `_nss_*_gethostbyname3_r(name, af, result, buffer, buflen, errnop, h_errnop, ttlp, canonp)`
pub type Ghbn3 = unsafe extern "C" fn(
    *const c_char,
    c_int,
    *mut hostent,
    *mut c_char,
    usize,
    *mut c_int,
    *mut c_int,
    *mut i32,
    *mut *mut c_char,
) -> c_int;
/// `_nss_*_gethostbyname4_r(name, pat, buffer, buflen, errnop, h_errnop, ttlp)`
pub type Ghbn4 = unsafe extern "C" fn(
    *const c_char,
    *mut *mut Tuple,
    *mut c_char,
    usize,
    *mut c_int,
    *mut c_int,
    *mut i32,
) -> c_int;
/// `_nss_*_gethostbyaddr_r(addr, len, af, result, buffer, buflen, errnop, h_errnop)`
pub type Ghba = unsafe extern "C" fn(
    *const c_void,
    socklen_t,
    c_int,
    *mut hostent,
    *mut c_char,
    usize,
    *mut c_int,
    *mut c_int,
) -> c_int;
/// `_nss_*_gethostbyaddr2_r(addr, len, af, result, buffer, buflen, errnop, h_errnop, ttlp)`
pub type Ghba2 = unsafe extern "C" fn(
    *const c_void,
    socklen_t,
    c_int,
    *mut hostent,
    *mut c_char,
    usize,
    *mut c_int,
    *mut c_int,
    *mut i32,
) -> c_int;
