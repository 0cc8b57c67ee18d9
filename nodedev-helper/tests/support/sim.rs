//! The AP bus simulator (ap-sim) mounted over FUSE as the host's `sys/`, with mdevctl's
//! directories beside it: here `mdevctl start` really creates the device. Needs root and
//! /dev/fuse; the tests using it are `#[ignore]`d in plain `cargo test` and run by the make
//! check targets, where a missing prerequisite fails.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ap_sim::{HostConfig, Mounted};

use super::{BIN, mdevctl_1_4};

/// Field order matters: the mount is dropped (unmounted) before the temp dir is removed.
pub struct SimHost {
    pub m: Mounted,
    pub dir: tempfile::TempDir,
}

impl SimHost {
    /// `cfg` mounted on `DIR/sys`, with `etc/mdevctl.d`, mdevctl's callout and notifier dirs
    /// and `run/lock`; with `callout`, our callout is installed where mdevctl ≥ 1.3 looks
    /// first (what `make install` puts there).
    pub fn mount(cfg: HostConfig, callout: bool) -> SimHost {
        let dir = tempfile::tempdir().unwrap();
        for d in [
            "etc/mdevctl.d",
            "usr/lib/mdevctl/scripts.d/callouts",
            "usr/lib/mdevctl/scripts.d/notifiers",
            "run/lock",
        ] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        if callout {
            symlink(
                BIN,
                dir.path()
                    .join("usr/lib/mdevctl/scripts.d/callouts/nodedev-helper-callout"),
            )
            .unwrap();
        }
        let m = Mounted::new(cfg, dir.path())
            .expect("mount the AP simulator (root and /dev/fuse needed)");
        SimHost { m, dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The real mdevctl 1.4.0 over this host (`MDEVCTL_ENV_ROOT`), as an admin runs it.
    pub fn mdevctl(&self, args: &[&str]) -> Output {
        Command::new(mdevctl_1_4())
            .args(args)
            .env("MDEVCTL_ENV_ROOT", self.root())
            .env("RUST_BACKTRACE", "0")
            .env("NODEDEV_HELPER_LOCK_WAIT", "2")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `mdevctl define -p matrix -u UUID --jsonfile` with `json` as the device.
    pub fn define(&self, uuid: &str, json: &str) -> Output {
        let f = self.path(&format!("{uuid}.json"));
        fs::write(&f, json).unwrap();
        self.mdevctl(&[
            "define",
            "-p",
            "matrix",
            "-u",
            uuid,
            "--jsonfile",
            f.to_str().unwrap(),
        ])
    }
}
