//! The C boundary: every `_nss_libvirt_*` / `_nss_libvirt_guest_*` entry point and all
//! `unsafe` of the module.
//!
//! Like systemd's NSS modules: each entry point converts its arguments, calls the safe
//! [`crate::lookup`] (forward answers in [`crate::order`]'s order and form: IPv6 link-local
//! addresses only in `gethostbyname4_r`, with their bridge's scope id), computes the size
//! of the answer, fails with `ERANGE` + `NETDB_INTERNAL` before writing anything when the
//! caller's buffer is too small (glibc then retries with a larger one; libvirt's module
//! returns ENOMEM here, which makes getaddrinfo fail for names with many addresses), fills
//! the buffer, and maps the outcome to (status, `*errnop`, `*h_errnop`) as in doc/nss.md's
//! table ("Return conventions"). A panic is caught and reported as UNAVAIL; `errno` is
//! restored before `*errnop` is written (glibc passes `&errno` as `errnop`), so it is
//! unchanged on success.

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::mem::{align_of, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::ptr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use libc::{AF_INET, AF_INET6, AF_UNSPEC, hostent, socklen_t};

use crate::lookup::{self, DEFAULT_LEASE_DIR, Family, Generation, Service};
use crate::order::{self, Addr, Ordered};
use crate::seen;

/// `enum nss_status` (glibc `<nss.h>`).
pub const NSS_STATUS_TRYAGAIN: c_int = -2;
pub const NSS_STATUS_UNAVAIL: c_int = -1;
pub const NSS_STATUS_NOTFOUND: c_int = 0;
pub const NSS_STATUS_SUCCESS: c_int = 1;

/// `h_errno` values (glibc `<netdb.h>`).
pub const NETDB_INTERNAL: c_int = -1;
pub const NETDB_SUCCESS: c_int = 0;
pub const HOST_NOT_FOUND: c_int = 1;
pub const NO_RECOVERY: c_int = 3;
pub const NO_DATA: c_int = 4;

/// glibc's `struct gaih_addrtuple` (`<nss.h>`), the result of `gethostbyname4_r`.
#[repr(C)]
pub struct GaihAddrtuple {
    pub next: *mut GaihAddrtuple,
    pub name: *mut c_char,
    pub family: c_int,
    /// Address bytes in network order (4 or 16 used).
    pub addr: [u32; 4],
    pub scopeid: u32,
}

unsafe extern "C" {
    // glibc; not in the libc crate for Linux. Returns NULL in setuid/setgid (AT_SECURE) processes.
    fn secure_getenv(name: *const c_char) -> *mut c_char;
}

/// What an entry point ends with, before it is written to the caller's variables.
enum Outcome {
    Success,
    NotFound,
    NoData,
    TooSmall,
    Unavail(c_int),
}

/// A path knob: the environment variable through `secure_getenv` (never in setuid or setgid
/// processes), else the default.
fn path_knob(var: &CStr, default: &str) -> PathBuf {
    // SAFETY: the argument is a NUL-terminated string; the result is NULL or a pointer into
    // the environment, copied at once.
    let p = unsafe { secure_getenv(var.as_ptr()) };
    if !p.is_null() {
        // SAFETY: non-NULL results of secure_getenv are NUL-terminated strings.
        let v = unsafe { CStr::from_ptr(p) };
        if !v.is_empty() {
            use std::os::unix::ffi::OsStrExt;
            return PathBuf::from(std::ffi::OsStr::from_bytes(v.to_bytes()));
        }
    }
    PathBuf::from(default)
}

fn lease_dir() -> PathBuf {
    path_knob(c"LIBVIRT_NSS_LEASE_DIR", DEFAULT_LEASE_DIR)
}

/// The running domains' MAC map ([`crate::seen`]).
fn guests_map() -> PathBuf {
    path_knob(c"LIBVIRT_NSS_GUESTS_FILE", seen::DEFAULT_MAP)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A forward answer that did not fit the caller's buffer, kept for the retry: glibc (and
/// getaddrinfo's scratch buffer) answers ERANGE by calling again at once, on the same thread,
/// with a buffer twice as large, until it fits; without this every retry searched again.
/// Served only to the same service, family and name, for the same lease directory in the
/// same [`Generation`] (a file renamed into it since changes that), within
/// [`lookup::TRUST_WINDOW`]; taken out when served, so it never outlives the retry.
struct Kept {
    service: Service,
    family: Family,
    name: String,
    dir: PathBuf,
    generation: Generation,
    at: Instant,
    addrs: Vec<Addr>,
}

thread_local! {
    static KEPT: RefCell<Option<Kept>> = const { RefCell::new(None) };
}

/// A file descriptor closed on drop.
struct Fd(c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.0) };
    }
}

/// Most bytes read from one neighbour-table dump (a host with thousands of neighbours sends
/// a few hundred KiB).
const NEIGH_MAX_BYTES: usize = 8 << 20;

/// The host's neighbour table, read with one rtnetlink dump ([`crate::neigh`]): a socket,
/// one request, replies until the kernel says done; 1 s receive timeout, bounded size,
/// nothing sent to the network.
pub fn neighbours() -> std::io::Result<Vec<crate::neigh::Neighbour>> {
    use std::io::Error;
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(Error::last_os_error());
    }
    let fd = Fd(fd);
    let timeout = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: a valid option value of its own size.
    unsafe {
        libc::setsockopt(
            fd.0,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &timeout as *const libc::timeval as *const c_void,
            size_of::<libc::timeval>() as socklen_t,
        )
    };
    // SAFETY: sockaddr_nl is plain data; all-zero is valid, then the family is set.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    let req = crate::neigh::request(1);
    // SAFETY: req and kernel are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            fd.0,
            req.as_ptr() as *const c_void,
            req.len(),
            0,
            &kernel as *const libc::sockaddr_nl as *const libc::sockaddr,
            size_of::<libc::sockaddr_nl>() as socklen_t,
        )
    };
    if sent < 0 {
        return Err(Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 32 << 10];
    let mut total = 0;
    loop {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::recv(fd.0, buf.as_mut_ptr() as *mut c_void, buf.len(), 0) };
        if n < 0 {
            let e = Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(out);
        }
        total += n as usize;
        match crate::neigh::parse(&buf[..n as usize], &mut out) {
            crate::neigh::Chunk::Done => return Ok(out),
            crate::neigh::Chunk::Error(e) => return Err(Error::from_raw_os_error(e)),
            crate::neigh::Chunk::More if total > NEIGH_MAX_BYTES => {
                return Err(Error::from_raw_os_error(libc::EFBIG));
            }
            crate::neigh::Chunk::More => {}
        }
    }
}

/// The interface index of `bridge`, 0 if there is no such interface (a lease file's bridge
/// gives an IPv6 link-local address its scope id).
pub fn interface_index(bridge: &str) -> u32 {
    if bridge.is_empty() || bridge.len() >= libc::IF_NAMESIZE || bridge.contains('/') {
        return 0;
    }
    let Ok(c) = std::ffi::CString::new(bridge) else {
        return 0;
    };
    // SAFETY: a NUL-terminated name; if_nametoindex only reads it.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

/// The addresses of `name` in answer order ([`crate::order`]; `scoped` for callers that can
/// carry a scope id, `gethostbyname4_r`): the answer kept for this retry, or a lookup.
fn forward(
    service: Service,
    name: &str,
    family: Family,
    scoped: bool,
) -> Result<Ordered, std::io::Error> {
    let dir = lease_dir();
    let kept = KEPT.with(|k| k.borrow_mut().take()).filter(|k| {
        k.service == service
            && k.family == family
            && k.name == name
            && k.dir == dir
            && k.at.elapsed() < lookup::TRUST_WINDOW
            && lookup::generation(&dir) == Some(k.generation)
    });
    if let Some(k) = kept {
        return Ok(Ordered::Found(k.addrs));
    }
    if name.is_empty() {
        return Ok(Ordered::NotFound);
    }
    let leased = lookup::with_forward_snapshot(&dir, name, service, |snap| {
        order::answer(snap, name, service, family, now(), scoped, interface_index)
    })?;
    if service != Service::Guest {
        return Ok(leased);
    }
    // Then the neighbour table, for a domain of the hooks' map (one stat without it).
    let Some(map) = seen::map(&guests_map()) else {
        return Ok(leased);
    };
    let Some(macs) = seen::macs_of(&map, name) else {
        return Ok(leased);
    };
    let table = neighbours().unwrap_or_default();
    let mut addrs = match leased {
        Ordered::Found(a) => a,
        Ordered::NoData | Ordered::NotFound => Vec::new(),
    };
    for a in seen::addresses(&macs, &table, family, scoped) {
        if addrs.len() == lookup::MAX_ANSWERS {
            break;
        }
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    // A running domain the host has seen no address of (of this family) has no data.
    Ok(if addrs.is_empty() {
        Ordered::NoData
    } else {
        Ordered::Found(addrs)
    })
}

/// The name of `ip`: from the leases, then (`libvirt_guest`) from the neighbour table and the
/// hooks' map of running domains.
fn reverse_name(ip: IpAddr, service: Service) -> Result<Option<String>, std::io::Error> {
    if let Some(n) = lookup::reverse(&lease_dir(), ip, service, now())? {
        return Ok(Some(n));
    }
    if service != Service::Guest {
        return Ok(None);
    }
    let Some(map) = seen::map(&guests_map()) else {
        return Ok(None);
    };
    let table = neighbours().unwrap_or_default();
    Ok(seen::domain_of(&map, &table, ip))
}

/// Keeps `addrs` for the retry that follows an ERANGE (see [`Kept`]).
fn keep(service: Service, name: &str, family: Family, addrs: Vec<Addr>) {
    let dir = lease_dir();
    let Some(generation) = lookup::generation(&dir) else {
        return;
    };
    let kept = Kept {
        service,
        family,
        name: name.to_owned(),
        dir,
        generation,
        at: Instant::now(),
        addrs,
    };
    KEPT.with(|k| *k.borrow_mut() = Some(kept));
}

fn errno_of(e: &std::io::Error) -> c_int {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// Run an entry point's body: catch panics, restore errno, then report the outcome.
///
/// # Safety
/// `errnop` and `h_errnop` must be NULL or valid for writes.
unsafe fn guard(errnop: *mut c_int, h_errnop: *mut c_int, body: impl FnOnce() -> Outcome) -> c_int {
    // SAFETY: __errno_location always returns this thread's errno.
    let saved = unsafe { *libc::__errno_location() };
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or(Outcome::Unavail(libc::EIO));
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
    let (status, errno, herrno) = match outcome {
        Outcome::Success => (NSS_STATUS_SUCCESS, None, NETDB_SUCCESS),
        Outcome::NotFound => (NSS_STATUS_NOTFOUND, Some(libc::ENOENT), HOST_NOT_FOUND),
        Outcome::NoData => (NSS_STATUS_NOTFOUND, Some(libc::ENOENT), NO_DATA),
        Outcome::TooSmall => (NSS_STATUS_TRYAGAIN, Some(libc::ERANGE), NETDB_INTERNAL),
        Outcome::Unavail(e) => (NSS_STATUS_UNAVAIL, Some(e), NO_RECOVERY),
    };
    if let Some(e) = errno {
        if !errnop.is_null() {
            // SAFETY: caller guarantees errnop is valid when non-NULL.
            unsafe { *errnop = e };
        }
    }
    if !h_errnop.is_null() {
        // SAFETY: caller guarantees h_errnop is valid when non-NULL.
        unsafe { *h_errnop = herrno };
    }
    status
}

/// The query name, or None (no such name) if it is NULL or not UTF-8.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string.
unsafe fn name_of<'a>(name: *const c_char) -> Option<&'a str> {
    if name.is_null() {
        return None;
    }
    // SAFETY: caller guarantees a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(name) }.to_str().ok();
    // Debug builds only (the cdylib `cargo test` loads): a name that panics, so that
    // tests/ffi.rs shows a panic stopped at the boundary by the unwinder linked in.
    #[cfg(debug_assertions)]
    if name == Some(TEST_PANIC_NAME) {
        panic!("test panic at the NSS boundary");
    }
    name
}

#[cfg(debug_assertions)]
const TEST_PANIC_NAME: &str = "panic.nss-test.invalid";

const PTR: usize = size_of::<*mut c_char>();

/// Bytes to skip from `buffer` so that pointers stored there are aligned.
fn pad(buffer: *mut c_char) -> usize {
    (align_of::<*mut c_char>() - (buffer as usize) % align_of::<*mut c_char>())
        % align_of::<*mut c_char>()
}

fn octets(ip: &IpAddr) -> ([u8; 16], usize) {
    let mut b = [0u8; 16];
    match ip {
        IpAddr::V4(a) => {
            b[..4].copy_from_slice(&a.octets());
            (b, 4)
        }
        IpAddr::V6(a) => {
            b.copy_from_slice(&a.octets());
            (b, 16)
        }
    }
}

/// Size of a `hostent` answer: aliases (one NULL), address pointers (n + NULL), addresses,
/// the name.
fn hostent_size(buffer: *mut c_char, name: &str, n: usize, alen: usize) -> usize {
    pad(buffer) + PTR * (1 + n + 1) + n * alen + name.len() + 1
}

/// Fill `result` and `buffer` with `name` and `addrs` (all of family `af`).
///
/// # Safety
/// `result` valid for writes; `buffer` valid for `buflen` bytes; `buflen` at least
/// [`hostent_size`]. Returns a pointer to the name copy inside `buffer`.
unsafe fn fill_hostent(
    result: *mut hostent,
    buffer: *mut c_char,
    buflen: usize,
    name: &str,
    addrs: &[IpAddr],
    af: c_int,
) -> *mut c_char {
    let alen = if af == AF_INET6 { 16 } else { 4 };
    let need = hostent_size(buffer, name, addrs.len(), alen);
    assert!(need <= buflen);
    // SAFETY (whole block): every offset below stays within `need` <= `buflen` bytes of
    // `buffer`; pointer slots start at an aligned offset and are PTR-sized.
    unsafe {
        let base = buffer.add(pad(buffer));
        let aliases = base as *mut *mut c_char;
        *aliases = ptr::null_mut();
        let list = aliases.add(1);
        let addr_area = list.add(addrs.len() + 1) as *mut u8;
        for (i, ip) in addrs.iter().enumerate() {
            let (b, l) = octets(ip);
            let dst = addr_area.add(i * alen);
            ptr::copy_nonoverlapping(b.as_ptr(), dst, l);
            *list.add(i) = dst as *mut c_char;
        }
        *list.add(addrs.len()) = ptr::null_mut();
        let name_dst = addr_area.add(addrs.len() * alen) as *mut c_char;
        ptr::copy_nonoverlapping(name.as_ptr() as *const c_char, name_dst, name.len());
        *name_dst.add(name.len()) = 0;
        debug_assert_eq!(
            name_dst.add(name.len() + 1) as usize - buffer as usize,
            need
        );
        (*result).h_name = name_dst;
        (*result).h_aliases = aliases;
        (*result).h_addrtype = af;
        (*result).h_length = alen as c_int;
        (*result).h_addr_list = list;
        name_dst
    }
}

/// Size of a `gaih_addrtuple` answer: one tuple per address (chained), then the name.
fn tuples_size(buffer: *mut c_char, name: &str, n: usize) -> usize {
    pad(buffer) + n * size_of::<GaihAddrtuple>() + name.len() + 1
}

/// Fill `buffer` with the chained tuples of `addrs` (either family, with their scope ids)
/// named `name`, and point `*pat` at the first (or copy it into a preallocated first record).
///
/// # Safety
/// `pat` valid for reads and writes (`*pat` NULL or a valid tuple); `buffer` valid for
/// `buflen` bytes; `buflen` at least [`tuples_size`].
unsafe fn fill_tuples(
    pat: *mut *mut GaihAddrtuple,
    buffer: *mut c_char,
    buflen: usize,
    name: &str,
    addrs: &[Addr],
) {
    let need = tuples_size(buffer, name, addrs.len());
    assert!(need <= buflen);
    // SAFETY (whole block): every offset below stays within `need` <= `buflen` bytes of
    // `buffer`; tuples start at an aligned offset and the tuple size is a multiple of
    // pointer alignment; the name follows the tuples.
    unsafe {
        let first = buffer.add(pad(buffer)) as *mut GaihAddrtuple;
        let name_dst = first.add(addrs.len()) as *mut c_char;
        ptr::copy_nonoverlapping(name.as_ptr() as *const c_char, name_dst, name.len());
        *name_dst.add(name.len()) = 0;
        for (i, a) in addrs.iter().enumerate() {
            let ip = &a.ip;
            let (b, l) = octets(ip);
            let mut addr = [0u32; 4];
            ptr::copy_nonoverlapping(b.as_ptr(), addr.as_mut_ptr() as *mut u8, l);
            first.add(i).write(GaihAddrtuple {
                next: if i + 1 < addrs.len() {
                    first.add(i + 1)
                } else {
                    ptr::null_mut()
                },
                name: name_dst,
                family: if ip.is_ipv6() { AF_INET6 } else { AF_INET },
                addr,
                scopeid: a.scope_id,
            });
        }
        debug_assert_eq!(
            name_dst.add(name.len() + 1) as usize - buffer as usize,
            need
        );
        // glibc may pass a preallocated first record: copy into it, as systemd does.
        if (*pat).is_null() {
            *pat = first;
        } else {
            ptr::copy_nonoverlapping(first, *pat, 1);
        }
    }
}

fn service_family(af: c_int) -> Option<Family> {
    match af {
        // libvirt: AF_UNSPEC given to gethostbyname3_r means AF_INET.
        AF_INET | AF_UNSPEC => Some(Family::V4),
        AF_INET6 => Some(Family::V6),
        _ => None,
    }
}

/// `gethostbyname3_r` for `service`; `_r` and `2_r` call it.
///
/// # Safety
/// glibc's contract for `_nss_*_gethostbyname3_r`.
#[allow(clippy::too_many_arguments)]
unsafe fn gethostbyname3(
    service: Service,
    name: *const c_char,
    af: c_int,
    result: *mut hostent,
    buffer: *mut c_char,
    buflen: usize,
    errnop: *mut c_int,
    h_errnop: *mut c_int,
    ttlp: *mut i32,
    canonp: *mut *mut c_char,
) -> c_int {
    let body = || {
        let Some(family) = service_family(af) else {
            return Outcome::Unavail(libc::EAFNOSUPPORT);
        };
        // SAFETY: glibc passes a NUL-terminated name.
        let Some(q) = (unsafe { name_of(name) }) else {
            return Outcome::NotFound;
        };
        let addrs = match forward(service, q, family, false) {
            Ok(Ordered::Found(a)) => a,
            Ok(Ordered::NoData) => return Outcome::NoData,
            Ok(Ordered::NotFound) => return Outcome::NotFound,
            Err(e) => return Outcome::Unavail(errno_of(&e)),
        };
        let ips: Vec<IpAddr> = addrs.iter().map(|a| a.ip).collect();
        let real_af = if family == Family::V6 {
            AF_INET6
        } else {
            AF_INET
        };
        let alen = if real_af == AF_INET6 { 16 } else { 4 };
        if buffer.is_null()
            || result.is_null()
            || buflen < hostent_size(buffer, q, addrs.len(), alen)
        {
            keep(service, q, family, addrs);
            return Outcome::TooSmall;
        }
        // SAFETY: size checked above; result and buffer come from the caller.
        let h_name = unsafe { fill_hostent(result, buffer, buflen, q, &ips, real_af) };
        if !ttlp.is_null() {
            // SAFETY: non-NULL ttlp is valid per glibc's contract.
            unsafe { *ttlp = 0 };
        }
        if !canonp.is_null() {
            // SAFETY: non-NULL canonp is valid per glibc's contract.
            unsafe { *canonp = h_name };
        }
        Outcome::Success
    };
    // SAFETY: errnop/h_errnop come from glibc.
    unsafe { guard(errnop, h_errnop, body) }
}

/// `gethostbyname4_r` for `service`: both families, chained `gaih_addrtuple`s.
///
/// # Safety
/// glibc's contract for `_nss_*_gethostbyname4_r`.
#[allow(clippy::too_many_arguments)]
unsafe fn gethostbyname4(
    service: Service,
    name: *const c_char,
    pat: *mut *mut GaihAddrtuple,
    buffer: *mut c_char,
    buflen: usize,
    errnop: *mut c_int,
    h_errnop: *mut c_int,
    ttlp: *mut i32,
) -> c_int {
    let body = || {
        // SAFETY: glibc passes a NUL-terminated name.
        let Some(q) = (unsafe { name_of(name) }) else {
            return Outcome::NotFound;
        };
        let addrs = match forward(service, q, Family::Any, true) {
            Ok(Ordered::Found(a)) => a,
            Ok(Ordered::NoData) => return Outcome::NoData,
            Ok(Ordered::NotFound) => return Outcome::NotFound,
            Err(e) => return Outcome::Unavail(errno_of(&e)),
        };
        if buffer.is_null() || pat.is_null() || buflen < tuples_size(buffer, q, addrs.len()) {
            keep(service, q, Family::Any, addrs);
            return Outcome::TooSmall;
        }
        // SAFETY: size checked above; pat and buffer come from the caller.
        unsafe { fill_tuples(pat, buffer, buflen, q, &addrs) };
        if !ttlp.is_null() {
            // SAFETY: non-NULL ttlp is valid per glibc's contract.
            unsafe { *ttlp = 0 };
        }
        Outcome::Success
    };
    // SAFETY: errnop/h_errnop come from glibc.
    unsafe { guard(errnop, h_errnop, body) }
}

/// `gethostbyaddr2_r` for `service`: the hostname (`libvirt`) or domain (`libvirt_guest`)
/// of a leased address.
///
/// # Safety
/// glibc's contract for `_nss_*_gethostbyaddr2_r`.
#[allow(clippy::too_many_arguments)]
unsafe fn gethostbyaddr2(
    service: Service,
    addr: *const c_void,
    len: socklen_t,
    af: c_int,
    result: *mut hostent,
    buffer: *mut c_char,
    buflen: usize,
    errnop: *mut c_int,
    h_errnop: *mut c_int,
    ttlp: *mut i32,
) -> c_int {
    let body = || {
        if addr.is_null() {
            return Outcome::Unavail(libc::EINVAL);
        }
        let ip = match (af, len) {
            (AF_INET, 4) => {
                let mut b = [0u8; 4];
                // SAFETY: the caller passes `len` readable bytes at `addr`.
                unsafe { ptr::copy_nonoverlapping(addr as *const u8, b.as_mut_ptr(), 4) };
                IpAddr::V4(Ipv4Addr::from(b))
            }
            (AF_INET6, 16) => {
                let mut b = [0u8; 16];
                // SAFETY: the caller passes `len` readable bytes at `addr`.
                unsafe { ptr::copy_nonoverlapping(addr as *const u8, b.as_mut_ptr(), 16) };
                IpAddr::V6(Ipv6Addr::from(b))
            }
            (AF_INET | AF_INET6, _) => return Outcome::Unavail(libc::EINVAL),
            _ => return Outcome::Unavail(libc::EAFNOSUPPORT),
        };
        let found = match reverse_name(ip, service) {
            Ok(Some(n)) => n,
            Ok(None) => return Outcome::NotFound,
            Err(e) => return Outcome::Unavail(errno_of(&e)),
        };
        if buffer.is_null()
            || result.is_null()
            || buflen < hostent_size(buffer, &found, 1, len as usize)
        {
            return Outcome::TooSmall;
        }
        // SAFETY: size checked above.
        unsafe { fill_hostent(result, buffer, buflen, &found, &[ip], af) };
        if !ttlp.is_null() {
            // SAFETY: non-NULL ttlp is valid per glibc's contract.
            unsafe { *ttlp = 0 };
        }
        Outcome::Success
    };
    // SAFETY: errnop/h_errnop come from glibc.
    unsafe { guard(errnop, h_errnop, body) }
}

/// Export the six entry points of one service under its prefix.
macro_rules! service_entry_points {
    ($svc:expr, $n:ident, $n2:ident, $n3:ident, $n4:ident, $a:ident, $a2:ident) => {
        /// # Safety
        /// glibc's NSS contract.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $n(
            name: *const c_char,
            result: *mut hostent,
            buffer: *mut c_char,
            buflen: usize,
            errnop: *mut c_int,
            h_errnop: *mut c_int,
        ) -> c_int {
            // SAFETY: same contract, forwarded.
            unsafe {
                gethostbyname3(
                    $svc,
                    name,
                    AF_INET,
                    result,
                    buffer,
                    buflen,
                    errnop,
                    h_errnop,
                    ptr::null_mut(),
                    ptr::null_mut(),
                )
            }
        }

        /// # Safety
        /// glibc's NSS contract.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $n2(
            name: *const c_char,
            af: c_int,
            result: *mut hostent,
            buffer: *mut c_char,
            buflen: usize,
            errnop: *mut c_int,
            h_errnop: *mut c_int,
        ) -> c_int {
            // SAFETY: same contract, forwarded.
            unsafe {
                gethostbyname3(
                    $svc,
                    name,
                    af,
                    result,
                    buffer,
                    buflen,
                    errnop,
                    h_errnop,
                    ptr::null_mut(),
                    ptr::null_mut(),
                )
            }
        }

        /// # Safety
        /// glibc's NSS contract.
        #[unsafe(no_mangle)]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "C" fn $n3(
            name: *const c_char,
            af: c_int,
            result: *mut hostent,
            buffer: *mut c_char,
            buflen: usize,
            errnop: *mut c_int,
            h_errnop: *mut c_int,
            ttlp: *mut i32,
            canonp: *mut *mut c_char,
        ) -> c_int {
            // SAFETY: same contract, forwarded.
            unsafe {
                gethostbyname3(
                    $svc, name, af, result, buffer, buflen, errnop, h_errnop, ttlp, canonp,
                )
            }
        }

        /// # Safety
        /// glibc's NSS contract.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $n4(
            name: *const c_char,
            pat: *mut *mut GaihAddrtuple,
            buffer: *mut c_char,
            buflen: usize,
            errnop: *mut c_int,
            h_errnop: *mut c_int,
            ttlp: *mut i32,
        ) -> c_int {
            // SAFETY: same contract, forwarded.
            unsafe { gethostbyname4($svc, name, pat, buffer, buflen, errnop, h_errnop, ttlp) }
        }

        /// # Safety
        /// glibc's NSS contract.
        #[unsafe(no_mangle)]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "C" fn $a(
            addr: *const c_void,
            len: socklen_t,
            af: c_int,
            result: *mut hostent,
            buffer: *mut c_char,
            buflen: usize,
            errnop: *mut c_int,
            h_errnop: *mut c_int,
        ) -> c_int {
            // SAFETY: same contract, forwarded.
            unsafe {
                gethostbyaddr2(
                    $svc,
                    addr,
                    len,
                    af,
                    result,
                    buffer,
                    buflen,
                    errnop,
                    h_errnop,
                    ptr::null_mut(),
                )
            }
        }

        /// # Safety
        /// glibc's NSS contract.
        #[unsafe(no_mangle)]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "C" fn $a2(
            addr: *const c_void,
            len: socklen_t,
            af: c_int,
            result: *mut hostent,
            buffer: *mut c_char,
            buflen: usize,
            errnop: *mut c_int,
            h_errnop: *mut c_int,
            ttlp: *mut i32,
        ) -> c_int {
            // SAFETY: same contract, forwarded.
            unsafe {
                gethostbyaddr2(
                    $svc, addr, len, af, result, buffer, buflen, errnop, h_errnop, ttlp,
                )
            }
        }
    };
}

service_entry_points!(
    Service::Libvirt,
    _nss_libvirt_gethostbyname_r,
    _nss_libvirt_gethostbyname2_r,
    _nss_libvirt_gethostbyname3_r,
    _nss_libvirt_gethostbyname4_r,
    _nss_libvirt_gethostbyaddr_r,
    _nss_libvirt_gethostbyaddr2_r
);
service_entry_points!(
    Service::Guest,
    _nss_libvirt_guest_gethostbyname_r,
    _nss_libvirt_guest_gethostbyname2_r,
    _nss_libvirt_guest_gethostbyname3_r,
    _nss_libvirt_guest_gethostbyname4_r,
    _nss_libvirt_guest_gethostbyaddr_r,
    _nss_libvirt_guest_gethostbyaddr2_r
);

#[cfg(test)]
mod tests {
    use super::interface_index;

    #[test]
    fn interface_indexes() {
        // lo is index 1 in every network namespace.
        assert_eq!(interface_index("lo"), 1);
        assert_eq!(interface_index("no-such-if0"), 0);
        assert_eq!(interface_index("../../etc"), 0);
        assert_eq!(interface_index(""), 0);
        assert_eq!(interface_index("a-name-longer-than-ifnamsiz"), 0);
    }
}
