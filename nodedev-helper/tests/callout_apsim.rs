//! The callout with the real mdevctl 1.4.0 over the mounted AP bus simulator (ap-sim, FUSE):
//! here `mdevctl start` really creates the device, so an accepted start is proven by the
//! device's kernel-side matrix, and a refused one by its absence.
//!
//! Needs root, /dev/fuse and mdevctl 1.4.0 (MDEVCTL_1_4): `#[ignore]`d in `cargo test`, run by
//! `make check-callout` with `--include-ignored`.

mod support;

use std::fs;

use ap_sim::HostConfig;
use support::sim::SimHost;
use support::{U1, U2, device_json, text};

/// Cards 2 and 3 (CEX7) with domains 43 and 44, vfio_ap loaded, our callout installed.
fn host() -> SimHost {
    let cfg = HostConfig::new()
        .card(2, 13, &[43, 44])
        .card(3, 13, &[43, 44])
        .vfio_ap(true);
    SimHost::mount(cfg, true)
}

#[test]
#[ignore = "needs root, /dev/fuse and mdevctl 1.4.0: run by make check-callout"]
fn mdevctl_start_creates_the_device_the_callout_accepted() {
    let h = host();
    // give adapters 2, 3 and domains 43, 44 to vfio_ap, with the kernel's own write syntax
    fs::write(h.path("sys/bus/ap/apmask"), "-2-3").unwrap();
    fs::write(h.path("sys/bus/ap/aqmask"), "-43-44").unwrap();

    let o = h.define(
        U1,
        &device_json(
            "auto",
            &[
                ("assign_adapter", "2"),
                ("assign_domain", "43"),
                ("assign_domain", "0x2c"),
            ],
        ),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = h.mdevctl(&["start", "-u", U1]);
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
    let o = h.define(
        U2,
        &device_json(
            "manual",
            &[
                ("assign_adapter", "2"),
                ("assign_adapter", "3"),
                ("assign_domain", "43"),
            ],
        ),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = h.mdevctl(&["start", "-u", U2]);
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
    let o = h.mdevctl(&["list", "-u", U1, "--dumpjson"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("\"assign_domain\": \"44\""),
        "{}",
        text(&o.stdout)
    );

    let o = h.mdevctl(&["stop", "-u", U1]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(h.m.sim().mdev(U1).is_none());
}
