//! Guests without a lease: a running domain's MACs, from the map the libvirt hooks keep, and
//! the addresses the host's neighbour table ([`crate::neigh`]) has seen behind them.
//!
//! The map is one file in libvirt's `.macs` format (`[{"domain": "web", "macs": [...]}]`),
//! written atomically by `nss-libvirt-guest hook` when a qemu or lxc domain starts, stops or
//! is reconnected; it holds every interface of every running domain, whatever network it is
//! on (a libvirt network, a host bridge, macvtap). The `libvirt_guest` service answers a domain
//! name first from leases (as libvirt does), then with the neighbour addresses of the
//! domain's MACs; reverse lookups likewise. When the map does not exist, this costs at most
//! one stat(2) per lookup (none while its absence is trusted, see [`map`]); a map that
//! exists is parsed once and kept while its key (inode, size, mtime, ctime, as for lease
//! files) is unchanged. The neighbour table is only read for a name the map knows.
//!
//! Order of the neighbour addresses (after the leases' ones): REACHABLE, then DELAY, then
//! STALE (the freshest first), IPv4 before IPv6, lowest address first; IPv6 link-local
//! addresses last with the index of the interface they were seen on as scope id, and only
//! where a scope id can go (see [`crate::order`]).

use std::io::{self, Read};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::cache::{Key, TRUST_WINDOW};

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
    Ok(read_keyed(path)?.map(|(_, m)| m))
}

/// The map and the key of the file read. Opened with O_NONBLOCK (a FIFO at the map's path
/// must not make a lookup wait for a writer) and fstat'ed: only a regular file counts.
fn read_keyed(path: &Path) -> io::Result<Option<(Key, MacsFile)>> {
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES).read_to_end(&mut bytes)?;
    Ok(Some((Key::of(&meta), MacsFile::parse(&bytes))))
}

/// What the last lookup found at the map's path (see [`map`]).
enum Kept {
    /// No map there when checked at this instant.
    Absent(PathBuf, Instant),
    /// The map read, with the key of the file it was read from.
    Map(PathBuf, Key, Arc<MacsFile>),
}

static KEPT: Mutex<Option<Kept>> = Mutex::new(None);

/// The map for a lookup; None when it does not exist or cannot be read.
///
/// Cost: one stat(2), and nothing at all while a map found missing less than
/// [`TRUST_WINDOW`] ago is trusted to be still missing (a map the hooks create is seen at
/// most that late: a domain that just started has sent no traffic the neighbour table could
/// hold yet anyway). A map whose key is unchanged since it was read (and was settled then,
/// see [`Key::settled`]) is not read again; the hooks replace it by rename, which changes
/// the key. The lock is only `try_lock`ed: a thread that finds it busy reads the map itself.
pub fn map(path: &Path) -> Option<Arc<MacsFile>> {
    let mut kept = KEPT.try_lock().ok();
    match kept.as_deref() {
        Some(Some(Kept::Absent(p, at))) if p == path && at.elapsed() < TRUST_WINDOW => {
            return None;
        }
        _ => {}
    }
    let meta = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return None,
        Err(e) => {
            if e.kind() == io::ErrorKind::NotFound {
                if let Some(kept) = kept.as_deref_mut() {
                    *kept = Some(Kept::Absent(path.to_owned(), Instant::now()));
                }
            }
            return None;
        }
    };
    let key = Key::of(&meta);
    if let Some(Some(Kept::Map(p, k, m))) = kept.as_deref() {
        if p == path && *k == key {
            return Some(Arc::clone(m));
        }
    }
    let (key, map) = read_keyed(path).ok()??;
    let map = Arc::new(map);
    if let Some(kept) = kept.as_deref_mut() {
        *kept = key
            .settled()
            .then(|| Kept::Map(path.to_owned(), key, Arc::clone(&map)));
    }
    Some(map)
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
    fn a_missing_map_costs_one_stat_and_a_new_one_is_seen_after_the_trust_window() {
        let dir = std::env::temp_dir().join(format!("nss-seen-map-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("guests.macs");
        assert!(map(&path).is_none());
        std::fs::write(
            &path,
            br#"[{"domain": "web", "macs": ["52:54:00:00:00:01"]}]"#,
        )
        .unwrap();
        // Its absence is trusted for TRUST_WINDOW (unless another thread held the lock).
        std::thread::sleep(TRUST_WINDOW);
        let m = map(&path).expect("the map, once the trust window passed");
        assert_eq!(macs_of(&m, "web").unwrap(), vec!["52:54:00:00:00:01"]);
        // Replaced by rename: a new key, read again at once.
        let tmp = dir.join("guests.macs.new");
        std::fs::write(&tmp, br#"[{"domain": "db", "macs": []}]"#).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let m = map(&path).unwrap();
        assert_eq!(macs_of(&m, "web"), None);
        assert_eq!(macs_of(&m, "db"), Some(vec![]));
        // A directory or a FIFO at the path is no map, and does not block.
        std::fs::remove_file(&path).unwrap();
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&path)
                .status()
                .unwrap()
                .success()
        );
        assert!(map(&path).is_none());
        assert!(read_map(&path).unwrap().is_none());
        assert!(map(&dir).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
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
