//! The callout driven by the REAL mdevctl, with the error text a user sees:
//! - mdevctl 1.4.0 (crates.io build; `make check-callout` installs it and sets MDEVCTL_1_4)
//!   over a fake root through MDEVCTL_ENV_ROOT, with our binary linked into
//!   `usr/lib/mdevctl/scripts.d/callouts` under the name the hooks install;
//! - Debian's mdevctl 1.2.0 (/usr/bin/mdevctl, no root prefix) in a private mount namespace
//!   with the fake `sys`, `etc/mdevctl.d`, `etc/udev/rules.d` and `run/lock` bind-mounted over
//!   the real ones (needs root; the host's directories are never written).
//!
//! These tests need tools a plain `cargo test` does not install, so they are `#[ignore]`d
//! there and run by `make check-callout` with `--include-ignored`; run without the tools they
//! fail with a message saying what is missing.
//!
//! On plain files nothing creates a device, so `start` of an accepted device fails after our
//! `pre` (mdevctl wrote the UUID to `create`); that is how acceptance is seen.

mod support;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use support::*;

/// `mdevctl ARGS` (1.4.0) over the host's root.
fn m14(h: &Host, args: &[&str], stdin: Option<&str>) -> Output {
    run(
        Command::new(mdevctl_1_4())
            .args(args)
            .env("MDEVCTL_ENV_ROOT", h.root())
            .env("RUST_BACKTRACE", "0")
            .env("NODEDEV_HELPER_LOCK_WAIT", "2"),
        stdin,
    )
}

/// `mdevctl ARGS` (Debian's 1.2.0) with the host's trees mounted over /sys, /etc/mdevctl.d,
/// /etc/udev/rules.d and /run/lock in a private mount namespace.
fn m12(h: &Host, args: &[&str], stdin: Option<&str>) -> Output {
    let mdevctl = ["/usr/sbin/mdevctl", "/usr/bin/mdevctl"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("Debian's mdevctl 1.2.0 is not installed (scripts/deps.sh installs it)");
    assert!(
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() } == 0,
        "the mdevctl 1.2 tests need root (unshare -m and bind mounts)"
    );
    for d in ["/etc/mdevctl.d", "/etc/udev/rules.d", "/run/lock"] {
        assert!(Path::new(d).is_dir(), "{d} must exist as a mount point");
    }
    let script = r#"set -e
R=$1; M=$2; shift 2
mount --bind "$R/sys" /sys
mount --bind "$R/etc/mdevctl.d" /etc/mdevctl.d
mount --bind "$R/etc/udev/rules.d" /etc/udev/rules.d
mount --bind "$R/run/lock" /run/lock
exec "$M" "$@""#;
    run(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
            .arg(h.root())
            .arg(mdevctl)
            .args(args)
            .env_remove("MDEVCTL_ENV_ROOT")
            .env("RUST_BACKTRACE", "0")
            .env("NODEDEV_HELPER_LOCK_WAIT", "2"),
        stdin,
    )
}

#[derive(Clone, Copy, Debug)]
enum Version {
    V1_2,
    V1_4,
}

fn host(v: Version) -> Host {
    let h = Host::for_callout();
    match v {
        Version::V1_4 => {
            h.install_callout("usr/lib/mdevctl/scripts.d/callouts");
        }
        Version::V1_2 => {
            fs::create_dir_all(h.path("etc/mdevctl.d/scripts.d/notifiers")).unwrap();
            h.install_callout("etc/mdevctl.d/scripts.d/callouts");
        }
    }
    h
}

fn mdevctl(v: Version, h: &Host, args: &[&str], stdin: Option<&str>) -> Output {
    match v {
        Version::V1_2 => m12(h, args, stdin),
        Version::V1_4 => m14(h, args, stdin),
    }
}

fn ok(o: &Output) {
    assert!(o.status.success(), "mdevctl failed: {}", text(&o.stderr));
}

fn define(v: Version, h: &Host, uuid: &str, json: &str) -> Output {
    let f = h.path(&format!("{uuid}.json"));
    fs::write(&f, json).unwrap();
    mdevctl(
        v,
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
        None,
    )
}

fn config_of(h: &Host, uuid: &str) -> Option<serde_json::Value> {
    fs::read(h.path(&format!("etc/mdevctl.d/matrix/{uuid}")))
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap())
}

fn define_accepted_and_refused(v: Version) {
    let h = host(v);
    let dev = device_json("auto", &[("assign_adapter", "2"), ("assign_domain", "43")]);
    let o = define(v, &h, U1, &dev);
    ok(&o);
    assert_eq!(
        config_of(&h, U1).unwrap()["attrs"][1]["assign_domain"],
        "43"
    );
    assert!(!h.lock_path().exists(), "post did not release the lock");

    // a second autostart device with the same APQN and an id the kernel refuses
    let dev2 = device_json(
        "auto",
        &[
            ("assign_adapter", "2"),
            ("assign_domain", "43"),
            ("assign_domain", "300"),
        ],
    );
    let o = define(v, &h, U2, &dev2);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains(
            "00-nodedev-helper: assign_domain value '300' is out of range: domain ids are 0..255\n"
        ),
        "{err}"
    );
    assert!(
        err.contains(&format!("APQN 2.43 is defined for autostart by {U1}\n")),
        "{err}"
    );
    assert!(config_of(&h, U2).is_none(), "refused device was defined");
    assert!(
        !h.lock_path().exists(),
        "a refused pre left the lock behind"
    );

    // manual start: accepted with a warning the user sees
    let dev3 = device_json(
        "manual",
        &[("assign_adapter", "2"), ("assign_domain", "43")],
    );
    let o = define(v, &h, U3, &dev3);
    ok(&o);
    assert!(
        text(&o.stderr).contains(&format!(
            "warning: APQN 2.43 is defined for autostart by {U1}"
        )),
        "{}",
        text(&o.stderr)
    );

    // modify: adding a conflicting domain is refused, a free one accepted
    // persistently the host takes adapter 2 back, keeping domains 43 and 44 free: APQN 2.45
    // is the host's, 2.44 is not
    h.set_persistent_masks(&mask_without(&[3]), &mask_without(&[43, 44]));
    let o = mdevctl(
        v,
        &h,
        &[
            "modify",
            "-u",
            U1,
            "--addattr",
            "assign_domain",
            "--value",
            "0x2d",
        ],
        None,
    );
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains(
            "APQN 2.45 is not defined for vfio_ap-passthrough use by the persistent ap bus mask settings"
        ),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        config_of(&h, U1).unwrap()["attrs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let o = mdevctl(
        v,
        &h,
        &[
            "modify",
            "-u",
            U1,
            "--addattr",
            "assign_domain",
            "--value",
            "44",
        ],
        None,
    );
    ok(&o);
    assert_eq!(
        config_of(&h, U1).unwrap()["attrs"][2]["assign_domain"],
        "44"
    );

    // undefine
    ok(&mdevctl(v, &h, &["undefine", "-u", U3], None));
    assert!(config_of(&h, U3).is_none());
    assert!(!h.lock_path().exists());
}

fn start_refused_and_accepted(v: Version) {
    let h = host(v);
    h.active(U3, &[(3, 43)], &[]);
    let create = "sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create";
    ok(&define(
        v,
        &h,
        U1,
        &device_json(
            "manual",
            &[("assign_adapter", "3"), ("assign_domain", "43")],
        ),
    ));
    let o = mdevctl(v, &h, &["start", "-u", U1], None);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains(&format!(
            "00-nodedev-helper: APQN 3.43 already in use by {U3}\n"
        )),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(h.read(create), "", "mdevctl created a refused device");

    // a free device passes pre; mdevctl then writes the UUID to `create` (and fails later
    // only because plain files create nothing), and post releases the lock
    ok(&define(
        v,
        &h,
        U2,
        &device_json(
            "manual",
            &[("assign_adapter", "2"), ("assign_domain", "43")],
        ),
    ));
    let o = mdevctl(v, &h, &["start", "-u", U2], None);
    assert_eq!(h.read(create), U2, "{}", text(&o.stderr));
    assert!(!h.lock_path().exists());

    // vfio_ap unloaded: the parent is gone, mdevctl itself refuses before asking us
    // (so only stop of the active device is left to check)
    let o = mdevctl(v, &h, &["stop", "-u", U3], None);
    ok(&o);
    assert_eq!(
        h.read(&format!("sys/devices/vfio_ap/matrix/{U3}/remove")),
        "1"
    );
}

fn define_of_an_active_device(v: Version) {
    let h = host(v);
    h.active(U4, &[], &[]);
    // no attributes: our `get attributes` prints [] (ap-check's [{}] made mdevctl fail)
    let o = mdevctl(v, &h, &["define", "-u", U4], None);
    ok(&o);
    let c = config_of(&h, U4).unwrap();
    assert_eq!(c["attrs"], serde_json::json!([]), "{c}");
    assert_eq!(c["mdev_type"], TYPE);

    h.active(U1, &[(2, 43), (2, 44)], &[7]);
    ok(&mdevctl(v, &h, &["define", "-u", U1, "--auto"], None));
    let c = config_of(&h, U1).unwrap();
    assert_eq!(
        c["attrs"],
        serde_json::json!([{"assign_adapter":"2"},{"assign_domain":"43"},{"assign_domain":"44"},{"assign_control_domain":"7"}]),
        "{c}"
    );
    assert_eq!(c["start"], "auto");
    assert!(!h.lock_path().exists());
}

/// The callout's success-time `warning:` lines (stderr, exit 0) leave mdevctl's own work and
/// output intact: the device is defined and `mdevctl list --defined --dumpjson` still parses.
fn warnings_keep_mdevctl_working(v: Version) {
    let h = host(v);
    ok(&define(
        v,
        &h,
        U1,
        &device_json("auto", &[("assign_adapter", "2"), ("assign_domain", "43")]),
    ));
    let dev = device_json(
        "manual",
        &[("assign_adapter", "2"), ("assign_domain", "43")],
    );
    let o = define(v, &h, U3, &dev);
    ok(&o);
    assert!(
        text(&o.stderr).contains(&format!(
            "warning: APQN 2.43 is defined for autostart by {U1}"
        )),
        "{}",
        text(&o.stderr)
    );
    assert!(o.stdout.is_empty(), "{}", text(&o.stdout));
    let o = mdevctl(v, &h, &["list", "--defined", "--dumpjson"], None);
    ok(&o);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("mdevctl's JSON does not parse ({e}): {}", text(&o.stdout)));
    let all = j.to_string();
    assert!(all.contains(U1) && all.contains(U3), "{all}");
    assert_eq!(config_of(&h, U3).unwrap()["start"], "manual");
}

/// After the package is removed, the installed link points nowhere: mdevctl cannot execute it
/// and goes on as with a "not my type" answer (here: no other callout, so it accepts a device
/// our callout would refuse), instead of failing every operation.
fn a_dangling_callout_link_is_skipped(v: Version) {
    let h = Host::for_callout();
    let dir = match v {
        Version::V1_4 => "usr/lib/mdevctl/scripts.d/callouts",
        Version::V1_2 => {
            fs::create_dir_all(h.path("etc/mdevctl.d/scripts.d/notifiers")).unwrap();
            "etc/mdevctl.d/scripts.d/callouts"
        }
    };
    h.install_callout_to(dir, &h.path("usr/sbin/nodedev-helper-callout-removed"));
    // the masks keep 4.45 for the host: our callout would refuse this
    let dev = device_json("auto", &[("assign_adapter", "4"), ("assign_domain", "45")]);
    let o = define(v, &h, U1, &dev);
    ok(&o);
    assert!(config_of(&h, U1).is_some());
    let h = host(v);
    let o = define(v, &h, U1, &dev);
    assert!(!o.status.success(), "the installed callout accepted it");
}

#[test]
#[ignore = "needs mdevctl 1.4.0: run by make check-callout"]
fn mdevctl_1_4_warnings_keep_mdevctl_working() {
    warnings_keep_mdevctl_working(Version::V1_4);
}

#[test]
#[ignore = "needs root and Debian's mdevctl 1.2.0: run by make check-callout"]
fn mdevctl_1_2_warnings_keep_mdevctl_working() {
    warnings_keep_mdevctl_working(Version::V1_2);
}

#[test]
#[ignore = "needs mdevctl 1.4.0: run by make check-callout"]
fn mdevctl_1_4_skips_a_dangling_callout_link() {
    a_dangling_callout_link_is_skipped(Version::V1_4);
}

#[test]
#[ignore = "needs root and Debian's mdevctl 1.2.0: run by make check-callout"]
fn mdevctl_1_2_skips_a_dangling_callout_link() {
    a_dangling_callout_link_is_skipped(Version::V1_2);
}

#[test]
#[ignore = "needs mdevctl 1.4.0: run by make check-callout"]
fn mdevctl_1_4_define_modify_undefine() {
    define_accepted_and_refused(Version::V1_4);
}

#[test]
#[ignore = "needs mdevctl 1.4.0: run by make check-callout"]
fn mdevctl_1_4_start_stop() {
    start_refused_and_accepted(Version::V1_4);
}

#[test]
#[ignore = "needs mdevctl 1.4.0: run by make check-callout"]
fn mdevctl_1_4_define_active_device() {
    define_of_an_active_device(Version::V1_4);
}

#[test]
#[ignore = "needs root and Debian's mdevctl 1.2.0: run by make check-callout"]
fn mdevctl_1_2_define_modify_undefine() {
    define_accepted_and_refused(Version::V1_2);
}

#[test]
#[ignore = "needs root and Debian's mdevctl 1.2.0: run by make check-callout"]
fn mdevctl_1_2_start_stop() {
    start_refused_and_accepted(Version::V1_2);
}

#[test]
#[ignore = "needs root and Debian's mdevctl 1.2.0: run by make check-callout"]
fn mdevctl_1_2_define_active_device() {
    define_of_an_active_device(Version::V1_2);
}

#[test]
#[ignore = "needs mdevctl 1.4.0: run by make check-callout"]
fn mdevctl_1_4_modify_live_goes_through_ap_config() {
    let h = host(Version::V1_4);
    h.active(U1, &[(2, 43)], &[]);
    h.active(U2, &[(3, 44)], &[]);
    let live = |attrs: &[(&str, &str)]| {
        let f = h.path("live.json");
        fs::write(&f, device_json("manual", attrs)).unwrap();
        m14(
            &h,
            &[
                "modify",
                "-u",
                U1,
                "--live",
                "--jsonfile",
                f.to_str().unwrap(),
            ],
            None,
        )
    };
    let o = live(&[
        ("assign_adapter", "2"),
        ("assign_domain", "43"),
        ("assign_domain", "44"),
    ]);
    ok(&o);
    golden(
        "callout/live-modify-ap_config.txt",
        &h.read(&format!("sys/devices/vfio_ap/matrix/{U1}/ap_config")),
    );
    // taking U2's APQN is refused with our message and nothing is written
    let before = h.read(&format!("sys/devices/vfio_ap/matrix/{U1}/ap_config"));
    let o = live(&[
        ("assign_adapter", "2"),
        ("assign_adapter", "3"),
        ("assign_domain", "43"),
        ("assign_domain", "44"),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains(&format!("APQN 3.44 already in use by {U2}")),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        h.read(&format!("sys/devices/vfio_ap/matrix/{U1}/ap_config")),
        before
    );
    assert!(!h.lock_path().exists());
}
