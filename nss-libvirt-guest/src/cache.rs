//! The process-wide cache of parsed lease files and directory listings.
//!
//! Parsed files are kept keyed by (dev, inode, size, mtime, ctime) of each file: libvirt
//! replaces files by rename, so a changed file always has a new key. A file whose mtime is
//! within [`RACY_SECS`] of when it was read is re-read on the next lookup (timestamps are
//! coarse, so an in-place rewrite in the same tick would keep its key). The cache is
//! bounded (bytes, files, directories) and guarded by a mutex that is only ever
//! `try_lock`ed: a thread that finds it busy (or a child forked while another thread held
//! it) resolves without the cache instead of waiting.
//!
//! Cold path: the first lookup in a process (ssh, getent: dlopen, one lookup, exit) has
//! nothing cached. It reads each file in [`CHUNK`]s into one small reused buffer, searches
//! each chunk ([`crate::prefilter::Hits`]) and then parses only the entries where the name
//! (or one of the domain's MACs) occurs, from windows read again around them
//! ([`crate::prefilter::entries`]). libvirt's module parses every entry of every file.
//!
//! Trust window: the directory is stat'ed on every lookup, but its files are not while the
//! directory's key is unchanged and all its files of the kind needed were key-checked less
//! than [`TRUST_WINDOW`] ago (see there for why that is safe). At small lease counts the
//! stat(2) of every file was most of a lookup's cost.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::leases::{MacsFile, StatusFile};
use crate::lookup::{Content, FileView, Kind, MAX_FILE_BYTES, Snapshot};
use crate::matching::{Service, domain_macs};
use crate::prefilter::{Hits, SIMD_MIN_BYTES, Source, entries};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
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
    pub(crate) fn of(m: &fs::Metadata) -> Key {
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
    pub(crate) fn settled(&self) -> bool {
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
    pub(crate) fn trusted(&self, dir: &Path, kind: Kind, now: Instant) -> bool {
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
        let opened = open_keyed(&path);
        let (file, key) = match opened {
            Ok(fk) => fk,
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
        // (this lookup's view, what the cache keeps: None = read, not parsed in full)
        let cold = needles
            .filter(|_| !seen_before)
            .and_then(|needles| search_file(&file, key.size, kind, needles, &mut self.buf));
        let (content, keep) = match cold {
            Some(Some(part)) => (part, None),
            Some(None) => (Content::Skipped, None),
            None => match read_capped(&file, &mut self.buf) {
                Ok(()) => {
                    let c = parse(&self.buf, kind);
                    (c.clone(), Some(c))
                }
                Err(why) => {
                    self.forget(&path);
                    return view(path, Content::Unusable(why));
                }
            },
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

/// Opens `path` for reading and returns it with the key of what was opened. Opened with
/// O_NONBLOCK and O_NOCTTY, then fstat'ed: a FIFO or device named like a lease file is
/// refused without blocking (opening a FIFO for reading waits for a writer; sshd would
/// hang), and the key is that of the file actually read.
fn open_keyed(path: &Path) -> Result<(fs::File, Key), String> {
    use std::os::unix::fs::OpenOptionsExt;
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
    Ok((f, Key::of(&meta)))
}

/// Reads all of `f` (from its start) into `buf`, at most [`MAX_FILE_BYTES`].
fn read_capped(f: &fs::File, buf: &mut Vec<u8>) -> Result<(), String> {
    use std::io::{Seek, SeekFrom};
    buf.clear();
    let mut f = f;
    f.seek(SeekFrom::Start(0))
        .map_err(|e| format!("cannot read: {e}"))?;
    let size = f.metadata().map(|m| m.size()).unwrap_or(0);
    // The size as stat'ed plus one byte to see the end (a growing file is capped below).
    buf.reserve(size.min(MAX_FILE_BYTES) as usize + 1);
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(buf)
        .map_err(|e| format!("cannot read: {e}"))?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        buf.clear();
        return Err(format!("larger than {MAX_FILE_BYTES} bytes, ignored"));
    }
    Ok(())
}

/// The chunk the cold path reads a file in: small enough that the copy from the page cache
/// and the search after it stay in the CPU's first-level cache, and below malloc's mmap
/// threshold (no page faults for each file after the first). One-shot getent at 10,000
/// leases, CPU time interleaved with the same at 10 leases (medians of 80, several series,
/// a loaded 2-core VM): +0.32-0.42 ms with 32 KiB chunks, +0.37-0.48 ms with 64 KiB,
/// +0.37-0.48 with 120 KiB, +0.39-0.44 with 16 KiB; in process (warm), 32 KiB costs ~7%
/// more than 64 KiB (more read calls).
pub(crate) const CHUNK: usize = 32 << 10;

/// The cold path on an open file (see [`crate::prefilter`]): read in [`CHUNK`]s into `buf`,
/// each searched for `needles` (the last bytes repeated at the start of the next chunk, so
/// that an occurrence across a boundary is found), then a window around each hit read again
/// with pread. What [`crate::prefilter::parse_containing`] returns for the file's bytes; None also when it
/// cannot be read (the full read then says why).
fn search_file(
    f: &fs::File,
    size: u64,
    kind: Kind,
    needles: &[String],
    buf: &mut Vec<u8>,
) -> Option<Option<Content>> {
    let mut hits = Hits::new(needles, size as usize >= SIMD_MIN_BYTES)?;
    let overlap = hits.overlap();
    // A small file in one read into a buffer its size (+1 to see the end), not a chunk's.
    let chunk = CHUNK.min(size as usize + 1);
    if buf.len() < chunk + overlap {
        buf.resize(chunk + overlap, 0);
    }
    // buf[..kept] repeats the previous chunk's last bytes; buf[0] is at file offset `base`.
    let (mut kept, mut base, mut total) = (0, 0, 0u64);
    loop {
        let n = read_full(f, &mut buf[kept..kept + chunk]).ok()?;
        total += n as u64;
        if total > MAX_FILE_BYTES {
            return None;
        }
        if !hits.search(&buf[..kept + n], base) {
            return None;
        }
        if n < chunk {
            break;
        }
        let keep = overlap.min(kept + n);
        buf.copy_within(kept + n - keep..kept + n, 0);
        base += kept + n - keep;
        kept = keep;
    }
    entries(kind, hits.into_sorted(), &mut FileSource(f))
}

/// Reads into all of `out` unless the file ends first; the bytes read.
fn read_full(mut f: &fs::File, out: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < out.len() {
        match f.read(&mut out[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The windows around hits, by pread (the file's offset is left alone).
struct FileSource<'f>(&'f fs::File);

impl Source for FileSource<'_> {
    fn fetch(&mut self, from: usize, to: usize, out: &mut Vec<u8>) -> bool {
        use std::os::unix::fs::FileExt;
        out.clear();
        out.resize(to - from, 0);
        let mut n = 0;
        while n < out.len() {
            match self.0.read_at(&mut out[n..], (from + n) as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        out.truncate(n);
        true
    }
}

pub(crate) fn parse(bytes: &[u8], kind: Kind) -> Content {
    match kind {
        Kind::Status => Content::Status(Arc::new(StatusFile::parse(bytes))),
        Kind::Macs => Content::Macs(Arc::new(MacsFile::parse(bytes))),
    }
}

static CACHE: Mutex<Cache> = Mutex::new(Cache::new());

/// Run `f` with the process-wide cache, or with a fresh one if it is busy.
pub(crate) fn with_cache<T>(f: impl FnOnce(&mut Cache) -> T) -> T {
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
