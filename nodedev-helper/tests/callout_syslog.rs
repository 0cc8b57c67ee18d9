//! Warnings of `pre define` / `pre modify` also go to the system log (identifier
//! `nodedev-helper`): libvirt discards the stderr of a callout that succeeded, so without the
//! log a `virsh nodedev-define` user would never see them. The test binds its own datagram
//! socket at `<root>/dev/log` and reads back what the real binary sent.

mod support;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use support::*;

fn log_socket(h: &Host) -> UnixDatagram {
    std::fs::create_dir_all(h.path("dev")).unwrap();
    let s = UnixDatagram::bind(h.path("dev/log")).unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

/// Every datagram already queued (the callout has exited: nothing more will come).
fn drain(s: &UnixDatagram) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.recv(&mut buf) {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    out
}

/// `<28>nodedev-helper[PID]: ` -> `<28>nodedev-helper: ` (the PID is the callout's).
fn without_pid(line: &str) -> String {
    match (line.find('['), line.find("]: ")) {
        (Some(a), Some(b)) if a < b => format!("{}{}", &line[..a], &line[b + 1..]),
        _ => line.to_string(),
    }
}

#[test]
fn define_warnings_reach_the_system_log() {
    let h = Host::for_callout();
    h.config(
        U1,
        &device_json("auto", &[("assign_adapter", "2"), ("assign_domain", "43")]),
    );
    // card 05 is a CEX3C; adapter 5 and domain 43 are kept by the persistent masks too
    let json = device_json(
        "manual",
        &[
            ("assign_adapter", "2"),
            ("assign_adapter", "5"),
            ("assign_domain", "43"),
        ],
    );
    let log = log_socket(&h);
    let o = callout(&h, "pre", "define", U2, Some(&json));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let stderr = text(&o.stderr);
    let lines: Vec<String> = drain(&log).iter().map(|l| without_pid(l)).collect();
    let want: Vec<String> = stderr
        .lines()
        .map(|w| format!("<28>nodedev-helper: mdev {U2}: {w}"))
        .collect();
    assert!(
        want.len() >= 2,
        "expected several warnings on stderr: {stderr}"
    );
    assert_eq!(lines, want, "each stderr warning, in order, once");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("APQN 2.43 is defined for autostart by {U1}"))),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("has hwtype 9")),
        "{lines:?}"
    );
}

#[test]
fn refusals_and_clean_defines_log_nothing() {
    let h = Host::for_callout();
    h.config(
        U1,
        &device_json("auto", &[("assign_adapter", "2"), ("assign_domain", "43")]),
    );
    let log = log_socket(&h);
    // refused (autostart conflict): mdevctl shows the errors to the user itself
    let json = device_json("auto", &[("assign_adapter", "2"), ("assign_domain", "43")]);
    let o = callout(&h, "pre", "define", U2, Some(&json));
    assert_eq!(o.status.code(), Some(1));
    // nothing to warn about
    let json = device_json(
        "manual",
        &[("assign_adapter", "3"), ("assign_domain", "44")],
    );
    let o = callout(&h, "pre", "define", U3, Some(&json));
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o.stderr), "");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(drain(&log), Vec::<String>::new());
}

#[test]
fn a_host_without_a_log_socket_still_defines() {
    let h = Host::for_callout();
    h.config(
        U1,
        &device_json("auto", &[("assign_adapter", "2"), ("assign_domain", "43")]),
    );
    let json = device_json(
        "manual",
        &[("assign_adapter", "2"), ("assign_domain", "43")],
    );
    let o = callout(&h, "pre", "define", U2, Some(&json));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("warning: APQN 2.43"));
}
