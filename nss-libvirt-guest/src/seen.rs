//! Guests without a lease: a running domain's MACs, from the map the libvirt hooks keep, and
//! the addresses the host's neighbour table ([`crate::neigh`]) has seen behind them.
//!
//! The map is one file in libvirt's `.macs` format (`[{"domain": "web", "macs": [...]}]`),
//! written atomically by `nss-libvirt-guest hook` when a qemu or lxc domain starts, stops or
//! is reconnected; it holds every interface of every running domain, whatever network it is
//! on (a libvirt network, a host bridge, macvtap). The `libvirt_guest` service answers a domain
//! name first from leases (as libvirt does), then with the neighbour addresses of the
//! domain's MACs; reverse lookups likewise. When the map does not exist, this costs one failed
//! open(2); the neighbour table is only read for a name the map knows.
//!
//! Order of the neighbour addresses (after the leases' ones): REACHABLE, then DELAY, then
//! STALE (the freshest first), IPv4 before IPv6, lowest address first; IPv6 link-local
//! addresses last with the index of the interface they were seen on as scope id, and only
//! where a scope id can go (see [`crate::order`]).

use std::io::{self, Read};
use std::net::IpAddr;
use std::path::Path;

use crate::leases::MacsFile;
use crate::lookup::{Family, MAX_FILE_BYTES};
use crate::neigh::Neighbour;
use crate::order::{Addr, is_link_local};

/// Where the hooks keep the map.
pub const DEFAULT_MAP: &str = "/run/virt-hostkit/guests.macs";
/// Environment variable overriding the map's path (read with `secure_getenv`).
pub const MAP_ENV: &str = "LIBVIRT_NSS_GUESTS_FILE";

/// The map, or None when there is none (the feature is not in use).
pub fn read_map(path: &Path) -> io::Result<Option<MacsFile>> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !f.metadata()?.is_file() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES).read_to_end(&mut bytes)?;
    Ok(Some(MacsFile::parse(&bytes)))
}

/// The MACs of `domain` (case-insensitive), or None if the map does not know it.
pub fn macs_of(map: &MacsFile, domain: &str) -> Option<Vec<String>> {
    let lc = domain.to_ascii_lowercase();
    let mut macs: Vec<String> = Vec::new();
    let mut known = false;
    for e in map.for_domain(&lc) {
        known = true;
        for m in &e.macs {
            if !macs.contains(m) {
                macs.push(m.clone());
            }
        }
    }
    known.then_some(macs)
}

fn freshness(state: u16) -> u8 {
    match state {
        s if s & 0x02 != 0 => 0, // REACHABLE
        s if s & 0x08 != 0 => 1, // DELAY
        _ => 2,                  // STALE
    }
}

/// The neighbour addresses of `macs`, of `family`, in the order of the module doc.
pub fn addresses(
    macs: &[String],
    neighbours: &[Neighbour],
    family: Family,
    scoped: bool,
) -> Vec<Addr> {
    let mut hits: Vec<&Neighbour> = neighbours
        .iter()
        .filter(|n| macs.iter().any(|m| m.eq_ignore_ascii_case(&n.mac)))
        .filter(|n| family.accepts(&n.ip))
        .filter(|n| scoped || !is_link_local(&n.ip))
        .collect();
    hits.sort_by_key(|n| {
        (
            is_link_local(&n.ip),
            freshness(n.state),
            n.ip.is_ipv6(),
            n.ip,
        )
    });
    let mut out: Vec<Addr> = Vec::new();
    for n in hits {
        let a = Addr {
            ip: n.ip,
            scope_id: if is_link_local(&n.ip) { n.ifindex } else { 0 },
        };
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// The domain whose MAC the neighbour entry for `ip` carries.
pub fn domain_of(map: &MacsFile, neighbours: &[Neighbour], ip: IpAddr) -> Option<String> {
    let mut hits: Vec<&Neighbour> = neighbours.iter().filter(|n| n.ip == ip).collect();
    hits.sort_by_key(|n| freshness(n.state));
    hits.iter()
        .find_map(|n| map.owning(&n.mac.to_ascii_lowercase()).next())
        .map(|e| e.domain.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(ip: &str, mac: &str, ifindex: u32, state: u16) -> Neighbour {
        Neighbour {
            ip: ip.parse().unwrap(),
            mac: mac.into(),
            ifindex,
            state,
        }
    }

    #[test]
    fn neighbour_addresses_of_a_domain() {
        let map = MacsFile::parse(
            br#"[{"domain": "web", "macs": ["52:54:00:00:00:01", "52:54:00:00:00:02"]}, {"domain": "db", "macs": ["52:54:00:00:00:03"]}]"#,
        );
        assert_eq!(macs_of(&map, "nosuch"), None);
        let macs = macs_of(&map, "WEB").unwrap();
        assert_eq!(macs.len(), 2);
        let table = [
            n("10.0.0.9", "52:54:00:00:00:01", 3, 0x04),
            n("fe80::1", "52:54:00:00:00:01", 3, 0x02),
            n("fd00::5", "52:54:00:00:00:02", 4, 0x02),
            n("10.0.0.5", "52:54:00:00:00:02", 4, 0x08),
            n("10.0.0.3", "52:54:00:00:00:03", 4, 0x02),
            n("10.0.0.7", "52:54:00:00:00:01", 5, 0x02),
        ];
        let a = |ip: &str, s| Addr {
            ip: ip.parse().unwrap(),
            scope_id: s,
        };
        assert_eq!(
            addresses(&macs, &table, Family::Any, true),
            vec![
                a("10.0.0.7", 0),
                a("fd00::5", 0),
                a("10.0.0.5", 0),
                a("10.0.0.9", 0),
                a("fe80::1", 3)
            ]
        );
        assert_eq!(
            addresses(&macs, &table, Family::V6, false),
            vec![a("fd00::5", 0)]
        );
        assert_eq!(
            domain_of(&map, &table, "10.0.0.3".parse().unwrap()),
            Some("db".into())
        );
        assert_eq!(domain_of(&map, &table, "10.9.9.9".parse().unwrap()), None);
    }

    #[test]
    fn a_missing_map_is_none() {
        assert!(
            read_map(Path::new("/nonexistent/guests.macs"))
                .unwrap()
                .is_none()
        );
        assert!(read_map(Path::new("/")).unwrap().is_none(), "a directory");
    }
}
