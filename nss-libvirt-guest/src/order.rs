//! The addresses an answer carries and their order, so that a program taking the first
//! address reaches the guest.
//!
//! Order: the lease renewed last first (latest `expiry-time`: a guest that rebooted with a new
//! address has renewed that one, while its old lease still runs out), leases that never
//! expire (`expiry-time` 0, libvirt's static hosts) after all others; equal expiry in the
//! order of the `.status` files' names, then of the leases in the file. Each address once.
//! `gethostbyname4_r` (getaddrinfo with AF_UNSPEC: ssh) lists both families in that one order;
//! glibc's getaddrinfo then sorts by RFC 6724 and keeps this order among equals.
//!
//! IPv6 link-local addresses (fe80::/10) are only usable with the interface they are on (the
//! scope id), which the lease file names: `<bridge>.status`. `gethostbyname4_r` gives them
//! that bridge's interface index and lists them after every other address; a `hostent`
//! (`gethostbyname{,2,3}_r`) has no field for a scope, so those answers leave them out, and
//! so does every answer when the bridge does not exist (the address is unreachable). A name
//! whose only addresses are left out this way is NO_DATA, as a name without an address of the
//! family asked for. At most [`MAX_ANSWERS`] addresses, the first in this order.
//! (doc/nss.md, "Matching".)

use std::net::IpAddr;

use crate::lookup::{Family, MAX_ANSWERS, Service, Snapshot, candidates};

/// One address of an answer, with its scope id (0 unless IPv6 link-local).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr {
    pub ip: IpAddr,
    pub scope_id: u32,
}

/// A forward answer in the order and form described in the module doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ordered {
    Found(Vec<Addr>),
    NoData,
    NotFound,
}

/// fe80::/10.
pub fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
        IpAddr::V4(_) => false,
    }
}

/// The answer for `name`: `scoped` is true for callers that can carry a scope id
/// (`gethostbyname4_r`); `ifindex` maps a bridge name to its interface index, 0 when
/// there is none (`crate::ffi::interface_index`).
pub fn answer(
    snap: &Snapshot,
    name: &str,
    service: Service,
    family: Family,
    now: i64,
    scoped: bool,
    ifindex: impl Fn(&str) -> u32,
) -> Ordered {
    let c = candidates(snap, name, service, now);
    if c.is_empty() {
        return Ordered::NotFound;
    }
    let mut plain: Vec<Addr> = Vec::new();
    let mut link_local: Vec<Addr> = Vec::new();
    for cand in &c {
        let ip = cand.lease.ip;
        if !family.accepts(&ip) {
            continue;
        }
        let addr = if is_link_local(&ip) {
            if !scoped {
                continue;
            }
            let bridge = snap
                .files
                .get(cand.file)
                .map(|f| f.bridge())
                .unwrap_or_default();
            match ifindex(&bridge) {
                0 => continue,
                i => Addr { ip, scope_id: i },
            }
        } else {
            Addr { ip, scope_id: 0 }
        };
        let list = if addr.scope_id == 0 {
            &mut plain
        } else {
            &mut link_local
        };
        if !list.contains(&addr) {
            list.push(addr);
        }
        if plain.len() == MAX_ANSWERS {
            break;
        }
    }
    plain.extend(link_local);
    plain.truncate(MAX_ANSWERS);
    if plain.is_empty() {
        Ordered::NoData
    } else {
        Ordered::Found(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup::snapshot_uncached;
    use std::fs;

    fn lease(ip: &str, mac: &str, host: &str, expiry: i64) -> String {
        format!(
            "{{\"ip-address\": \"{ip}\", \"mac-address\": \"{mac}\", \"hostname\": \"{host}\", \"expiry-time\": {expiry}}}"
        )
    }

    #[test]
    fn order_and_link_local_scope() {
        let dir = std::env::temp_dir().join(format!("nss-order-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let now = 1_800_000_000;
        fs::write(
            dir.join("virbr0.status"),
            format!(
                "[{}, {}, {}]",
                lease("192.168.122.5", "52:54:00:00:00:01", "g", 0),
                lease("192.168.122.6", "52:54:00:00:00:01", "g", now + 100),
                lease("fe80::5054:ff:fe00:1", "52:54:00:00:00:01", "g", now + 900),
            ),
        )
        .unwrap();
        fs::write(
            dir.join("virbr1.status"),
            format!(
                "[{}, {}, {}]",
                lease("fd00::6", "52:54:00:00:00:02", "g", now + 100),
                lease("fd00::7", "52:54:00:00:00:02", "g", now + 500),
                lease("fe80::1", "52:54:00:00:00:02", "onlyll", now + 500),
            ),
        )
        .unwrap();
        let snap = snapshot_uncached(&dir).unwrap();
        let idx = |b: &str| match b {
            "virbr0" => 7,
            _ => 0,
        };
        let a = |ip: &str, s: u32| Addr {
            ip: ip.parse().unwrap(),
            scope_id: s,
        };
        let got = |name, fam, scoped| answer(&snap, name, Service::Libvirt, fam, now, scoped, idx);
        assert_eq!(
            got("g", Family::Any, true),
            Ordered::Found(vec![
                a("fd00::7", 0),
                a("192.168.122.6", 0),
                a("fd00::6", 0),
                a("192.168.122.5", 0),
                a("fe80::5054:ff:fe00:1", 7),
            ])
        );
        assert_eq!(
            got("g", Family::V6, false),
            Ordered::Found(vec![a("fd00::7", 0), a("fd00::6", 0)])
        );
        // virbr1 does not exist: its link-local address is unreachable.
        assert_eq!(got("onlyll", Family::Any, true), Ordered::NoData);
        assert_eq!(got("onlyll", Family::V6, false), Ordered::NoData);
        assert_eq!(got("nosuch", Family::Any, true), Ordered::NotFound);
        assert!(is_link_local(&"febf::1".parse().unwrap()));
        assert!(!is_link_local(&"fec0::1".parse().unwrap()));
        fs::remove_dir_all(&dir).unwrap();
    }
}
