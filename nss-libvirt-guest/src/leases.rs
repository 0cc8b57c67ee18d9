//! The two kinds of file libvirt writes into the lease directory, parsed and indexed.
//!
//! `<bridge>.status`: dnsmasq leases (libvirt_leaseshelper); `<bridge>.macs`: which domain
//! owns which MAC on that bridge (network driver). A malformed entry is skipped and recorded
//! as a [`Problem`] with its byte offset; everything else in the file still answers.

use std::collections::HashMap;
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

/// A parsed `.status` file with lookup indexes (lower-cased hostname, MAC -> lease indexes).
#[derive(Debug, Default)]
pub struct StatusFile {
    pub leases: Vec<Lease>,
    pub problems: Vec<Problem>,
    by_hostname: HashMap<String, Vec<u32>>,
    by_mac: HashMap<String, Vec<u32>>,
}

impl StatusFile {
    pub fn parse(bytes: &[u8]) -> StatusFile {
        StatusFile::from_array(json::parse_array(bytes))
    }

    /// The leases of a scanned file (all of it, or the entries a lookup needs).
    pub fn from_array(arr: json::Array) -> StatusFile {
        let mut f = StatusFile::default();
        for (offset, v) in &arr.elements {
            match lease_of(v, *offset) {
                Ok(l) => f.leases.push(l),
                Err(reason) => f.problems.push(Problem {
                    offset: *offset,
                    reason,
                }),
            }
        }
        if let Some(e) = arr.error {
            f.problems.push(Problem {
                offset: e.offset,
                reason: format!("malformed JSON: {} (rest of the file ignored)", e.message),
            });
        }
        for (i, l) in f.leases.iter().enumerate() {
            if let Some(h) = &l.hostname {
                f.by_hostname
                    .entry(h.to_ascii_lowercase())
                    .or_default()
                    .push(i as u32);
            }
            if let Some(m) = &l.mac {
                f.by_mac.entry(m.clone()).or_default().push(i as u32);
            }
        }
        f
    }

    /// Leases whose hostname equals `name_lc` (already ASCII-lower-cased).
    pub fn with_hostname<'a>(&'a self, name_lc: &str) -> impl Iterator<Item = &'a Lease> + 'a {
        self.by_hostname
            .get(name_lc)
            .into_iter()
            .flatten()
            .map(move |&i| &self.leases[i as usize])
    }

    /// Leases whose MAC equals `mac_lc` (lower-cased).
    pub fn with_mac<'a>(&'a self, mac_lc: &str) -> impl Iterator<Item = &'a Lease> + 'a {
        self.by_mac
            .get(mac_lc)
            .into_iter()
            .flatten()
            .map(move |&i| &self.leases[i as usize])
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

/// A parsed `.macs` file, indexed by lower-cased domain name and by MAC.
#[derive(Debug, Default)]
pub struct MacsFile {
    pub entries: Vec<MacEntry>,
    pub problems: Vec<Problem>,
    by_domain: HashMap<String, Vec<u32>>,
    by_mac: HashMap<String, Vec<u32>>,
}

impl MacsFile {
    pub fn parse(bytes: &[u8]) -> MacsFile {
        MacsFile::from_array(json::parse_array(bytes))
    }

    /// The entries of a scanned file (all of it, or the ones a lookup needs).
    pub fn from_array(arr: json::Array) -> MacsFile {
        let mut f = MacsFile::default();
        for (offset, v) in &arr.elements {
            match mac_entry_of(v, *offset) {
                Ok(e) => f.entries.push(e),
                Err(reason) => f.problems.push(Problem {
                    offset: *offset,
                    reason,
                }),
            }
        }
        if let Some(e) = arr.error {
            f.problems.push(Problem {
                offset: e.offset,
                reason: format!("malformed JSON: {} (rest of the file ignored)", e.message),
            });
        }
        for (i, e) in f.entries.iter().enumerate() {
            f.by_domain
                .entry(e.domain.to_ascii_lowercase())
                .or_default()
                .push(i as u32);
            for m in &e.macs {
                f.by_mac.entry(m.clone()).or_default().push(i as u32);
            }
        }
        f
    }

    /// Entries for the domain `name_lc` (lower-cased).
    pub fn for_domain<'a>(&'a self, name_lc: &str) -> impl Iterator<Item = &'a MacEntry> + 'a {
        self.by_domain
            .get(name_lc)
            .into_iter()
            .flatten()
            .map(move |&i| &self.entries[i as usize])
    }

    /// Entries listing the MAC `mac_lc` (lower-cased).
    pub fn owning<'a>(&'a self, mac_lc: &str) -> impl Iterator<Item = &'a MacEntry> + 'a {
        self.by_mac
            .get(mac_lc)
            .into_iter()
            .flatten()
            .map(move |&i| &self.entries[i as usize])
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
