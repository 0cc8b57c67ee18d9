//! The callout binary run the way mdevctl runs it (argv, stdin, exit code, stderr) over fake
//! host trees. The real mdevctl drives it in `callout_mdevctl.rs`.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use support::*;

fn auto(attrs: &[(&str, &str)]) -> String {
    device_json("auto", attrs)
}
fn manual(attrs: &[(&str, &str)]) -> String {
    device_json("manual", attrs)
}

/// Exit code, asserting the process was not killed by a signal (a crash).
fn code(o: &std::process::Output) -> i32 {
    o.status
        .code()
        .unwrap_or_else(|| panic!("callout died from a signal: {o:?}"))
}

#[test]
fn capabilities_handshake_is_version_2() {
    let h = Host::for_callout();
    let o = callout(
        &h,
        "get",
        "capabilities",
        U1,
        // what mdevctl 1.4 sends (its CalloutVersion::V_2)
        Some(
            r#"{"provides":{"version":2,"actions":["start","stop","define","undefine","modify","attributes","capabilities"],"events":["pre","post","notify","get","live"]}}"#,
        ),
    );
    assert_eq!(code(&o), 0, "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["supports"]["version"], 2);
    let events: Vec<&str> = v["supports"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(events.contains(&"live"), "{events:?}");
    golden("callout/capabilities.json", &text(&o.stdout));

    // the answer is the intersection: nothing mdevctl did not offer, at its version
    let o = callout(
        &h,
        "get",
        "capabilities",
        U1,
        Some(
            r#"{"provides":{"version":1,"actions":["start","define","rename"],"events":["pre","get"]}}"#,
        ),
    );
    assert_eq!(code(&o), 0, "{o:?}");
    assert_eq!(
        text(&o.stdout),
        "{\"supports\":{\"version\":1,\"actions\":[\"start\",\"define\"],\"events\":[\"pre\",\"get\"]}}\n"
    );
    // an empty or malformed stdin is an error, as in ap-check
    for bad in [
        "",
        "  \n",
        "{}",
        "[1]",
        "{\"provides\":{\"actions\":\"start\"}}",
        "nope",
    ] {
        let o = callout(&h, "get", "capabilities", U1, Some(bad));
        assert_eq!(code(&o), 1, "{bad:?}: {o:?}");
        assert!(o.stdout.is_empty(), "{bad:?}: {o:?}");
        assert!(
            text(&o.stderr).starts_with("get capabilities: "),
            "{bad:?}: {o:?}"
        );
    }
}

#[test]
fn other_types_exit_2_silently() {
    let h = Host::for_callout();
    let o = run(
        Command::new(BIN).args([
            "callout",
            "--root",
            h.root().to_str().unwrap(),
            "-t",
            "i915-GVTg_V5_4",
            "-e",
            "pre",
            "-a",
            "define",
            "-s",
            "none",
            "-u",
            U1,
            "-p",
            "0000:00:02.0",
        ]),
        Some("not json at all"),
    );
    assert_eq!(code(&o), 2);
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{o:?}");
    assert!(!h.lock_path().exists());
}

#[test]
fn usage_errors_exit_1_with_ap_check_wording() {
    let h = Host::for_callout();
    let root = h.root().to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "-t", TYPE, "-e", "pre", "-a", "define", "-s", "none", "-u", U1, "-p", "matrix",
                "-z", "1",
            ],
            "Unknown operand",
        ),
        (
            &[
                "-t", TYPE, "-e", "pre", "-a", "define", "-s", "none", "-u", U1,
            ],
            "Duplicate or missing operand",
        ),
        (
            &[
                "-t",
                TYPE,
                "-e",
                "pre",
                "-a",
                "define",
                "-s",
                "none",
                "-u",
                "not-a-uuid",
                "-p",
                "matrix",
            ],
            "Invalid UUID specified",
        ),
        (
            &[
                "-t", TYPE, "-e", "pre", "-a", "define", "-s", "none", "-u", U1, "-p", "css0",
            ],
            "Invalid parent specified",
        ),
    ];
    for (args, msg) in cases {
        let o = run(
            Command::new(BIN)
                .args(["callout", "--root", root])
                .args(args),
            Some(""),
        );
        assert_eq!(code(&o), 1, "{args:?}");
        assert_eq!(text(&o.stderr), format!("{msg}\n"), "{args:?}");
    }
}

#[test]
fn pre_define_accepts_a_free_device_and_holds_the_lock_until_post() {
    let h = Host::for_callout();
    let dev = auto(&[
        ("assign_adapter", "2"),
        ("assign_domain", "43"),
        ("assign_control_domain", "0x2c"),
    ]);
    let o = callout(&h, "pre", "define", U1, Some(&dev));
    assert_eq!(code(&o), 0, "{o:?}");
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
    // held on behalf of our parent (here: the test process, as mdevctl would be)
    assert_eq!(
        fs::read_to_string(h.lock_path()).unwrap(),
        format!("{}\n", std::process::id())
    );
    let o = callout(&h, "post", "define", U1, Some(&dev));
    assert_eq!(code(&o), 0, "{o:?}");
    assert!(!h.lock_path().exists());
}

#[test]
fn pre_define_autostart_conflicts_and_persistent_masks() {
    let h = Host::for_callout();
    h.config(
        U2,
        &auto(&[("assign_adapter", "2"), ("assign_domain", "43")]),
    );
    // a manual config with the same APQN is no autostart conflict
    h.config(
        U3,
        &manual(&[("assign_adapter", "3"), ("assign_domain", "44")]),
    );
    // persistently, adapter 3 and domain 44 go back to the host: APQN 3.44 is the host's
    h.set_persistent_masks(&mask_without(&[2]), &mask_without(&[43]));
    let dev = auto(&[
        ("assign_adapter", "2"),
        ("assign_adapter", "3"),
        ("assign_domain", "43"),
        ("assign_domain", "44"),
    ]);
    let o = callout(&h, "pre", "define", U1, Some(&dev));
    assert_eq!(code(&o), 1, "{o:?}");
    golden("callout/define-autostart-conflicts.txt", &text(&o.stderr));
    assert!(
        !h.lock_path().exists(),
        "a rejected pre left the lock behind"
    );

    // the same device with start manual: accepted, the problems become warnings
    let o = callout(
        &h,
        "pre",
        "define",
        U1,
        Some(&manual(&[("assign_adapter", "2"), ("assign_domain", "43")])),
    );
    assert_eq!(code(&o), 0, "{o:?}");
    assert_eq!(
        text(&o.stderr),
        format!("warning: APQN 2.43 is defined for autostart by {U2}\n")
    );
}

#[test]
fn a_device_never_conflicts_with_itself() {
    let h = Host::for_callout();
    let dev = auto(&[("assign_adapter", "2"), ("assign_domain", "43")]);
    h.config(U1, &dev);
    h.active(U1, &[(2, 43)], &[]);
    let o = callout(&h, "pre", "modify", U1, Some(&dev));
    assert_eq!(code(&o), 0, "{o:?}");
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
    callout(&h, "post", "modify", U1, Some(&dev));
    let o = callout(&h, "pre", "start", U1, Some(&dev));
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
}

#[test]
fn define_existing_and_modify_missing() {
    let h = Host::for_callout();
    let dev = manual(&[("assign_adapter", "2"), ("assign_domain", "43")]);
    h.config(U1, &dev);
    let o = callout(&h, "pre", "define", U1, Some(&dev));
    assert_eq!(
        (code(&o), text(&o.stderr)),
        (1, "Config already exists\n".to_string())
    );
    let o = callout(&h, "pre", "modify", U2, Some(&dev));
    assert_eq!(
        (code(&o), text(&o.stderr)),
        (1, "Config doesn't exist\n".to_string())
    );
    assert!(!h.lock_path().exists());
}

#[test]
fn values_ap_check_accepts_but_the_kernel_refuses() {
    let h = Host::for_callout();
    let dev = manual(&[
        ("assign_adapter", "256"),
        ("assign_adapter", "2,3"),
        ("assign_domain", "-4"),
        ("assign_domain", "forty"),
        ("assign_domain", "90"),
        ("assign_control_domain", "0x55"),
        ("assign_matrix", "1"),
    ]);
    for action in ["define", "start"] {
        let o = callout(&h, "pre", action, U1, Some(&dev));
        assert_eq!(code(&o), 1, "{o:?}");
        golden(&format!("callout/values-{action}.txt"), &text(&o.stderr));
        assert!(!h.lock_path().exists());
    }
}

#[test]
fn unassign_is_applied_in_attribute_order() {
    let h = Host::for_callout();
    h.config(
        U2,
        &auto(&[("assign_adapter", "2"), ("assign_domain", "43")]),
    );
    // 2.43 is assigned then taken away again: no conflict with U2
    let dev = auto(&[
        ("assign_adapter", "2"),
        ("assign_adapter", "3"),
        ("assign_domain", "43"),
        ("unassign_adapter", "2"),
    ]);
    let o = callout(&h, "pre", "define", U1, Some(&dev));
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    callout(&h, "post", "define", U1, Some(&dev));
    // ...but re-assigned afterwards, it conflicts
    let dev = auto(&[
        ("assign_adapter", "2"),
        ("unassign_adapter", "2"),
        ("assign_domain", "43"),
        ("assign_adapter", "0x2"),
    ]);
    let o = callout(&h, "pre", "define", U1, Some(&dev));
    assert_eq!(code(&o), 1);
    assert_eq!(
        text(&o.stderr),
        format!("APQN 2.43 is defined for autostart by {U2}\n")
    );
}

#[test]
fn malformed_json_is_a_clear_error_never_a_crash() {
    let h = Host::for_callout();
    let cases = [
        ("", "the device JSON is malformed: "),
        ("{", "the device JSON is malformed: "),
        ("[1,2]", "the device JSON is not an object"),
        (
            r#"{"start":"auto","attrs":[{"assign_adapter":"2"}]}"#,
            "the device JSON has no \"mdev_type\"",
        ),
        (
            r#"{"mdev_type":7}"#,
            "the device JSON's \"mdev_type\" is the number 7, expected a string",
        ),
        (
            r#"{"mdev_type":"vfio_ap-passthrough","attrs":"2"}"#,
            "the device JSON's \"attrs\" is the string \"2\", expected a list",
        ),
        (
            r#"{"mdev_type":"vfio_ap-passthrough","attrs":[{}]}"#,
            "attribute #1 of \"attrs\" is an empty object",
        ),
        (
            r#"{"mdev_type":"vfio_ap-passthrough","attrs":[{"assign_domain":null}]}"#,
            "attribute assign_domain has the value null",
        ),
        (
            r#"{"mdev_type":"i915-GVTg_V5_4"}"#,
            "the device JSON's mdev_type 'i915-GVTg_V5_4' does not match -t vfio_ap-passthrough",
        ),
        ("\u{feff}\u{0}", "the device JSON is malformed: "),
    ];
    for action in ["define", "modify", "start"] {
        for (input, msg) in cases {
            let o = callout(&h, "pre", action, U1, Some(input));
            assert_eq!(code(&o), 1, "{action} {input:?}: {o:?}");
            let err = text(&o.stderr);
            assert!(err.starts_with(msg), "{action} {input:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }
    assert!(!h.lock_path().exists());
    // stop and undefine do not need a readable config (a broken one must stay removable)
    for action in ["stop", "undefine"] {
        let o = callout(&h, "pre", action, U1, Some("{"));
        assert_eq!(code(&o), 0, "{o:?}");
        callout(&h, "post", action, U1, Some("{"));
    }
}

#[test]
fn pre_start_checks_the_active_host() {
    let h = Host::for_callout();
    h.active(U3, &[(3, 43)], &[]);
    let dev = manual(&[
        ("assign_adapter", "2"),
        ("assign_adapter", "3"),
        ("assign_adapter", "5"),
        ("assign_domain", "43"),
        ("assign_domain", "4"),
    ]);
    let o = callout(&h, "pre", "start", U1, Some(&dev));
    assert_eq!(code(&o), 1, "{o:?}");
    golden(
        "callout/start-conflicts.txt",
        &normalize(&text(&o.stderr), &h),
    );
    assert!(!h.lock_path().exists());

    let o = callout(
        &h,
        "pre",
        "start",
        U1,
        Some(&manual(&[
            ("assign_adapter", "2"),
            ("assign_control_domain", "43"),
        ])),
    );
    assert_eq!(
        (code(&o), text(&o.stderr)),
        (
            1,
            "At least one usage domain must be specified\n".to_string()
        )
    );

    h.unload_vfio_ap();
    let o = callout(
        &h,
        "pre",
        "start",
        U1,
        Some(&manual(&[("assign_adapter", "2"), ("assign_domain", "43")])),
    );
    assert_eq!(
        (code(&o), text(&o.stderr)),
        (1, "vfio_ap module is not loaded\n".to_string())
    );
}

#[test]
fn pre_define_warns_about_active_devices_and_old_cards() {
    let h = Host::for_callout();
    h.active(U3, &[(2, 43)], &[]);
    // vfio_ap's word on the queue: assigned to some mdev
    h.write("sys/bus/ap/devices/02.002b/status", "assigned\n");
    let dev = manual(&[
        ("assign_adapter", "2"),
        ("assign_adapter", "5"),
        ("assign_domain", "43"),
    ]);
    let o = callout(&h, "pre", "define", U1, Some(&dev));
    assert_eq!(code(&o), 0, "{o:?}");
    golden("callout/define-warnings.txt", &text(&o.stderr));
    // Define reads no mdev's matrix unless a queue says it is taken (ap-check reads none):
    // with the queue unassigned, the active device's matrix is not consulted.
    h.write("sys/bus/ap/devices/02.002b/status", "unassigned\n");
    let o = callout(&h, "pre", "define", U1, Some(&dev));
    assert_eq!(code(&o), 0, "{o:?}");
    assert!(!text(&o.stderr).contains("in use by active mdev"), "{o:?}");
    // pre start still reads the matrices when the queue proves nothing
    fs::remove_file(h.path("sys/bus/ap/devices/02.002b/status")).unwrap();
    let o = callout(&h, "pre", "start", U1, Some(&dev));
    assert!(
        text(&o.stderr).contains(&format!("APQN 2.43 already in use by {U3}")),
        "{o:?}"
    );
}

#[test]
fn get_attributes_in_mdevctl_format() {
    let h = Host::for_callout();
    h.active(U1, &[(2, 43), (2, 44), (3, 43), (3, 44)], &[5]);
    h.active(U2, &[], &[]);
    let o = callout(&h, "get", "attributes", U1, None);
    assert_eq!(code(&o), 0, "{o:?}");
    golden("callout/attributes.json", &text(&o.stdout));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["assign_adapter"], "2");
    // an active device without attributes: [] (ap-check prints [{}])
    let o = callout(&h, "get", "attributes", U2, None);
    assert_eq!((code(&o), text(&o.stdout)), (0, "[]".to_string()));
    // inactive: nothing
    let o = callout(&h, "get", "attributes", U3, None);
    assert_eq!((code(&o), text(&o.stdout)), (0, String::new()));
    assert!(!h.lock_path().exists());
}

#[test]
fn a_live_lock_holder_makes_pre_wait_then_fail_clearly() {
    let h = Host::for_callout();
    let mut holder = Command::new("sleep").arg("30").spawn().unwrap();
    fs::write(h.lock_path(), format!("{}\n", holder.id())).unwrap();
    let dev = manual(&[("assign_adapter", "2"), ("assign_domain", "43")]);
    let o = callout(&h, "pre", "define", U1, Some(&dev));
    assert_eq!(code(&o), 1, "{o:?}");
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!(
            "is held by process {} (still running)",
            holder.id()
        )),
        "{err}"
    );
    assert!(err.contains("s390apconfig.lock"), "{err}");
    assert_eq!(
        h.read("run/lock/s390apconfig.lock"),
        format!("{}\n", holder.id())
    );
    // post of someone else's operation never removes another holder's lock
    callout(&h, "post", "define", U1, Some(&dev));
    assert!(h.lock_path().exists());
    holder.kill().unwrap();
    holder.wait().unwrap();
    // the holder is gone: the lock is stale and taken over
    let o = callout(&h, "pre", "define", U1, Some(&dev));
    assert_eq!(code(&o), 0, "{o:?}");
    assert_eq!(
        h.read("run/lock/s390apconfig.lock"),
        format!("{}\n", std::process::id())
    );
}

#[test]
fn get_attributes_proceeds_when_the_parent_holds_the_lock() {
    let h = Host::for_callout();
    h.active(U1, &[(2, 43)], &[]);
    // what mdevctl's `define` of an active device does: pre took it for mdevctl (us)
    fs::write(h.lock_path(), format!("{}\n", std::process::id())).unwrap();
    let o = run(
        Command::new(BIN)
            .args([
                "callout",
                "-t",
                TYPE,
                "-e",
                "get",
                "-a",
                "attributes",
                "-s",
                "none",
                "-u",
                U1,
                "-p",
                "matrix",
            ])
            .arg(format!("--root={}", h.root().display()))
            .env("NODEDEV_HELPER_LOCK_WAIT", "0"),
        None,
    );
    assert_eq!(code(&o), 0, "{o:?}");
    assert_eq!(
        text(&o.stdout),
        r#"[{"assign_adapter":"2"},{"assign_domain":"43"}]"#
    );
    // still held for the post that follows
    assert!(h.lock_path().exists());
}

#[test]
fn live_modify_writes_ap_config_after_checking() {
    let h = Host::for_callout();
    h.active(U1, &[(2, 43)], &[]);
    h.active(U2, &[(3, 44)], &[]);
    let dev = manual(&[
        ("assign_adapter", "2"),
        ("assign_domain", "43"),
        ("assign_domain", "44"),
        ("assign_control_domain", "0"),
    ]);
    let o = callout(&h, "live", "modify", U1, Some(&dev));
    assert_eq!(code(&o), 0, "{o:?}");
    golden(
        "callout/ap_config.txt",
        &h.read(&format!("sys/devices/vfio_ap/matrix/{U1}/ap_config")),
    );
    // taking 3.44 from U2 is refused and nothing is written
    let before = h.read(&format!("sys/devices/vfio_ap/matrix/{U1}/ap_config"));
    let dev = manual(&[("assign_adapter", "3"), ("assign_domain", "44")]);
    let o = callout(&h, "live", "modify", U1, Some(&dev));
    assert_eq!(code(&o), 1);
    assert_eq!(
        text(&o.stderr),
        format!("APQN 3.44 already in use by {U2}\n")
    );
    assert_eq!(
        h.read(&format!("sys/devices/vfio_ap/matrix/{U1}/ap_config")),
        before
    );
    // an inactive device has nothing to modify live
    let o = callout(&h, "live", "modify", U3, Some(&dev));
    assert_eq!(code(&o), 1);
    assert!(text(&o.stderr).contains("is not active"), "{o:?}");
    assert!(!h.lock_path().exists());
}

#[test]
fn installed_under_another_name_it_is_the_callout_and_honours_mdevctl_env_root() {
    let h = Host::for_callout();
    // nodedev-helper itself under the installed name is the callout too
    let link = h.install_callout_to("usr/lib/mdevctl/scripts.d/callouts", Path::new(BIN));
    h.active(U1, &[(2, 43)], &[]);
    let o = run(
        Command::new(&link)
            .args([
                "-t",
                TYPE,
                "-e",
                "get",
                "-a",
                "attributes",
                "-s",
                "none",
                "-u",
                U1,
                "-p",
                "matrix",
            ])
            .env("MDEVCTL_ENV_ROOT", h.root()),
        None,
    );
    assert_eq!(code(&o), 0, "{o:?}");
    assert_eq!(
        text(&o.stdout),
        r#"[{"assign_adapter":"2"},{"assign_domain":"43"}]"#
    );
    let o = run(Command::new(&link).arg("--help"), None);
    assert_eq!(code(&o), 0);
    assert!(text(&o.stdout).contains("-t TYPE -e EVENT"), "{o:?}");
}

#[test]
fn root_option_before_the_subcommand() {
    let h = Host::for_callout();
    h.active(U1, &[(2, 43)], &[]);
    let o = run(
        Command::new(BIN)
            .args(["--root", h.root().to_str().unwrap(), "callout"])
            .args([
                "-t",
                TYPE,
                "-e",
                "get",
                "-a",
                "attributes",
                "-s",
                "none",
                "-u",
                U1,
                "-p",
                "matrix",
            ]),
        None,
    );
    assert_eq!(code(&o), 0, "{o:?}");
    assert_eq!(
        text(&o.stdout),
        r#"[{"assign_adapter":"2"},{"assign_domain":"43"}]"#
    );
}

#[test]
fn broken_other_configs_are_reported_not_fatal() {
    let h = Host::for_callout();
    h.config(U2, "{\"start\":\"auto\""); // truncated: ap-check crashes on such files
    h.config(
        U3,
        &auto(&[("assign_adapter", "2"), ("assign_domain", "43")]),
    );
    let o = callout(
        &h,
        "pre",
        "define",
        U1,
        Some(&auto(&[("assign_adapter", "2"), ("assign_domain", "43")])),
    );
    assert_eq!(code(&o), 1, "{o:?}");
    golden(
        "callout/define-broken-config.txt",
        &normalize(&text(&o.stderr), &h),
    );
}

/// The index in run/ (autostart_index.rs) must never answer from a stale config: after it is
/// trusted (configs older than its 2 s racy window), an in-place edit, a rename-over, a new
/// file and a removal are each seen by the very next run.
#[test]
fn the_autostart_index_follows_every_change_of_the_configs() {
    let h = Host::for_callout();
    let dev = auto(&[("assign_adapter", "2"), ("assign_domain", "43")]);
    let free = auto(&[("assign_adapter", "9"), ("assign_domain", "99")]);
    h.config(U2, &free);
    h.config(U3, &free);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let define = || {
        let o = callout(&h, "pre", "define", U1, Some(&dev));
        callout(&h, "post", "define", U1, Some(&dev));
        (code(&o), text(&o.stderr))
    };
    assert_eq!(define(), (0, String::new()));
    // each config's record is its UUID, then STATE: 2 = auto-start, 0 = unknown (read it
    // again next time); the layout is documented in autostart_index.rs
    let index = fs::read(h.path("run/nodedev-helper/autostart.index")).unwrap();
    let state = |u: &str| {
        let at = index.windows(36).position(|w| w == u.as_bytes())?;
        index.get(at + 36).copied()
    };
    assert_eq!(
        (state(U2), state(U3)),
        (Some(2), Some(2)),
        "configs older than 2 s are trusted"
    );
    let conflict = |u: &str| (1, format!("APQN 2.43 is defined for autostart by {u}\n"));

    // in place by hand, same size, and the mtime put back (`touch -r`): same inode, size
    // and mtime, only the ctime tells
    let same_size = auto(&[("assign_adapter", "2"), ("assign_domain", "43")]);
    assert_eq!(same_size.len(), free.len());
    let p2 = h.path(&format!("etc/mdevctl.d/matrix/{U2}"));
    let before = fs::metadata(&p2).unwrap();
    fs::write(&p2, &same_size).unwrap();
    let f = fs::File::options().write(true).open(&p2).unwrap();
    f.set_modified(before.modified().unwrap()).unwrap();
    let after = fs::metadata(&p2).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (after.ino(), after.len(), after.modified().unwrap()),
        (before.ino(), before.len(), before.modified().unwrap())
    );
    assert_eq!(define(), conflict(U2));
    h.config(U2, &free);
    assert_eq!(define(), (0, String::new()));
    // rename-over (how mdevctl 1.4 and editors replace files)
    let tmp = h.path("etc/mdevctl.d/matrix/.tmp");
    fs::write(&tmp, &same_size).unwrap();
    fs::rename(&tmp, h.path(&format!("etc/mdevctl.d/matrix/{U3}"))).unwrap();
    assert_eq!(define(), conflict(U3));
    // a new config, then its removal
    h.config(U3, &free);
    h.config(U4, &same_size);
    assert_eq!(define(), conflict(U4));
    fs::remove_file(h.path(&format!("etc/mdevctl.d/matrix/{U4}"))).unwrap();
    assert_eq!(define(), (0, String::new()));
}
