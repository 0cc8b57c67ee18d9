//! libvirt's matching rules: which leases answer a name for each service, in what order,
//! and the address or name a lookup returns. `libvirt` matches the DHCP hostname, ASCII
//! case-insensitively and exactly; `libvirt_guest` the domain name, through the domain's
//! MACs in the `.macs` files; a lease is live if it never expires (0) or expires now or
//! later; addresses are answered once each, newest expiry first and never-expiring last,
//! at most [`MAX_ANSWERS`].

use std::collections::HashSet;
use std::net::IpAddr;

use crate::leases::{Lease, MacsFile, StatusFile};
use crate::lookup::Snapshot;
use crate::work;

/// Most addresses one forward lookup answers: the best-ranked ones (newest expiry first).
/// A guest has an address or two per network; a file with thousands of leases for one name
/// (or a domain listing thousands of MACs) is not a guest, and answering all of them would
/// make every program that resolves the name (sshd, sudo) copy and sort them, with glibc
/// retrying each lookup with a larger buffer. 256 addresses fill about 10 KB of the
/// caller's buffer.
pub const MAX_ANSWERS: usize = 256;

/// Which NSS service is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `libnss_libvirt`: match the DHCP hostname.
    Libvirt,
    /// `libnss_libvirt_guest`: match the libvirt domain name.
    Guest,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Libvirt => "libvirt",
            Service::Guest => "libvirt_guest",
        }
    }
}

/// Which addresses the caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
    /// Both (what `gethostbyname4_r` returns).
    Any,
}

impl Family {
    pub fn accepts(self, ip: &IpAddr) -> bool {
        match self {
            Family::V4 => ip.is_ipv4(),
            Family::V6 => ip.is_ipv6(),
            Family::Any => true,
        }
    }
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// At least one address of the wanted family, in answer order, no duplicates.
    Found(Vec<IpAddr>),
    /// The name has live addresses, none of the wanted family.
    NoData,
    NotFound,
}

/// A lease that matched, with what decides its rank.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub file: usize,
    pub lease: &'a Lease,
}

/// Order: newest expiry first, never-expiring (0) last; then file and position.
fn rank(c: &Candidate) -> (bool, i64, usize, usize) {
    (c.lease.expiry == 0, -c.lease.expiry, c.file, c.lease.offset)
}

/// Why a lease is, or is not, part of an answer: the matcher's own decision, which the
/// diagnostic command prints as it is (`nss-libvirt-guest lookup --explain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Its address is answered.
    Taken,
    /// The lease matches the name but expired.
    Expired,
    /// Matches and is live; its address is answered for a better-ranked lease already.
    Duplicate,
    /// Matches and is live; its address is not of the family asked for.
    OtherFamily,
    /// Matches and is live, but [`MAX_ANSWERS`] better-ranked addresses are answered.
    OverCap,
    /// `libvirt`: the lease has no hostname.
    NoHostname,
    /// `libvirt`: the lease's hostname is another name.
    OtherHostname,
    /// `libvirt_guest`: the lease has no MAC address.
    NoMac,
    /// `libvirt_guest`: the lease's MAC is not one of the domain's.
    OtherMac,
}

/// One lease of the snapshot and the matcher's [`Verdict`] on it.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    pub file: usize,
    pub lease: &'a Lease,
    pub verdict: Verdict,
}

impl Decision<'_> {
    /// "taken" or "rejected".
    pub fn word(&self) -> &'static str {
        if self.verdict == Verdict::Taken {
            "taken"
        } else {
            "rejected"
        }
    }

    /// Why, in words (the diagnostic command's explanation).
    pub fn reason(&self) -> String {
        let l = self.lease;
        let expiry = || match l.expiry {
            0 => "never".to_owned(),
            e => e.to_string(),
        };
        match self.verdict {
            Verdict::Taken => format!("expires {}", expiry()),
            Verdict::Expired => format!("expired at {}", l.expiry),
            Verdict::Duplicate => format!("address {} answered for a better-ranked lease", l.ip),
            Verdict::OtherFamily => format!("address {} is not of the family asked for", l.ip),
            Verdict::OverCap => format!("{MAX_ANSWERS} better-ranked addresses answered already"),
            Verdict::NoHostname => "no hostname".into(),
            Verdict::OtherHostname => format!(
                "hostname {} is another name",
                l.hostname.as_deref().unwrap_or_default()
            ),
            Verdict::NoMac => "no MAC address".into(),
            Verdict::OtherMac => format!(
                "MAC {} not in the domain's list",
                l.mac.as_deref().unwrap_or_default()
            ),
        }
    }
}

/// libvirt's rule for one name and service: which leases can answer it.
pub struct Rule<'a> {
    service: Service,
    name_lc: String,
    /// `libvirt_guest`: the domain's MACs ([`domain_macs`]), in their order and as a set.
    macs: Vec<&'a str>,
    mac_set: HashSet<&'a str>,
}

impl<'a> Rule<'a> {
    pub fn new(snap: &'a Snapshot, name: &str, service: Service) -> Rule<'a> {
        let name_lc = name.to_ascii_lowercase();
        let macs = match service {
            Service::Libvirt => Vec::new(),
            Service::Guest => domain_macs(snap.macs_files().map(|(_, m)| m), &name_lc),
        };
        let mac_set = if macs.len() > 16 {
            macs.iter().copied().collect()
        } else {
            HashSet::new()
        };
        Rule {
            service,
            name_lc,
            macs,
            mac_set,
        }
    }

    fn owns_mac(&self, mac: &str) -> bool {
        if self.mac_set.is_empty() {
            self.macs.contains(&mac)
        } else {
            self.mac_set.contains(mac)
        }
    }

    /// The verdict on `l` by name and liveness ([`Verdict::Taken`] when both hold).
    pub fn verdict(&self, l: &Lease, now: i64) -> Verdict {
        let named = match self.service {
            Service::Libvirt => match &l.hostname {
                None => Verdict::NoHostname,
                Some(h) if h.eq_ignore_ascii_case(&self.name_lc) => Verdict::Taken,
                Some(_) => Verdict::OtherHostname,
            },
            Service::Guest => match &l.mac {
                None => Verdict::NoMac,
                Some(m) if self.owns_mac(m) => Verdict::Taken,
                Some(_) => Verdict::OtherMac,
            },
        };
        match named {
            Verdict::Taken if !l.is_live(now) => Verdict::Expired,
            v => v,
        }
    }

    /// Calls `f` with the leases of `s` the rule can take, found through the file's indexes
    /// (hostname, MAC) instead of looking at every lease.
    fn each_indexed<'s>(&self, s: &'s StatusFile, mut f: impl FnMut(&'s Lease)) {
        match self.service {
            Service::Libvirt => s.with_hostname(&self.name_lc).for_each(f),
            Service::Guest => {
                work::examined(self.macs.len() as u64);
                for mac in &self.macs {
                    s.with_mac(mac).for_each(&mut f);
                }
            }
        }
    }
}

/// Every live lease matching `name` for `service`, in answer order (not deduplicated).
pub fn candidates<'a>(
    snap: &'a Snapshot,
    name: &str,
    service: Service,
    now: i64,
) -> Vec<Candidate<'a>> {
    let rule = Rule::new(snap, name, service);
    let mut out = Vec::new();
    for (i, _, s) in snap.status_files() {
        rule.each_indexed(s, |l| {
            if rule.verdict(l, now) == Verdict::Taken {
                out.push(Candidate { file: i, lease: l });
            }
        });
    }
    work::examined(out.len() as u64);
    out.sort_by_key(rank);
    out
}

/// Every lease of `snap` with the matcher's verdict for `name`, in file order: what
/// [`answer`] decided and why (for `lookup --explain`). Looks at every lease, so it is for
/// the diagnostic command, not for the module's lookups.
pub fn explain<'a>(
    snap: &'a Snapshot,
    name: &str,
    service: Service,
    family: Family,
    now: i64,
) -> Vec<Decision<'a>> {
    let rule = Rule::new(snap, name, service);
    let mut out = Vec::new();
    for (i, _, s) in snap.status_files() {
        for l in &s.leases {
            out.push(Decision {
                file: i,
                lease: l,
                verdict: rule.verdict(l, now),
            });
        }
    }
    // The leases the rule took, ranked and picked as `answer` does.
    let mut taken: Vec<(usize, Candidate)> = (out.iter().enumerate())
        .filter(|(_, d)| d.verdict == Verdict::Taken)
        .map(|(i, d)| {
            (
                i,
                Candidate {
                    file: d.file,
                    lease: d.lease,
                },
            )
        })
        .collect();
    taken.sort_by_key(|(_, c)| rank(c));
    let ranked: Vec<Candidate> = taken.iter().map(|(_, c)| c.clone()).collect();
    let mut picks = Vec::with_capacity(ranked.len());
    pick(&ranked, family, |v| picks.push(v));
    for ((i, _), v) in taken.into_iter().zip(picks) {
        out[i].verdict = v;
    }
    out
}

/// The MACs of the domain `name_lc` (lower-cased) in `macs_files`, each once, in the order
/// of the files and their entries: libvirt's domain -> MACs rule, for the lookup, its
/// prefilter and the diagnostic command alike. Linear in the MACs listed for the domain.
pub fn domain_macs<'a>(
    macs_files: impl Iterator<Item = &'a MacsFile>,
    name_lc: &str,
) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for m in macs_files {
        for e in m.for_domain(name_lc) {
            work::examined(e.macs.len() as u64);
            for mac in &e.macs {
                if seen.insert(mac.as_str()) {
                    out.push(mac.as_str());
                }
            }
        }
    }
    out
}

/// The answer for `name` from the leases of `snap`.
pub fn answer(snap: &Snapshot, name: &str, service: Service, family: Family, now: i64) -> Answer {
    let c = candidates(snap, name, service, now);
    if c.is_empty() {
        return Answer::NotFound;
    }
    let addrs = pick(&c, family, |_| {});
    if addrs.is_empty() {
        Answer::NoData
    } else {
        Answer::Found(addrs)
    }
}

/// The addresses answered from `ranked` (matching live leases in answer order): the first
/// [`MAX_ANSWERS`] distinct addresses of `family`. `decided` is told the verdict on each
/// candidate in turn ([`Verdict::Taken`], `OtherFamily`, `Duplicate` or `OverCap`). A
/// guest's few addresses are compared directly; past a handful, a hash set keeps it linear.
fn pick(ranked: &[Candidate], family: Family, mut decided: impl FnMut(Verdict)) -> Vec<IpAddr> {
    const DIRECT: usize = 16;
    let mut addrs: Vec<IpAddr> = Vec::new();
    let mut seen: HashSet<IpAddr> = HashSet::new();
    let mut probes = 0u64;
    for c in ranked {
        let ip = c.lease.ip;
        let v = if addrs.len() == MAX_ANSWERS {
            Verdict::OverCap
        } else if !family.accepts(&ip) {
            Verdict::OtherFamily
        } else {
            probes += 1;
            let new = if addrs.len() < DIRECT {
                !addrs.contains(&ip)
            } else {
                if seen.is_empty() {
                    seen.extend(addrs.iter().copied());
                }
                seen.insert(ip)
            };
            if new {
                addrs.push(ip);
                Verdict::Taken
            } else {
                Verdict::Duplicate
            }
        };
        decided(v);
    }
    work::examined(probes);
    addrs
}

/// The name for `ip` from `snap`: the lease's hostname (`libvirt`) or the domain owning the
/// lease's MAC (`libvirt_guest`), from the best-ranked live lease that has one.
pub fn reverse_answer(snap: &Snapshot, ip: IpAddr, service: Service, now: i64) -> Option<String> {
    let mut found: Vec<Candidate> = Vec::new();
    for (i, _, s) in snap.status_files() {
        for l in &s.leases {
            if l.ip == ip && l.is_live(now) {
                found.push(Candidate { file: i, lease: l });
            }
        }
    }
    found.sort_by_key(rank);
    for c in found {
        match service {
            Service::Libvirt => {
                if let Some(h) = &c.lease.hostname {
                    return Some(h.clone());
                }
            }
            Service::Guest => {
                if let Some(mac) = &c.lease.mac {
                    for (_, m) in snap.macs_files() {
                        if let Some(e) = m.owning(mac).next() {
                            return Some(e.domain.clone());
                        }
                    }
                }
            }
        }
    }
    None
}
