//! The safe core: find a guest's addresses (or an address's name) in a lease directory.
//!
//! `lookup(dir, name, service, family, now)` implements libvirt's matching rules
//! (spec/nss.md): hostname match for `libvirt`, domain -> MACs -> leases for
//! `libvirt_guest`, live = expiry 0 or >= now, dedup by address, newest expiry first and
//! never-expiring last. Parsed files are cached process-wide, keyed by (dev, inode, size,
//! mtime, ctime) of each file: libvirt replaces files by rename, so a changed file always has a
//! new key. A file whose mtime is within [`RACY_SECS`] of when it was read is re-read on the
//! next lookup (timestamps are coarse, so an in-place rewrite in the same tick would keep
//! its key). The cache is bounded and guarded by a mutex that is only ever `try_lock`ed: a
//! thread that finds it busy (or a child forked while another thread held it) resolves
//! without the cache instead of waiting.
//!
//! Trust window: the directory is stat'ed on every lookup, but its files are not while the
//! directory's key is unchanged and all its files of the kind needed were key-checked less
//! than [`TRUST_WINDOW`] ago (see there for why that is safe). At small lease counts the
//! stat(2) of every file was most of a lookup's cost (issue #2).

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::leases::{Lease, MacsFile, StatusFile};

/// Where libvirt keeps `*.status` and `*.macs` (compiled into libvirt's module too).
pub const DEFAULT_LEASE_DIR: &str = "/var/lib/libvirt/dnsmasq";
/// Environment variable overriding the lease directory (read with `secure_getenv`).
pub const LEASE_DIR_ENV: &str = "LIBVIRT_NSS_LEASE_DIR";
/// Most bytes read from one file; a 10,000-lease `.status` is about 1.8 MB.
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// Cache bounds: source bytes held, files held, directories held.
const MAX_CACHED_BYTES: u64 = 64 << 20;
const MAX_CACHED_FILES: usize = 256;
const MAX_CACHED_DIRS: usize = 8;
/// Entries modified this recently when read are not trusted from the cache.
pub const RACY_SECS: i64 = 2;
/// How long files, once all key-checked (stat'ed), are served from the cache without a stat
/// each, as long as the lease directory's own key (inode, size, mtime, ctime) is unchanged.
///
/// Why this is safe: libvirt never edits a lease file in place. `libvirt_leaseshelper`
/// writes `<bridge>.status.new` and renames it over `<bridge>.status`, and the network
/// driver replaces `<bridge>.macs` the same way; creating, renaming and unlinking entries all
/// update the directory's mtime and ctime, so the directory key, checked on every lookup,
/// changes and the next lookup re-lists and re-checks every file: a rename is seen at once.
/// The directory key is only cached once [`Key::settled`], so a change in the same
/// timestamp tick as the listing cannot keep the old key. Only an in-place rewrite of a file
/// (not how libvirt writes; a person editing a file by hand) leaves the directory alone; it
/// is seen at most `TRUST_WINDOW` late.
pub const TRUST_WINDOW: Duration = Duration::from_secs(1);

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

/// Kind of lease-directory file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Status,
    Macs,
}

impl Kind {
    fn index(self) -> usize {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_ns: i64,
    // ctime cannot be set by a user (mtime can, with touch -d), and rename updates it.
    ctime: i64,
    ctime_ns: i64,
}

impl Key {
    fn of(m: &fs::Metadata) -> Key {
        Key {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_ns: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_ns: m.ctime_nsec(),
        }
    }

    /// Old enough that a later change must produce a different key.
    fn settled(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        now - self.mtime.max(self.ctime) > RACY_SECS
    }
}

/// A directory's relevant names, shared with the lookups (no copy of the listing per lookup).
type Names = Arc<[(OsString, Kind)]>;

struct CachedDir {
    path: PathBuf,
    key: Key,
    names: Names,
    /// Per [`Kind`] (a `libvirt` lookup never reads `.macs` files): when a lookup started
    /// that then key-checked every file of that kind in `names`; None before the first.
    files_checked: [Option<Instant>; 2],
}

impl CachedDir {
    /// Files of `kind` may be served from the cache without a stat: see [`TRUST_WINDOW`].
    /// (That the directory's key is unchanged is what finding this entry means: `listing`
    /// drops an entry whose key differs.)
    fn trusted(&self, kind: Kind, now: Instant) -> bool {
        self.files_checked[kind.index()]
            .is_some_and(|t| now.saturating_duration_since(t) < TRUST_WINDOW)
    }
}

struct CachedFile {
    path: PathBuf,
    key: Key,
    /// None: read once, skipped by the prefilter, not parsed yet.
    content: Option<Content>,
}

/// Parsed files and directory listings, bounded by [`MAX_CACHED_BYTES`] and friends.
pub struct Cache {
    dirs: Vec<CachedDir>,
    files: Vec<CachedFile>,
    bytes: u64,
}

impl Default for Cache {
    fn default() -> Self {
        Cache::new()
    }
}

impl Cache {
    pub const fn new() -> Cache {
        Cache {
            dirs: Vec::new(),
            files: Vec::new(),
            bytes: 0,
        }
    }

    fn clear(&mut self) {
        self.dirs = Vec::new();
        self.files = Vec::new();
        self.bytes = 0;
    }

    fn listing(&mut self, dir: &Path, key: Key) -> io::Result<Names> {
        if let Some(d) = self.dirs.iter().find(|d| d.path == dir) {
            if d.key == key {
                return Ok(Arc::clone(&d.names));
            }
        }
        let mut names = Vec::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name();
            if let Some(kind) = Kind::of(&name) {
                names.push((name, kind));
            }
        }
        names.sort();
        let names: Names = names.into();
        self.dirs.retain(|d| d.path != dir);
        if key.settled() {
            if self.dirs.len() >= MAX_CACHED_DIRS {
                self.clear();
            }
            self.dirs.push(CachedDir {
                path: dir.to_owned(),
                key,
                names: Arc::clone(&names),
                files_checked: [None; 2],
            });
        }
        Ok(names)
    }

    /// Whether `dir`'s files of `kind` may be served without a stat (it was just listed).
    fn trusted(&self, dir: &Path, kind: Kind, now: Instant) -> bool {
        self.dirs
            .iter()
            .find(|d| d.path == dir)
            .is_some_and(|d| d.trusted(kind, now))
    }

    /// Every file of `kind` in `dir` was key-checked by a lookup that started at `start`.
    fn checked(&mut self, dir: &Path, kind: Kind, start: Instant) {
        if let Some(d) = self.dirs.iter_mut().find(|d| d.path == dir) {
            d.files_checked[kind.index()] = Some(start);
        }
    }

    /// Appends `dir`'s files of `kind` to `out` (see [`Cache::file`]); an untrusted pass
    /// key-checks each of them and so makes the kind trusted for [`TRUST_WINDOW`].
    fn files_of(
        &mut self,
        dir: &Path,
        names: &[(OsString, Kind)],
        kind: Kind,
        needles: Option<&[String]>,
        start: Instant,
        out: &mut Vec<FileView>,
    ) {
        let trusted = self.trusted(dir, kind, start);
        for (n, _) in names.iter().filter(|(_, k)| *k == kind) {
            out.push(self.file(dir.join(n), kind, needles, trusted));
        }
        if !trusted {
            self.checked(dir, kind, start);
        }
    }

    /// `dir/name` as a lookup needs it. With `needles`, a file not yet parsed whose bytes
    /// contain none of them (ASCII case-insensitively) cannot match and is not parsed: a
    /// one-shot process (ssh) then parses only the file holding the name. A file seen a
    /// second time with the same key is parsed, indexed and kept for the next lookups.
    /// `trusted`: a parsed cached file is returned without a stat ([`TRUST_WINDOW`]).
    fn file(
        &mut self,
        path: PathBuf,
        kind: Kind,
        needles: Option<&[String]>,
        trusted: bool,
    ) -> FileView {
        if trusted {
            if let Some(c) = self
                .files
                .iter()
                .find(|f| f.path == path)
                .and_then(|f| f.content.as_ref())
            {
                return FileView {
                    content: c.clone(),
                    path,
                    kind,
                };
            }
        }
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                // Nothing cached for a path may outlive a key check that failed: a trusted
                // lookup would serve it.
                self.forget(&path);
                return FileView {
                    path,
                    kind,
                    content: Content::Unusable(format!("cannot read: {e}")),
                };
            }
        };
        if !meta.is_file() {
            self.forget(&path);
            return FileView {
                path,
                kind,
                content: Content::Unusable("not a regular file".into()),
            };
        }
        let key = Key::of(&meta);
        let mut seen_before = false;
        if let Some(f) = self.files.iter().find(|f| f.path == path) {
            if f.key == key {
                if let Some(c) = &f.content {
                    return FileView {
                        content: c.clone(),
                        path,
                        kind,
                    };
                }
                seen_before = true;
            }
        }
        let bytes = match read_capped(&path) {
            Ok(b) => b,
            Err(why) => {
                self.forget(&path);
                return FileView {
                    path,
                    kind,
                    content: Content::Unusable(why),
                };
            }
        };
        let prefilter = !seen_before && needles.is_some() && !has_unicode_escape(&bytes);
        let content = if prefilter
            && !needles
                .unwrap_or(&[])
                .iter()
                .any(|n| contains_ci(&bytes, n.as_bytes()))
        {
            None
        } else {
            Some(parse(&bytes, kind))
        };
        self.forget(&path);
        if key.settled() {
            if self.files.len() >= MAX_CACHED_FILES || self.bytes + key.size > MAX_CACHED_BYTES {
                self.files = Vec::new();
                self.bytes = 0;
            }
            self.bytes += key.size;
            self.files.push(CachedFile {
                path: path.clone(),
                key,
                content: content.clone(),
            });
        }
        FileView {
            path,
            kind,
            content: content.unwrap_or(Content::Skipped),
        }
    }

    fn forget(&mut self, path: &Path) {
        if let Some(i) = self.files.iter().position(|f| f.path == path) {
            let f = self.files.swap_remove(i);
            self.bytes = self.bytes.saturating_sub(f.key.size);
        }
    }

    /// The files a forward lookup of `name` needs, prefiltered by what can match:
    /// `libvirt`: `.status` files containing the name; `libvirt_guest`: `.macs` files
    /// containing the domain name, then `.status` files containing one of its MACs.
    pub fn snapshot_for(
        &mut self,
        dir: &Path,
        service: Service,
        name: &str,
    ) -> io::Result<Snapshot> {
        let Some(names) = self.dir_names(dir)? else {
            return Ok(Snapshot::default());
        };
        let start = Instant::now();
        let name_lc = [name.to_ascii_lowercase()];
        let mut files = Vec::with_capacity(names.len());
        let macs: Vec<String> = match service {
            Service::Libvirt => Vec::new(),
            Service::Guest => {
                self.files_of(dir, &names, Kind::Macs, Some(&name_lc), start, &mut files);
                let mut macs = Vec::new();
                for f in &files {
                    if let Content::Macs(m) = &f.content {
                        for e in m.for_domain(&name_lc[0]) {
                            for mac in &e.macs {
                                if !macs.contains(mac) {
                                    macs.push(mac.clone());
                                }
                            }
                        }
                    }
                }
                macs
            }
        };
        let needles: &[String] = match service {
            Service::Libvirt => &name_lc,
            // A domain with no MAC has no lease: no `.status` file can change the answer, so
            // none is looked at, not even stat'ed. That is every `libvirt_guest` lookup of a
            // name that is not a guest (a DNS name, with `hosts: ... libvirt_guest dns`).
            Service::Guest if macs.is_empty() => {
                return Ok(Snapshot {
                    files,
                    dir_exists: true,
                });
            }
            Service::Guest => &macs,
        };
        self.files_of(dir, &names, Kind::Status, Some(needles), start, &mut files);
        Ok(Snapshot {
            files,
            dir_exists: true,
        })
    }

    /// The relevant names in `dir`, or None if it does not exist.
    fn dir_names(&mut self, dir: &Path) -> io::Result<Option<Names>> {
        let meta = match fs::metadata(dir) {
            Ok(m) => m,
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if !meta.is_dir() {
            return Ok(None);
        }
        self.listing(dir, Key::of(&meta)).map(Some)
    }

    /// The relevant files of `dir`; `.macs` files only when `want_macs`.
    /// Errors: the directory exists but cannot be listed.
    pub fn snapshot(&mut self, dir: &Path, want_macs: bool) -> io::Result<Snapshot> {
        let Some(names) = self.dir_names(dir)? else {
            return Ok(Snapshot::default());
        };
        let start = Instant::now();
        let kinds: &[Kind] = if want_macs {
            &[Kind::Status, Kind::Macs]
        } else {
            &[Kind::Status]
        };
        let mut trusted = [false; 2];
        for &k in kinds {
            trusted[k.index()] = self.trusted(dir, k, start);
        }
        // In file-name order, both kinds mixed (the CLI lists files in this order).
        let mut files = Vec::with_capacity(names.len());
        for (name, kind) in names.iter() {
            if kinds.contains(kind) {
                files.push(self.file(dir.join(name), *kind, None, trusted[kind.index()]));
            }
        }
        for &k in kinds {
            if !trusted[k.index()] {
                self.checked(dir, k, start);
            }
        }
        Ok(Snapshot {
            files,
            dir_exists: true,
        })
    }
}

fn read_capped(path: &Path) -> Result<Vec<u8>, String> {
    // std opens with O_CLOEXEC.
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes, ignored"));
    }
    Ok(bytes)
}

fn parse(bytes: &[u8], kind: Kind) -> Content {
    match kind {
        Kind::Status => Content::Status(Arc::new(StatusFile::parse(bytes))),
        Kind::Macs => Content::Macs(Arc::new(MacsFile::parse(bytes))),
    }
}

/// A `\u` escape could spell a name without its plain bytes: no prefilter then.
fn has_unicode_escape(b: &[u8]) -> bool {
    b.contains(&b'\\') && b.windows(2).any(|w| w == b"\\u")
}

/// ASCII case-insensitive substring search (`needle` already lower-case). The scan looks
/// for the first byte with `| 0x20` (folds ASCII case; other bytes may give false
/// candidates, which the full comparison rejects), a loop the compiler vectorizes.
pub fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return true;
    };
    let f = first | 0x20;
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        match hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b | 0x20 == f)
        {
            None => return false,
            Some(p) => {
                i += p;
                if hay[i..i + needle.len()].eq_ignore_ascii_case(needle) {
                    return true;
                }
                i += 1;
            }
        }
    }
    false
}

static CACHE: Mutex<Cache> = Mutex::new(Cache::new());

/// Run `f` with the process-wide cache, or with a fresh one if it is busy.
fn with_cache<T>(f: impl FnOnce(&mut Cache) -> T) -> T {
    match CACHE.try_lock() {
        Ok(mut c) => f(&mut c),
        Err(TryLockError::Poisoned(p)) => {
            let mut c = p.into_inner();
            c.clear();
            CACHE.clear_poison();
            f(&mut c)
        }
        Err(TryLockError::WouldBlock) => f(&mut Cache::new()),
    }
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

/// Every live lease matching `name` for `service`, in answer order (not deduplicated).
pub fn candidates<'a>(
    snap: &'a Snapshot,
    name: &str,
    service: Service,
    now: i64,
) -> Vec<Candidate<'a>> {
    let name_lc = name.to_ascii_lowercase();
    let mut out = Vec::new();
    match service {
        Service::Libvirt => {
            for (i, _, s) in snap.status_files() {
                for l in s.with_hostname(&name_lc) {
                    if l.is_live(now) {
                        out.push(Candidate { file: i, lease: l });
                    }
                }
            }
        }
        Service::Guest => {
            let mut macs: Vec<&str> = Vec::new();
            for (_, m) in snap.macs_files() {
                for e in m.for_domain(&name_lc) {
                    for mac in &e.macs {
                        if !macs.contains(&mac.as_str()) {
                            macs.push(mac);
                        }
                    }
                }
            }
            for (i, _, s) in snap.status_files() {
                for mac in &macs {
                    for l in s.with_mac(mac) {
                        if l.is_live(now) {
                            out.push(Candidate { file: i, lease: l });
                        }
                    }
                }
            }
        }
    }
    out.sort_by_key(rank);
    out
}

/// The answer for `name` from the leases of `snap`.
pub fn answer(snap: &Snapshot, name: &str, service: Service, family: Family, now: i64) -> Answer {
    let c = candidates(snap, name, service, now);
    if c.is_empty() {
        return Answer::NotFound;
    }
    let mut addrs: Vec<IpAddr> = Vec::new();
    for cand in &c {
        if family.accepts(&cand.lease.ip) && !addrs.contains(&cand.lease.ip) {
            addrs.push(cand.lease.ip);
        }
    }
    if addrs.is_empty() {
        Answer::NoData
    } else {
        Answer::Found(addrs)
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
    with_cache(|cache| {
        let snap = cache.snapshot_for(dir, service, name)?;
        Ok(answer(&snap, name, service, family, now))
    })
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

/// Reverse lookup: the name of `ip` in the lease directory `dir` at time `now`.
pub fn reverse(dir: &Path, ip: IpAddr, service: Service, now: i64) -> io::Result<Option<String>> {
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
    use std::net::{Ipv4Addr, Ipv6Addr};

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
        let checked = Instant::now();
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

    #[test]
    fn case_insensitive_search() {
        for (hay, needle, want) in [
            (&b"xx\"Fedora\"yy"[..], &b"fedora"[..], true),
            (b"FEDOR", b"fedora", false),
            (b"52:54:00:AA:bb:01", b"52:54:00:aa:bb:01", true),
            (b"", b"a", false),
            (b"abc", b"", true),
            (b"\x8dfedora", b"-fedora", false),
        ] {
            assert_eq!(contains_ci(hay, needle), want, "{:?} in {:?}", needle, hay);
        }
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
