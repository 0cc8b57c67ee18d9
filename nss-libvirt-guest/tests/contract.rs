//! The module's whole contract in one table, the way systemd tests its NSS modules: the
//! built `.so` dlopened, every entry point of both services (`gethostbyname4_r`, `3_r`, `2_r`,
//! `_r`, `gethostbyaddr2_r`, `gethostbyaddr_r`) x every family that applies (AF_INET,
//! AF_INET6, AF_UNSPEC, and AF_UNIX, which no entry point supports) x every buffer size from 0
//! to enough, for each name or address of the fixture. Each call is checked for its status,
//! `*errnop`, `*h_errnop` and every byte of what it filled: a short buffer gives
//! TRYAGAIN/ERANGE/NETDB_INTERNAL and leaves the buffer untouched; an answer lies inside the
//! buffer, aligned, with the addresses in the documented order (`src/order.rs`) and IPv6
//! link-local addresses only where a scope id can go with them.

mod common;

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ptr;

use common::abi::{
    Ghba, Ghba2, Ghbn, Ghbn2, Ghbn3, Ghbn4, HOST_NOT_FOUND, NETDB_INTERNAL, NETDB_SUCCESS, NO_DATA,
    NO_RECOVERY, NOTFOUND, SUCCESS, TRYAGAIN, Tuple, UNAVAIL,
};
use common::{Buf, TempDir, cdylib, lease, now, standard_fixture, write_atomic};
use libc::{AF_INET, AF_INET6, AF_UNIX, AF_UNSPEC, hostent, socklen_t};

/// The family column of entry points that take none.
const NONE: c_int = -1;
/// What `*errnop` holds before a call: it must still hold it after a success.
const ERRNO_SENTINEL: c_int = 4242;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Entry {
    R,
    R2,
    R3,
    R4,
    A,
    A2,
}

const ENTRIES: [Entry; 6] = [
    Entry::R4,
    Entry::R3,
    Entry::R2,
    Entry::R,
    Entry::A2,
    Entry::A,
];

impl Entry {
    fn symbol(self) -> &'static str {
        match self {
            Entry::R => "gethostbyname_r",
            Entry::R2 => "gethostbyname2_r",
            Entry::R3 => "gethostbyname3_r",
            Entry::R4 => "gethostbyname4_r",
            Entry::A => "gethostbyaddr_r",
            Entry::A2 => "gethostbyaddr2_r",
        }
    }
    /// The families this entry point takes (`_r` and `4_r` take none: one row each, NONE).
    fn families(self) -> &'static [c_int] {
        match self {
            Entry::R | Entry::R4 => &[NONE],
            _ => &[AF_INET, AF_INET6, AF_UNSPEC, AF_UNIX],
        }
    }
}

fn family_name(af: c_int) -> &'static str {
    match af {
        AF_INET => "AF_INET",
        AF_INET6 => "AF_INET6",
        AF_UNSPEC => "AF_UNSPEC",
        AF_UNIX => "AF_UNIX",
        _ => "no family",
    }
}

struct Module {
    h: *mut c_void,
    service: &'static str,
}

impl Module {
    fn sym<T>(&self, e: Entry) -> T {
        let name = CString::new(format!("_nss_{}_{}", self.service, e.symbol())).unwrap();
        // SAFETY: h is a live dlopen handle.
        let p = unsafe { libc::dlsym(self.h, name.as_ptr()) };
        assert!(!p.is_null(), "{name:?} is not exported");
        // SAFETY: T is the function pointer type of that symbol's glibc signature.
        unsafe { std::mem::transmute_copy(&p) }
    }
}

/// What one call must end with.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// SUCCESS, errno untouched, NETDB_SUCCESS; the addresses (with scope ids) in order.
    Found(Vec<(IpAddr, u32)>),
    /// SUCCESS with this name (reverse lookups).
    Named(String),
    /// NOTFOUND, ENOENT, HOST_NOT_FOUND.
    NotFound,
    /// NOTFOUND, ENOENT, NO_DATA.
    NoData,
    /// UNAVAIL, this errno, NO_RECOVERY.
    Unavail(c_int),
}

/// One call's outcome as the table compares it.
#[derive(Debug, PartialEq)]
struct Got {
    status: c_int,
    errno: c_int,
    herrno: c_int,
    answer: Option<Expect>,
}

impl Expect {
    fn got(&self) -> Got {
        let (status, errno, herrno) = match self {
            Expect::Found(_) | Expect::Named(_) => (SUCCESS, ERRNO_SENTINEL, NETDB_SUCCESS),
            Expect::NotFound => (NOTFOUND, libc::ENOENT, HOST_NOT_FOUND),
            Expect::NoData => (NOTFOUND, libc::ENOENT, NO_DATA),
            Expect::Unavail(e) => (UNAVAIL, *e, NO_RECOVERY),
        };
        let answer = matches!(self, Expect::Found(_) | Expect::Named(_)).then(|| self.clone());
        Got {
            status,
            errno,
            herrno,
            answer,
        }
    }
}

/// Call `f` with every buffer size from 0 until it stops asking for more (at `offset` from
/// alignment). Returns the last call's status, errno, h_errno, its buffer and the size that
/// sufficed.
fn sweep(
    offset: usize,
    mut f: impl FnMut(*mut c_char, usize, &mut c_int, &mut c_int) -> c_int,
) -> Result<(c_int, c_int, c_int, Buf, usize), String> {
    for len in 0..65536 {
        let mut buf = Buf::new(len, offset);
        let (mut e, mut h) = (ERRNO_SENTINEL, -7);
        let status = f(buf.ptr(), len, &mut e, &mut h);
        if status == TRYAGAIN {
            if (e, h) != (libc::ERANGE, NETDB_INTERNAL) {
                return Err(format!(
                    "{len}-byte buffer: TRYAGAIN with errno {e}, h_errno {h} (want ERANGE, NETDB_INTERNAL)"
                ));
            }
            if !buf.untouched() {
                return Err(format!(
                    "{len}-byte buffer written although the answer did not fit"
                ));
            }
            continue;
        }
        if status != SUCCESS && len != 0 {
            return Err(format!(
                "status {status} only with a {len}-byte buffer: a failure must not depend on the buffer"
            ));
        }
        if !buf.outside_untouched() {
            return Err(format!("bytes outside the {len}-byte buffer written"));
        }
        return Ok((status, e, h, buf, len));
    }
    Err("no buffer size up to 64 KiB was enough".into())
}

/// The name and addresses of a filled `hostent`, checking where everything lies.
fn read_hostent(h: &hostent, buf: &Buf, af: c_int) -> Result<(String, Vec<IpAddr>), String> {
    let pa = std::mem::align_of::<*mut c_char>();
    // SAFETY: each pointer is checked to lie in `buf` before it is read.
    unsafe {
        if !buf.contains(h.h_name as *const c_void, 1) {
            return Err("h_name outside the buffer".into());
        }
        if !buf.contains(h.h_aliases as *const c_void, 8)
            || h.h_aliases as usize % pa != 0
            || !(*h.h_aliases).is_null()
        {
            return Err("h_aliases must be an aligned, empty list in the buffer".into());
        }
        if h.h_addr_list as usize % pa != 0 {
            return Err("h_addr_list not aligned".into());
        }
        let want_len = if af == AF_INET6 { 16 } else { 4 };
        if (h.h_addrtype, h.h_length) != (af, want_len) {
            return Err(format!(
                "h_addrtype/h_length {}/{} for family {}",
                h.h_addrtype,
                h.h_length,
                family_name(af)
            ));
        }
        let name = CStr::from_ptr(h.h_name)
            .to_str()
            .map_err(|e| e.to_string())?
            .to_owned();
        let mut out = Vec::new();
        let mut p = h.h_addr_list;
        loop {
            if !buf.contains(p as *const c_void, 8) {
                return Err("h_addr_list runs outside the buffer".into());
            }
            if (*p).is_null() {
                break;
            }
            let a = *p as *const u8;
            if !buf.contains(a as *const c_void, want_len as usize) {
                return Err("an address outside the buffer".into());
            }
            out.push(if af == AF_INET6 {
                IpAddr::V6(Ipv6Addr::from(*(a as *const [u8; 16])))
            } else {
                IpAddr::V4(Ipv4Addr::from(*(a as *const [u8; 4])))
            });
            p = p.add(1);
        }
        Ok((name, out))
    }
}

/// One forward call through `e` with family `af`.
fn call_forward(m: &Module, e: Entry, af: c_int, name: &str, offset: usize) -> Result<Got, String> {
    let q = CString::new(name).unwrap();
    if e == Entry::R4 {
        return call_4(m, &q, name, offset);
    }
    let mut he: hostent = unsafe { std::mem::zeroed() };
    let mut canon: *mut c_char = ptr::null_mut();
    let mut ttl: i32 = -1;
    let (status, errno, herrno, buf, used) = sweep(offset, |b, l, ep, hp| unsafe {
        match e {
            Entry::R => m.sym::<Ghbn>(e)(q.as_ptr(), &mut he, b, l, ep, hp),
            Entry::R2 => m.sym::<Ghbn2>(e)(q.as_ptr(), af, &mut he, b, l, ep, hp),
            _ => m.sym::<Ghbn3>(e)(q.as_ptr(), af, &mut he, b, l, ep, hp, &mut ttl, &mut canon),
        }
    })?;
    let mut got = Got {
        status,
        errno,
        herrno,
        answer: None,
    };
    if status == SUCCESS {
        // `_r` is AF_INET; AF_UNSPEC means AF_INET, as libvirt's module.
        let real = if af == AF_INET6 { AF_INET6 } else { AF_INET };
        let (n, addrs) = read_hostent(&he, &buf, real)?;
        if n != name {
            return Err(format!("h_name {n:?}, not the query {name:?}"));
        }
        let alen = if real == AF_INET6 { 16 } else { 4 };
        let pad = (8 - offset % 8) % 8;
        let size = pad + 8 * (addrs.len() + 2) + alen * addrs.len() + name.len() + 1;
        if used != size {
            return Err(format!("needed {used} bytes, the layout takes {size}"));
        }
        if e == Entry::R3 && (canon != he.h_name || ttl != 0) {
            return Err("gethostbyname3_r: *canonp must be h_name and *ttlp 0".into());
        }
        got.answer = Some(Expect::Found(addrs.into_iter().map(|a| (a, 0)).collect()));
    }
    Ok(got)
}

fn call_4(m: &Module, q: &CString, name: &str, offset: usize) -> Result<Got, String> {
    let f: Ghbn4 = m.sym(Entry::R4);
    let mut ttl: i32 = -1;
    let mut pat: *mut Tuple = ptr::null_mut();
    let (status, errno, herrno, buf, used) = sweep(offset, |b, l, ep, hp| unsafe {
        pat = ptr::null_mut();
        f(q.as_ptr(), &mut pat, b, l, ep, hp, &mut ttl)
    })?;
    let mut got = Got {
        status,
        errno,
        herrno,
        answer: None,
    };
    if status != SUCCESS {
        return Ok(got);
    }
    if ttl != 0 {
        return Err(format!("*ttlp {ttl}"));
    }
    let mut out = Vec::new();
    let mut t = pat;
    // SAFETY: every tuple is checked to lie inside the buffer before it is read.
    unsafe {
        while !t.is_null() {
            if !buf.contains(t as *const c_void, std::mem::size_of::<Tuple>())
                || t as usize % std::mem::align_of::<Tuple>() != 0
            {
                return Err("a tuple outside the buffer or misaligned".into());
            }
            if !buf.contains((*t).name as *const c_void, 1)
                || CStr::from_ptr((*t).name).to_str() != Ok(name)
            {
                return Err("a tuple's name is not the query inside the buffer".into());
            }
            let b = (*t).addr.as_ptr() as *const u8;
            let ip = match (*t).family {
                AF_INET => IpAddr::V4(Ipv4Addr::from(*(b as *const [u8; 4]))),
                AF_INET6 => IpAddr::V6(Ipv6Addr::from(*(b as *const [u8; 16]))),
                f => return Err(format!("tuple family {f}")),
            };
            out.push((ip, (*t).scopeid));
            t = (*t).next;
        }
    }
    let pad = (8 - offset % 8) % 8;
    let size = pad + out.len() * std::mem::size_of::<Tuple>() + name.len() + 1;
    if used != size {
        return Err(format!("needed {used} bytes, the layout takes {size}"));
    }
    got.answer = Some(Expect::Found(out));
    Ok(got)
}

fn call_reverse(m: &Module, e: Entry, af: c_int, ip: IpAddr) -> Result<Got, String> {
    // The address in the form of `af`'s family; AF_UNSPEC/AF_UNIX get the address's bytes.
    let bytes = match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut he: hostent = unsafe { std::mem::zeroed() };
    let mut ttl: i32 = -1;
    let (status, errno, herrno, buf, _) = sweep(0, |b, l, ep, hp| unsafe {
        let p = bytes.as_ptr() as *const c_void;
        let len = bytes.len() as socklen_t;
        match e {
            Entry::A => m.sym::<Ghba>(e)(p, len, af, &mut he, b, l, ep, hp),
            _ => m.sym::<Ghba2>(e)(p, len, af, &mut he, b, l, ep, hp, &mut ttl),
        }
    })?;
    let mut got = Got {
        status,
        errno,
        herrno,
        answer: None,
    };
    if status == SUCCESS {
        let (n, addrs) = read_hostent(&he, &buf, af)?;
        if addrs != [ip] {
            return Err(format!(
                "the answer carries {addrs:?}, not the address asked"
            ));
        }
        if e == Entry::A2 && ttl != 0 {
            return Err(format!("*ttlp {ttl}"));
        }
        got.answer = Some(Expect::Named(n));
    }
    Ok(got)
}

/// A name's expected answers: IPv4 (`_r`, and `2_r`/`3_r` with AF_INET or AF_UNSPEC), IPv6,
/// and `4_r` (both, with scope ids); None = the name is unknown.
struct Name {
    service: &'static str,
    name: &'static str,
    v4: Option<Vec<&'static str>>,
    v6: Option<Vec<&'static str>>,
    both: Option<Vec<(&'static str, u32)>>,
}

fn answers(list: &Option<Vec<&'static str>>) -> Expect {
    match list {
        None => Expect::NotFound,
        Some(l) if l.is_empty() => Expect::NoData,
        Some(l) => Expect::Found(l.iter().map(|a| (a.parse().unwrap(), 0)).collect()),
    }
}

fn answers4(list: &Option<Vec<(&'static str, u32)>>) -> Expect {
    match list {
        None => Expect::NotFound,
        Some(l) if l.is_empty() => Expect::NoData,
        Some(l) => Expect::Found(l.iter().map(|(a, s)| (a.parse().unwrap(), *s)).collect()),
    }
}

/// The standard fixture plus link-local leases: `lo.status` (a file named after an interface
/// that exists everywhere, index 1) and `gone0.status` (a bridge that does not exist).
fn link_local_fixture(dir: &std::path::Path) {
    let t = now();
    write_atomic(
        &dir.join("lo.status"),
        &format!(
            "[\n{},\n{}\n]\n",
            lease(
                "fe80::5054:ff:fe00:77",
                "52:54:00:00:00:77",
                Some("ll"),
                t + 5000
            ),
            lease("10.9.9.77", "52:54:00:00:00:77", Some("ll"), 0)
        ),
    );
    write_atomic(
        &dir.join("lo.macs"),
        "[\n  {\n    \"domain\": \"ll-domain\",\n    \"macs\": [\"52:54:00:00:00:77\"]\n  }\n]\n",
    );
    write_atomic(
        &dir.join("gone0.status"),
        &format!(
            "[\n{}\n]\n",
            lease("fe80::99", "52:54:00:00:00:99", Some("ll-gone"), t + 5000)
        ),
    );
}

#[test]
fn every_entry_point_family_and_buffer_size_of_both_services() {
    let tmp = TempDir::new("contract");
    standard_fixture(tmp.path());
    link_local_fixture(tmp.path());
    // SAFETY: this file has one test: no other thread reads the environment.
    unsafe { std::env::set_var("LIBVIRT_NSS_LEASE_DIR", tmp.path()) };
    let so = CString::new(cdylib().into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: loading our own module by absolute path.
    let h = unsafe { libc::dlopen(so.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!h.is_null(), "dlopen failed");

    let many: Vec<&'static str> = (1..=100)
        .rev()
        .map(|i| &*Box::leak(format!("10.200.0.{i}").into_boxed_str()))
        .collect();
    let many4: Vec<(&'static str, u32)> = many.iter().map(|a| (*a, 0)).collect();
    let fedora = |service, name| Name {
        service,
        name,
        v4: Some(vec!["192.168.122.10"]),
        v6: Some(vec!["fd00:1::10"]),
        both: Some(vec![("fd00:1::10", 0), ("192.168.122.10", 0)]),
    };
    let unknown = |service, name| Name {
        service,
        name,
        v4: None,
        v6: None,
        both: None,
    };
    let link_local = |service, name| Name {
        service,
        name,
        // The link-local lease expires later, yet comes last, with lo's index; a hostent
        // cannot carry its scope, so IPv6 answers have nothing left: NO_DATA.
        v4: Some(vec!["10.9.9.77"]),
        v6: Some(vec![]),
        both: Some(vec![("10.9.9.77", 0), ("fe80::5054:ff:fe00:77", 1)]),
    };
    let names = vec![
        fedora("libvirt", "fedora"),
        fedora("libvirt", "FEDORA"),
        fedora("libvirt_guest", "guest-fedora"),
        fedora("libvirt_guest", "Guest-Fedora"),
        Name {
            service: "libvirt",
            name: "v6only",
            v4: Some(vec![]),
            v6: Some(vec!["fd00:1::99"]),
            both: Some(vec![("fd00:1::99", 0)]),
        },
        Name {
            service: "libvirt",
            name: "many",
            v4: Some(many.clone()),
            v6: Some(vec![]),
            both: Some(many4.clone()),
        },
        Name {
            service: "libvirt_guest",
            name: "vm-many",
            v4: Some(many.clone()),
            v6: Some(vec![]),
            both: Some(many4.clone()),
        },
        link_local("libvirt", "ll"),
        link_local("libvirt_guest", "ll-domain"),
        Name {
            service: "libvirt",
            name: "ll-gone",
            v4: Some(vec![]),
            v6: Some(vec![]),
            both: Some(vec![]),
        },
        unknown("libvirt", "old"),
        unknown("libvirt", "nosuch"),
        unknown("libvirt", "guest-fedora"),
        unknown("libvirt", ""),
        unknown("libvirt_guest", "fedora"),
        unknown("libvirt_guest", "nosuch"),
        unknown("libvirt_guest", ""),
    ];
    let reverse: Vec<(&str, &str, Option<&str>)> = vec![
        ("libvirt", "192.168.122.10", Some("fedora")),
        ("libvirt", "fd00:1::10", Some("fedora")),
        ("libvirt", "10.200.0.5", Some("many")),
        ("libvirt", "fe80::5054:ff:fe00:77", Some("ll")),
        ("libvirt", "192.168.122.11", None),
        ("libvirt", "10.0.0.1", None),
        ("libvirt_guest", "192.168.122.10", Some("guest-fedora")),
        ("libvirt_guest", "fd00:1::10", Some("guest-fedora")),
        ("libvirt_guest", "10.200.0.5", Some("vm-many")),
        ("libvirt_guest", "fd00:1::99", None),
        ("libvirt_guest", "10.0.0.1", None),
    ];

    let mut report = String::new();
    let (mut calls, mut failed) = (0, 0);
    let mut row = |what: String, want: Expect, got: Result<Got, String>| {
        calls += 1;
        match got {
            Ok(g) if g == want.got() => {}
            Ok(g) => {
                failed += 1;
                writeln!(report, "{what}:\n  got  {g:?}\n  want {:?}", want.got()).unwrap();
            }
            Err(e) => {
                failed += 1;
                writeln!(report, "{what}: {e}").unwrap();
            }
        }
    };
    for n in &names {
        let m = Module {
            h,
            service: n.service,
        };
        for e in ENTRIES
            .iter()
            .copied()
            .filter(|e| !matches!(e, Entry::A | Entry::A2))
        {
            for &af in e.families() {
                let want = match (e, af) {
                    (Entry::R4, _) => answers4(&n.both),
                    (Entry::R, _) | (_, AF_INET) | (_, AF_UNSPEC) => answers(&n.v4),
                    (_, AF_INET6) => answers(&n.v6),
                    _ => Expect::Unavail(libc::EAFNOSUPPORT),
                };
                // A misaligned buffer too, except for the 100-address answers (time: their
                // sweeps are most of the calls; the alignment code does not depend on the count).
                let offsets: &[usize] = if n.name.contains("many") {
                    &[0]
                } else {
                    &[0, 3]
                };
                for &offset in offsets {
                    row(
                        format!(
                            "_nss_{}_{}({:?}, {}) buffer at +{offset}",
                            n.service,
                            e.symbol(),
                            n.name,
                            family_name(af)
                        ),
                        want.clone(),
                        call_forward(&m, e, af, n.name, offset),
                    );
                }
            }
        }
    }
    for (service, addr, name) in &reverse {
        let m = Module { h, service };
        let ip: IpAddr = addr.parse().unwrap();
        let own = if ip.is_ipv4() { AF_INET } else { AF_INET6 };
        for e in [Entry::A2, Entry::A] {
            for &af in e.families() {
                let want = match (af, name) {
                    (a, Some(n)) if a == own => Expect::Named(n.to_string()),
                    (a, None) if a == own => Expect::NotFound,
                    // The other family's length: the address is malformed.
                    (AF_INET | AF_INET6, _) => Expect::Unavail(libc::EINVAL),
                    _ => Expect::Unavail(libc::EAFNOSUPPORT),
                };
                row(
                    format!("_nss_{service}_{}({addr}, {})", e.symbol(), family_name(af)),
                    want,
                    call_reverse(&m, e, af, ip),
                );
            }
        }
    }
    assert!(
        failed == 0,
        "{failed} of {calls} calls broke the contract:\n{report}"
    );
    assert!(calls > 400, "only {calls} calls");
    eprintln!("contract: {calls} calls, every buffer size each, all as documented");
}
