//! The callout with the real mdevctl 1.4.0 over the mounted AP bus simulator (ap-sim, FUSE):
//! here `mdevctl start` really creates the device, so an accepted start is proven by the
//! device's kernel-side matrix, and a refused one by its absence.
//!
//! Needs root, /dev/fuse and mdevctl 1.4.0 (MDEVCTL_1_4): `#[ignore]`d in `cargo test`, run by
//! `make check-callout` with `--include-ignored`.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use ap_sim::{HostConfig, Mounted};

const BIN: &str = env!("CARGO_BIN_EXE_nodedev-helper");
const U1: &str = "11111111-1111-4111-8111-111111111111";
const U2: &str = "22222222-2222-4222-8222-222222222222";

/// Field order matters: the mount is dropped (unmounted) before the temp dir is removed.
struct Host {
    m: Mounted,
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        for d in [
            "etc/mdevctl.d",
            "usr/lib/mdevctl/scripts.d/callouts",
            "usr/lib/mdevctl/scripts.d/notifiers",
            "run/lock",
        ] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        symlink(
            BIN,
            dir.path()
                .join("usr/lib/mdevctl/scripts.d/callouts/nodedev-helper-callout"),
        )
        .unwrap();
        let cfg = HostConfig::new()
            .card(2, 13, &[43, 44])
            .card(3, 13, &[43, 44])
            .vfio_ap(true);
        let m = Mounted::new(cfg, dir.path())
            .expect("mount the AP simulator (root and /dev/fuse needed)");
        Host { m, dir }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

fn mdevctl(h: &Host, args: &[&str]) -> Output {
    let m = std::env::var_os("MDEVCTL_1_4")
        .map(PathBuf::from)
        .expect("MDEVCTL_1_4 is not set (make check-callout installs mdevctl 1.4.0 and sets it)");
    Command::new(m)
        .args(args)
        .env("MDEVCTL_ENV_ROOT", h.dir.path())
        .env("RUST_BACKTRACE", "0")
        .env("NODEDEV_HELPER_LOCK_WAIT", "2")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn define(h: &Host, uuid: &str, start: &str, attrs: &[(&str, &str)]) -> Output {
    let list: Vec<String> = attrs
        .iter()
        .map(|(k, v)| format!("{{\"{k}\":\"{v}\"}}"))
        .collect();
    let json = format!(
        "{{\"mdev_type\":\"vfio_ap-passthrough\",\"start\":\"{start}\",\"attrs\":[{}]}}",
        list.join(",")
    );
    let f = h.path(&format!("{uuid}.json"));
    fs::write(&f, json).unwrap();
    mdevctl(
        h,
        &[
            "define",
            "-p",
            "matrix",
            "-u",
            uuid,
            "--jsonfile",
            f.to_str().unwrap(),
        ],
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
#[ignore = "needs root, /dev/fuse and mdevctl 1.4.0: run by make check-callout"]
fn mdevctl_start_creates_the_device_the_callout_accepted() {
    let h = Host::new();
    // give adapters 2, 3 and domains 43, 44 to vfio_ap, with the kernel's own write syntax
    fs::write(h.path("sys/bus/ap/apmask"), "-2-3").unwrap();
    fs::write(h.path("sys/bus/ap/aqmask"), "-43-44").unwrap();

    let o = define(
        &h,
        U1,
        "auto",
        &[
            ("assign_adapter", "2"),
            ("assign_domain", "43"),
            ("assign_domain", "0x2c"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = mdevctl(&h, &["start", "-u", U1]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let state = h.m.sim().mdev(U1).expect("mdevctl start created the mdev");
    assert_eq!(state.apm.iter().collect::<Vec<_>>(), vec![2]);
    assert_eq!(state.aqm.iter().collect::<Vec<_>>(), vec![43, 44]);
    assert_eq!(
        fs::read_to_string(h.path(&format!("sys/devices/vfio_ap/matrix/{U1}/matrix"))).unwrap(),
        "02.002b\n02.002c\n"
    );
    assert!(!h.path("run/lock/s390apconfig.lock").exists());

    // a second device wanting 2.43 is refused by the callout before anything is created
    let o = define(
        &h,
        U2,
        "manual",
        &[
            ("assign_adapter", "2"),
            ("assign_adapter", "3"),
            ("assign_domain", "43"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = mdevctl(&h, &["start", "-u", U2]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains(&format!(
            "nodedev-helper-callout: APQN 2.43 already in use by {U1}"
        )),
        "{}",
        text(&o.stderr)
    );
    assert!(h.m.sim().mdev(U2).is_none());

    // `mdevctl list` of the active device goes through our `get attributes`
    let o = mdevctl(&h, &["list", "-u", U1, "--dumpjson"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("\"assign_domain\": \"44\""),
        "{}",
        text(&o.stdout)
    );

    let o = mdevctl(&h, &["stop", "-u", U1]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(h.m.sim().mdev(U1).is_none());
}
