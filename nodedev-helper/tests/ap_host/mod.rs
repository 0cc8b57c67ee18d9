//! A fake host tree for the `ap` and `passthrough` integration tests: plain files laid out
//! like sysfs (spec/ap.md "Kernel sysfs") and mdevctl's config dir, one temp dir per test.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const FULL: &str = "0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
pub const U1: &str = "6b7a2b2e-8f3c-4e2a-9d51-1c0c7a3b2e10";
pub const U2: &str = "0d3c1a77-52b4-4c9e-8f0a-7e1d2c3b4a59";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_nodedev-helper")
}

pub fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/ap")
        .join(rel)
}

/// A fake host: masks all-ones, cards 02 (CEX7, hwtype 13) and 05 (CEX3C, hwtype 9) with
/// domains 43 and 44 bound to the host driver, vfio_ap loaded.
pub struct Host {
    pub dir: tempfile::TempDir,
}

impl Host {
    pub fn new() -> Host {
        let h = Host {
            dir: tempfile::tempdir().unwrap(),
        };
        h.write("sys/bus/ap/apmask", &format!("{FULL}\n"));
        h.write("sys/bus/ap/aqmask", &format!("{FULL}\n"));
        h.write("sys/bus/ap/bindings", "4/4 (complete)\n");
        for (card, hw) in [("02", "13"), ("05", "9")] {
            h.write(
                &format!("sys/bus/ap/devices/card{card}/hwtype"),
                &format!("{hw}\n"),
            );
            for dom in ["002b", "002c"] {
                h.write(&format!("sys/bus/ap/devices/{card}.{dom}/online"), "1\n");
            }
        }
        fs::create_dir_all(h.path("sys/devices/vfio_ap/matrix")).unwrap();
        fs::create_dir_all(h.path("run/lock")).unwrap();
        h
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .arg("--root")
            .arg(self.dir.path())
            .args(args)
            .env_remove("MDEVCTL_ENV_ROOT")
            .output()
            .unwrap()
    }
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }
    /// Every file of the tree and its contents: "nothing changed" is checked against this.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(d: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for e in fs::read_dir(d).unwrap() {
                let e = e.unwrap();
                let (p, t) = (e.path(), e.file_type().unwrap());
                if t.is_symlink() {
                    let target = fs::read_link(&p).unwrap();
                    out.insert(p, target.into_os_string().into_encoded_bytes());
                } else if t.is_dir() {
                    walk(&p, out);
                } else {
                    out.insert(p.clone(), fs::read(&p).unwrap());
                }
            }
        }
        let mut m = BTreeMap::new();
        walk(self.dir.path(), &mut m);
        m
    }
    /// An active mdev holding `apqns` (matrix lines) and its mdevctl config.
    pub fn mdev(&self, uuid: &str, start: &str, adapter: u8, domain: u8, active: bool) {
        if active {
            self.write(
                &format!("sys/devices/vfio_ap/matrix/{uuid}/matrix"),
                &format!("{adapter:02x}.{domain:04x}\n"),
            );
        }
        self.write(
            &format!("etc/mdevctl.d/matrix/{uuid}"),
            &format!(
                "{{\"mdev_type\":\"vfio_ap-passthrough\",\"start\":\"{start}\",\"attrs\":[{{\"assign_adapter\":\"{adapter}\"}},{{\"assign_domain\":\"{domain}\"}}]}}\n"
            ),
        );
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
