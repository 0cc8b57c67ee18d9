//! `nodedev-helper ap show|set|list|wait-bindings`, run as the real binary over a fake host
//! tree per test (plain files laid out like sysfs, tests/support/host.rs). Kernel behaviour
//! that plain files cannot show (EBUSY, how the kernel parses what is written) is tested
//! against the AP bus simulator in ap_sim.rs and passthrough_sim.rs.

mod support;

use std::fs;
use std::process::Command;

use support::{FULL, Host, U1, U2, bin, golden, stderr, testdata};

fn show_line(out: &str, name: &str) -> String {
    out.lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} line in {out}"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn documented_mask_examples_verbatim() {
    let h = Host::for_ap();
    let out = h.ok(&["ap", "set", "apmask=-2", "aqmask=-43"]);
    assert!(
        out.contains("apmask active: \"0-255\" -> \"0-1,3-255\""),
        "{out}"
    );
    let show = h.ok(&["ap", "show"]);
    assert_eq!(
        show_line(&show, "apmask"),
        "apmask \"0-1,3-255\" \"0-1,3-255\""
    );
    assert_eq!(
        show_line(&show, "aqmask"),
        "aqmask \"0-42,44-255\" \"0-42,44-255\""
    );
    assert!(show.contains("41-ap.rules"), "{show}");
    // the sysfs attributes hold full 0x+64-hex masks
    assert_eq!(
        h.read("sys/bus/ap/apmask").trim_end(),
        format!("0xdf{}", "f".repeat(62))
    );

    h.ok(&["ap", "set", "apmask=+2,-4-8", "aqmask=+43,-0-42"]);
    let show = h.ok(&["ap", "show"]);
    assert_eq!(
        show_line(&show, "apmask"),
        "apmask \"0-3,9-255\" \"0-3,9-255\""
    );
    assert_eq!(show_line(&show, "aqmask"), "aqmask \"43-255\" \"43-255\"");

    let j: serde_json::Value = serde_json::from_str(&h.ok(&["ap", "show", "--json"])).unwrap();
    assert_eq!(j["active"]["apmask"], "0-3,9-255");
    assert_eq!(j["persistent"]["aqmask"], "43-255");
}

#[test]
fn rule_is_golden() {
    let h = Host::for_ap();
    h.ok(&["ap", "set", "apmask=-2", "aqmask=-43"]);
    golden(
        "ap/41-ap.rules.golden",
        &h.read("etc/udev/rules.d/41-ap.rules"),
    );
    // only the persistent apmask: the rule has no aqmask line
    let h = Host::for_ap();
    h.ok(&["ap", "set", "--persistent", "apmask=-2"]);
    let rule = h.read("etc/udev/rules.d/41-ap.rules");
    assert!(rule.contains("apmask}=\"0xdf"), "{rule}");
    assert!(!rule.contains("aqmask"), "{rule}");
    assert_eq!(h.read("sys/bus/ap/apmask"), format!("{FULL}\n"));
}

#[test]
fn reads_a_rule_written_by_chzdev() {
    let h = Host::for_ap();
    h.write(
        "etc/udev/rules.d/41-ap.rules",
        &fs::read_to_string(testdata("ap/chzdev-41-ap.rules")).unwrap(),
    );
    let show = h.ok(&["ap", "show"]);
    assert_eq!(show_line(&show, "apmask"), "apmask \"0-255\" -");
    assert_eq!(
        show_line(&show, "aqmask"),
        "aqmask \"0-255\" \"0-42,44-255\""
    );
    // a relative persistent change starts from the rule's value
    h.ok(&["ap", "set", "--persistent", "aqmask=-44"]);
    let show = h.ok(&["ap", "show"]);
    assert_eq!(
        show_line(&show, "aqmask"),
        "aqmask \"0-255\" \"0-42,45-255\""
    );
    // and --remove takes the setting out again; the file goes when nothing is left
    h.ok(&["ap", "set", "--remove", "aqmask"]);
    assert!(!h.path("etc/udev/rules.d/41-ap.rules").exists());
}

#[test]
fn conflicting_change_is_refused_and_nothing_changes() {
    let h = Host::for_ap();
    h.ok(&["ap", "set", "apmask=-2"]);
    h.mdev(U1, "auto", 2, 43, true);
    h.mdev(U2, "manual", 2, 44, false);
    let before = h.snapshot();
    let o = h.run(&["ap", "set", "apmask=+2"]);
    // chzdev's exit code for a conflict
    assert_eq!(o.status.code(), Some(9));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("apmask conflicts with mdev {U1} APQN 2.43\n")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "persistent apmask conflicts with defined autostart mdev {U1} APQN 2.43\n"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "warning: persistent apmask conflicts with defined manual mdev {U2} APQN 2.44"
        )),
        "{err}"
    );
    assert_eq!(h.snapshot(), before);
    // only the active side: only the active message
    let o = h.run(&["ap", "set", "--active", "apmask=+2"]);
    let err = stderr(&o);
    assert!(
        !err.contains("persistent apmask conflicts with defined autostart"),
        "{err}"
    );
    assert!(err.contains("apmask conflicts with mdev"), "{err}");
    assert_eq!(h.snapshot(), before);
    // giving other bits back is fine
    h.ok(&["ap", "set", "apmask=+3"]);
}

#[test]
fn dry_run_changes_nothing() {
    let h = Host::for_ap();
    let before = h.snapshot();
    let out = h.ok(&["ap", "set", "--dry-run", "apmask=-2", "aqmask=-43"]);
    assert!(
        out.contains("dry run: apmask active: \"0-255\" -> \"0-1,3-255\""),
        "{out}"
    );
    assert!(
        out.contains("dry run: aqmask persistent: - -> \"0-42,44-255\""),
        "{out}"
    );
    assert_eq!(h.snapshot(), before);
}

#[test]
fn invalid_values_are_refused_naming_the_item() {
    let h = Host::for_ap();
    let before = h.snapshot();
    for (arg, code, msg) in [
        (
            "apmask=5-3",
            6,
            "invalid apmask value '5-3': item '5-3': range end is lower than its start",
        ),
        (
            "aqmask=256",
            6,
            "invalid aqmask value '256': item '256': number greater than 255",
        ),
        (
            "apmask=+1-",
            6,
            "invalid apmask value '+1-': item '+1-': missing end of range",
        ),
        (
            "apmask=+1,2",
            6,
            "item '2': unsigned item in a relative (+/-) list",
        ),
        ("apmask=two", 6, "item 'two': not a number"),
        // chzdev's codes: 4 unknown attribute, 6 invalid value, 1 not an assignment
        ("apqmask=1", 4, "unknown attribute 'apqmask'"),
        ("apmask", 1, "'apmask' is not apmask=VALUE or aqmask=VALUE"),
    ] {
        let o = h.run(&["ap", "set", arg]);
        assert_eq!(o.status.code(), Some(code), "{arg}");
        assert!(stderr(&o).contains(msg), "{arg}: {}", stderr(&o));
        assert!(stderr(&o).starts_with("nodedev-helper: "), "{}", stderr(&o));
    }
    assert_eq!(h.snapshot(), before);
}

#[test]
fn a_broken_rule_file_is_named_and_not_overwritten() {
    let h = Host::for_ap();
    h.write(
        "etc/udev/rules.d/41-ap.rules",
        "ATTR{../../bus/ap/apmask}=\"+2\"\n",
    );
    let before = h.snapshot();
    let o = h.run(&["ap", "set", "apmask=-3"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("41-ap.rules:1: apmask value \"+2\""),
        "{}",
        stderr(&o)
    );
    assert_eq!(h.snapshot(), before);
}

#[test]
fn list_shows_cards_owners_and_problems() {
    let h = Host::for_ap();
    h.ok(&["ap", "set", "apmask=-2", "aqmask=-43"]);
    h.mdev(U1, "auto", 2, 43, true);
    h.mdev(U2, "manual", 5, 44, false);
    let out = h.ok(&["ap", "list"]);
    assert!(
        out.contains("02    13      yes                2\n"),
        "{out}"
    );
    assert!(
        out.contains("05    9       no (hwtype < 10)   2\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "2.43     02.002b  assigned to active mdev {U1}; defined for mdev {U1} (auto)"
        )),
        "{out}"
    );
    assert!(
        out.contains("2.44     02.002c  free for vfio_ap\n"),
        "{out}"
    );
    assert!(
        out.contains("5.43     05.002b  free for vfio_ap\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "5.44     05.002c  host driver; defined for mdev {U2} (manual)"
        )),
        "{out}"
    );
    assert!(
        out.contains("problem: defined for an mdev but owned by the host (active masks)"),
        "{out}"
    );
    let j: serde_json::Value = serde_json::from_str(&h.ok(&["ap", "list", "--json"])).unwrap();
    assert_eq!(j["cards"][0]["vfio_ap"], true);
    assert_eq!(j["cards"][1]["vfio_ap"], false);
    let q = j["apqns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["apqn"] == "2.43")
        .unwrap();
    assert_eq!(q["active_mdev"], U1);
}

#[test]
fn list_reports_apqns_defined_twice() {
    let h = Host::for_ap();
    h.ok(&["ap", "set", "apmask=-2"]);
    h.mdev(U1, "auto", 2, 43, false);
    h.mdev(U2, "auto", 2, 43, false);
    let out = h.ok(&["ap", "list"]);
    assert!(
        out.contains(&format!("problem: defined for autostart twice: {U2}, {U1}"))
            || out.contains(&format!("problem: defined for autostart twice: {U1}, {U2}")),
        "{out}"
    );
}

#[test]
fn wait_bindings_returns_when_complete_and_times_out_otherwise() {
    let h = Host::for_ap();
    let out = h.ok(&["ap", "wait-bindings", "--timeout", "0"]);
    assert!(out.contains("4/4 (complete)"), "{out}");
    h.write("sys/bus/ap/bindings", "3/4\n");
    let o = h.run(&["ap", "wait-bindings", "--timeout", "0.2"]);
    assert_eq!(o.status.code(), Some(3), "timeout is exit 3");
    let bindings = h.path("sys/bus/ap/bindings");
    assert!(
        stderr(&o).contains(&format!(
            "not complete after 0.2 s: {} reads \"3/4\"",
            bindings.display()
        )),
        "{}",
        stderr(&o)
    );
    // not the kernel's format: an error (exit 1) naming the file, not a wait
    h.write("sys/bus/ap/bindings", "busy\n");
    let o = h.run(&["ap", "wait-bindings", "--timeout", "30"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("{}: not an AP bindings value", bindings.display())),
        "{}",
        stderr(&o)
    );
    let o = h.run(&["ap", "wait-bindings", "--timeout=-1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--timeout -1"), "{}", stderr(&o));
}

#[test]
fn set_waits_for_the_s390apconfig_lock() {
    let h = Host::for_ap();
    let lock = h.path("run/lock/s390apconfig.lock");
    // a live holder (what chzdev or ap-check would be)
    let mut holder = Command::new("sleep").arg("30").spawn().unwrap();
    fs::write(&lock, format!("{}\n", holder.id())).unwrap();
    let mut set = Command::new(bin())
        .arg("--root")
        .arg(h.dir.path())
        .args(["ap", "set", "apmask=-2"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let still_waiting = set.try_wait().unwrap().is_none();
    let unchanged = h.read("sys/bus/ap/apmask") == format!("{FULL}\n");
    // the holder dies: its lock is stale and ap set goes ahead
    holder.kill().unwrap();
    holder.wait().unwrap();
    let status = set.wait().unwrap();
    assert!(still_waiting, "ap set did not wait for the lock");
    assert!(unchanged, "ap set wrote while chzdev's lock was held");
    assert!(status.success());
    assert_eq!(
        h.read("sys/bus/ap/apmask").trim_end(),
        format!("0xdf{}", "f".repeat(62))
    );
    // released afterwards
    assert!(!lock.exists());
}
