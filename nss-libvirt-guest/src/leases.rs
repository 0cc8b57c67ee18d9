//! The two kinds of file libvirt writes into the lease directory, parsed and indexed.
//!
//! `<bridge>.status`: dnsmasq leases (libvirt_leaseshelper); `<bridge>.macs`: which domain
//! owns which MAC on that bridge (network driver). A malformed entry is skipped and recorded
//! as a [`Problem`] with its byte offset; everything else in the file still answers.

use std::net::IpAddr;

use crate::json::{self, Value};

/// Why an entry (or the rest of a file) was not used, and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub offset: usize,
    pub reason: String,
}

/// One usable lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: IpAddr,
    /// Lower-cased (a MAC is a number; libvirt compares it case-sensitively, we do not).
    pub mac: Option<String>,
    /// As the guest sent it.
    pub hostname: Option<String>,
    /// Unix seconds; 0 = never expires.
    pub expiry: i64,
    /// Byte offset of the entry in its file.
    pub offset: usize,
}

impl Lease {
    /// libvirt's rule: live if it never expires or expires now or later.
    pub fn is_live(&self, now: i64) -> bool {
        self.expiry == 0 || self.expiry >= now
    }
}

/// FNV-1a of a key's ASCII-lower-cased bytes: what the indexes are sorted by.
fn hash_ci(key: &str) -> u32 {
    key.bytes().fold(0x811c_9dc5, |h, c| {
        (h ^ u32::from(c.to_ascii_lowercase())).wrapping_mul(0x0100_0193)
    })
}

/// An index: (hash of the key, position) pairs sorted by hash, then position (file order
/// among equal keys), binary-searched; 8 or 12 bytes an entry, where a hash map of
/// lower-cased key copies took about 150 (the key's allocation, a vector per key, the
/// bucket), and the cache keeps every lease of a 10,000-lease host. Equal hashes of
/// different keys are told apart by comparing the keys.
fn index_of<P: Copy>(positions: impl Iterator<Item = (P, u32)>) -> Vec<(u32, P)> {
    let mut index: Vec<(u32, P)> = positions.map(|(p, h)| (h, p)).collect();
    // stable, and the positions come in file order
    index.sort_by_key(|&(h, _)| h);
    index.shrink_to_fit();
    index
}

/// The positions in `index` whose key equals `want` (ignoring ASCII case), in file order.
fn lookup<'a, 'k, P: Copy + 'a, K: Fn(P) -> &'a str + 'a>(
    index: &'a [(u32, P)],
    key: K,
    want: &'k str,
) -> impl Iterator<Item = P> + use<'a, 'k, P, K> {
    let h = hash_ci(want);
    let lo = index.partition_point(|&(x, _)| x < h);
    index[lo..]
        .iter()
        .take_while(move |&&(x, _)| x == h)
        .filter(move |&&(_, p)| key(p).eq_ignore_ascii_case(want))
        .map(|&(_, p)| p)
}

/// A parsed `.status` file with lookup indexes (by hostname and by MAC, each ignoring
/// ASCII case, file order among equals).
#[derive(Debug, Default)]
pub struct StatusFile {
    pub leases: Vec<Lease>,
    pub problems: Vec<Problem>,
    by_hostname: Vec<(u32, u32)>,
    by_mac: Vec<(u32, u32)>,
}

impl StatusFile {
    pub fn parse(bytes: &[u8]) -> StatusFile {
        StatusFile::from_array(json::parse_array(bytes))
    }

    /// The leases of a scanned file (all of it, or the entries a lookup needs).
    pub fn from_array(arr: json::Array) -> StatusFile {
        let mut f = StatusFile {
            leases: Vec::with_capacity(arr.elements.len()),
            ..StatusFile::default()
        };
        for (offset, v) in &arr.elements {
            match lease_of(v, *offset) {
                Ok(l) => f.leases.push(l),
                Err(reason) => f.problems.push(Problem {
                    offset: *offset,
                    reason,
                }),
            }
        }
        f.problems.extend(arr.errors.iter().map(malformed));
        f.problems.sort_by_key(|p| p.offset);
        f.leases.shrink_to_fit();
        let with = |field: fn(&Lease) -> Option<&String>| {
            index_of(
                f.leases
                    .iter()
                    .enumerate()
                    .filter_map(|(i, l)| field(l).map(|k| (i as u32, hash_ci(k)))),
            )
        };
        f.by_hostname = with(|l| l.hostname.as_ref());
        f.by_mac = with(|l| l.mac.as_ref());
        f
    }

    fn lease_key(&self, i: u32, field: fn(&Lease) -> Option<&String>) -> &str {
        field(&self.leases[i as usize]).map_or("", |s| s.as_str())
    }

    /// Leases whose hostname equals `name_lc` (already ASCII-lower-cased).
    pub fn with_hostname<'a, 'k>(
        &'a self,
        name_lc: &'k str,
    ) -> impl Iterator<Item = &'a Lease> + use<'a, 'k> {
        lookup(
            &self.by_hostname,
            |i| self.lease_key(i, |l| l.hostname.as_ref()),
            name_lc,
        )
        .map(move |i| &self.leases[i as usize])
    }

    /// Leases whose MAC equals `mac_lc` (lower-cased).
    pub fn with_mac<'a, 'k>(
        &'a self,
        mac_lc: &'k str,
    ) -> impl Iterator<Item = &'a Lease> + use<'a, 'k> {
        lookup(
            &self.by_mac,
            |i| self.lease_key(i, |l| l.mac.as_ref()),
            mac_lc,
        )
        .map(move |i| &self.leases[i as usize])
    }
}

/// A syntax error as a problem: the entry it is in is dropped, reading resumes at the next
/// entry (see [`json`]).
fn malformed(e: &json::SyntaxError) -> Problem {
    Problem {
        offset: e.offset,
        reason: format!(
            "malformed JSON: {} (entry skipped; reading resumes at the next entry)",
            e.message
        ),
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<Option<&'a str>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Str(Ok(s))) => Ok(Some(s)),
        Some(Value::Str(Err(at))) => Err(format!("\"{key}\" is not valid UTF-8 (at byte {at})")),
        Some(_) => Err(format!("\"{key}\" is not a string")),
    }
}

fn lease_of(v: &Value, offset: usize) -> Result<Lease, String> {
    if !matches!(v, Value::Obj(_)) {
        return Err("entry is not a JSON object".into());
    }
    let ip = str_field(v, "ip-address")?.ok_or("no \"ip-address\"")?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("\"ip-address\" {ip:?} is not an IP address"))?;
    let mac = str_field(v, "mac-address")?.map(|m| m.to_ascii_lowercase());
    let hostname = str_field(v, "hostname")?
        .filter(|h| !h.is_empty())
        .map(str::to_owned);
    // libvirt: "A lease cannot be present without expiry-time".
    let expiry = match v.get("expiry-time") {
        Some(Value::Int(n)) => *n,
        None => return Err("no \"expiry-time\"".into()),
        Some(_) => return Err("\"expiry-time\" is not an integer".into()),
    };
    Ok(Lease {
        ip,
        mac,
        hostname,
        expiry,
        offset,
    })
}

/// One domain's entry in a `.macs` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacEntry {
    pub domain: String,
    /// Lower-cased.
    pub macs: Vec<String>,
    pub offset: usize,
}

/// A parsed `.macs` file, indexed by domain name and by MAC (ignoring ASCII case, file
/// order among equals).
#[derive(Debug, Default)]
pub struct MacsFile {
    pub entries: Vec<MacEntry>,
    pub problems: Vec<Problem>,
    by_domain: Vec<(u32, u32)>,
    /// positions: (entry, position of the MAC in the entry's `macs`)
    by_mac: Vec<(u32, (u32, u32))>,
}

impl MacsFile {
    pub fn parse(bytes: &[u8]) -> MacsFile {
        MacsFile::from_array(json::parse_array(bytes))
    }

    /// The entries of a scanned file (all of it, or the ones a lookup needs).
    pub fn from_array(arr: json::Array) -> MacsFile {
        let mut f = MacsFile {
            entries: Vec::with_capacity(arr.elements.len()),
            ..MacsFile::default()
        };
        for (offset, v) in &arr.elements {
            match mac_entry_of(v, *offset) {
                Ok(e) => f.entries.push(e),
                Err(reason) => f.problems.push(Problem {
                    offset: *offset,
                    reason,
                }),
            }
        }
        f.problems.extend(arr.errors.iter().map(malformed));
        f.problems.sort_by_key(|p| p.offset);
        f.entries.shrink_to_fit();
        f.by_domain = index_of(
            f.entries
                .iter()
                .enumerate()
                .map(|(i, e)| (i as u32, hash_ci(&e.domain))),
        );
        f.by_mac = index_of(f.entries.iter().enumerate().flat_map(|(i, e)| {
            e.macs
                .iter()
                .enumerate()
                .map(move |(m, mac)| ((i as u32, m as u32), hash_ci(mac)))
        }));
        f
    }

    fn mac(&self, (e, m): (u32, u32)) -> &str {
        &self.entries[e as usize].macs[m as usize]
    }

    /// Entries for the domain `name_lc` (lower-cased).
    pub fn for_domain<'a, 'k>(
        &'a self,
        name_lc: &'k str,
    ) -> impl Iterator<Item = &'a MacEntry> + use<'a, 'k> {
        lookup(
            &self.by_domain,
            |i| self.entries[i as usize].domain.as_str(),
            name_lc,
        )
        .map(move |i| &self.entries[i as usize])
    }

    /// Entries listing the MAC `mac_lc` (lower-cased).
    pub fn owning<'a, 'k>(
        &'a self,
        mac_lc: &'k str,
    ) -> impl Iterator<Item = &'a MacEntry> + use<'a, 'k> {
        lookup(&self.by_mac, |p| self.mac(p), mac_lc).map(move |(i, _)| &self.entries[i as usize])
    }
}

fn mac_entry_of(v: &Value, offset: usize) -> Result<MacEntry, String> {
    if !matches!(v, Value::Obj(_)) {
        return Err("entry is not a JSON object".into());
    }
    let domain = str_field(v, "domain")?.ok_or("no \"domain\"")?;
    if domain.is_empty() {
        return Err("\"domain\" is empty".into());
    }
    let macs = match v.get("macs") {
        Some(Value::Arr(items)) => items
            .iter()
            .filter_map(|m| match m {
                // A non-string MAC cannot match anything; the rest of the entry still does.
                Value::Str(Ok(s)) => Some(s.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        None => return Err("no \"macs\"".into()),
        Some(_) => return Err("\"macs\" is not an array".into()),
    };
    Ok(MacEntry {
        domain: domain.to_owned(),
        macs,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libvirt_status_file() {
        let f = StatusFile::parse(include_bytes!("../testdata/basic/virbr0.status"));
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert_eq!(f.leases.len(), 6);
        let l = f.with_hostname("fedora").next().unwrap();
        assert_eq!(l.ip, "192.168.122.10".parse::<IpAddr>().unwrap());
        assert_eq!(l.mac.as_deref(), Some("52:54:00:aa:bb:01"));
        assert_eq!(f.with_mac("52:54:00:aa:bb:01").count(), 1);
        assert!(f.leases[5].hostname.is_none());
    }

    #[test]
    fn bad_entries_are_skipped_with_reasons() {
        let input = br#"[
 {"ip-address": "10.0.0.1", "mac-address": "52:54:00:00:00:01", "hostname": "a", "expiry-time": 5},
 {"mac-address": "52:54:00:00:00:02", "hostname": "noip", "expiry-time": 5},
 {"ip-address": "not-an-ip", "hostname": "b", "expiry-time": 5},
 {"ip-address": "10.0.0.3", "hostname": "c"},
 {"ip-address": "10.0.0.4", "hostname": "d", "expiry-time": "5"},
 {"ip-address": "10.0.0.5", "hostname": 7, "expiry-time": 5},
 "string",
 {"ip-address": "10.0.0.6", "hostname": "extra", "expiry-time": 5, "future-field": {"x": [1]}}
]"#;
        let f = StatusFile::parse(input);
        let reasons: Vec<_> = f.problems.iter().map(|p| p.reason.as_str()).collect();
        assert_eq!(
            reasons,
            vec![
                "no \"ip-address\"",
                "\"ip-address\" \"not-an-ip\" is not an IP address",
                "no \"expiry-time\"",
                "\"expiry-time\" is not an integer",
                "\"hostname\" is not a string",
                "entry is not a JSON object",
            ]
        );
        let names: Vec<_> = f
            .leases
            .iter()
            .map(|l| l.hostname.clone().unwrap())
            .collect();
        assert_eq!(names, vec!["a", "extra"]);
        let at = input
            .windows(16)
            .position(|w| w == br#"{"mac-address": "#)
            .unwrap();
        assert_eq!(f.problems[0].offset, at);
    }

    #[test]
    fn non_utf8_hostname_skips_only_that_entry() {
        let f = StatusFile::parse(
            b"[{\"ip-address\": \"10.0.0.1\", \"hostname\": \"\xff\", \"expiry-time\": 0},\
              {\"ip-address\": \"10.0.0.2\", \"hostname\": \"ok\", \"expiry-time\": 0}]",
        );
        assert_eq!(f.leases.len(), 1);
        assert!(f.problems[0].reason.contains("not valid UTF-8"));
    }

    #[test]
    fn stopped_network_mac_map() {
        let f = MacsFile::parse(b"[\n\n]\n");
        assert!(f.entries.is_empty());
        assert!(f.problems.is_empty());
    }

    #[test]
    fn mac_map_is_indexed_case_insensitively() {
        let f = MacsFile::parse(
            br#"[{"domain": "Fedora", "macs": ["52:54:00:AA:BB:01", 3]}, {"domain": "x"}, {"domain": "y", "macs": []}]"#,
        );
        assert_eq!(f.entries.len(), 2);
        assert_eq!(f.problems[0].reason, "no \"macs\"");
        let e = f.for_domain("fedora").next().unwrap();
        assert_eq!(e.macs, vec!["52:54:00:aa:bb:01"]);
        assert_eq!(
            f.owning("52:54:00:aa:bb:01").next().unwrap().domain,
            "Fedora"
        );
    }
}
