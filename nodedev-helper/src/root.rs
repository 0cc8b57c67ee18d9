//! The host root every path is built from.
//!
//! Like mdevctl's `MDEVCTL_ENV_ROOT`, all of `sys/`, `etc/`, `run/` and `usr/` are resolved
//! below one directory: `/` on a real host, a temporary tree (or the mounted AP bus
//! simulator) in tests. Nothing else in the crate spells a literal `/sys/...` path.
//!
//! Environment overrides (`MDEVCTL_ENV_ROOT`, `NODEDEV_HELPER_MDEVCTL`,
//! `NODEDEV_HELPER_LOCK_WAIT`, `PATH` for finding mdevctl) are read only through [`env`], which
//! ignores them when the process was given privileges by exec (setuid, setgid or file
//! capabilities: the kernel's `AT_SECURE`, what glibc's `secure_getenv` checks). There
//! `--root` is refused too: a user who runs a privileged copy must not be able to point it at
//! a tree of their own making.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Whether this process runs with privileges its invoker does not have (setuid, setgid,
/// file capabilities): `getauxval(AT_SECURE)`.
pub fn privileged_exec() -> bool {
    // SAFETY: getauxval has no preconditions and only reads the auxiliary vector
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// An environment override: `None` when unset, or in a privileged run ([`privileged_exec`]).
pub fn env(name: &str) -> Option<OsString> {
    if privileged_exec() {
        return None;
    }
    std::env::var_os(name)
}

#[derive(Debug, thiserror::Error)]
#[error(
    "--root {} is refused: this nodedev-helper runs with setuid/setgid/capability privileges, \
     which never honour a host root from the caller (run it as root without them, e.g. via sudo)",
    .0.display()
)]
pub struct PrivilegedRoot(pub PathBuf);

/// Environment variable mdevctl ≥ 1.3 sets to its root and passes down to callouts.
pub const MDEVCTL_ENV_ROOT: &str = "MDEVCTL_ENV_ROOT";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    base: PathBuf,
}

impl Default for Root {
    fn default() -> Self {
        Root::new("/")
    }
}

impl Root {
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Root { base: base.into() }
    }

    /// `--root` wins, then `MDEVCTL_ENV_ROOT` (when non-empty), then `/`. In a privileged
    /// run the variable is ignored and `--root` is an error ([`privileged_exec`]).
    pub fn resolve(cli: Option<&Path>) -> Result<Self, PrivilegedRoot> {
        if let Some(p) = cli {
            if privileged_exec() {
                return Err(PrivilegedRoot(p.to_path_buf()));
            }
            return Ok(Root::new(p));
        }
        Ok(Root::from_env())
    }

    /// `MDEVCTL_ENV_ROOT` (when non-empty and not a privileged run), else `/`.
    pub fn from_env() -> Self {
        match env(MDEVCTL_ENV_ROOT) {
            Some(v) if !v.is_empty() => Root::new(PathBuf::from(v)),
            _ => Root::default(),
        }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// `rel` is relative to the root, e.g. `"sys/bus/ap/apmask"`; a leading `/` is ignored.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        let rel = rel.as_ref();
        let rel = rel.strip_prefix("/").unwrap_or(rel);
        self.base.join(rel)
    }

    // --- well-known places (kernel and tool layout: doc/ap-bus.md, doc/mdevctl.md) ---

    /// `/sys/bus/ap`: apmask, aqmask, ap_max_*_id, bindings, devices/.
    pub fn ap_bus(&self) -> PathBuf {
        self.path("sys/bus/ap")
    }
    /// `/sys/devices/vfio_ap`: exists only while module vfio_ap is loaded.
    pub fn vfio_ap(&self) -> PathBuf {
        self.path("sys/devices/vfio_ap")
    }
    /// `/sys/devices/vfio_ap/matrix`: the mdev parent; active mdevs are `<uuid>/` below it.
    pub fn matrix(&self) -> PathBuf {
        self.path("sys/devices/vfio_ap/matrix")
    }
    /// `/etc/mdevctl.d/matrix`: mdevctl's persistent configs of parent `matrix`.
    pub fn mdevctl_configs(&self) -> PathBuf {
        self.path("etc/mdevctl.d/matrix")
    }
    /// `/etc/udev/rules.d/41-ap.rules`: persistent AP masks as chzdev writes them.
    pub fn ap_udev_rule(&self) -> PathBuf {
        self.path("etc/udev/rules.d/41-ap.rules")
    }
    /// `/run/nodedev-helper/autostart.index`: the callout's cache of auto-start configs
    /// ([`crate::autostart_index`]).
    pub fn autostart_index(&self) -> PathBuf {
        self.path("run/nodedev-helper/autostart.index")
    }
    /// `/run/lock/s390apconfig.lock`: the PID lock shared with chzdev and ap-check.
    pub fn ap_lock(&self) -> PathBuf {
        self.path("run/lock/s390apconfig.lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_below_the_root() {
        let r = Root::new("/tmp/x");
        assert_eq!(
            r.path("/sys/bus/ap/apmask"),
            PathBuf::from("/tmp/x/sys/bus/ap/apmask")
        );
        assert_eq!(r.path("etc/a"), PathBuf::from("/tmp/x/etc/a"));
        assert_eq!(
            r.ap_lock(),
            PathBuf::from("/tmp/x/run/lock/s390apconfig.lock")
        );
        assert_eq!(Root::default().ap_bus(), PathBuf::from("/sys/bus/ap"));
    }

    #[test]
    fn cli_root_wins() {
        assert_eq!(
            Root::resolve(Some(Path::new("/r"))).unwrap(),
            Root::new("/r")
        );
        // the test runner is not a setuid program
        assert!(!privileged_exec());
    }
}
