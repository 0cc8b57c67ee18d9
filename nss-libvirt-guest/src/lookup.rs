//! The safe core: find a guest's addresses (or an address's name) in a lease directory.
//!
//! [`lookup`] and [`reverse`] read the lease directory through the process-wide cache
//! ([`crate::cache`]: file keys, the trust window, bounds), whose cold path parses only the
//! entries where the name occurs ([`crate::prefilter`]), and answer by libvirt's matching
//! rules ([`crate::matching`]: hostname for `libvirt`, domain -> MACs -> leases for
//! `libvirt_guest`, live = expiry 0 or >= now, dedup by address, newest expiry first and
//! never-expiring last, at most [`MAX_ANSWERS`] addresses). This module holds what they
//! share: the lease directory as a lookup saw it ([`Snapshot`]), and the entry points.
//!
//! Bounded work: a lookup answers at most [`MAX_ANSWERS`] addresses (the best-ranked), and
//! its work is linear in the bytes of the files it reads (at most [`MAX_FILE_BYTES`] each):
//! addresses and MACs are deduplicated through hash sets, a domain's MACs are looked up in
//! each `.status` file's MAC index, and a lookup with more than [`MAX_NEEDLES`] MACs
//! parses the `.status` files instead of searching them once per MAC. [`crate::work`] counts
//! what a lookup did, so that tests can check these bounds without timing anything.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::{Cache, with_cache};
use crate::leases::{MacsFile, StatusFile};
use crate::work;

pub use crate::cache::{Generation, RACY_SECS, TRUST_WINDOW, generation};
pub use crate::matching::{
    Answer, Candidate, Family, MAX_ANSWERS, Service, answer, candidates, domain_macs,
    reverse_answer,
};
pub use crate::prefilter::{MAX_NEEDLES, contains_ci, for_each_ci, parse_containing};

/// Where libvirt keeps `*.status` and `*.macs` (compiled into libvirt's module too).
pub const DEFAULT_LEASE_DIR: &str = "/var/lib/libvirt/dnsmasq";
/// Environment variable overriding the lease directory (read with `secure_getenv`).
pub const LEASE_DIR_ENV: &str = "LIBVIRT_NSS_LEASE_DIR";
/// Most bytes read from one file; a 10,000-lease `.status` is about 1.8 MB.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Kind of lease-directory file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Status,
    Macs,
}

impl Kind {
    pub(crate) fn index(self) -> usize {
        match self {
            Kind::Status => 0,
            Kind::Macs => 1,
        }
    }

    /// libvirt's naming: `<bridge>.status`, `<bridge>.macs`; everything else is ignored.
    pub fn of(name: &std::ffi::OsStr) -> Option<Kind> {
        let b = name.as_encoded_bytes();
        if b.starts_with(b".") {
            return None;
        }
        if b.len() > 7 && b.ends_with(b".status") {
            Some(Kind::Status)
        } else if b.len() > 5 && b.ends_with(b".macs") {
            Some(Kind::Macs)
        } else {
            None
        }
    }
}

/// A file's parsed content, or why it could not be used.
#[derive(Debug, Clone)]
pub enum Content {
    Status(Arc<StatusFile>),
    Macs(Arc<MacsFile>),
    Unusable(String),
    /// Not parsed: the lookup's prefilter showed it cannot match.
    Skipped,
}

/// One file of the lease directory as a lookup saw it.
#[derive(Debug, Clone)]
pub struct FileView {
    pub path: PathBuf,
    pub kind: Kind,
    pub content: Content,
}

impl FileView {
    /// The bridge the file belongs to (its name without the suffix).
    pub fn bridge(&self) -> String {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let suffix = match self.kind {
            Kind::Status => ".status",
            Kind::Macs => ".macs",
        };
        name.strip_suffix(suffix).unwrap_or(&name).to_owned()
    }
}

/// Every relevant file of a lease directory, in file-name order.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub files: Vec<FileView>,
    /// False when the directory does not exist (libvirt not installed: not an error).
    pub dir_exists: bool,
}

impl Snapshot {
    pub fn status_files(&self) -> impl Iterator<Item = (usize, &FileView, &StatusFile)> {
        self.files
            .iter()
            .enumerate()
            .filter_map(|(i, f)| match &f.content {
                Content::Status(s) => Some((i, f, &**s)),
                _ => None,
            })
    }

    pub fn macs_files(&self) -> impl Iterator<Item = (&FileView, &MacsFile)> {
        self.files.iter().filter_map(|f| match &f.content {
            Content::Macs(m) => Some((f, &**m)),
            _ => None,
        })
    }
}

/// Forward lookup: the addresses of `name` in the lease directory `dir` at time `now`.
pub fn lookup(
    dir: &Path,
    name: &str,
    service: Service,
    family: Family,
    now: i64,
) -> io::Result<Answer> {
    if name.is_empty() {
        return Ok(Answer::NotFound);
    }
    work::searched();
    with_cache(|cache| {
        let snap = cache.snapshot_for(dir, service, name)?;
        Ok(answer(&snap, name, service, family, now))
    })
}

/// Run `f` on the snapshot a forward lookup of `name` reads, through the process-wide cache:
/// for answers in another form than [`answer`]'s (`crate::order`: scope ids).
pub fn with_forward_snapshot<T>(
    dir: &Path,
    name: &str,
    service: Service,
    f: impl FnOnce(&Snapshot) -> T,
) -> io::Result<T> {
    work::searched();
    with_cache(|cache| Ok(f(&cache.snapshot_for(dir, service, name)?)))
}

/// Reverse lookup: the name of `ip` in the lease directory `dir` at time `now`.
pub fn reverse(dir: &Path, ip: IpAddr, service: Service, now: i64) -> io::Result<Option<String>> {
    work::searched();
    with_cache(|cache| {
        let snap = cache.snapshot(dir, service == Service::Guest)?;
        Ok(reverse_answer(&snap, ip, service, now))
    })
}

/// Read the whole directory without touching the process-wide cache (for the CLI).
pub fn snapshot_uncached(dir: &Path) -> io::Result<Snapshot> {
    Cache::new().snapshot(dir, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Key;
    use crate::leases::Lease;
    use crate::prefilter::{MAX_HITS, SIMD_MIN_BYTES};
    use std::fs;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::{Duration, Instant};

    fn testdata(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name)
    }

    const NOW: i64 = 1_800_000_000;

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse::<Ipv4Addr>().unwrap())
    }
    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
    }

    fn found(v: &[IpAddr]) -> Answer {
        Answer::Found(v.to_vec())
    }

    #[test]
    fn libvirt_matches_hostname_case_insensitively_and_exactly() {
        let d = testdata("basic");
        for q in ["fedora", "FEDORA", "Fedora"] {
            assert_eq!(
                lookup(&d, q, Service::Libvirt, Family::V4, NOW).unwrap(),
                found(&[v4("192.168.122.10")]),
                "{q}"
            );
        }
        for q in ["fedor", "fedora.local", "fedora ", "", "guest-fedora"] {
            assert_eq!(
                lookup(&d, q, Service::Libvirt, Family::V4, NOW).unwrap(),
                Answer::NotFound,
                "{q}"
            );
        }
    }

    #[test]
    fn guest_matches_domain_through_macs_case_insensitively() {
        let d = testdata("basic");
        // guest-fedora owns 52:54:00:AA:BB:01 (upper-case in the .macs file): v4 on virbr0,
        // v6 on virbr1 (the v6 lease's MAC is written upper-case too).
        assert_eq!(
            lookup(&d, "Guest-Fedora", Service::Guest, Family::V4, NOW).unwrap(),
            found(&[v4("192.168.122.10")])
        );
        assert_eq!(
            lookup(&d, "guest-fedora", Service::Guest, Family::V6, NOW).unwrap(),
            found(&[v6("fd00:1::10")])
        );
        assert_eq!(
            lookup(&d, "guest-fedora", Service::Guest, Family::Any, NOW).unwrap(),
            found(&[v6("fd00:1::10"), v4("192.168.122.10")])
        );
        // A hostname is not a domain name and vice versa.
        assert_eq!(
            lookup(&d, "fedora", Service::Guest, Family::V4, NOW).unwrap(),
            Answer::NotFound
        );
        assert_eq!(
            lookup(&d, "guest-fedora", Service::Libvirt, Family::V4, NOW).unwrap(),
            Answer::NotFound
        );
    }

    #[test]
    fn expiry_order_dedup() {
        let d = testdata("basic");
        // "multi" has: expired lease, a never-expiring one, two live ones (one repeated in
        // virbr1.status): newest first, 0 last, duplicates once, the expired one never.
        assert_eq!(
            lookup(&d, "multi", Service::Libvirt, Family::V4, NOW).unwrap(),
            found(&[
                v4("192.168.122.22"),
                v4("192.168.122.21"),
                v4("192.168.122.20")
            ])
        );
        // expiry == now is still live; now + 1 is not.
        assert_eq!(
            lookup(&d, "edge", Service::Libvirt, Family::V4, NOW).unwrap(),
            found(&[v4("192.168.122.30")])
        );
        assert_eq!(
            lookup(&d, "edge", Service::Libvirt, Family::V4, NOW + 1).unwrap(),
            Answer::NotFound
        );
    }

    #[test]
    fn explain_gives_the_verdicts_the_answer_was_made_of() {
        use crate::matching::{Verdict, explain};
        let snap = snapshot_uncached(&testdata("basic")).unwrap();
        let verdicts = |name: &str, service, family| {
            let mut v: Vec<(String, Verdict)> = explain(&snap, name, service, family, NOW)
                .into_iter()
                .filter(|d| {
                    !matches!(
                        d.verdict,
                        Verdict::OtherHostname | Verdict::NoHostname | Verdict::OtherMac
                    )
                })
                .map(|d| (d.lease.ip.to_string(), d.verdict))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        // The answer of expiry_order_dedup, lease by lease.
        assert_eq!(
            verdicts("multi", Service::Libvirt, Family::V4),
            vec![
                ("192.168.122.19".into(), Verdict::Expired),
                ("192.168.122.20".into(), Verdict::Taken),
                ("192.168.122.21".into(), Verdict::Taken),
                ("192.168.122.21".into(), Verdict::Duplicate),
                ("192.168.122.22".into(), Verdict::Taken),
            ]
        );
        assert_eq!(
            verdicts("guest-fedora", Service::Guest, Family::V6),
            vec![
                ("192.168.122.10".into(), Verdict::OtherFamily),
                ("fd00:1::10".into(), Verdict::Taken),
            ]
        );
        let taken: Vec<IpAddr> = explain(&snap, "guest-fedora", Service::Guest, Family::Any, NOW)
            .iter()
            .filter(|d| d.verdict == Verdict::Taken)
            .map(|d| d.lease.ip)
            .collect();
        assert_eq!(taken.len(), 2);
    }

    #[test]
    fn no_data_versus_not_found() {
        let d = testdata("basic");
        // v6only has only an IPv6 lease.
        assert_eq!(
            lookup(&d, "v6only", Service::Libvirt, Family::V4, NOW).unwrap(),
            Answer::NoData
        );
        assert_eq!(
            lookup(&d, "v6only", Service::Libvirt, Family::V6, NOW).unwrap(),
            found(&[v6("fd00:1::99")])
        );
        // A domain with no lease at all is not known.
        assert_eq!(
            lookup(&d, "no-lease-vm", Service::Guest, Family::V4, NOW).unwrap(),
            Answer::NotFound
        );
    }

    #[test]
    fn missing_dir_is_not_found_and_unreadable_is_an_error() {
        let d = testdata("does-not-exist");
        assert_eq!(
            lookup(&d, "fedora", Service::Libvirt, Family::V4, NOW).unwrap(),
            Answer::NotFound
        );
        let f = testdata("basic/virbr0.status");
        assert_eq!(
            lookup(&f, "fedora", Service::Libvirt, Family::V4, NOW).unwrap(),
            Answer::NotFound
        );
    }

    #[test]
    fn broken_files_do_not_hide_good_ones() {
        // damaged/: a BOM file, a truncated file, a directory named x.status, a non-UTF-8
        // file, garbage, an oversized-entry file, *.new and *.conf files, and good.status.
        let d = testdata("damaged");
        assert_eq!(
            lookup(&d, "good", Service::Libvirt, Family::V4, NOW).unwrap(),
            found(&[v4("10.9.0.1")])
        );
        assert_eq!(
            lookup(&d, "good-vm", Service::Guest, Family::V4, NOW).unwrap(),
            found(&[v4("10.9.0.1")])
        );
        // entries before the truncation point still answer
        assert_eq!(
            lookup(&d, "before-cut", Service::Libvirt, Family::V4, NOW).unwrap(),
            found(&[v4("10.9.1.1")])
        );
        assert_eq!(
            lookup(&d, "after-cut", Service::Libvirt, Family::V4, NOW).unwrap(),
            Answer::NotFound
        );
        // BOM and trailing comma tolerated
        assert_eq!(
            lookup(&d, "bom", Service::Libvirt, Family::V4, NOW).unwrap(),
            found(&[v4("10.9.2.1")])
        );
        // a lease in a *.new temp file is ignored
        assert_eq!(
            lookup(&d, "temp", Service::Libvirt, Family::V4, NOW).unwrap(),
            Answer::NotFound
        );
        let snap = snapshot_uncached(&d).unwrap();
        let unusable: Vec<_> = snap
            .files
            .iter()
            .filter_map(|f| match &f.content {
                Content::Unusable(r) => Some((
                    f.path.file_name().unwrap().to_string_lossy().into_owned(),
                    r.clone(),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            unusable,
            vec![("dir.status".to_owned(), "not a regular file".to_owned())]
        );
    }

    #[test]
    fn reverse_lookup() {
        let d = testdata("basic");
        assert_eq!(
            reverse(&d, v4("192.168.122.10"), Service::Libvirt, NOW)
                .unwrap()
                .as_deref(),
            Some("fedora")
        );
        assert_eq!(
            reverse(&d, v4("192.168.122.10"), Service::Guest, NOW)
                .unwrap()
                .as_deref(),
            Some("guest-fedora")
        );
        assert_eq!(
            reverse(&d, v6("fd00:1::10"), Service::Guest, NOW)
                .unwrap()
                .as_deref(),
            Some("guest-fedora")
        );
        assert_eq!(
            reverse(&d, v4("192.168.122.99"), Service::Libvirt, NOW).unwrap(),
            None
        );
        // expired lease: no name
        assert_eq!(
            reverse(&d, v4("192.168.122.19"), Service::Libvirt, NOW).unwrap(),
            None
        );
    }

    #[test]
    fn cache_follows_replaced_files() {
        let tmp = std::env::temp_dir().join(format!("nss-cache-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).unwrap();
        let write = |ip: &str| {
            let p = tmp.join("virbr0.status.new");
            fs::write(
                &p,
                format!(r#"[{{"ip-address": "{ip}", "hostname": "h", "expiry-time": 0}}]"#),
            )
            .unwrap();
            fs::rename(&p, tmp.join("virbr0.status")).unwrap();
        };
        for ip in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
            write(ip);
            assert_eq!(
                lookup(&tmp, "h", Service::Libvirt, Family::V4, NOW).unwrap(),
                found(&[v4(ip)])
            );
        }
        fs::remove_file(tmp.join("virbr0.status")).unwrap();
        assert_eq!(
            lookup(&tmp, "h", Service::Libvirt, Family::V4, NOW).unwrap(),
            Answer::NotFound
        );
        fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn trust_window_sees_in_place_edits_late_and_renames_at_once() {
        // A private cache: the process-wide one is shared with tests running in parallel,
        // and a lookup that finds it busy resolves uncached (no trust, every edit seen).
        let mut cache = Cache::new();
        fn ask(cache: &mut Cache, dir: &Path) -> Answer {
            let snap = cache.snapshot_for(dir, Service::Libvirt, "trusty").unwrap();
            answer(&snap, "trusty", Service::Libvirt, Family::V4, NOW)
        }
        let status = |ip: &str| {
            format!(r#"[{{"ip-address": "{ip}", "hostname": "trusty", "expiry-time": 0}}]"#)
        };
        // Two directories, one for each half, so that both settle in one wait.
        let base = std::env::temp_dir().join(format!("nss-trust-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let (renamed, edited) = (base.join("renamed"), base.join("edited"));
        for d in [&renamed, &edited] {
            fs::create_dir_all(d).unwrap();
            fs::write(d.join("virbr0.status"), status("10.0.0.1")).unwrap();
        }
        // Only settled keys are cached (and so trusted): wait until the directories and the
        // files are past the racy window, as real lease files usually are.
        let settled = |p: &Path| Key::of(&fs::metadata(p).unwrap()).settled();
        while ![&renamed, &edited]
            .iter()
            .all(|d| settled(d) && settled(&d.join("virbr0.status")))
        {
            std::thread::sleep(Duration::from_millis(100));
        }

        // libvirt's way: write a temp file and rename it over the old one. The directory's
        // key changes, so the very next lookup sees the new file, trusted window or not.
        assert_eq!(ask(&mut cache, &renamed), found(&[v4("10.0.0.1")])); // key-checks every file
        assert!(cache.trusted(&renamed, Kind::Status, Instant::now()));
        assert_eq!(ask(&mut cache, &renamed), found(&[v4("10.0.0.1")])); // served without stats
        let tmp = renamed.join("virbr0.status.new");
        fs::write(&tmp, status("10.0.0.2")).unwrap();
        fs::rename(&tmp, renamed.join("virbr0.status")).unwrap();
        assert_eq!(ask(&mut cache, &renamed), found(&[v4("10.0.0.2")]));

        // An in-place rewrite (same inode, the directory untouched) is not seen while the
        // window lasts, and is seen once it is over.
        // The first lookup parses only the entries holding the name (the cold path) and
        // remembers the file unparsed; the second parses it in full and caches it.
        let checked = Instant::now();
        assert_eq!(ask(&mut cache, &edited), found(&[v4("10.0.0.1")]));
        assert_eq!(ask(&mut cache, &edited), found(&[v4("10.0.0.1")]));
        fs::write(edited.join("virbr0.status"), status("10.0.0.9")).unwrap();
        let stale = ask(&mut cache, &edited);
        // Only meaningful if the machine was not so slow that the window already ended.
        if checked.elapsed() < TRUST_WINDOW {
            assert_eq!(stale, found(&[v4("10.0.0.1")]), "served without a stat");
        } else {
            eprintln!("trust window over before the stale lookup: not checked");
        }
        std::thread::sleep(TRUST_WINDOW + Duration::from_millis(100));
        assert_eq!(ask(&mut cache, &edited), found(&[v4("10.0.0.9")]));
        fs::remove_dir_all(&base).unwrap();
    }

    /// A lease directory where the cold path's shortcuts could go wrong: names that are
    /// substrings of other names and of other fields, upper case, an escaped name, a bad
    /// entry holding the name, a name after a syntax error, a FIFO.
    fn tricky_dir(tag: &str) -> PathBuf {
        let tmp = std::env::temp_dir().join(format!("nss-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).unwrap();
        let lease = |ip: &str, mac: &str, host: &str, exp: i64| {
            format!(
                r#"{{"ip-address": "{ip}", "mac-address": "{mac}", "hostname": "{host}", "client-id": "01:{mac}", "expiry-time": {exp}}}"#
            )
        };
        let files = [
            (
                "br0.status",
                format!(
                    "[\n{},\n{},\n{},\n{},\n{},\n{}\n]\n",
                    lease("10.0.0.1", "52:54:00:00:00:01", "web1", NOW + 10),
                    lease("10.0.0.10", "52:54:00:00:00:10", "web10", NOW + 20),
                    lease("10.0.0.11", "52:54:00:00:00:11", "xweb1", NOW + 30),
                    lease("10.0.0.12", "52:54:00:00:01:00", "WEB1", 0),
                    lease("10.0.0.13", "52:54:00:00:00:13", "Web1", NOW - 1),
                    // the name in another field only
                    lease("10.0.0.14", "52:54:00:00:00:14", "other", NOW + 5)
                        .replace("01:52:54:00:00:00:14", "web1"),
                ),
            ),
            (
                "br1.status",
                format!(
                    "[{}, {}, {}, {{\"hostname\": \"web1\", \"ip-address\": \"10.1.0.9\"}}, {}]",
                    lease("fd00::1", "52:54:00:00:00:01", "web1", NOW + 40),
                    lease("10.0.0.1", "52:54:00:00:00:01", "web1", NOW + 50),
                    // an upper-case MAC; then a bad entry holding the name (no expiry:
                    // skipped), then a good one for the same name
                    lease("10.1.0.2", "52:54:00:00:00:AB", "mixed", NOW + 60),
                    lease("10.1.0.3", "52:54:00:00:00:ab", "web10", 0),
                ),
            ),
            (
                // A syntax error between the web1 entries: only the broken entry is dropped.
                "br2.status",
                format!(
                    "[{}, {{\"ip-address\": \"10.2.0.1\" \"hostname\": \"zz\"}}, {}]",
                    lease("10.2.0.2", "52:54:00:00:02:02", "web1", NOW + 70),
                    lease("10.2.0.3", "52:54:00:00:02:03", "web1", NOW + 80),
                ),
            ),
            (
                // Escapes: the full parse decides.
                "br3.status",
                format!(
                    "[{}, {}]",
                    lease("10.3.0.1", "52:54:00:00:03:01", "\\u0077eb10", NOW + 90),
                    lease("10.3.0.2", "52:54:00:00:03:02", "esc\\\"aped", NOW + 95),
                ),
            ),
            (
                "br0.macs",
                r#"[{"domain": "vm1", "macs": ["52:54:00:00:00:01"]},
                    {"domain": "vm10", "macs": ["52:54:00:00:00:10", "52:54:00:00:00:ab"]},
                    {"domain": "VM1", "macs": ["52:54:00:00:01:00"]},
                    {"domain": "xvm1", "macs": ["52:54:00:00:00:11"]},
                    {"domain": "mac-in-name-52:54:00:00:00:01", "macs": []}]"#
                    .to_owned(),
            ),
            (
                "br1.macs",
                r#"[{"domain": "vm1", "macs": ["52:54:00:00:02:02", "52:54:00:00:02:03"]}, {"domain": "\u0076m10", "macs": ["52:54:00:00:03:01"]}]"#
                    .to_owned(),
            ),
        ];
        for (name, text) in files {
            fs::write(tmp.join(name), text).unwrap();
        }
        let fifo = std::process::Command::new("mkfifo")
            .arg(tmp.join("fifo.status"))
            .arg(tmp.join("fifo.macs"))
            .status()
            .expect("run mkfifo");
        assert!(fifo.success());
        tmp
    }

    /// Files above [`SIMD_MIN_BYTES`], so that the cold path searches them with memchr: one
    /// all lower-case (memmem), one with upper case (the folding search), a .macs file.
    fn big_dir(tag: &str) -> PathBuf {
        let tmp = std::env::temp_dir().join(format!("nss-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).unwrap();
        let lease = |i: usize, host: &str, exp: i64| {
            format!(
                r#"  {{"ip-address": "10.8.{}.{}", "mac-address": "52:54:00:10:{:02x}:{:02x}", "hostname": "{host}", "expiry-time": {exp}}}"#,
                i / 250,
                i % 250 + 1,
                i / 256,
                i % 256
            )
        };
        for (file, off, special) in [
            (
                "big0.status",
                0,
                [(250, "web1"), (499, "web10"), (7, "xweb1")],
            ),
            (
                "big1.status",
                1000,
                [(100, "WEB1"), (300, "web1"), (301, "Web10")],
            ),
        ] {
            let leases: Vec<String> = (0..500)
                .map(|i| {
                    let host = special
                        .iter()
                        .find(|(at, _)| *at == i)
                        .map_or(format!("fill-{i:03}"), |(_, h)| (*h).to_owned());
                    lease(i + off, &host, NOW + i as i64)
                })
                .collect();
            let text = format!("[\n{}\n]\n", leases.join(",\n"));
            assert!(text.len() >= SIMD_MIN_BYTES);
            fs::write(tmp.join(file), text).unwrap();
        }
        let entries: Vec<String> = (0..700)
            .map(|i| {
                let domain = match i {
                    350 => "vm1".to_owned(),
                    499 => "VM10".to_owned(),
                    _ => format!("fill-vm-{i:03}"),
                };
                format!(
                    r#"  {{"domain": "{domain}", "macs": ["52:54:00:10:{:02x}:{:02x}"]}}"#,
                    i / 256,
                    i % 256
                )
            })
            .collect();
        let text = format!("[\n{}\n]\n", entries.join(",\n"));
        assert!(text.len() >= SIMD_MIN_BYTES);
        fs::write(tmp.join("big.macs"), text).unwrap();
        tmp
    }

    #[test]
    fn cold_lookups_answer_as_the_full_parse() {
        let tricky = tricky_dir("cold");
        let big = big_dir("cold-big");
        let names = [
            "web1",
            "WEB1",
            "web10",
            "xweb1",
            "web",
            "eb1",
            "other",
            "mixed",
            "zz",
            "vm1",
            "VM1",
            "vm10",
            "xvm1",
            "m1",
            "fedora",
            "multi",
            "guest-fedora",
            "good",
            "good-vm",
            "before-cut",
            "after-cut",
            "bom",
            "esc\"aped",
            "52:54:00:00:00:01",
            "01",
            "1",
            "-",
            "\"",
            "ip-address",
            "mac-in-name-52:54:00:00:00:01",
            "nope",
            "fill-123",
            "fill-vm-042",
        ];
        for dir in [
            testdata("basic"),
            testdata("damaged"),
            tricky.clone(),
            big.clone(),
        ] {
            let full = snapshot_uncached(&dir).unwrap();
            for name in names {
                for service in [Service::Libvirt, Service::Guest] {
                    // A fresh cache: the first lookup in a process, the cold path.
                    let mut cache = Cache::new();
                    for round in ["cold", "second", "cached"] {
                        let snap = cache.snapshot_for(&dir, service, name).unwrap();
                        for family in [Family::V4, Family::V6, Family::Any] {
                            assert_eq!(
                                answer(&snap, name, service, family, NOW),
                                answer(&full, name, service, family, NOW),
                                "{round} lookup of {name:?} ({service:?}, {family:?}) in {}",
                                dir.display()
                            );
                        }
                    }
                }
            }
        }
        // The expected answers themselves, not only agreement.
        let ask = |name, service| lookup(&tricky, name, service, Family::Any, NOW).unwrap();
        assert_eq!(
            ask("web1", Service::Libvirt),
            found(&[
                v4("10.2.0.3"),
                v4("10.2.0.2"),
                v4("10.0.0.1"),
                v6("fd00::1"),
                v4("10.0.0.12")
            ])
        );
        assert_eq!(
            ask("web10", Service::Libvirt),
            found(&[v4("10.3.0.1"), v4("10.0.0.10"), v4("10.1.0.3")])
        );
        assert_eq!(
            ask("vm10", Service::Guest),
            found(&[
                v4("10.3.0.1"),
                v4("10.1.0.2"),
                v4("10.0.0.10"),
                v4("10.1.0.3")
            ])
        );
        assert_eq!(ask("zz", Service::Libvirt), Answer::NotFound);
        fs::remove_dir_all(&tricky).unwrap();
        // In the big files: memmem (big0) and the folding search (big1, upper case).
        let ask = |name, service| lookup(&big, name, service, Family::Any, NOW).unwrap();
        assert_eq!(
            ask("web1", Service::Libvirt),
            found(&[v4("10.8.5.51"), v4("10.8.1.1"), v4("10.8.4.101")])
        );
        assert_eq!(ask("vm10", Service::Guest), found(&[v4("10.8.1.250")]));
        assert_eq!(ask("VM1", Service::Guest), found(&[v4("10.8.1.101")]));
        fs::remove_dir_all(&big).unwrap();
    }

    /// Files of several read chunks: names across chunk boundaries, entries longer than
    /// the first window around a hit (on both sides of it), a broken entry, entries on one
    /// line; every lookup on the cold path answers as the full parse, and as built.
    #[test]
    fn cold_reads_in_chunks_answer_as_the_full_parse() {
        use crate::cache::CHUNK;
        let tmp = std::env::temp_dir().join(format!("nss-chunks-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).unwrap();
        let n = 3000;
        let long = "x".repeat(3000);
        let (mut status, mut macs) = (String::from("[\n"), String::from("[\n"));
        let (mut status_edge, mut macs_edge) = (CHUNK, CHUNK);
        let mut straddling = Vec::new();
        // Appends an entry whose key starts `at` bytes into it; pads before it so that the
        // key straddles the next chunk boundary when the entry would cross it.
        let mut push = |text: &mut String, edge: &mut usize, entry: String, at: usize, i| {
            let start = text.len() + at;
            if start + 3 <= *edge && *edge < text.len() + entry.len() {
                text.push_str(&" ".repeat(*edge - 3 - start));
                straddling.push(i);
            }
            if text.len() + entry.len() > *edge {
                *edge += CHUNK;
            }
            text.push_str(&entry);
        };
        for i in 0..n {
            let sep = if i + 1 == n {
                "\n"
            } else if i % 9 == 0 {
                ", "
            } else {
                ",\n"
            };
            let client = if i % 50 == 7 { long.as_str() } else { "01:02" };
            let tail = if i % 50 == 8 { long.as_str() } else { "" };
            let pre = format!(
                r#"  {{"ip-address": "10.7.{}.{}", "mac-address": "52:54:00:07:{:02x}:{:02x}", "client-id": "{client}", "hostname": ""#,
                i / 250,
                i % 250 + 1,
                i / 256,
                i % 256
            );
            let mut entry = format!(
                r#"{pre}h-{i:05}", "expiry-time": {}, "tail": "{tail}"}}{sep}"#,
                NOW + i as i64
            );
            if i == 77 {
                // broken: no comma between two members
                entry = entry.replacen(r#"", "expiry-time""#, r#"" "expiry-time""#, 1);
            }
            push(&mut status, &mut status_edge, entry, pre.len(), i);
            let pre = r#"  {"domain": ""#;
            let entry = format!(
                r#"{pre}d-{i:05}", "macs": ["52:54:00:07:{:02x}:{:02x}"]}}{sep}"#,
                i / 256,
                i % 256
            );
            push(&mut macs, &mut macs_edge, entry, pre.len(), i);
        }
        status.push(']');
        macs.push(']');
        assert!(status.len() > 4 * CHUNK && macs.len() > 2 * CHUNK);
        fs::write(tmp.join("big.status"), &status).unwrap();
        fs::write(tmp.join("big.macs"), &macs).unwrap();
        assert!(straddling.len() >= 4, "{straddling:?}");
        let full = snapshot_uncached(&tmp).unwrap();
        let mut names: Vec<usize> = (0..n)
            .step_by(23)
            .chain([7, 8, 57, 58, 77, n - 1])
            .collect();
        names.extend(&straddling);
        for i in names {
            for (service, name) in [
                (Service::Libvirt, format!("h-{i:05}")),
                (Service::Guest, format!("D-{i:05}")),
            ] {
                let snap = Cache::new().snapshot_for(&tmp, service, &name).unwrap();
                let cold = answer(&snap, &name, service, Family::Any, NOW);
                assert_eq!(
                    cold,
                    answer(&full, &name, service, Family::Any, NOW),
                    "{name}"
                );
                let ip = v4(&format!("10.7.{}.{}", i / 250, i % 250 + 1));
                let want = if i == 77 {
                    Answer::NotFound
                } else {
                    found(&[ip])
                };
                assert_eq!(cold, want, "{name}");
            }
        }
        fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn cold_path_parses_only_the_entries_holding_the_name() {
        let status = include_bytes!("../testdata/basic/virbr0.status");
        let needle = |n: &str| [n.to_owned()];
        let Some(Some(Content::Status(s))) = parse_containing(
            status,
            Kind::Status,
            &needle("FEDORA".to_ascii_lowercase().as_str()),
        ) else {
            panic!("expected a partial parse");
        };
        assert_eq!(s.leases.len(), 1);
        assert_eq!(StatusFile::parse(status).leases.len(), 6);
        assert!(matches!(
            parse_containing(status, Kind::Status, &needle("absent")),
            Some(None)
        ));
        // A backslash anywhere, an empty needle: the full parse.
        assert!(
            parse_containing(br#"[{"hostname": "a\u0062"}]"#, Kind::Status, &needle("x")).is_none()
        );
        assert!(parse_containing(status, Kind::Status, &needle("")).is_none());
        // Too many hits: the full parse.
        assert!(
            parse_containing(&b"[1] ".repeat(MAX_HITS + 1), Kind::Status, &needle("1")).is_none()
        );
    }

    /// At every truncation of the fixtures, the cold parse and the full parse give the same
    /// leases (entries) for every needle.
    #[test]
    fn cold_parse_equals_full_parse_at_every_truncation() {
        let status: [&[u8]; 3] = [
            include_bytes!("../testdata/basic/virbr0.status"),
            include_bytes!("../testdata/damaged/extra.status"),
            br#"[{"ip-address": "10.0.0.1", "mac-address": "52:54:00:AA:00:01", "hostname": "Aa", "expiry-time": 0}, {"ip-address": "10.0.0.2", "mac-address": "52:54:00:aa:00:02", "hostname": "aA", "expiry-time": 5}]"#,
        ];
        let needles = [
            "fedora",
            "multi",
            "edge",
            "aa",
            "a",
            "52:54:00:aa:bb:01",
            "52:54:00:aa:00:01",
            "extra",
            "nested",
            "v6only",
        ];
        for bytes in status {
            for cut in 0..=bytes.len() {
                let b = &bytes[..cut];
                let full = StatusFile::parse(b);
                for n in needles {
                    let cold = match parse_containing(b, Kind::Status, &[n.to_owned()]) {
                        None => continue,
                        Some(None) => Arc::new(StatusFile::default()),
                        Some(Some(Content::Status(s))) => s,
                        Some(Some(_)) => panic!("not a status file"),
                    };
                    let what = format!("{n:?} in {:?}", String::from_utf8_lossy(b));
                    let (f, c): (Vec<&Lease>, Vec<&Lease>) = (
                        full.with_hostname(n).collect(),
                        cold.with_hostname(n).collect(),
                    );
                    assert_eq!(f, c, "hostname {what}");
                    let (f, c): (Vec<&Lease>, Vec<&Lease>) =
                        (full.with_mac(n).collect(), cold.with_mac(n).collect());
                    assert_eq!(f, c, "mac {what}");
                }
            }
        }
        let macs: &[u8] = include_bytes!("../testdata/basic/virbr0.macs");
        for cut in 0..=macs.len() {
            let b = &macs[..cut];
            let full = MacsFile::parse(b);
            for n in ["guest-fedora", "no-lease-vm", "52:54:00:aa:bb:01", "vm"] {
                let cold = match parse_containing(b, Kind::Macs, &[n.to_owned()]) {
                    None => continue,
                    Some(None) => Arc::new(MacsFile::default()),
                    Some(Some(Content::Macs(m))) => m,
                    Some(Some(_)) => panic!("not a macs file"),
                };
                assert_eq!(
                    full.for_domain(n).collect::<Vec<_>>(),
                    cold.for_domain(n).collect::<Vec<_>>()
                );
                assert_eq!(
                    full.owning(n).collect::<Vec<_>>(),
                    cold.owning(n).collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn a_fifo_named_like_a_lease_file_does_not_hang_a_lookup() {
        // Opening a FIFO for reading blocks until a writer comes: the module opens with
        // O_NONBLOCK and skips what fstat says is not a regular file.
        let dir = tricky_dir("fifo");
        let (tx, rx) = std::sync::mpsc::channel();
        let d = dir.clone();
        std::thread::spawn(move || {
            let cold = Cache::new()
                .snapshot_for(&d, Service::Guest, "vm1")
                .map(|s| answer(&s, "vm1", Service::Guest, Family::V4, NOW));
            let libvirt = lookup(&d, "web1", Service::Libvirt, Family::V4, NOW);
            let all = snapshot_uncached(&d).map(|s| {
                s.files
                    .iter()
                    .filter_map(|f| match &f.content {
                        Content::Unusable(why) => Some(format!("{}: {why}", f.bridge())),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            });
            let _ = tx.send((cold.unwrap(), libvirt.unwrap(), all.unwrap()));
        });
        let (cold, libvirt, unusable) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a lookup hung on the FIFO");
        assert_eq!(
            cold,
            found(&[
                v4("10.2.0.3"),
                v4("10.2.0.2"),
                v4("10.0.0.1"),
                v4("10.0.0.12")
            ])
        );
        assert_eq!(
            libvirt,
            found(&[
                v4("10.2.0.3"),
                v4("10.2.0.2"),
                v4("10.0.0.1"),
                v4("10.0.0.12")
            ])
        );
        assert_eq!(
            unusable,
            vec!["fifo: not a regular file", "fifo: not a regular file"]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn prefilter_keeps_escaped_names_findable() {
        let tmp = std::env::temp_dir().join(format!("nss-escape-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).unwrap();
        fs::write(
            tmp.join("virbr0.status"),
            r#"[{"ip-address": "10.0.0.1", "hostname": "\u0066edora", "expiry-time": 0}]"#,
        )
        .unwrap();
        assert_eq!(
            lookup(&tmp, "FEDORA", Service::Libvirt, Family::V4, NOW).unwrap(),
            found(&[v4("10.0.0.1")])
        );
        fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn kinds() {
        use std::ffi::OsStr;
        assert_eq!(Kind::of(OsStr::new("virbr0.status")), Some(Kind::Status));
        assert_eq!(Kind::of(OsStr::new("virbr0.macs")), Some(Kind::Macs));
        for n in [
            "virbr0.status.new",
            ".status",
            ".x.status",
            "virbr0.conf",
            "virbr0.hostsfile",
            "virbr0.leases",
            ".macs",
        ] {
            assert_eq!(Kind::of(OsStr::new(n)), None, "{n}");
        }
    }
}
