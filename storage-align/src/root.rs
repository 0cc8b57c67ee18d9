//! The host root storage-align reads sysfs below: `/` on a real host, a test tree otherwise.
//!
//! `--root DIR` makes every sysfs path `DIR/sys/...` (the same convention as nodedev-helper's
//! `--root` and mdevctl's `MDEVCTL_ENV_ROOT`). Without it, the environment variable
//! [`SYSFS_ENV`] may name a sysfs directory directly, but only in an unprivileged process:
//! [`sysfs_from_env`] is the one place that reads it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Names a sysfs directory to use instead of `/sys` (tests and diagnostics).
pub const SYSFS_ENV: &str = "STORAGE_ALIGN_SYSFS";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    sysfs: PathBuf,
}

impl Default for Root {
    fn default() -> Self {
        Root::new("/")
    }
}

impl Root {
    /// A host root: sysfs is `base/sys`.
    pub fn new(base: impl AsRef<Path>) -> Self {
        Root {
            sysfs: base.as_ref().join("sys"),
        }
    }

    /// `--root` wins, then [`SYSFS_ENV`] (unprivileged processes only), then `/`.
    pub fn resolve(cli: Option<&Path>) -> Self {
        match (cli, sysfs_from_env()) {
            (Some(base), _) => Root::new(base),
            (None, Some(sysfs)) => Root { sysfs },
            (None, None) => Root::default(),
        }
    }

    pub fn sysfs(&self) -> &Path {
        &self.sysfs
    }

    /// `/sys/block/<name>`: a whole disk's attributes (`queue/`, `alignment_offset`).
    pub fn block(&self, name: &OsStr) -> PathBuf {
        self.sysfs.join("block").join(name)
    }
}

/// [`SYSFS_ENV`] when set, non-empty, and the process is not running with elevated
/// privileges: in a setuid/setgid or file-capability process (the kernel's `AT_SECURE`, what
/// glibc's `secure_getenv` checks) the caller's environment must not redirect what a
/// privileged program reads, so it is ignored there.
pub fn sysfs_from_env() -> Option<PathBuf> {
    // SAFETY: getauxval has no preconditions; it only reads the process's auxiliary vector.
    if unsafe { libc::getauxval(libc::AT_SECURE) } != 0 {
        return None;
    }
    std::env::var_os(SYSFS_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_prefixes_sys() {
        let r = Root::new("/tmp/host");
        assert_eq!(r.sysfs(), Path::new("/tmp/host/sys"));
        assert_eq!(
            r.block(OsStr::new("loop0")),
            Path::new("/tmp/host/sys/block/loop0")
        );
        assert_eq!(Root::default().sysfs(), Path::new("/sys"));
    }

    #[test]
    fn cli_root_wins() {
        assert_eq!(
            Root::resolve(Some(Path::new("/x"))).sysfs(),
            Path::new("/x/sys")
        );
    }
}
