//! `nodedev-helper passthrough`, run as the real binary over a fake host tree per test.
//!
//! Preflight refusals and the dry run need nothing else. The rollback test runs the real
//! mdevctl (1.4.0, which honours MDEVCTL_ENV_ROOT): `define` goes through, `start` cannot
//! complete on plain files (nothing creates the device), so every step done must be undone.
//! It needs MDEVCTL_1_4=<path to mdevctl ≥ 1.3> and is `#[ignore]`d otherwise;
//! `make check-apmask` runs it with the mdevctl that `make mdevctl-1.4` builds.

mod support;

use std::fs;

use support::{FULL, Host, U1, stderr};

const NEW: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

#[test]
fn refusals_change_nothing() {
    let h = Host::for_ap();
    h.ok(&["ap", "set", "apmask=-3"]);
    h.write(
        &format!("sys/devices/vfio_ap/matrix/{U1}/matrix"),
        "03.002b\n",
    );
    h.write("sys/bus/ap/devices/card03/hwtype", "12\n");
    h.write("sys/bus/ap/devices/03.002b/status", "in use\n");
    let before = h.snapshot();
    for (args, msg) in [
        (
            vec!["5.43"],
            "adapter 5 (card05) has hwtype 9: vfio_ap supports only CEX4 and newer (hwtype 10 and up)",
        ),
        (
            vec!["2.43", "5.44"],
            "an mdev's matrix is adapters x domains: with adapters 2,5 and domains 43-44 it also holds 2.44 5.43; list them too",
        ),
        (vec!["3.43"], &format!("APQN 3.43 already in use by {U1}")),
        (
            vec!["7.1"],
            "adapter 7 (card07) does not exist on the AP bus",
        ),
        (
            vec!["2.45"],
            "APQN 2.45 (queue 02.002d) does not exist on the AP bus",
        ),
        (
            vec!["2.256"],
            "'2.256': domain '256' is not a number 0..255",
        ),
        (
            vec!["2.43", "--uuid", "nope"],
            "--uuid 'nope' is not a UUID",
        ),
    ] {
        let mut a = vec!["passthrough"];
        a.extend(args.iter().copied());
        let o = h.run(&a);
        assert_eq!(o.status.code(), Some(1), "{a:?}");
        assert!(stderr(&o).contains(msg), "{a:?}: {}", stderr(&o));
        assert!(
            o.stdout.is_empty(),
            "{a:?}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    assert_eq!(h.snapshot(), before);
    fs::remove_dir_all(h.path("sys/devices/vfio_ap")).unwrap();
    let o = h.run(&["passthrough", "2.43"]);
    assert!(
        stderr(&o).contains("vfio_ap module is not loaded"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn dry_run_shows_every_step_and_changes_nothing() {
    let h = Host::for_ap();
    let before = h.snapshot();
    let out = h.ok(&["passthrough", "2.43", "--uuid", NEW, "--dry-run"]);
    for want in [
        "[1] checked: APQNs 2.43 on vfio_ap-capable cards",
        "[2] would set apmask=-2 aqmask=-43 (active: true, persistent: true)",
        &format!("[3] would run: mdevctl define --uuid {NEW} --parent matrix"),
        r#""attrs":[{"assign_adapter":"2"},{"assign_domain":"43"}]"#,
        r#""start":"auto""#,
        &format!("[4] would run: mdevctl start --uuid {NEW}"),
        &format!("<address uuid='{NEW}'/>"),
        "model='vfio-ap'",
        "dry run: nothing changed",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    assert_eq!(h.snapshot(), before);
}

#[test]
fn a_guest_with_a_vfio_ap_device_is_refused_before_anything_changes() {
    let h = Host::for_ap();
    // libvirt's test driver loaded from our own node XML: one guest that already has one
    let node = h.path("node.xml");
    fs::write(
        &node,
        format!(
            "<node><domain type='test'><name>crypto1</name><memory>1048576</memory>\
             <os><type>hvm</type></os><devices>\
             <hostdev mode='subsystem' type='mdev' model='vfio-ap'><source><address uuid='{U1}'/></source></hostdev>\
             </devices></domain></node>"
        ),
    )
    .unwrap();
    let before = h.snapshot();
    let uri = format!("test://{}", node.display());
    let o = h.run(&[
        "passthrough",
        "2.43",
        "--domain",
        "crypto1",
        "--connect",
        &uri,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!(
            "guest crypto1 already has a vfio-ap hostdev (mdev {U1}); a guest can have only one"
        )),
        "{}",
        stderr(&o)
    );
    let o = h.run(&[
        "passthrough",
        "2.43",
        "--domain",
        "nosuch",
        "--connect",
        &uri,
    ]);
    assert!(
        stderr(&o).contains("no guest named nosuch"),
        "{}",
        stderr(&o)
    );
    assert_eq!(h.snapshot(), before);
}

#[test]
#[ignore = "needs MDEVCTL_1_4 (mdevctl >= 1.3); run by make check-apmask"]
fn failed_start_rolls_back_define_and_masks_with_the_real_mdevctl() {
    let mdevctl = support::mdevctl_1_4();
    let mdevctl = mdevctl.to_str().unwrap();
    let h = Host::for_ap();
    let before = h.snapshot();
    let o = h.run(&["passthrough", "2.43", "--uuid", NEW, "--mdevctl", mdevctl]);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    // the steps that were done, in order, then undone in reverse
    assert!(
        out.contains("[2] host gave up the APQNs: apmask=-2 aqmask=-43 (active and persistent)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("[3] mdevctl defined mdev {NEW} on parent matrix")),
        "{out}"
    );
    assert!(
        err.contains(&format!("mdevctl start --uuid {NEW} failed")),
        "{err}"
    );
    let undo_define = err
        .find(&format!("undone: mdev {NEW} undefined"))
        .expect(&err);
    let undo_masks = err.find("undone: AP masks restored").expect(&err);
    assert!(undo_define < undo_masks, "{err}");
    // the host is as before; mdevctl's write of the UUID to the write-only `create`
    // attribute is the only trace a plain file keeps
    let mut after = h.snapshot();
    let create =
        h.path("sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create");
    assert_eq!(after.remove(&create).unwrap(), NEW.as_bytes());
    // and the directories created for the persistent rule and for the record of the mask
    // change (run/nodedev-helper/ap-change.journal, removed when the change is undone) stay
    // behind, empty
    for d in ["etc/udev/rules.d", "etc/udev", "run/nodedev-helper"] {
        assert_eq!(
            after.remove(&h.path(d)).as_deref(),
            Some(&b"<dir>"[..]),
            "{d}"
        );
    }
    let mut before = before;
    before.remove(&create);
    assert_eq!(after, before);
    assert_eq!(h.read("sys/bus/ap/apmask"), format!("{FULL}\n"));
    assert!(!h.path("etc/udev/rules.d/41-ap.rules").exists());
    assert!(!h.path(&format!("etc/mdevctl.d/matrix/{NEW}")).exists());
}
