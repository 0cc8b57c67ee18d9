//! The s390-tools AP configuration lock: `/run/lock/s390apconfig.lock`.
//!
//! chzdev, lszdev and s390-tools' mdevctl callout `ap-check` serialise changes to the AP
//! configuration (masks, vfio_ap mdevs) with a PID lock file (s390-tools `libutil/
//! util_lockfile.c`, doc/s390-tools.md "The shared lock"). We speak exactly the same protocol
//! so that our callout and theirs, and chzdev, exclude each other:
//!
//! - take: write `"<pid>\n"` to a temporary file in the same directory, then `link(2)` it to
//!   the lock path; the link either succeeds atomically or fails with EEXIST. (s390-tools names
//!   its temporary file `<lock><5-digit pid><2 hex digits>`; ours has no name at all, or a
//!   unique one, so a leftover of a killed run can never collide with a later run.)
//! - stale: the lock is stale when the PID it names no longer exists (`kill(pid, 0)` = ESRCH),
//!   or when it holds no PID and is older than 120 s (a writer that died mid-way). A stale
//!   lock is removed and taking is retried at once.
//! - release: only when the file names the expected PID.
//!
//! The mdevctl callout takes the lock on behalf of its parent (mdevctl's PID) in `pre`, so it
//! stays held while mdevctl changes the device, and releases it in `post`.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::sysfs;
use std::time::{Duration, Instant, SystemTime};

/// A lock file without a PID older than this is stale (s390-tools `WAITPID`).
pub const NO_PID_STALE_AFTER: Duration = Duration::from_secs(120);

/// Default bound on waiting for a lock another live process holds.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the AP configuration lock {} is held by process {pid} (still running); gave up after {} s. \
         Another chzdev, mdevctl or ap-check is changing the AP configuration; retry when it is done, \
         or remove the file if that process is hung",
        path.display(), waited.as_secs()
    )]
    Busy {
        path: PathBuf,
        pid: i32,
        waited: Duration,
    },
    #[error(
        "the AP configuration lock {} holds no process id and is younger than {} s; gave up after {} s",
        path.display(), NO_PID_STALE_AFTER.as_secs(), waited.as_secs()
    )]
    BusyNoPid { path: PathBuf, waited: Duration },
    #[error("cannot {verb} the AP configuration lock {}: {source}", path.display())]
    Io {
        verb: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// Who holds the lock, as read from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// Nobody: the file does not exist.
    Free,
    /// The file names this PID.
    Pid(i32),
    /// The file exists but holds no PID (yet).
    NoPid,
}

/// Outcome of [`release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    Released,
    /// There was no lock file.
    NotHeld,
    /// The lock names another PID (or none); it was left alone.
    HeldByOther(Holder),
}

/// Reads the lock file. Like s390-tools, the PID is the leading decimal number (`atoi`).
pub fn holder(path: &Path) -> Result<Holder, LockError> {
    // non-blocking open and a regular-file check: a FIFO in place of the lock must not hang
    // every AP command
    let mut f = match crate::sysfs::open_regular(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Holder::Free),
        Err(source) => {
            return Err(LockError::Io {
                verb: "read",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut buf = [0u8; 40];
    let n = f.read(&mut buf).map_err(|source| LockError::Io {
        verb: "read",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(match atoi(&buf[..n]) {
        0 => Holder::NoPid,
        pid => Holder::Pid(pid),
    })
}

/// C `atoi`: optional leading whitespace and sign, then digits; 0 when there are none.
fn atoi(b: &[u8]) -> i32 {
    let s = std::str::from_utf8(b).unwrap_or("");
    let s = s.trim_start();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let digits: String = s
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .take(10)
        .collect();
    let v: i64 = digits.parse().unwrap_or(0);
    let v = if neg { -v } else { v };
    i32::try_from(v).unwrap_or(0)
}

/// Whether a process exists. EPERM means it exists but belongs to someone else (s390-tools
/// assumes the same).
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::ESRCH) => false,
        Err(_) => true,
    }
}

/// Removes the lock when it is stale; returns true when the caller may retry at once.
fn clear_if_stale(path: &Path) -> Result<bool, LockError> {
    match holder(path)? {
        Holder::Free => Ok(true),
        Holder::Pid(pid) if !pid_alive(pid) => {
            let _ = fs::remove_file(path);
            Ok(true)
        }
        Holder::Pid(_) => Ok(false),
        Holder::NoPid => {
            let old = fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > NO_PID_STALE_AFTER);
            if old {
                let _ = fs::remove_file(path);
            }
            Ok(old)
        }
    }
}

/// Takes the lock for `owner` (a PID: ours, or our parent's for the mdevctl callout),
/// waiting at most `wait` for a live holder. Returns `Ok(true)` when taken now, `Ok(false)`
/// when `owner` already held it.
pub fn acquire(path: &Path, owner: i32, wait: Duration) -> Result<bool, LockError> {
    let io = |verb, source| LockError::Io {
        verb,
        path: path.to_path_buf(),
        source,
    };
    if holder(path)? == Holder::Pid(owner) {
        return Ok(false);
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
    let mut pending =
        LockFile::new(dir, owner).map_err(|e| io("create a temporary file for", e))?;
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match pending.link(path) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("take", e)),
        }
        if clear_if_stale(path)? {
            continue;
        }
        let waited = start.elapsed();
        if waited >= wait {
            return Err(match holder(path)? {
                Holder::Pid(pid) => LockError::Busy {
                    path: path.to_path_buf(),
                    pid,
                    waited,
                },
                _ => LockError::BusyNoPid {
                    path: path.to_path_buf(),
                    waited,
                },
            });
        }
        std::thread::sleep(pause.min(wait - waited));
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// The lock's contents, `"<pid>\n"`, in a file that is not yet the lock: `link(2)` makes it
/// the lock atomically (or fails with EEXIST). Preferably a nameless `O_TMPFILE` file, so a
/// run killed at any point leaves no temporary file behind; where the file system or a missing
/// `/proc` does not allow linking it, a uniquely named file (see [`sysfs::write_atomic`]'s
/// names) that is removed on drop, and whose leftovers from killed runs are cleaned.
enum LockFile {
    Anonymous(fs::File),
    Named(PathBuf),
}

const TEMP_NAME: &str = "s390apconfig.lock";

impl LockFile {
    fn new(dir: &Path, owner: i32) -> io::Result<LockFile> {
        let content = format!("{owner}\n");
        if let Ok(mut f) = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o644)
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .open(dir)
        {
            use std::os::unix::fs::PermissionsExt;
            f.write_all(content.as_bytes())?;
            // O_TMPFILE honours the umask; the lock is world-readable like s390-tools'
            f.set_permissions(fs::Permissions::from_mode(0o644))?;
            if Self::proc_fd(&f).exists() {
                return Ok(LockFile::Anonymous(f));
            }
        }
        sysfs::clean_stale_temps(dir, TEMP_NAME);
        let (tmp, mut f) = sysfs::create_temp(dir, TEMP_NAME, 0o644)?;
        let written = f.write_all(content.as_bytes());
        let named = LockFile::Named(tmp);
        written.map(|()| named)
    }

    fn proc_fd(f: &fs::File) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()))
    }

    /// Makes this file the lock at `path`; EEXIST while someone holds it.
    fn link(&mut self, path: &Path) -> io::Result<()> {
        match self {
            LockFile::Named(tmp) => fs::hard_link(tmp, path),
            LockFile::Anonymous(f) => {
                let from = std::ffi::CString::new(Self::proc_fd(f).into_os_string().into_vec())
                    .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
                let to = std::ffi::CString::new(path.as_os_str().as_bytes())
                    .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
                // SAFETY: both are valid NUL-terminated paths; linkat does not keep them
                let r = unsafe {
                    libc::linkat(
                        libc::AT_FDCWD,
                        from.as_ptr(),
                        libc::AT_FDCWD,
                        to.as_ptr(),
                        libc::AT_SYMLINK_FOLLOW,
                    )
                };
                if r == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            }
        }
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // only the file this process created
        if let LockFile::Named(tmp) = self {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Releases the lock if it names `owner`; leaves anybody else's lock alone.
pub fn release(path: &Path, owner: i32) -> Result<Released, LockError> {
    match holder(path)? {
        Holder::Free => Ok(Released::NotHeld),
        Holder::Pid(p) if p == owner => match fs::remove_file(path) {
            Ok(()) => Ok(Released::Released),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Released::NotHeld),
            Err(source) => Err(LockError::Io {
                verb: "remove",
                path: path.to_path_buf(),
                source,
            }),
        },
        other => Ok(Released::HeldByOther(other)),
    }
}

/// The lock held by this process for the lifetime of the guard (what chzdev does).
#[derive(Debug)]
pub struct Guard {
    path: PathBuf,
    owner: i32,
    taken: bool,
}

impl Guard {
    /// Takes the lock for this process; a lock this process already holds is reused and left
    /// held on drop.
    pub fn take(path: &Path, wait: Duration) -> Result<Guard, LockError> {
        let owner = std::process::id() as i32;
        let taken = acquire(path, owner, wait)?;
        Ok(Guard {
            path: path.to_path_buf(),
            owner,
            taken,
        })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.taken {
            let _ = release(&self.path, self.owner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead_pid() -> i32 {
        // A child that has exited and been reaped: its PID is free (reuse within the test
        // is practically impossible).
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id() as i32;
        c.wait().unwrap();
        pid
    }

    #[test]
    fn take_writes_pid_and_release_removes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run/lock/s390apconfig.lock");
        let me = std::process::id() as i32;
        assert!(acquire(&p, me, Duration::ZERO).unwrap());
        assert_eq!(fs::read_to_string(&p).unwrap(), format!("{me}\n"));
        // re-entrant for the same owner
        assert!(!acquire(&p, me, Duration::ZERO).unwrap());
        // only the lock file is left: the temporary file is gone
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
        assert_eq!(
            release(&p, me + 1).unwrap(),
            Released::HeldByOther(Holder::Pid(me))
        );
        assert_eq!(release(&p, me).unwrap(), Released::Released);
        assert!(!p.exists());
        assert_eq!(release(&p, me).unwrap(), Released::NotHeld);
    }

    #[test]
    fn live_holder_makes_us_wait_then_fail_with_its_pid() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s390apconfig.lock");
        let parent = nix::unistd::getppid().as_raw();
        fs::write(&p, format!("{parent}\n")).unwrap();
        let t = Instant::now();
        let e = acquire(&p, std::process::id() as i32, Duration::from_millis(200)).unwrap_err();
        assert!(t.elapsed() >= Duration::from_millis(200));
        let msg = e.to_string();
        assert!(msg.contains(&format!("held by process {parent}")), "{msg}");
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        // untouched
        assert_eq!(fs::read_to_string(&p).unwrap(), format!("{parent}\n"));
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn dead_holder_is_stale() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s390apconfig.lock");
        fs::write(&p, format!("{}\n", dead_pid())).unwrap();
        let me = std::process::id() as i32;
        assert!(acquire(&p, me, Duration::ZERO).unwrap());
        assert_eq!(holder(&p).unwrap(), Holder::Pid(me));
    }

    #[test]
    fn pidless_lock_is_stale_only_when_old() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s390apconfig.lock");
        fs::write(&p, "").unwrap();
        let me = std::process::id() as i32;
        let e = acquire(&p, me, Duration::from_millis(50)).unwrap_err();
        assert!(matches!(e, LockError::BusyNoPid { .. }), "{e}");
        let old = SystemTime::now() - Duration::from_secs(121);
        fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(acquire(&p, me, Duration::ZERO).unwrap());
    }

    #[test]
    fn released_lock_is_taken_by_a_waiter() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s390apconfig.lock");
        let parent = nix::unistd::getppid().as_raw();
        acquire(&p, parent, Duration::ZERO).unwrap();
        let p2 = p.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            release(&p2, parent).unwrap()
        });
        let me = std::process::id() as i32;
        assert!(acquire(&p, me, Duration::from_secs(10)).unwrap());
        assert_eq!(t.join().unwrap(), Released::Released);
        assert_eq!(holder(&p).unwrap(), Holder::Pid(me));
    }

    #[test]
    fn atoi_like_c() {
        assert_eq!(atoi(b"123\n"), 123);
        assert_eq!(atoi(b"  42abc"), 42);
        assert_eq!(atoi(b"abc"), 0);
        assert_eq!(atoi(b""), 0);
    }
}
