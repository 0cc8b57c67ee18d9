//! The auto-start configs of parent `matrix`, remembered between callout runs.
//!
//! `pre define`/`pre modify` must compare the new device with every other auto-start config
//! (ap-check's check). Reading and parsing 1,000 JSON files on each run was most of the
//! callout's 22 ms; the index in `/run/nodedev-helper/autostart.index` keeps, per config file,
//! its [`FileKey`] and what the check needs (auto-start or not, adapters, domains), so a run
//! reads only the files whose key changed.
//!
//! Why it cannot answer stale: a config is taken from the index only when its key (inode,
//! size, mtime, ctime) is unchanged — any write changes ctime, a rename-over changes the
//! inode. A file changed within [`RACY_NS`] of the index being written might change again in
//! the same clock tick without a new key, so such entries are stored as unknown and read
//! on the next run. When the directory's own key is unchanged (not racy either), no entry was
//! added, removed or renamed, and the listing itself is skipped.
//!
//! Each run still compares every config's key (one `fstatat` each, about 1.4 µs on the
//! development VM: most of a `pre define` with 1,000 configs). Nothing cheaper is sound:
//! mdevctl and people rewrite configs in place, which changes only that file's own times, not
//! the directory's, and mdevctl's callout events miss edits made without mdevctl. When every
//! key matches (the common case) the run walks the index once and keeps only what the caller
//! asks for (`unchanged`), without building the index in memory; anything else takes the
//! full path, which reads what changed and rewrites the index. doc/s390-tools.md
//! ("Reference latencies") has the measurements and what was tried and not taken.
//!
//! The index is a cache: missing, unreadable, malformed, not ours (owner other than our euid,
//! writable by group/others) — it is ignored and rebuilt; failing to write it is not an error.
//! It lives in /run (tmpfs), so it starts empty at boot.
//!
//! Format: the line `nodedev-helper autostart index 3`, then fixed-size binary records, so
//! that a run reads them without parsing text (decimal keys and ranges were a third of a
//! `pre define` besides the `fstatat`s). Integers are in the byte order of the host that wrote
//! them: the index never leaves that host (/run is per machine and per boot).
//! ```text
//! COUNT                       u64: the number of entry records
//! FLAG KEY                    the directory: FLAG u64 1 and its key, or all zero (list it)
//! UUID STATE 0 0 0 KEY ADAPTERS DOMAINS     COUNT times, sorted by UUID, 136 bytes each
//! ```
//! KEY is INO, SIZE, MTIME_NS, CTIME_NS (4 × u64); UUID the config's name (36 ASCII bytes);
//! STATE 0 = unknown (read it next time: racy, unreadable or malformed; KEY and masks zero),
//! 1 = not an auto-start vfio_ap device (masks zero), 2 = auto-start with ADAPTERS and
//! DOMAINS (32 bytes each, in the kernel's mask order). Anything else is malformed.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::apmask::Mask;
use crate::dirscan::{Dir, FileKey};
use crate::mdev::{self, BadConfig, DeviceConfig, Matrix, VFIO_AP_TYPE};
use crate::root::Root;
use crate::sysfs::HostError;

const HEADER: &[u8] = b"nodedev-helper autostart index 3\n";

/// Changes younger than this (at the time the index is written) are not trusted: file system
/// timestamps are taken from a coarse clock (up to a jiffy, and 1 s or 2 s on some file
/// systems), so a second write in the same tick could leave the key unchanged.
pub const RACY_NS: i64 = 2_000_000_000;

/// mdevctl configs are a few hundred bytes; anything this large is not one.
const CONFIG_CAP: usize = mdev::CONFIG_MAX;

/// The index holds one record of 136 bytes per config.
const INDEX_MAX: usize = 16 << 20;

/// A config's name: a UUID, kept inline (no allocation for each of 1,000 configs per run).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid([u8; 36]);

impl Uuid {
    /// [`mdev::is_uuid`]'s rule, on bytes (only ASCII passes, so `as_str` is always valid).
    pub fn parse(s: &[u8]) -> Option<Uuid> {
        let b: [u8; 36] = s.try_into().ok()?;
        let ok = b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
        ok.then_some(Uuid(b))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Display for Uuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Uuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An auto-start `vfio_ap-passthrough` config: what conflicts are computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Autostart {
    pub uuid: Uuid,
    pub adapters: Mask,
    pub domains: Mask,
}

/// Every auto-start vfio_ap config (sorted by UUID) and the configs that could not be used.
#[derive(Debug, Default)]
pub struct Scan {
    pub autostart: Vec<Autostart>,
    pub broken: Vec<BadConfig>,
    /// The refreshed index, written only by [`Pending::save`]: the callout saves it when it
    /// accepts the device, so a rejected input leaves nothing behind on the host.
    pub index: Pending,
}

/// An index that changed during a [`scan`] and is not yet written.
#[derive(Debug, Default)]
pub struct Pending(Option<(std::path::PathBuf, Index)>);

impl Pending {
    /// Writes the index (best effort, as every write of this cache).
    pub fn save(self) {
        if let Some((path, index)) = self.0 {
            store(&path, &index);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Not an auto-start vfio_ap device.
    Other,
    Auto {
        adapters: Mask,
        domains: Mask,
    },
    /// Read it again next time.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    uuid: Uuid,
    key: Option<FileKey>,
    state: State,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Index {
    dir: Option<FileKey>,
    entries: Vec<Entry>,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Bytes of a [`FileKey`] in the index: INO, SIZE, MTIME_NS, CTIME_NS.
const KEY_LEN: usize = 32;
/// The directory record: FLAG (8 bytes; 1: KEY is the directory's, 0: list it) and KEY.
const DIR_LEN: usize = 8 + KEY_LEN;
/// An entry record: UUID (36), STATE (1), 3 zero bytes, KEY, ADAPTERS (32), DOMAINS (32).
const ENTRY_LEN: usize = 36 + 4 + KEY_LEN + 64;
/// STATE of an entry record.
const UNKNOWN: u8 = 0;
const OTHER: u8 = 1;
const AUTO: u8 = 2;

/// The 8 bytes at `at` (callers pass ranges inside records of a checked length).
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(a)
}

fn key_from(b: &[u8]) -> FileKey {
    FileKey {
        ino: u64_at(b, 0),
        size: u64_at(b, 8),
        mtime_ns: u64_at(b, 16) as i64,
        ctime_ns: u64_at(b, 24) as i64,
    }
}

fn key_bytes(k: &FileKey) -> [u8; KEY_LEN] {
    let mut b = [0u8; KEY_LEN];
    b[0..8].copy_from_slice(&k.ino.to_ne_bytes());
    b[8..16].copy_from_slice(&k.size.to_ne_bytes());
    b[16..24].copy_from_slice(&k.mtime_ns.to_ne_bytes());
    b[24..32].copy_from_slice(&k.ctime_ns.to_ne_bytes());
    b
}

fn mask_from(b: &[u8]) -> Mask {
    let mut a = [0u8; 32];
    a.copy_from_slice(b);
    Mask::from_bytes(a)
}

fn zero(b: &[u8]) -> bool {
    b.iter().all(|&c| c == 0)
}

/// Bytes before the first entry record: the header line, COUNT and the directory record.
const HEAD_LEN: usize = HEADER.len() + 8 + DIR_LEN;

/// The directory's key (`None`: list it) and COUNT, from the start of an index.
fn parse_head(head: &[u8; HEAD_LEN]) -> Option<(Option<FileKey>, u64)> {
    let rest = head.strip_prefix(HEADER)?;
    let count = u64_at(rest, 0);
    let d = &rest[8..8 + DIR_LEN];
    let dir = match u64_at(d, 0) {
        0 if zero(&d[8..]) => None,
        1 => Some(key_from(&d[8..])),
        _ => return None,
    };
    Some((dir, count))
}

/// The length an index of `count` records has (so a truncated index is never taken for a
/// shorter one); `None` when no file could be that long.
fn index_len(count: u64) -> Option<u64> {
    count
        .checked_mul(ENTRY_LEN as u64)?
        .checked_add(HEAD_LEN as u64)
}

/// One entry record (`ENTRY_LEN` bytes); `None` when malformed (unused fields must be zero).
fn parse_entry(r: &[u8]) -> Option<Entry> {
    let uuid = Uuid::parse(&r[..36])?;
    let (key, masks) = (&r[40..40 + KEY_LEN], &r[40 + KEY_LEN..]);
    if !zero(&r[37..40]) {
        return None;
    }
    let (key, state) = match r[36] {
        UNKNOWN if zero(key) && zero(masks) => (None, State::Unknown),
        OTHER if zero(masks) => (Some(key_from(key)), State::Other),
        AUTO => (
            Some(key_from(key)),
            State::Auto {
                adapters: mask_from(&masks[..32]),
                domains: mask_from(&masks[32..]),
            },
        ),
        _ => return None,
    };
    Some(Entry { uuid, key, state })
}

impl Index {
    /// `None` for anything but a well-formed index: it is rebuilt then.
    fn parse(bytes: &[u8]) -> Option<Index> {
        let (dir, count) = parse_head(bytes.get(..HEAD_LEN)?.try_into().ok()?)?;
        if index_len(count)? != bytes.len() as u64 {
            return None;
        }
        let records = &bytes[HEAD_LEN..];
        let mut entries: Vec<Entry> = Vec::with_capacity(records.len() / ENTRY_LEN);
        for r in records.chunks_exact(ENTRY_LEN) {
            let e = parse_entry(r)?;
            // sorted and unique: what `render` produces
            if entries.last().is_some_and(|l| l.uuid >= e.uuid) {
                return None;
            }
            entries.push(e);
        }
        Some(Index { dir, entries })
    }

    /// The bytes of this index, written at time `now`: racy keys are dropped.
    fn render(&self, now: i64) -> Vec<u8> {
        let fresh = |k: &FileKey| k.changed_ns() <= now - RACY_NS;
        let mut out =
            Vec::with_capacity(HEADER.len() + 8 + DIR_LEN + self.entries.len() * ENTRY_LEN);
        out.extend_from_slice(HEADER);
        out.extend_from_slice(&(self.entries.len() as u64).to_ne_bytes());
        match self.dir.filter(fresh) {
            Some(k) => {
                out.extend_from_slice(&1u64.to_ne_bytes());
                out.extend_from_slice(&key_bytes(&k));
            }
            None => out.extend_from_slice(&[0; DIR_LEN]),
        }
        for e in &self.entries {
            out.extend_from_slice(&e.uuid.0);
            match (&e.key, &e.state) {
                (Some(k), State::Other) if fresh(k) => {
                    out.extend_from_slice(&[OTHER, 0, 0, 0]);
                    out.extend_from_slice(&key_bytes(k));
                    out.extend_from_slice(&[0; 64]);
                }
                (Some(k), State::Auto { adapters, domains }) if fresh(k) => {
                    out.extend_from_slice(&[AUTO, 0, 0, 0]);
                    out.extend_from_slice(&key_bytes(k));
                    out.extend_from_slice(&adapters.to_bytes());
                    out.extend_from_slice(&domains.to_bytes());
                }
                _ => out.extend_from_slice(&[0; 4 + KEY_LEN + 64]),
            }
        }
        out
    }
}

/// Only a file and directory that nobody else could have written are trusted: the callout
/// runs as root, and a forged index would hide conflicts.
fn trusted(meta: &fs::Metadata) -> bool {
    // SAFETY: geteuid has no preconditions
    let euid = unsafe { libc::geteuid() };
    meta.uid() == euid && meta.mode() & 0o022 == 0
}

/// The index file and its size (from fstat), when it is there and trusted. The index is
/// replaced by rename, never rewritten in place, so the open file keeps that size.
fn open_index(path: &Path) -> Option<(fs::File, u64)> {
    let dir = fs::symlink_metadata(path.parent()?).ok()?;
    if !dir.is_dir() || !trusted(&dir) {
        return None;
    }
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || !trusted(&meta) || meta.len() > INDEX_MAX as u64 {
        return None;
    }
    Some((f, meta.len()))
}

/// The whole index, from its start, in one read sized from fstat.
fn read_whole(f: &mut fs::File, len: u64) -> Option<Vec<u8>> {
    f.seek(SeekFrom::Start(0)).ok()?;
    let mut bytes = vec![0u8; usize::try_from(len).ok()?];
    f.read_exact(&mut bytes).ok()?;
    Some(bytes)
}

/// Best effort: tmpfs, no fsync (a lost index is only rebuilt).
fn store(path: &Path, index: &Index) {
    let Some(dir) = path.parent() else { return };
    if fs::create_dir_all(dir).is_err() {
        return;
    }
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() && trusted(&m) => {}
        _ => return,
    }
    let tmp = dir.join(format!(".autostart.index.{}", std::process::id()));
    let text = index.render(now_ns());
    let ok = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(&text)?;
        fs::rename(&tmp, path)
    })();
    if ok.is_err() {
        let _ = fs::remove_file(&tmp);
    }
}

/// Reads and classifies config `uuid`; unreadable or malformed ones are reported in `broken`
/// and stored as unknown (so they are reported again next time).
fn read_entry(dir: &Dir, uuid: Uuid, broken: &mut Vec<BadConfig>) -> Option<Entry> {
    let path = || dir.path().join(uuid.as_str());
    let unknown = Entry {
        uuid,
        key: None,
        state: State::Unknown,
    };
    match dir.read_keyed(uuid.as_str(), CONFIG_CAP) {
        Ok(None) => None,
        Ok(Some((key, bytes))) => match DeviceConfig::parse(&bytes) {
            Ok(c) => {
                let state = if c.mdev_type == VFIO_AP_TYPE && c.autostart {
                    let (m, _) = Matrix::from_attrs(&c.attrs);
                    State::Auto {
                        adapters: m.adapters,
                        domains: m.domains,
                    }
                } else {
                    State::Other
                };
                Some(Entry {
                    uuid,
                    key: Some(key),
                    state,
                })
            }
            Err(e) => {
                broken.push(BadConfig {
                    path: path(),
                    reason: e.to_string(),
                });
                Some(unknown)
            }
        },
        Err(e) => {
            broken.push(BadConfig {
                path: path(),
                reason: format!("cannot read: {e}"),
            });
            Some(unknown)
        }
    }
}

/// The entry for `uuid`: `old` when its key still matches, else read afresh (`true`).
fn refresh(
    dir: &Dir,
    uuid: Uuid,
    old: Option<Entry>,
    broken: &mut Vec<BadConfig>,
) -> Result<(Option<Entry>, bool), HostError> {
    if let Some(old) = old.filter(|e| e.key.is_some()) {
        let now = dir
            .stat(uuid.as_str())
            .map_err(|source| HostError::list(&dir.path().join(uuid.as_str()), source))?;
        if now == old.key {
            return Ok((Some(old), false));
        }
    }
    Ok((read_entry(dir, uuid, broken), true))
}

/// Entry records read at a time by [`unchanged`]: a buffer on the stack, reused, instead of
/// the whole index in fresh memory (136 KB for 1,000 configs: its page faults were a tenth
/// of a `pre define` besides the `fstatat`s).
const CHUNK: usize = 32;

/// The common case, answered without building an index: the directory and every config are
/// the versions the index recorded (each config's key is compared, one `fstatat` each: a
/// config rewritten in place, by mdevctl or by hand, changes only its own key). `index` is the
/// index's bytes from the start, `len` bytes long. `None` as soon as anything differs or the
/// index holds an unknown entry: then [`scan`] takes the full path, which reads what changed
/// and rewrites the index. When this answers, the full path would have kept every entry as it
/// was and returned the same configs.
fn unchanged(
    dir: &Dir,
    dkey: FileKey,
    index: &mut dyn Read,
    len: u64,
    keep: &mut dyn FnMut(&Autostart) -> bool,
) -> Option<Vec<Autostart>> {
    let mut head = [0u8; HEAD_LEN];
    index.read_exact(&mut head).ok()?;
    let (dir_key, count) = parse_head(&head)?;
    if dir_key != Some(dkey) || index_len(count)? != len {
        return None;
    }
    let mut out = Vec::new();
    let mut last: Option<Uuid> = None;
    let mut buf = [0u8; CHUNK * ENTRY_LEN];
    let mut left = count;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        left -= n as u64;
        let chunk = &mut buf[..n * ENTRY_LEN];
        index.read_exact(chunk).ok()?;
        for r in chunk.chunks_exact(ENTRY_LEN) {
            let e = parse_entry(r)?;
            if last.is_some_and(|l| l >= e.uuid) {
                return None;
            }
            last = Some(e.uuid);
            let key = e.key?;
            // an error is reported by the full path, which stats the file again
            if dir.stat(e.uuid.as_str()).ok()? != Some(key) {
                return None;
            }
            if let State::Auto { adapters, domains } = e.state {
                let a = Autostart {
                    uuid: e.uuid,
                    adapters,
                    domains,
                };
                if keep(&a) {
                    out.push(a);
                }
            }
        }
    }
    Some(out)
}

/// The auto-start vfio_ap configs under `etc/mdevctl.d/matrix` for which `keep` holds (the
/// callout keeps only those that share an APQN with the new device), through the index.
pub fn scan(root: &Root, keep: &mut dyn FnMut(&Autostart) -> bool) -> Result<Scan, HostError> {
    let path = root.mdevctl_configs();
    let list_err = |source| HostError::list(&path, source);
    let Some(dir) = Dir::open(&path).map_err(list_err)? else {
        return Ok(Scan::default());
    };
    let dkey = dir.key().map_err(list_err)?;
    let index_path = root.autostart_index();
    let mut file = open_index(&index_path);
    if let Some((f, len)) = &mut file {
        if let Some(autostart) = unchanged(&dir, dkey, f, *len, keep) {
            return Ok(Scan {
                autostart,
                broken: Vec::new(),
                index: Pending(None),
            });
        }
    }
    let old = file
        .and_then(|(mut f, len)| read_whole(&mut f, len))
        .and_then(|b| Index::parse(&b))
        .unwrap_or_default();
    let mut broken = Vec::new();
    let mut entries = Vec::new();
    let mut changed = old.dir != Some(dkey);
    if !changed {
        // same directory version: same names, only contents may have changed
        entries.reserve(old.entries.len());
        for e in old.entries {
            let (new, read) = refresh(&dir, e.uuid, Some(e), &mut broken)?;
            changed |= read;
            entries.extend(new);
        }
    } else {
        let mut by_uuid: HashMap<Uuid, Entry> =
            old.entries.into_iter().map(|e| (e.uuid, e)).collect();
        let mut names: Vec<Uuid> = dir
            .names()
            .map_err(list_err)?
            .iter()
            .filter_map(|n| Uuid::parse(n.as_bytes()))
            .collect();
        names.sort();
        for n in names {
            let (new, _) = refresh(&dir, n, by_uuid.remove(&n), &mut broken)?;
            entries.extend(new);
        }
    }
    let index = Index {
        dir: Some(dkey),
        entries,
    };
    let autostart = index
        .entries
        .iter()
        .filter_map(|e| match e.state {
            State::Auto { adapters, domains } => Some(Autostart {
                uuid: e.uuid,
                adapters,
                domains,
            }),
            _ => None,
        })
        .filter(|a| keep(a))
        .collect();
    Ok(Scan {
        autostart,
        broken,
        index: Pending(changed.then_some((index_path, index))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn config(a: u8, d: u8, start: &str) -> String {
        format!(
            r#"{{"mdev_type":"vfio_ap-passthrough","start":"{start}","attrs":[{{"assign_adapter":"{a}"}},{{"assign_domain":"{d}"}}]}}"#
        )
    }

    fn uuid(i: u32) -> String {
        format!("{i:08x}-0000-4000-8000-000000000000")
    }

    /// What a full read (no index) says, as `(uuid, adapters, domains)`.
    fn truth(root: &Root) -> Vec<(String, String, String)> {
        let (defined, _) = mdev::defined(root).unwrap();
        defined
            .into_iter()
            .filter(|d| d.autostart)
            .map(|d| {
                (
                    d.uuid,
                    d.matrix.adapters.ranges(),
                    d.matrix.domains.ranges(),
                )
            })
            .collect()
    }

    /// A scan whose index is saved, as the callout does when it accepts a device.
    fn via_index(root: &Root) -> Vec<(String, String, String)> {
        let s = scan(root, &mut |_| true).unwrap();
        s.index.save();
        s.autostart
            .into_iter()
            .map(|a| (a.uuid.to_string(), a.adapters.ranges(), a.domains.ranges()))
            .collect()
    }

    /// Makes every file and the directory look older than the racy window.
    fn age(root: &Root) {
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(10);
        let dir = root.mdevctl_configs();
        for e in fs::read_dir(&dir).unwrap() {
            let f = fs::File::options()
                .write(true)
                .open(e.unwrap().path())
                .unwrap();
            f.set_modified(old).unwrap();
        }
        // ctime cannot be set back: these tests rely on mtime being part of the key and on
        // the index storing racy entries as unknown, so they read files again (still correct)
    }

    #[test]
    fn index_answers_like_a_full_read_through_every_kind_of_change() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let dir = root.mdevctl_configs();
        fs::create_dir_all(&dir).unwrap();
        for i in 0..20 {
            let start = if i % 3 == 0 { "manual" } else { "auto" };
            fs::write(dir.join(uuid(i)), config(i as u8, 7, start)).unwrap();
        }
        fs::write(dir.join("not-a-uuid"), "x").unwrap();
        age(&root);
        assert_eq!(via_index(&root), truth(&root));
        assert!(root.autostart_index().exists());
        // again from the index
        assert_eq!(via_index(&root), truth(&root));
        // in-place edit (same size), new file, removal, rename-over
        fs::write(dir.join(uuid(1)), config(9, 7, "auto")).unwrap();
        fs::write(dir.join(uuid(30)), config(30, 8, "auto")).unwrap();
        fs::remove_file(dir.join(uuid(2))).unwrap();
        fs::write(dir.join(".tmp"), config(200, 200, "auto")).unwrap();
        fs::rename(dir.join(".tmp"), dir.join(uuid(4))).unwrap();
        assert_eq!(via_index(&root), truth(&root));
        assert_eq!(via_index(&root), truth(&root));
        let got = via_index(&root);
        assert!(
            got.contains(&(uuid(4), "200".into(), "200".into())),
            "{got:?}"
        );
        assert!(got.contains(&(uuid(1), "9".into(), "7".into())), "{got:?}");
        assert!(!got.iter().any(|g| g.0 == uuid(2)));
    }

    #[test]
    fn a_trusted_index_is_used_and_a_forged_or_broken_one_is_not() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let dir = root.mdevctl_configs();
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(uuid(1)), config(1, 1, "auto")).unwrap();
        let d = Dir::open(&dir).unwrap().unwrap();
        // an index older than the racy window, claiming other contents for the same key
        let forged = Index {
            dir: Some(d.key().unwrap()),
            entries: vec![Entry {
                uuid: Uuid::parse(uuid(1).as_bytes()).unwrap(),
                key: d.stat(&uuid(1)).unwrap(),
                state: State::Auto {
                    adapters: Mask::EMPTY.with(5),
                    domains: Mask::EMPTY.with(5),
                },
            }],
        }
        .render(i64::MAX / 2);
        let ip = root.autostart_index();
        fs::create_dir_all(ip.parent().unwrap()).unwrap();
        fs::write(&ip, &forged).unwrap();
        // ours and not writable by others: it is believed (this is what makes it fast)
        assert_eq!(via_index(&root), vec![(uuid(1), "5".into(), "5".into())]);
        // writable by others: ignored, the file is read
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&ip, fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(via_index(&root), vec![(uuid(1), "1".into(), "1".into())]);
        // garbage, and the previous format: ignored and rebuilt
        for junk in [
            &b"nodedev-helper autostart index 3\ndir 1 2\n"[..],
            b"nodedev-helper autostart index 2\ndir -\n",
        ] {
            fs::write(&ip, junk).unwrap();
            assert_eq!(via_index(&root), vec![(uuid(1), "1".into(), "1".into())]);
            let bytes = fs::read(&ip).unwrap();
            assert!(bytes.starts_with(HEADER) && Index::parse(&bytes).is_some());
        }
    }

    #[test]
    fn racy_entries_are_stored_as_unknown_and_broken_configs_reported_each_time() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let dir = root.mdevctl_configs();
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(uuid(1)), config(1, 1, "auto")).unwrap();
        fs::write(dir.join(uuid(2)), "{ not json").unwrap();
        for _ in 0..2 {
            let s = scan(&root, &mut |_| true).unwrap();
            assert_eq!(s.autostart.len(), 1);
            assert_eq!(s.broken.len(), 1, "{:?}", s.broken);
            assert!(s.broken[0].path.ends_with(uuid(2)));
            s.index.save();
        }
        let stored = Index::parse(&fs::read(root.autostart_index()).unwrap()).unwrap();
        // just written files are racy: nothing trusted yet
        assert_eq!(stored.dir, None);
        let states: Vec<(String, Option<FileKey>, State)> = stored
            .entries
            .into_iter()
            .map(|e| (e.uuid.to_string(), e.key, e.state))
            .collect();
        assert_eq!(
            states,
            [
                (uuid(1), None, State::Unknown),
                (uuid(2), None, State::Unknown)
            ]
        );
    }

    /// The index a run long after the last write would have stored (no racy entries): the
    /// state in which `unchanged` answers without reading any config.
    fn settled_index(root: &Root) -> Index {
        let _ = fs::remove_file(root.autostart_index());
        let Pending(Some((_, index))) = scan(root, &mut |_| true).unwrap().index else {
            panic!("a scan without an index rebuilds it");
        };
        index
    }

    #[test]
    fn the_fast_path_answers_only_while_every_key_is_unchanged() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let dir = root.mdevctl_configs();
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(uuid(1)), config(1, 1, "auto")).unwrap();
        fs::write(dir.join(uuid(2)), config(2, 2, "manual")).unwrap();
        fs::write(dir.join(uuid(3)), config(3, 3, "auto")).unwrap();
        let bytes = settled_index(&root).render(i64::MAX / 2);
        let d = Dir::open(&dir).unwrap().unwrap();
        let all = |b: &[u8]| {
            let len = b.len() as u64;
            unchanged(&d, d.key().unwrap(), &mut &b[..], len, &mut |_| true)
        };
        let got = all(&bytes).expect("nothing changed: the fast path answers");
        let uuids: Vec<String> = got.iter().map(|a| a.uuid.to_string()).collect();
        assert_eq!(uuids, [uuid(1), uuid(3)]);
        assert_eq!(got[1].adapters, Mask::EMPTY.with(3));
        // the filter only selects
        let len = bytes.len() as u64;
        let none = unchanged(&d, d.key().unwrap(), &mut &bytes[..], len, &mut |_| false);
        assert_eq!(none, Some(Vec::new()));

        // rewritten in place by hand: same size, mtime set back to the same instant; only
        // ctime (and the contents) differ. One clock tick later, or ctime could be equal too
        // (the racy window covers that case in a real index).
        let path = dir.join(uuid(2));
        let before = fs::metadata(&path).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let edited = config(127, 2, "auto");
        assert_eq!(edited.len() as u64, before.len());
        fs::write(&path, &edited).unwrap();
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(before.modified().unwrap())
            .unwrap();
        let after = fs::metadata(&path).unwrap();
        assert_eq!(
            (after.len(), after.modified().unwrap(), after.ino()),
            (before.len(), before.modified().unwrap(), before.ino())
        );
        assert_eq!(all(&bytes), None, "a changed ctime must end the fast path");
        // the full path, given the same index, reads the edited config
        let ip = root.autostart_index();
        fs::create_dir_all(ip.parent().unwrap()).unwrap();
        fs::write(&ip, &bytes).unwrap();
        let s = scan(&root, &mut |_| true).unwrap();
        let got: Vec<(String, String)> = s
            .autostart
            .iter()
            .map(|a| (a.uuid.to_string(), a.adapters.ranges()))
            .collect();
        assert_eq!(
            got,
            [
                (uuid(1), "1".into()),
                (uuid(2), "127".into()),
                (uuid(3), "3".into())
            ]
        );
        // an unknown entry, a removed file (another directory version): the full path
        let mut settled = settled_index(&root);
        assert!(all(&settled.render(i64::MAX / 2)).is_some());
        settled.entries[0].key = None;
        settled.entries[0].state = State::Unknown;
        assert_eq!(all(&settled.render(i64::MAX / 2)), None);
        let bytes = settled_index(&root).render(i64::MAX / 2);
        fs::remove_file(dir.join(uuid(3))).unwrap();
        assert_eq!(all(&bytes), None, "a removal changes the directory's key");
    }

    #[test]
    fn the_fast_path_reads_records_in_chunks_and_checks_the_length() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let dir = root.mdevctl_configs();
        fs::create_dir_all(&dir).unwrap();
        let n = 2 * CHUNK as u32 + 5;
        for i in 0..n {
            fs::write(dir.join(uuid(i)), config(i as u8, 1, "auto")).unwrap();
        }
        let bytes = settled_index(&root).render(i64::MAX / 2);
        let d = Dir::open(&dir).unwrap().unwrap();
        let run = |b: &[u8], len: usize| {
            unchanged(&d, d.key().unwrap(), &mut &b[..], len as u64, &mut |_| true)
        };
        let got = run(&bytes, bytes.len()).expect("unchanged");
        let want: Vec<String> = (0..n).map(uuid).collect();
        let got: Vec<String> = got.iter().map(|a| a.uuid.to_string()).collect();
        assert_eq!(got, want);
        // a length other than the count's, or fewer bytes than the count says: the full path
        assert_eq!(run(&bytes, bytes.len() + 1), None);
        assert_eq!(run(&bytes[..bytes.len() - 1], bytes.len()), None);
        let last_chunk = bytes.len() - 5 * ENTRY_LEN;
        assert_eq!(run(&bytes[..last_chunk], bytes.len()), None);
    }

    #[test]
    fn index_roundtrips_and_any_damage_is_refused() {
        let k = FileKey {
            ino: 5,
            size: 100,
            mtime_ns: 1,
            ctime_ns: 2,
        };
        let idx = Index {
            dir: Some(k),
            entries: vec![
                Entry {
                    uuid: Uuid::parse(uuid(1).as_bytes()).unwrap(),
                    key: Some(k),
                    state: State::Auto {
                        adapters: [0u8, 1, 2, 255].into_iter().collect(),
                        domains: Mask::EMPTY,
                    },
                },
                Entry {
                    uuid: Uuid::parse(uuid(2).as_bytes()).unwrap(),
                    key: Some(k),
                    state: State::Other,
                },
                Entry {
                    uuid: Uuid::parse(uuid(3).as_bytes()).unwrap(),
                    key: None,
                    state: State::Unknown,
                },
            ],
        };
        let bytes = idx.render(10 * RACY_NS);
        assert_eq!(
            bytes.len(),
            HEADER.len() + 8 + DIR_LEN + 3 * ENTRY_LEN,
            "fixed-size records"
        );
        assert_eq!(Index::parse(&bytes), Some(idx));
        // racy keys are not stored
        let racy = Index::parse(&Index::parse(&bytes).unwrap().render(RACY_NS)).unwrap();
        assert!(racy.dir.is_none() && racy.entries.iter().all(|e| e.key.is_none()));
        // every truncation is refused (the count says how many records follow), never
        // misread as a shorter index
        for cut in 0..bytes.len() {
            assert_eq!(Index::parse(&bytes[..cut]), None, "cut at {cut}");
        }
        // unused fields must be zero, STATE one of three, UUIDs sorted and well-formed
        let first = HEADER.len() + 8 + DIR_LEN;
        let damaged = |at: usize, v: u8| {
            let mut b = bytes.clone();
            b[at] = v;
            Index::parse(&b)
        };
        assert_eq!(damaged(first + 36, 3), None, "unknown STATE");
        assert_eq!(damaged(first + 37, 1), None, "padding");
        assert_eq!(
            damaged(first + ENTRY_LEN + 40 + KEY_LEN, 1),
            None,
            "mask of OTHER"
        );
        assert_eq!(
            damaged(first + 2 * ENTRY_LEN + 40, 1),
            None,
            "key of UNKNOWN"
        );
        assert_eq!(damaged(first + 8, b'x'), None, "UUID");
        assert_eq!(damaged(first + ENTRY_LEN + 7, b'0'), None, "order");
        assert_eq!(damaged(HEADER.len() + 8, 2), None, "directory FLAG");
        assert!(damaged(first + 40, 9).is_some(), "a key is any number");
    }
}
