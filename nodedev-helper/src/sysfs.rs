//! Reading and writing sysfs attributes and boot-critical files, with the path in every error.
//!
//! Sysfs attributes are written with a single `write(2)` of the whole value (the kernel parses
//! one write per store). Files that boot depends on (udev rules, configs) are written
//! atomically: a temporary file in the same directory, fsync, rename, fsync of the directory.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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
}

/// Reads a whole attribute or small file.
pub fn read(path: &Path) -> Result<String, FileError> {
    fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        cause: source,
    })
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

/// Replaces `path` atomically with `contents` (mode `mode`): temp file in the same
/// directory, fsync, rename over the target, fsync the directory.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), FileError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
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
