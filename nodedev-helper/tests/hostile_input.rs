//! Hostile files and input: what a user, another tool or a bad day can leave where
//! nodedev-helper reads. Every command must finish (bounded in time and memory), name the file,
//! keep the AP configuration lock free, and a rejected device must change nothing on the host.
//! Each case runs the real binary over a fake host tree with a deadline: a hang is a failure,
//! not a stuck test run.

mod support;

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// Runs `cmd` with `stdin`, killing it and failing the test if it has not exited after `secs`.
fn bounded(cmd: &mut Command, stdin: Vec<u8>, secs: u64) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    // the writer may block on a full pipe or fail with EPIPE when the reader stops early
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&stdin);
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} still running after {secs} s (hung); stderr so far: {}",
                text(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    let _ = writer.join();
    o
}

fn mkfifo(p: &Path) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = fs::remove_file(p);
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: c is a valid NUL-terminated path
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

fn zero_link(p: &Path) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = fs::remove_file(p);
    symlink("/dev/zero", p).unwrap();
}

fn ap(h: &Host, args: &[&str]) -> Output {
    bounded(
        Command::new(BIN)
            .arg("--root")
            .arg(h.root())
            .arg("ap")
            .args(args),
        Vec::new(),
        20,
    )
}

fn callout_bounded(h: &Host, event: &str, action: &str, uuid: &str, stdin: Vec<u8>) -> Output {
    bounded(&mut callout_cmd(h, event, action, uuid), stdin, 20)
}

const RULE: &str = "etc/udev/rules.d/41-ap.rules";

#[test]
fn a_fifo_or_dev_zero_as_the_rule_file_is_refused_at_once_naming_it() {
    for plant in [mkfifo as fn(&Path), zero_link] {
        let h = Host::for_callout();
        plant(&h.path(RULE));
        for args in [&["show"][..], &["set", "apmask=-5"], &["list"]] {
            let o = ap(&h, args);
            let e = text(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
            assert!(e.contains(&h.path(RULE).display().to_string()), "{e}");
            assert!(e.contains("not a regular file"), "{e}");
            assert!(!h.lock_path().exists(), "the lock is left behind");
        }
        // nothing changed: the active mask still has adapter 5
        assert_eq!(
            h.read("sys/bus/ap/apmask"),
            format!("{}\n", mask_without(&[2, 3]))
        );
        let o = callout_bounded(&h, "pre", "define", U1, auto_json(&[]).into_bytes());
        assert_eq!(o.status.code(), Some(1), "{o:?}");
        assert!(text(&o.stderr).contains("not a regular file"), "{o:?}");
        assert!(!h.lock_path().exists(), "the callout left the lock behind");
    }
}

fn auto_json(attrs: &[(&str, &str)]) -> String {
    device_json("auto", attrs)
}

#[test]
fn a_fifo_or_dev_zero_as_an_mdevctl_config_is_a_warning_not_a_hang() {
    for plant in [mkfifo as fn(&Path), zero_link] {
        let h = Host::for_callout();
        plant(&h.path(&format!("etc/mdevctl.d/matrix/{U2}")));
        let o = callout_bounded(
            &h,
            "pre",
            "define",
            U1,
            auto_json(&[("assign_adapter", "2"), ("assign_domain", "43")]).into_bytes(),
        );
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        let e = text(&o.stderr);
        assert!(e.contains(U2) && e.contains("not a regular file"), "{e}");
        // the lock is held for mdevctl until post, then released
        callout_bounded(&h, "post", "define", U1, Vec::new());
        assert!(!h.lock_path().exists());
        let o = ap(&h, &["set", "apmask=-5"]);
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        assert!(text(&o.stderr).contains("not a regular file"), "{o:?}");
    }
}

#[test]
fn sysfs_attributes_that_are_fifos_are_errors_not_hangs() {
    let h = Host::for_callout();
    mkfifo(&h.path("sys/bus/ap/ap_max_domain_id"));
    let o = callout_bounded(
        &h,
        "pre",
        "start",
        U1,
        auto_json(&[("assign_adapter", "2"), ("assign_domain", "43")]).into_bytes(),
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(text(&o.stderr).contains("ap_max_domain_id"), "{o:?}");
    assert!(!h.lock_path().exists());
    let h = Host::for_callout();
    mkfifo(&h.path("sys/bus/ap/apmask"));
    let o = ap(&h, &["show"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
}

#[test]
fn a_huge_stdin_is_refused_after_a_bounded_read_with_a_short_message() {
    let h = Host::for_callout();
    // 100 MB in mdev_type
    let mut big = br#"{"mdev_type":""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', 100 << 20));
    big.extend(br#"","start":"auto"}"#);
    let o = callout_bounded(&h, "pre", "define", U1, big);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let e = text(&o.stderr);
    assert!(
        e.len() < 300,
        "{} bytes: {}",
        e.len(),
        &e[..300.min(e.len())]
    );
    assert!(e.contains("larger than 1048576 bytes"), "{e}");
    // just under the cap: parsed, and the echo of the value is cut
    let mut value = "x".repeat(1000 << 10);
    value.insert_str(0, "\u{1b}[31m\n");
    let json = format!(r#"{{"mdev_type":"vfio_ap-passthrough","start":"{value}"}}"#);
    let json = json.replace('\u{1b}', "\\u001b").replace('\n', "\\n");
    let o = callout_bounded(&h, "pre", "define", U1, json.into_bytes());
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let e = text(&o.stderr);
    assert!(e.len() < 300, "{} bytes", e.len());
    assert!(
        !e.contains('\u{1b}'),
        "a terminal escape reached stderr: {e:?}"
    );
    assert!(e.contains("\\u{1b}[31m\\n"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn many_unknown_attributes_give_a_bounded_report() {
    let h = Host::for_callout();
    let attrs: Vec<String> = (0..20_000)
        .map(|i| format!(r#"{{"frob{i}":"{}"}}"#, "v".repeat(30)))
        .collect();
    let json = format!(
        r#"{{"mdev_type":"vfio_ap-passthrough","start":"manual","attrs":[{}]}}"#,
        attrs.join(",")
    );
    assert!(json.len() < 1 << 20);
    let o = callout_bounded(&h, "pre", "define", U1, json.into_bytes());
    assert_eq!(o.status.code(), Some(1));
    let e = text(&o.stderr);
    assert!(e.len() < 16 << 10, "{} bytes of stderr", e.len());
    assert!(
        e.ends_with("... and 19968 more problems not shown\n"),
        "{e}"
    );
}

#[test]
fn a_rejected_device_writes_nothing() {
    let h = Host::for_callout();
    h.config(
        U2,
        &auto_json(&[("assign_adapter", "2"), ("assign_domain", "43")]),
    );
    let before = snapshot(h.root(), &[]);
    for json in [
        // conflicts with U2's autostart config
        auto_json(&[("assign_adapter", "2"), ("assign_domain", "43")]),
        // values the kernel refuses
        auto_json(&[("assign_adapter", "300")]),
        // not JSON
        "{".to_string(),
    ] {
        let o = callout_bounded(&h, "pre", "define", U1, json.into_bytes());
        assert_eq!(o.status.code(), Some(1), "{o:?}");
        assert_eq!(
            snapshot(h.root(), &[]),
            before,
            "the rejected define changed the tree"
        );
    }
    assert!(!h.exists("run/nodedev-helper/autostart.index"));
    // an accepted one may write its cache
    let o = callout_bounded(
        &h,
        "pre",
        "define",
        U1,
        auto_json(&[("assign_adapter", "3"), ("assign_domain", "44")]).into_bytes(),
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}

#[test]
fn only_the_installed_names_make_the_binary_the_callout() {
    let h = Host::for_callout();
    let args = [
        "-t",
        TYPE,
        "-e",
        "get",
        "-a",
        "capabilities",
        "-s",
        "none",
        "-u",
        U1,
        "-p",
        "matrix",
    ];
    let dir = h.path("bin");
    fs::create_dir_all(&dir).unwrap();
    for (name, callout) in [
        ("00-nodedev-helper", true),
        ("nodedev-helper-callout", true),
        ("nodedev-helper", false),
        ("ap-check", false),
        ("nodedev-helper.copy", false),
    ] {
        let p = dir.join(name);
        fs::copy(BIN, &p).unwrap();
        // what mdevctl offers on stdin (an empty stdin is an error for the handshake)
        let provides = br#"{"provides":{"version":2,"actions":["capabilities"],"events":["get"]}}"#;
        let o = bounded(Command::new(&p).args(args), provides.to_vec(), 20);
        let out = text(&o.stdout);
        assert_eq!(out.contains("\"supports\""), callout, "{name}: {o:?}");
        if !callout {
            assert_ne!(o.status.code(), Some(0), "{name}: {o:?}");
        }
    }
}
