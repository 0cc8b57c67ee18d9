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
//! Cold path: the first lookup in a process (ssh, getent: dlopen, one lookup, exit) has
//! nothing cached. It reads each file into one reused buffer, searches it for the name (or
//! the domain's MACs) and JSON-parses only the entries where it occurs; entries before them
//! are only syntax-checked, without allocating, so the answer is the full parse's (see
//! [`parse_containing`]). libvirt's module parses every entry of every file instead.
//!
//! Bounded work: a lookup answers at most [`MAX_ANSWERS`] addresses (the best-ranked), and
//! its work is linear in the bytes of the files it reads (at most [`MAX_FILE_BYTES`] each):
//! addresses and MACs are deduplicated through hash sets, a domain's MACs are looked up in
//! each `.status` file's MAC index, and a lookup with more than [`MAX_NEEDLES`] MACs
//! parses the `.status` files instead of searching them once per MAC. [`crate::work`] counts
//! what a lookup did, so that tests can check these bounds without timing anything.
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

use crate::json;
use crate::leases::{Lease, MacsFile, StatusFile};
use crate::work;

/// Where libvirt keeps `*.status` and `*.macs` (compiled into libvirt's module too).
pub const DEFAULT_LEASE_DIR: &str = "/var/lib/libvirt/dnsmasq";
/// Environment variable overriding the lease directory (read with `secure_getenv`).
pub const LEASE_DIR_ENV: &str = "LIBVIRT_NSS_LEASE_DIR";
/// Most bytes read from one file; a 10,000-lease `.status` is about 1.8 MB.
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// Most addresses one forward lookup answers: the best-ranked ones (newest expiry first).
/// A guest has an address or two per network; a file with thousands of leases for one name
/// (or a domain listing thousands of MACs) is not a guest, and answering all of them would
/// make every program that resolves the name (sshd, sudo) copy and sort them, with glibc
/// retrying each lookup with a larger buffer. 256 addresses fill about 10 KB of the
/// caller's buffer.
pub const MAX_ANSWERS: usize = 256;
/// A forward lookup searching for more needles than this (a domain's MACs) parses each
/// `.status` file and looks the MACs up in its index, instead of one byte search per MAC.
pub const MAX_NEEDLES: usize = 16;
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
    /// None: read once by the cold path, not parsed in full yet.
    content: Option<Content>,
}

/// Parsed files and directory listings, bounded by [`MAX_CACHED_BYTES`] and friends.
pub struct Cache {
    dirs: Vec<CachedDir>,
    files: Vec<CachedFile>,
    bytes: u64,
    /// The read buffer of the lookup in progress (emptied and freed when it ends).
    buf: Vec<u8>,
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
            buf: Vec::new(),
        }
    }

    fn clear(&mut self) {
        self.dirs = Vec::new();
        self.files = Vec::new();
        self.bytes = 0;
    }

    fn listing(&mut self, dir: &Path, key: Key) -> io::Result<Names> {
        if let Some(d) = self.dirs.iter().find(|d| same(&d.path, dir)) {
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
        self.dirs.retain(|d| !same(&d.path, dir));
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
            .find(|d| same(&d.path, dir))
            .is_some_and(|d| d.trusted(kind, now))
    }

    /// Every file of `kind` in `dir` was key-checked by a lookup that started at `start`.
    fn checked(&mut self, dir: &Path, kind: Kind, start: Instant) {
        if let Some(d) = self.dirs.iter_mut().find(|d| same(&d.path, dir)) {
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

    /// `dir/name` as a lookup needs it. With `needles` (a forward lookup), a file not
    /// yet parsed is only searched for them (ASCII case-insensitively), and only the
    /// entries they occur in are parsed ([`parse_containing`]): a one-shot process (ssh)
    /// parses a few entries, not every lease. Such a file is remembered unparsed; seen a
    /// second time with the same key, it is parsed in full, indexed and kept for the next
    /// lookups. `trusted`: a parsed cached file is returned without a stat
    /// ([`TRUST_WINDOW`]).
    fn file(
        &mut self,
        path: PathBuf,
        kind: Kind,
        needles: Option<&[String]>,
        trusted: bool,
    ) -> FileView {
        let view = |path, content| FileView {
            path,
            kind,
            content,
        };
        let cached = self.files.iter().find(|f| same(&f.path, &path));
        if let Some(c) = cached.filter(|_| trusted).and_then(|f| f.content.as_ref()) {
            return view(path, c.clone());
        }
        // Key-check a parsed cached file by path, without opening it (the warm path).
        if let Some(c) = cached.filter(|f| f.content.is_some()) {
            match fs::metadata(&path) {
                Ok(m) if m.is_file() && Key::of(&m) == c.key => {
                    return view(path, c.content.clone().unwrap_or(Content::Skipped));
                }
                _ => {}
            }
        }
        let key = match read_capped(&path, &mut self.buf) {
            Ok(key) => key,
            Err(why) => {
                // Nothing cached for a path may outlive a key check that failed: a trusted
                // lookup would serve it.
                self.forget(&path);
                return view(path, Content::Unusable(why));
            }
        };
        let seen_before = self
            .files
            .iter()
            .any(|f| same(&f.path, &path) && f.key == key && f.content.is_none());
        let bytes = &self.buf[..];
        // (this lookup's view, what the cache keeps: None = read, not parsed in full)
        let (content, keep) = match needles.filter(|_| !seen_before) {
            Some(needles) => match parse_containing(bytes, kind, needles) {
                Some(Some(part)) => (part, None),
                Some(None) => (Content::Skipped, None),
                None => {
                    let c = parse(bytes, kind);
                    (c.clone(), Some(c))
                }
            },
            None => {
                let c = parse(bytes, kind);
                (c.clone(), Some(c))
            }
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
                content: keep,
            });
        }
        view(path, content)
    }

    fn forget(&mut self, path: &Path) {
        if let Some(i) = self.files.iter().position(|f| same(&f.path, path)) {
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
        let snap = self.read_for(dir, service, name);
        self.buf = Vec::new();
        snap
    }

    fn read_for(&mut self, dir: &Path, service: Service, name: &str) -> io::Result<Snapshot> {
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
                let macs_files = files.iter().filter_map(|f| match &f.content {
                    Content::Macs(m) => Some(&**m),
                    _ => None,
                });
                domain_macs(macs_files, &name_lc[0])
                    .into_iter()
                    .map(str::to_owned)
                    .collect()
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
        let snap = self.read_all(dir, want_macs);
        self.buf = Vec::new();
        snap
    }

    fn read_all(&mut self, dir: &Path, want_macs: bool) -> io::Result<Snapshot> {
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

/// What identifies the state of a lease directory: its key (device, inode, size, mtime,
/// ctime). libvirt replaces lease files by rename, which changes it (see [`TRUST_WINDOW`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(Key);

/// The directory's [`Generation`] now; None if it cannot be stat'ed.
pub fn generation(dir: &Path) -> Option<Generation> {
    fs::metadata(dir).ok().map(|m| Generation(Key::of(&m)))
}

/// Path equality as bytes: the cache's paths are all built the same way (`dir.join(name)`),
/// and `Path`'s `==` compares component by component (a third of a 10-lease lookup).
fn same(a: &Path, b: &Path) -> bool {
    a.as_os_str() == b.as_os_str()
}

/// Reads `path` into `buf` (reused across the files of a lookup) and returns the key of
/// what was read. Opened with O_NONBLOCK and O_NOCTTY, then fstat'ed: a FIFO or device
/// named like a lease file is refused without blocking (opening a FIFO for reading
/// waits for a writer; sshd would hang), and the key is that of the file actually read.
fn read_capped(path: &Path, buf: &mut Vec<u8>) -> Result<Key, String> {
    use std::os::unix::fs::OpenOptionsExt;
    buf.clear();
    // std adds O_CLOEXEC.
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot read: {e}"))?;
    let meta = f.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.size() > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes, ignored"));
    }
    // The size as stat'ed plus one byte to see the end (a growing file is capped below).
    buf.reserve(meta.size() as usize + 1);
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(buf)
        .map_err(|e| format!("cannot read: {e}"))?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        buf.clear();
        return Err(format!("larger than {MAX_FILE_BYTES} bytes, ignored"));
    }
    Ok(Key::of(&meta))
}

fn parse(bytes: &[u8], kind: Kind) -> Content {
    match kind {
        Kind::Status => Content::Status(Arc::new(StatusFile::parse(bytes))),
        Kind::Macs => Content::Macs(Arc::new(MacsFile::parse(bytes))),
    }
}

/// More hits than this in one file and a lookup parses it in full (a short name that
/// occurs everywhere): the hit list stays small.
const MAX_HITS: usize = 1024;

/// The cold path: only the entries of `bytes` where one of `needles` (ASCII lower-case)
/// occurs, parsed as [`parse`] would parse them (same offsets; an entry after a syntax
/// error is dropped as there), so that a lookup of one of the needles answers exactly as
/// from the full parse. `Some(None)`: no needle occurs, nothing can match. `None`: use the
/// full parse: the file holds a backslash (an escape such as `\u0066` can spell a name
/// without its bytes), a needle is empty, or there are too many hits.
pub fn parse_containing(bytes: &[u8], kind: Kind, needles: &[String]) -> Option<Option<Content>> {
    // memchr picks its SIMD code by CPUID on first use, once per process: ~2 µs per CPUID
    // in a VM, about 15 µs in all (an interleaved CPU-time series at 10 leases had ours
    // ~3% above libvirt's module with it). Small files are scanned without it.
    let simd = bytes.len() >= SIMD_MIN_BYTES;
    if needles.len() > MAX_NEEDLES
        || has_backslash(bytes, simd)
        || needles.iter().any(|n| n.is_empty())
    {
        return None;
    }
    let mut hits = Vec::new();
    let mut push = |at| {
        hits.push(at);
        hits.len() <= MAX_HITS
    };
    // No upper-case letter in the file: a case-sensitive search for the lower-case needle
    // finds exactly the case-insensitive occurrences, and memchr's SIMD memmem costs a
    // fraction of the folding search's instructions (callgrind).
    let folded = !simd || has_ascii_uppercase(bytes);
    for n in needles {
        work::scanned(1);
        let complete = if folded {
            for_each_ci(bytes, n.as_bytes(), &mut push)
        } else {
            let finder = memchr::memmem::Finder::new(n.as_bytes());
            let mut from = 0;
            loop {
                match finder.find(&bytes[from..]) {
                    Some(at) if push(from + at) => from += at + 1,
                    Some(_) => break false,
                    None => break true,
                }
            }
        };
        if !complete {
            return None;
        }
    }
    if hits.is_empty() {
        return Some(None);
    }
    hits.sort_unstable();
    let arr = json::parse_array_containing(bytes, &hits);
    Some(Some(match kind {
        Kind::Status => Content::Status(Arc::new(StatusFile::from_array(arr))),
        Kind::Macs => Content::Macs(Arc::new(MacsFile::from_array(arr))),
    }))
}

/// Files smaller than this are searched without memchr (see [`parse_containing`]).
const SIMD_MIN_BYTES: usize = 32 << 10;

/// Whether `b` holds a `\\`: memchr (SIMD) or a chunked loop the compiler vectorizes.
fn has_backslash(b: &[u8], simd: bool) -> bool {
    if simd {
        return memchr::memchr(b'\\', b).is_some();
    }
    b.chunks(256)
        .any(|c| c.iter().fold(0u8, |any, &x| any | u8::from(x == b'\\')) != 0)
}

/// Whether `b` holds an ASCII upper-case letter: a chunked loop the compiler vectorizes.
fn has_ascii_uppercase(b: &[u8]) -> bool {
    b.chunks(256).any(|c| {
        c.iter()
            .fold(0u8, |any, &x| any | u8::from(x.wrapping_sub(b'A') < 26))
            != 0
    })
}

/// Calls `f` with every offset where `needle` occurs in `hay`, ASCII case-insensitively
/// (`needle` already lower-case), overlapping occurrences included, in ascending order,
/// until `f` returns false; returns false if it did. A chunk of 32 candidate positions is
/// tested at once on the needle's first and last byte with `| 0x20` (folds ASCII case;
/// other bytes may give false candidates, which the full comparison rejects), a loop
/// without early exit that the compiler vectorizes; only a chunk with a candidate is
/// looked at position by position. (callgrind, the bench's 10,000 leases: about 2
/// instructions a byte, against 7 for a first-byte `position` loop; memmem, used when the
/// file has no upper case, about 0.5.)
pub fn for_each_ci(hay: &[u8], needle: &[u8], mut f: impl FnMut(usize) -> bool) -> bool {
    const W: usize = 32;
    let (Some(&first), Some(&last)) = (needle.first(), needle.last()) else {
        return (0..=hay.len()).all(f);
    };
    if needle.len() > hay.len() {
        return true;
    }
    let (a, z) = (first | 0x20, last | 0x20);
    let ends = hay.len() - needle.len(); // the last candidate position
    let tail = needle.len() - 1;
    let mut check = |at: usize| !hay[at..at + needle.len()].eq_ignore_ascii_case(needle) || f(at);
    let mut i = 0;
    while i + W <= ends + 1 {
        let (Some(heads), Some(tails)) = (
            hay[i..].first_chunk::<W>(),
            hay[i + tail..].first_chunk::<W>(),
        ) else {
            break;
        };
        let mut any = false;
        for j in 0..W {
            any |= ((heads[j] | 0x20) == a) & ((tails[j] | 0x20) == z);
        }
        if any {
            for j in 0..W {
                if (heads[j] | 0x20) == a && (tails[j] | 0x20) == z && !check(i + j) {
                    return false;
                }
            }
        }
        i += W;
    }
    (i..=ends).all(|at| (hay[at] | 0x20) != a || check(at))
}

/// ASCII case-insensitive substring search (`needle` already lower-case).
pub fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    !for_each_ci(hay, needle, |_| false)
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
            let macs = domain_macs(snap.macs_files().map(|(_, m)| m), &name_lc);
            for (i, _, s) in snap.status_files() {
                work::examined(macs.len() as u64);
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
    work::examined(out.len() as u64);
    out.sort_by_key(rank);
    out
}

/// The MACs of the domain `name_lc` (lower-cased) in `macs_files`, each once, in the order
/// of the files and their entries: libvirt's domain -> MACs rule, for the lookup, its
/// prefilter and the diagnostic command alike. Linear in the MACs listed for the domain.
pub fn domain_macs<'a>(
    macs_files: impl Iterator<Item = &'a MacsFile>,
    name_lc: &str,
) -> Vec<&'a str> {
    let mut seen = std::collections::HashSet::new();
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
    let addrs = first_distinct(c.iter().map(|c| c.lease.ip).filter(|ip| family.accepts(ip)));
    if addrs.is_empty() {
        Answer::NoData
    } else {
        Answer::Found(addrs)
    }
}

/// The first [`MAX_ANSWERS`] distinct addresses of `ranked`, in its order. A guest's few
/// addresses are compared directly; past a handful, a hash set keeps it linear.
fn first_distinct(ranked: impl Iterator<Item = IpAddr>) -> Vec<IpAddr> {
    const DIRECT: usize = 16;
    let mut addrs: Vec<IpAddr> = Vec::new();
    let mut seen: std::collections::HashSet<IpAddr> = std::collections::HashSet::new();
    let mut probes = 0u64;
    for ip in ranked {
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
            if addrs.len() == MAX_ANSWERS {
                break;
            }
        }
    }
    work::examined(probes);
    addrs
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
                // A syntax error before the second web1: only the first one counts.
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
            found(&[v4("10.2.0.2"), v4("10.0.0.1"), v4("10.0.0.12")])
        );
        assert_eq!(
            libvirt,
            found(&[v4("10.2.0.2"), v4("10.0.0.1"), v4("10.0.0.12")])
        );
        assert_eq!(
            unusable,
            vec!["fifo: not a regular file", "fifo: not a regular file"]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn folding_search_finds_every_occurrence() {
        // Against a naive reference: overlapping occurrences, both ends of 32-byte chunks,
        // the scalar tail, upper case, bytes that `| 0x20` folds onto others.
        let naive = |hay: &[u8], needle: &[u8]| -> Vec<usize> {
            (0..=hay.len().saturating_sub(needle.len()))
                .filter(|&i| {
                    hay.len() >= needle.len()
                        && hay[i..i + needle.len()].eq_ignore_ascii_case(needle)
                })
                .collect()
        };
        let mut seed = 7u32;
        let alphabet = b"aAbB:-\r\x0d\x8d@`[{";
        for len in [0, 1, 5, 31, 32, 33, 63, 64, 65, 100, 257] {
            for _ in 0..20 {
                let hay: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        alphabet[(seed >> 16) as usize % alphabet.len()]
                    })
                    .collect();
                for needle in [&b"a"[..], b"ab", b"aa", b"a:b", b"-", b"aaaa", b"@"] {
                    let mut got = Vec::new();
                    assert!(for_each_ci(&hay, needle, |at| {
                        got.push(at);
                        true
                    }));
                    assert_eq!(got, naive(&hay, needle), "{needle:?} in {hay:?}");
                }
            }
        }
        // Stopping early.
        let mut n = 0;
        assert!(!for_each_ci(&b"ab".repeat(40), b"b", |_| {
            n += 1;
            n < 3
        }));
        assert_eq!(n, 3);
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
