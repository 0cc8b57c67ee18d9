//! Reading and writing sysfs attributes and boot-critical files, with the path in every error.
//!
//! Every read is bounded and cannot block: the file is opened `O_NONBLOCK | O_NOCTTY`, must be
//! a regular file (sysfs attributes are; a FIFO, a device such as `/dev/zero` or a directory
//! planted where a config or the udev rule should be is refused with the path in the error),
//! and at most a documented number of bytes is read ([`ATTR_MAX`] unless the caller says
//! otherwise). So no file a user or another tool left behind can hang a command that holds
//! the AP configuration lock, or make it allocate without bound.
//!
//! Sysfs attributes are written with a single `write(2)` of the whole value (the kernel parses
//! one write per store). Files that boot depends on (udev rules, configs) are written
//! atomically: a temporary file with a unique name in the same directory, fsync, rename, fsync
//! of the directory.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The most any attribute or small file is read: sysfs shows at most one page (4 KiB) per
/// attribute; vfio_ap's `matrix` of a full 256 x 256 configuration would be 512 KiB; mdevctl
/// configs are a few hundred bytes.
pub const ATTR_MAX: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    // The OS error is part of the message and deliberately not the `source()`: with both,
    // anyhow's `{:#}` printed it twice ("...: No such file or directory: No such file ...").
    #[error("cannot read {}: {cause}", path.display())]
    Read { path: PathBuf, cause: io::Error },
    #[error("cannot write {}: {cause}", path.display())]
    Write { path: PathBuf, cause: io::Error },
}

impl FileError {
    /// The OS error number, when there is one (EBUSY from apmask, EINVAL, ...).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            FileError::Read { cause: source, .. } | FileError::Write { cause: source, .. } => {
                source.raw_os_error()
            }
        }
    }

    fn read(path: &Path, cause: io::Error) -> FileError {
        FileError::Read {
            path: path.to_path_buf(),
            cause,
        }
    }
}

/// An error about the state of the host: a file that cannot be read or written, a directory
/// that cannot be listed, or a value that makes no sense, each naming the path. Shared by the
/// readers of mdevs, cards and masks, so the callout, `ap` and `passthrough` report alike.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("cannot list {}: {source}", path.display())]
    List { path: PathBuf, source: io::Error },
    #[error("{}: {msg}", path.display())]
    Bad { path: PathBuf, msg: String },
    /// A line of a text file (the udev rule) that makes no sense.
    #[error("{}:{line}: {msg}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        msg: String,
    },
}

impl HostError {
    pub fn bad(path: &Path, msg: impl Into<String>) -> HostError {
        HostError::Bad {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
    pub fn list(path: &Path, source: io::Error) -> HostError {
        HostError::List {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What kind of file this is, for the message when it is not a regular one.
fn not_regular(ft: fs::FileType) -> io::Error {
    let kind = if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_dir() {
        "a directory"
    } else {
        "not a plain file"
    };
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not a regular file ({kind}); refusing to read it"),
    )
}

fn too_large(cap: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("larger than {cap} bytes; refusing to read it"),
    )
}

/// Opens `path` for a read that cannot block: `O_NONBLOCK` (a FIFO opens at once instead of
/// waiting for a writer), `O_NOCTTY`, and a regular-file check on the open descriptor.
pub fn open_regular(path: &Path) -> io::Result<fs::File> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)?;
    let ft = f.metadata()?.file_type();
    if !ft.is_file() {
        return Err(not_regular(ft));
    }
    Ok(f)
}

/// Reads at most `cap` bytes of an open regular file; more is an error. Usually one `read`
/// (the callout reads about 1,400 small files per run): a short read is taken as the end of
/// the file, which holds for regular files and sysfs attributes (the kernel fills the buffer
/// up to the end).
pub fn read_open(f: &mut fs::File, cap: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; cap.min(4096) + 1];
    let mut len = 0;
    loop {
        let n = match f.read(&mut buf[len..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        len += n;
        if len > cap {
            return Err(too_large(cap));
        }
        if n == 0 || len < buf.len() {
            break;
        }
        buf.resize((buf.len() * 2).min(cap + 1), 0);
    }
    buf.truncate(len);
    Ok(buf)
}

/// Reads a whole regular file or attribute of at most `cap` bytes; `Ok(None)` when it does
/// not exist. The one place that turns "absent" into a value: callers decide what absence
/// means (no rule file, no `ap_max_*_id` on an old kernel, an mdev that went away).
pub fn read_optional_bytes(path: &Path, cap: usize) -> Result<Option<Vec<u8>>, FileError> {
    let mut f = match open_regular(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FileError::read(path, e)),
    };
    read_open(&mut f, cap)
        .map(Some)
        .map_err(|e| FileError::read(path, e))
}

/// [`read_optional_bytes`] with [`ATTR_MAX`], as UTF-8 text.
pub fn read_optional(path: &Path) -> Result<Option<String>, FileError> {
    match read_optional_bytes(path, ATTR_MAX)? {
        None => Ok(None),
        Some(b) => String::from_utf8(b).map(Some).map_err(|_| {
            FileError::read(
                path,
                io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"),
            )
        }),
    }
}

/// Reads a whole attribute or small file (bounded, non-blocking); absence is an error.
pub fn read(path: &Path) -> Result<String, FileError> {
    read_optional(path)?.ok_or_else(|| FileError::read(path, io::ErrorKind::NotFound.into()))
}

/// Reads an attribute and strips the trailing newline the kernel appends.
pub fn read_trimmed(path: &Path) -> Result<String, FileError> {
    read(path).map(|s| s.trim_end_matches('\n').to_string())
}

/// Writes `value` to an existing sysfs attribute in one `write(2)`, without creating or
/// truncating anything (sysfs needs neither, and a fake tree must not grow files).
pub fn write_attr(path: &Path, value: &str) -> Result<(), FileError> {
    let err = |source| FileError::Write {
        path: path.to_path_buf(),
        cause: source,
    };
    let mut f = fs::OpenOptions::new().write(true).open(path).map_err(err)?;
    let n = f.write(value.as_bytes()).map_err(err)?;
    if n != value.len() {
        return Err(err(io::Error::new(io::ErrorKind::WriteZero, "short write")));
    }
    Ok(())
}

/// Random bits for unique temporary names (getrandom; the time and PID if it fails).
pub fn random_u64() -> u64 {
    let mut v = [0u8; 8];
    // SAFETY: v is a valid writable buffer of 8 bytes
    let n = unsafe { libc::getrandom(v.as_mut_ptr().cast(), v.len(), libc::GRND_NONBLOCK) };
    if n == 8 {
        return u64::from_ne_bytes(v);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32)
}

/// The prefix of every temporary file [`write_atomic`] makes for `name`: `.NAME.tmp.`, then
/// `PID.RANDOM`.
fn temp_prefix(name: &str) -> String {
    format!(".{name}.tmp.")
}

/// Creates a new temporary file `.NAME.tmp.PID.RANDOM` in `dir` with `O_EXCL`; a name that
/// exists already (a leftover, a race) is never opened, removed or reused: another one is drawn.
pub fn create_temp(dir: &Path, name: &str, mode: u32) -> io::Result<(PathBuf, fs::File)> {
    let mut tries = 0;
    loop {
        let tmp = dir.join(format!(
            "{}{}.{:016x}",
            temp_prefix(name),
            std::process::id(),
            random_u64()
        ));
        match fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 16 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// A new file in `dir` that has no name (`O_TMPFILE`), for output nobody else must see or
/// find; where the file system lacks `O_TMPFILE`, a unique name created with `O_EXCL` and
/// unlinked at once. Nothing is left behind even when the process is killed.
pub fn anonymous_file(dir: &Path) -> io::Result<fs::File> {
    match fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(dir)
    {
        Ok(f) => Ok(f),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL)
            ) =>
        {
            let (path, f) = create_temp(dir, "anonymous", 0o600)?;
            let _ = fs::remove_file(path);
            Ok(f)
        }
        Err(e) => Err(e),
    }
}

/// Removes temporary files of `name` in `dir` left by killed runs: only our own naming scheme
/// (`.NAME.tmp.PID` or `.NAME.tmp.PID.RANDOM`), only regular files, and only when that PID no
/// longer exists. Returns how many were removed.
pub fn clean_stale_temps(dir: &Path, name: &str) -> usize {
    let prefix = temp_prefix(name);
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for e in rd.flatten() {
        let file_name = e.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let (pid, random) = rest.split_once('.').unwrap_or((rest, ""));
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        if !random.bytes().all(|c| c.is_ascii_hexdigit()) || random.len() > 16 {
            continue;
        }
        let regular = e.file_type().is_ok_and(|t| t.is_file());
        if regular && !crate::lock::pid_alive(pid) && fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Replaces `path` atomically with `contents` (mode `mode`): a new temporary file with a
/// unique name in the same directory, fsync, rename over the target, fsync the directory.
/// Temporary files of killed earlier runs are removed first ([`clean_stale_temps`]); on an
/// error only the file this call created is removed.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), FileError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |source| FileError::Write {
        path: path.to_path_buf(),
        cause: source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(err)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    clean_stale_temps(dir, &name);
    let (tmp, mut f) = create_temp(dir, &name, mode).map_err(err)?;
    let result = (|| {
        f.write_all(contents)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("rules.d/41-ap.rules");
        write_atomic(&p, b"one\n", 0o644).unwrap();
        write_atomic(&p, b"two\n", 0o644).unwrap();
        assert_eq!(read(&p).unwrap(), "two\n");
        let names: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn stale_temps_of_dead_runs_are_removed_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let dead = {
            let mut c = std::process::Command::new("true").spawn().unwrap();
            let pid = c.id();
            c.wait().unwrap();
            pid
        };
        let live = std::process::id();
        let keep = [
            // what an earlier run with this process's PID left under the old name scheme:
            // it made the write fail with EEXIST and was then deleted by a run that had not
            // created it
            format!(".41-ap.rules.tmp.{live}"),
            format!(".41-ap.rules.tmp.{live}.00000000000000aa"),
            format!(".other.tmp.{dead}"),
            "41-ap.rules".to_string(),
            format!(".41-ap.rules.tmp.{dead}.notours"),
        ];
        let gone = [
            format!(".41-ap.rules.tmp.{dead}"),
            format!(".41-ap.rules.tmp.{dead}.00000000deadbeef"),
        ];
        for n in keep.iter().chain(&gone) {
            fs::write(d.path().join(n), "x").unwrap();
        }
        // a leftover with exactly the name scheme of this process does not make it fail
        write_atomic(&d.path().join("41-ap.rules"), b"new\n", 0o644).unwrap();
        let mut names: Vec<String> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut want: Vec<String> = keep.to_vec();
        want.sort();
        assert_eq!(names, want);
        assert_eq!(read(&d.path().join("41-ap.rules")).unwrap(), "new\n");
    }

    #[test]
    fn fifos_devices_and_oversized_files_are_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: c is a valid NUL-terminated path
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read(&fifo).unwrap_err().to_string();
        assert!(e.contains("not a regular file (a FIFO)"), "{e}");
        let zero = d.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let e = read(&zero).unwrap_err().to_string();
        assert!(e.contains("a character device"), "{e}");
        let big = d.path().join("big");
        fs::write(&big, vec![b'0'; ATTR_MAX + 1]).unwrap();
        let e = read(&big).unwrap_err().to_string();
        assert!(e.contains(&format!("larger than {ATTR_MAX} bytes")), "{e}");
        fs::write(&big, vec![b'0'; ATTR_MAX]).unwrap();
        assert_eq!(read(&big).unwrap().len(), ATTR_MAX);
        assert_eq!(read_optional(&d.path().join("none")).unwrap(), None);
        let e = read(d.path()).unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");
    }

    #[test]
    fn errors_name_the_path() {
        let e = read(Path::new("/nonexistent/apmask")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read /nonexistent/apmask: "),
            "{e}"
        );
        let e = write_attr(Path::new("/nonexistent/apmask"), "+1").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot write /nonexistent/apmask: "),
            "{e}"
        );
    }
}
