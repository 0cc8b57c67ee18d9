//! A lookup's work is bounded by its input, and glibc's retries after ERANGE do not search
//! again: a hostname with 60,000 leases and a domain with 60,000 MACs (in one `.macs`
//! entry), looked up as getaddrinfo and gethostbyname2_r do it, starting with a small buffer
//! and doubling it after each ERANGE. The answer holds the best-ranked
//! [`MAX_ANSWERS`] addresses, through the dlopened module and in process; in process, the
//! module's own work counters (searches, prefilter scans, entries examined) show that one
//! lookup searched once and examined a number of entries linear in the input, whatever the
//! buffer sizes were: no timing. One test function: the lease-dir override is process-wide.

mod common;

use std::ffi::{CString, c_char, c_int, c_void};
use std::net::{IpAddr, Ipv4Addr};
use std::ptr;

use common::abi::{Ghbn2, SUCCESS, TRYAGAIN};
use common::{TempDir, cdylib, lease, now, write_atomic};
use libc::{AF_INET, hostent};
use nss_libvirt_guest::ffi::{self, GaihAddrtuple};
use nss_libvirt_guest::lookup::MAX_ANSWERS;
use nss_libvirt_guest::work::{Work, work};

const N: usize = 60_000;

/// `gethostbyname4_r` with the module's own tuple type: the same entry point is also called
/// in process through the rlib below.
type Ghbn4 = unsafe extern "C" fn(
    *const c_char,
    *mut *mut GaihAddrtuple,
    *mut c_char,
    usize,
    *mut c_int,
    *mut c_int,
    *mut i32,
) -> c_int;

fn ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)
}

fn mac(i: usize) -> String {
    format!(
        "52:54:01:{:02x}:{:02x}:{:02x}",
        i >> 16,
        (i >> 8) & 255,
        i & 255
    )
}

/// `many.status`: lease i of `manyhost` has address ip(i), MAC mac(i), and expires later
/// the larger i is (so the best-ranked are the last ones in the file); `many.macs`: the
/// domain `manymacs` owns all N MACs.
fn write_fixture(dir: &std::path::Path) {
    let t = now() + 100_000;
    let leases: Vec<String> = (0..N)
        .map(|i| lease(&ip(i).to_string(), &mac(i), Some("manyhost"), t + i as i64))
        .collect();
    write_atomic(
        &dir.join("many.status"),
        &format!("[\n{}\n]\n", leases.join(",\n")),
    );
    let macs: Vec<String> = (0..N).map(|i| format!("\"{}\"", mac(i))).collect();
    write_atomic(
        &dir.join("many.macs"),
        &format!(
            "[\n  {{\n    \"domain\": \"manymacs\",\n    \"macs\": [{}]\n  }}\n]\n",
            macs.join(", ")
        ),
    );
}

/// The best-ranked MAX_ANSWERS addresses: newest expiry first.
fn expected() -> Vec<IpAddr> {
    (N - MAX_ANSWERS..N)
        .rev()
        .map(|i| IpAddr::V4(ip(i)))
        .collect()
}

/// Calls `f(buffer, len)` with 1 KiB, then twice as much after each ERANGE, as glibc's
/// getaddrinfo (scratch buffer) and gethostbyname2 do; returns the status, the buffer and
/// the number of calls.
fn with_growing_buffer(mut f: impl FnMut(*mut c_char, usize) -> c_int) -> (c_int, Vec<u64>, usize) {
    let mut len = 1024;
    for calls in 1..=24 {
        let mut buf = vec![0u64; len / 8];
        let st = f(buf.as_mut_ptr() as *mut c_char, len);
        if st != TRYAGAIN {
            return (st, buf, calls);
        }
        len *= 2;
    }
    panic!("still ERANGE at {len} bytes");
}

fn by4(g: Ghbn4, name: &str) -> (Vec<IpAddr>, usize) {
    let name = CString::new(name).unwrap();
    let mut pat: *mut GaihAddrtuple = ptr::null_mut();
    let (st, _buf, calls) = with_growing_buffer(|b, len| {
        let (mut e, mut h, mut ttl) = (0, 0, 0);
        pat = ptr::null_mut();
        // SAFETY: valid name, result pointer, buffer of len bytes, and out-variables.
        unsafe { g(name.as_ptr(), &mut pat, b, len, &mut e, &mut h, &mut ttl) }
    });
    assert_eq!(st, SUCCESS, "{name:?}");
    let mut out = Vec::new();
    let mut t = pat;
    while !t.is_null() {
        // SAFETY: the module chained the tuples inside `_buf`, alive here.
        let r = unsafe { &*t };
        let b = r.addr[0].to_ne_bytes();
        assert_eq!(r.family, AF_INET);
        out.push(IpAddr::V4(Ipv4Addr::from(b)));
        t = r.next;
    }
    (out, calls)
}

fn by2(g: Ghbn2, name: &str) -> (Vec<IpAddr>, usize) {
    let name = CString::new(name).unwrap();
    // SAFETY: hostent is plain old data.
    let mut he: hostent = unsafe { std::mem::zeroed() };
    let (st, _buf, calls) = with_growing_buffer(|b, len| {
        let (mut e, mut h) = (0, 0);
        // SAFETY: valid name, result, buffer of len bytes, and out-variables.
        unsafe { g(name.as_ptr(), AF_INET, &mut he, b, len, &mut e, &mut h) }
    });
    assert_eq!(st, SUCCESS, "{name:?}");
    let mut out = Vec::new();
    for i in 0.. {
        // SAFETY: h_addr_list is a NULL-terminated array inside `_buf`, alive here.
        let p = unsafe { *he.h_addr_list.add(i) };
        if p.is_null() {
            break;
        }
        let mut b = [0u8; 4];
        // SAFETY: each entry points at h_length (4) bytes.
        unsafe { ptr::copy_nonoverlapping(p as *const u8, b.as_mut_ptr(), 4) };
        out.push(IpAddr::V4(Ipv4Addr::from(b)));
    }
    (out, calls)
}

fn sym<T>(h: *mut c_void, name: &str) -> T {
    let c = CString::new(name).unwrap();
    // SAFETY: h is a live dlopen handle; the symbol has the NSS signature T.
    let p = unsafe { libc::dlsym(h, c.as_ptr()) };
    assert!(!p.is_null(), "{name} is not exported");
    // SAFETY: T is a function pointer type of the same size as *mut c_void.
    unsafe { std::mem::transmute_copy(&p) }
}

#[test]
fn many_addresses_and_many_macs_are_linear_capped_and_searched_once() {
    let tmp = TempDir::new("bounded");
    write_fixture(tmp.path());
    // SAFETY: the only test of this binary; no other thread reads the environment.
    unsafe { std::env::set_var("LIBVIRT_NSS_LEASE_DIR", tmp.path()) };
    let want = expected();

    // In process (the same code, linked as the rlib), with the module's work counters.
    let bound = |what: &str, w: Work, calls: usize| {
        assert_eq!(
            w.searches, 1,
            "{what}: {calls} calls searched {} times ({w:?})",
            w.searches
        );
        // The two files, each scanned at most once by the prefilter.
        assert!(w.scans <= 2, "{what}: {} prefilter scans", w.scans);
        // Each lease and MAC of the input looked at a few times (a domain's MACs are
        // collected for the prefilter and again by the matcher; before the fix, every
        // address was compared with every address kept: about N * N / 2 per search).
        assert!(
            w.examined <= 3 * (N + N) as u64,
            "{what}: {} entries examined for {N} leases and {N} MACs",
            w.examined
        );
    };
    let cases: [(&str, Ghbn4, Ghbn2); 2] = [
        (
            "manyhost",
            ffi::_nss_libvirt_gethostbyname4_r,
            ffi::_nss_libvirt_gethostbyname2_r,
        ),
        (
            "manymacs",
            ffi::_nss_libvirt_guest_gethostbyname4_r,
            ffi::_nss_libvirt_guest_gethostbyname2_r,
        ),
    ];
    for (name, g4, g2) in cases {
        let before = work();
        let (got, calls) = by4(g4, name);
        bound(
            &format!("{name} gethostbyname4_r"),
            work().since(before),
            calls,
        );
        assert_eq!(got, want, "{name} in process");
        let before = work();
        let (got, calls) = by2(g2, name);
        bound(
            &format!("{name} gethostbyname2_r"),
            work().since(before),
            calls,
        );
        assert_eq!(got, want, "{name} in process");
    }

    // Through the dlopened module, as glibc loads it.
    let so = CString::new(cdylib().to_str().unwrap()).unwrap();
    // SAFETY: loading our own module.
    let h = unsafe { libc::dlopen(so.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!h.is_null());
    for (svc, name) in [("libvirt", "manyhost"), ("libvirt_guest", "manymacs")] {
        let (got, calls) = by4(sym(h, &format!("_nss_{svc}_gethostbyname4_r")), name);
        assert!(calls > 1, "the 1 KiB buffer should have been too small");
        assert_eq!(got, want, "{svc} {name} (gethostbyname4_r)");
        let (got, _) = by2(sym(h, &format!("_nss_{svc}_gethostbyname2_r")), name);
        assert_eq!(got, want, "{svc} {name} (gethostbyname2_r)");
    }
}
