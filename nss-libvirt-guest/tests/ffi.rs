//! The built `.so`, dlopened by absolute path, called through every entry point of both
//! services, for each family, with every buffer size from 0 to the size needed — the way
//! glibc calls it (systemd's NSS test style). One test function: the lease-dir override is
//! process-wide, and steps that swap it must not race with other steps.

mod common;

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::symlink;
use std::ptr;

use common::abi::{
    Ghba, Ghba2, Ghbn, Ghbn2, Ghbn3, Ghbn4, HOST_NOT_FOUND, NETDB_INTERNAL, NO_DATA, NO_RECOVERY,
    NOTFOUND, SUCCESS, TRYAGAIN, Tuple, UNAVAIL,
};
use common::{Buf, TempDir, cdylib, standard_fixture};
use libc::{AF_INET, AF_INET6, AF_UNSPEC, hostent};

struct Module {
    r: Ghbn,
    r2: Ghbn2,
    r3: Ghbn3,
    r4: Ghbn4,
    a: Ghba,
    a2: Ghba2,
}

fn sym<T>(h: *mut c_void, name: &str) -> T {
    let c = CString::new(name).unwrap();
    // SAFETY: h is a live dlopen handle; the symbol's type is the glibc NSS signature.
    let p = unsafe { libc::dlsym(h, c.as_ptr()) };
    assert!(!p.is_null(), "{name} is not exported");
    // SAFETY: T is a function pointer type of the same size as *mut c_void.
    unsafe { std::mem::transmute_copy(&p) }
}

fn load(h: *mut c_void, service: &str) -> Module {
    let s = |f: &str| format!("_nss_{service}_{f}");
    Module {
        r: sym(h, &s("gethostbyname_r")),
        r2: sym(h, &s("gethostbyname2_r")),
        r3: sym(h, &s("gethostbyname3_r")),
        r4: sym(h, &s("gethostbyname4_r")),
        a: sym(h, &s("gethostbyaddr_r")),
        a2: sym(h, &s("gethostbyaddr2_r")),
    }
}

/// Outcome of one call.
#[derive(Debug, PartialEq)]
struct Ret {
    status: c_int,
    errno: c_int,
    herrno: c_int,
}

/// Call `f` with every buffer size from 0 until it stops asking for more; every short call
/// must be TRYAGAIN/ERANGE/NETDB_INTERNAL and write nothing. Returns the final call's
/// result, the buffer it filled and the size that sufficed.
fn sweep(
    offset: usize,
    mut f: impl FnMut(*mut c_char, usize, &mut c_int, &mut c_int) -> c_int,
) -> (Ret, Buf, usize) {
    for len in 0..65536 {
        let mut buf = Buf::new(len, offset);
        let (mut e, mut h) = (-7, -7);
        let status = f(buf.ptr(), len, &mut e, &mut h);
        if status == TRYAGAIN {
            assert_eq!(
                (e, h),
                (libc::ERANGE, NETDB_INTERNAL),
                "short buffer of {len} bytes"
            );
            assert!(
                buf.untouched(),
                "a {len}-byte buffer was written although the answer did not fit"
            );
            continue;
        }
        return (
            Ret {
                status,
                errno: e,
                herrno: h,
            },
            buf,
            len,
        );
    }
    panic!("no buffer size was enough");
}

fn addrs_of(h: &hostent, buf: &Buf) -> (String, Vec<IpAddr>) {
    // SAFETY: a successful call filled h with pointers into buf, checked below.
    unsafe {
        assert!(
            buf.contains(h.h_name as *const c_void, 1),
            "h_name outside the buffer"
        );
        assert!(
            buf.contains(h.h_aliases as *const c_void, 8) && (*h.h_aliases).is_null(),
            "aliases must be empty"
        );
        assert_eq!(h.h_aliases as usize % 8, 0, "h_aliases not aligned");
        assert_eq!(h.h_addr_list as usize % 8, 0, "h_addr_list not aligned");
        let name = CStr::from_ptr(h.h_name).to_str().unwrap().to_owned();
        let mut out = Vec::new();
        let mut p = h.h_addr_list;
        while !(*p).is_null() {
            let a = *p as *const u8;
            assert!(buf.contains(a as *const c_void, h.h_length as usize));
            out.push(match (h.h_addrtype, h.h_length) {
                (AF_INET, 4) => IpAddr::V4(Ipv4Addr::from(*(a as *const [u8; 4]))),
                (AF_INET6, 16) => IpAddr::V6(Ipv6Addr::from(*(a as *const [u8; 16]))),
                other => panic!("bad family/length {other:?}"),
            });
            p = p.add(1);
        }
        (name, out)
    }
}

fn ips(v: &[&str]) -> Vec<IpAddr> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

fn zeroed_hostent() -> hostent {
    // SAFETY: hostent is plain data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// Forward lookup through `_r`, `2_r` and `3_r` with family `af`; all must agree.
fn forward(m: &Module, name: &str, af: c_int, offset: usize) -> (Ret, Vec<IpAddr>) {
    let q = CString::new(name).unwrap();
    let mut results = Vec::new();
    for variant in 0..3 {
        if variant == 0 && af != AF_INET {
            continue;
        }
        let mut he = zeroed_hostent();
        let mut canon: *mut c_char = ptr::null_mut();
        let mut ttl = -1;
        let (ret, buf, used) = sweep(offset, |b, l, e, h| unsafe {
            match variant {
                0 => (m.r)(q.as_ptr(), &mut he, b, l, e, h),
                1 => (m.r2)(q.as_ptr(), af, &mut he, b, l, e, h),
                _ => (m.r3)(q.as_ptr(), af, &mut he, b, l, e, h, &mut ttl, &mut canon),
            }
        });
        let got = if ret.status == SUCCESS {
            let (n, a) = addrs_of(&he, &buf);
            assert_eq!(n, name, "h_name is the query as typed");
            let alen = if a[0].is_ipv6() { 16 } else { 4 };
            let pad = (8 - offset % 8) % 8;
            assert_eq!(
                used,
                pad + 8 * (a.len() + 2) + alen * a.len() + name.len() + 1,
                "size needed"
            );
            if variant == 2 {
                assert_eq!(canon, he.h_name, "canonp points at h_name");
                assert_eq!(ttl, 0);
            }
            a
        } else {
            assert_eq!(used, 0, "a failure must not depend on the buffer size");
            Vec::new()
        };
        results.push((ret, got));
    }
    let first = results.remove(0);
    for r in results {
        assert_eq!(r, first, "gethostbyname_r/2_r/3_r disagree for {name}");
    }
    first
}

fn forward4(m: &Module, name: &str, prealloc: bool) -> (Ret, Vec<IpAddr>) {
    let q = CString::new(name).unwrap();
    let mut slot = Tuple {
        next: ptr::null_mut(),
        name: ptr::null_mut(),
        family: 0,
        addr: [0; 4],
        scopeid: 9,
    };
    let mut pat: *mut Tuple = if prealloc { &mut slot } else { ptr::null_mut() };
    let mut ttl = -1;
    let (ret, buf, used) = sweep(0, |b, l, e, h| unsafe {
        if !prealloc {
            pat = ptr::null_mut();
        }
        (m.r4)(q.as_ptr(), &mut pat, b, l, e, h, &mut ttl)
    });
    if ret.status != SUCCESS {
        return (ret, Vec::new());
    }
    assert_eq!(ttl, 0);
    let mut out = Vec::new();
    let mut t = pat;
    let mut n = 0;
    // SAFETY: a successful call chained tuples inside buf (the first may be `slot`).
    unsafe {
        while !t.is_null() {
            if n > 0 || !prealloc {
                assert!(
                    buf.contains(t as *const c_void, std::mem::size_of::<Tuple>()),
                    "tuple outside the buffer"
                );
            }
            assert!(buf.contains((*t).name as *const c_void, 1));
            assert_eq!(CStr::from_ptr((*t).name).to_str().unwrap(), name);
            let b = (*t).addr.as_ptr() as *const u8;
            out.push(match (*t).family {
                AF_INET => IpAddr::V4(Ipv4Addr::from(*(b as *const [u8; 4]))),
                AF_INET6 => IpAddr::V6(Ipv6Addr::from(*(b as *const [u8; 16]))),
                f => panic!("family {f}"),
            });
            assert_eq!((*t).scopeid, 0);
            t = (*t).next;
            n += 1;
        }
    }
    if prealloc {
        assert_eq!(
            pat, &mut slot as *mut Tuple,
            "a preallocated first record is filled in place"
        );
    }
    assert_eq!(
        used,
        out.len() * std::mem::size_of::<Tuple>() + name.len() + 1,
        "size needed"
    );
    (ret, out)
}

fn reverse(m: &Module, ip: IpAddr, with_ttl: bool) -> (Ret, Option<String>) {
    let (bytes, af, len) = match ip {
        IpAddr::V4(a) => (a.octets().to_vec(), AF_INET, 4),
        IpAddr::V6(a) => (a.octets().to_vec(), AF_INET6, 16),
    };
    let mut he = zeroed_hostent();
    let mut ttl = -1;
    let (ret, buf, _) = sweep(0, |b, l, e, h| unsafe {
        let p = bytes.as_ptr() as *const c_void;
        if with_ttl {
            (m.a2)(p, len, af, &mut he, b, l, e, h, &mut ttl)
        } else {
            (m.a)(p, len, af, &mut he, b, l, e, h)
        }
    });
    if ret.status != SUCCESS {
        return (ret, None);
    }
    let (n, a) = addrs_of(&he, &buf);
    assert_eq!(
        a,
        vec![ip],
        "the reverse answer carries the queried address"
    );
    (ret, Some(n))
}

fn ok() -> Ret {
    Ret {
        status: SUCCESS,
        errno: -7,
        herrno: 0,
    }
}
fn not_found() -> Ret {
    Ret {
        status: NOTFOUND,
        errno: libc::ENOENT,
        herrno: HOST_NOT_FOUND,
    }
}
fn no_data() -> Ret {
    Ret {
        status: NOTFOUND,
        errno: libc::ENOENT,
        herrno: NO_DATA,
    }
}

#[test]
fn every_entry_point_every_family_every_buffer_size() {
    let tmp = TempDir::new("ffi");
    let leases = tmp.path().join("leases");
    fs::create_dir(&leases).unwrap();
    standard_fixture(&leases);
    // The override goes through a symlink so that later steps can point it elsewhere.
    let link = tmp.path().join("dir");
    symlink(&leases, &link).unwrap();
    // SAFETY: set before any lookup; this file has one test, so no other thread reads env.
    unsafe { std::env::set_var("LIBVIRT_NSS_LEASE_DIR", &link) };

    let so = CString::new(cdylib().into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: loading our own module by absolute path.
    let h = unsafe { libc::dlopen(so.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!h.is_null(), "dlopen failed");
    let lv = load(h, "libvirt");
    let gu = load(h, "libvirt_guest");

    // --- forward, both services, each family, aligned and misaligned buffers
    for (m, name) in [
        (&lv, "fedora"),
        (&lv, "FEDORA"),
        (&gu, "guest-fedora"),
        (&gu, "Guest-Fedora"),
    ] {
        for offset in [0, 3] {
            assert_eq!(
                forward(m, name, AF_INET, offset),
                (ok(), ips(&["192.168.122.10"])),
                "{name} v4"
            );
            assert_eq!(
                forward(m, name, AF_UNSPEC, offset),
                (ok(), ips(&["192.168.122.10"])),
                "{name} unspec = v4"
            );
            assert_eq!(
                forward(m, name, AF_INET6, offset),
                (ok(), ips(&["fd00:1::10"])),
                "{name} v6"
            );
        }
        for prealloc in [false, true] {
            assert_eq!(
                forward4(m, name, prealloc),
                (ok(), ips(&["fd00:1::10", "192.168.122.10"])),
                "{name} 4_r"
            );
        }
    }
    // --- 100 addresses: newest expiry first
    let many: Vec<String> = (1..=100).rev().map(|i| format!("10.200.0.{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(forward(&lv, "many", AF_INET, 0), (ok(), ips(&many)));
    assert_eq!(forward4(&gu, "vm-many", false), (ok(), ips(&many)));

    // --- not found, no data, bad family
    for (m, name) in [
        (&lv, "nosuch"),
        (&lv, "old"),
        (&lv, "guest-fedora"),
        (&gu, "fedora"),
        (&gu, "nosuch"),
        (&lv, ""),
    ] {
        assert_eq!(
            forward(m, name, AF_INET, 0),
            (not_found(), vec![]),
            "{name}"
        );
        assert_eq!(
            forward(m, name, AF_INET6, 0),
            (not_found(), vec![]),
            "{name}"
        );
        assert_eq!(forward4(m, name, false), (not_found(), vec![]), "{name}");
    }
    assert_eq!(forward(&lv, "v6only", AF_INET, 0), (no_data(), vec![]));
    assert_eq!(
        forward(&lv, "v6only", AF_INET6, 0),
        (ok(), ips(&["fd00:1::99"]))
    );
    assert_eq!(
        forward(&lv, "fedora", libc::AF_PACKET, 0).0,
        Ret {
            status: UNAVAIL,
            errno: libc::EAFNOSUPPORT,
            herrno: NO_RECOVERY
        }
    );

    // --- reverse
    for with_ttl in [false, true] {
        assert_eq!(
            reverse(&lv, "192.168.122.10".parse().unwrap(), with_ttl),
            (ok(), Some("fedora".into()))
        );
        assert_eq!(
            reverse(&gu, "192.168.122.10".parse().unwrap(), with_ttl),
            (ok(), Some("guest-fedora".into()))
        );
        assert_eq!(
            reverse(&lv, "fd00:1::10".parse().unwrap(), with_ttl),
            (ok(), Some("fedora".into()))
        );
        assert_eq!(
            reverse(&gu, "fd00:1::10".parse().unwrap(), with_ttl),
            (ok(), Some("guest-fedora".into()))
        );
        assert_eq!(
            reverse(&lv, "192.168.122.11".parse().unwrap(), with_ttl),
            (not_found(), None),
            "expired"
        );
        assert_eq!(
            reverse(&gu, "fd00:1::99".parse().unwrap(), with_ttl),
            (not_found(), None),
            "no domain"
        );
    }
    let mut he = zeroed_hostent();
    let mut buf = [0u8; 256];
    let (mut e, mut hh) = (0, 0);
    let four = [192u8, 168, 122, 10];
    // SAFETY: valid pointers; a length that does not match the family.
    let st = unsafe {
        (lv.a)(
            four.as_ptr() as *const c_void,
            16,
            AF_INET,
            &mut he,
            buf.as_mut_ptr() as *mut c_char,
            256,
            &mut e,
            &mut hh,
        )
    };
    assert_eq!((st, e, hh), (UNAVAIL, libc::EINVAL, NO_RECOVERY));

    // --- errno: unchanged on success; *errnop written after it is restored (glibc passes &errno)
    let q = CString::new("fedora").unwrap();
    let mut pat: *mut Tuple = ptr::null_mut();
    let mut big = Buf::new(4096, 0);
    // SAFETY: valid arguments; errno is this thread's.
    unsafe {
        *libc::__errno_location() = 4242;
        let (mut e, mut h, mut ttl) = (0, 0, 0);
        assert_eq!(
            (lv.r4)(
                q.as_ptr(),
                &mut pat,
                big.ptr(),
                4096,
                &mut e,
                &mut h,
                &mut ttl
            ),
            SUCCESS
        );
        assert_eq!(
            *libc::__errno_location(),
            4242,
            "errno preserved on success"
        );
        let nosuch = CString::new("nosuch").unwrap();
        let ep = libc::__errno_location();
        assert_eq!(
            (lv.r4)(
                nosuch.as_ptr(),
                &mut pat,
                big.ptr(),
                4096,
                ep,
                &mut h,
                &mut ttl
            ),
            NOTFOUND
        );
        assert_eq!(*ep, libc::ENOENT);
        *ep = 4242;
        assert_eq!(
            (lv.r4)(q.as_ptr(), &mut pat, big.ptr(), 8, ep, &mut h, &mut ttl),
            TRYAGAIN
        );
        assert_eq!((*ep, h), (libc::ERANGE, NETDB_INTERNAL));
    }

    // --- memory stays constant over many lookups (no growth per call)
    let names = [
        CString::new("vm-many").unwrap(),
        CString::new("nosuch").unwrap(),
    ];
    let mut run = |n: usize| {
        for i in 0..n {
            let (mut e, mut h, mut ttl) = (0, 0, 0);
            let mut pat: *mut Tuple = ptr::null_mut();
            // SAFETY: valid arguments, 4096-byte buffer.
            let st = unsafe {
                (gu.r4)(
                    names[i % 2].as_ptr(),
                    &mut pat,
                    big.ptr(),
                    4096,
                    &mut e,
                    &mut h,
                    &mut ttl,
                )
            };
            assert_eq!(st, if i % 2 == 0 { SUCCESS } else { NOTFOUND });
        }
    };
    run(200);
    // SAFETY: mallinfo2 only reads allocator statistics.
    let before = unsafe { libc::mallinfo2() }.uordblks;
    run(2000);
    let after = unsafe { libc::mallinfo2() }.uordblks;
    assert!(
        after <= before + 64 * 1024,
        "heap grew from {before} to {after} bytes over 2000 lookups"
    );

    // --- the lease directory: missing = NOTFOUND; unusable (a symlink loop) = UNAVAIL
    let repoint = |target: &std::path::Path| {
        let tmp_link = tmp.path().join("dir.new");
        let _ = fs::remove_file(&tmp_link);
        symlink(target, &tmp_link).unwrap();
        fs::rename(&tmp_link, &link).unwrap();
    };
    repoint(&tmp.path().join("missing"));
    assert_eq!(forward(&lv, "fedora", AF_INET, 0), (not_found(), vec![]));
    let loop_a = tmp.path().join("loop");
    symlink(&loop_a, &loop_a).unwrap();
    repoint(&loop_a);
    assert_eq!(
        forward(&gu, "guest-fedora", AF_INET, 0).0,
        Ret {
            status: UNAVAIL,
            errno: libc::ELOOP,
            herrno: NO_RECOVERY
        }
    );
    repoint(&leases);
    assert_eq!(
        forward(&lv, "fedora", AF_INET, 0),
        (ok(), ips(&["192.168.122.10"]))
    );

    // --- a panic inside the module (a debug-build hook, src/ffi.rs name_of) is caught at
    // the boundary by the module's own unwinder (libgcc_eh linked in, build.rs): UNAVAIL,
    // and the process and the module carry on.
    for m in [&lv, &gu] {
        assert_eq!(
            forward(m, "panic.nss-test.invalid", AF_INET, 0).0,
            Ret {
                status: UNAVAIL,
                errno: libc::EIO,
                herrno: NO_RECOVERY
            }
        );
        assert_eq!(
            forward4(m, "panic.nss-test.invalid", false).0.status,
            UNAVAIL
        );
    }
    assert_eq!(
        forward(&gu, "guest-fedora", AF_INET, 0),
        (ok(), ips(&["192.168.122.10"]))
    );
}
