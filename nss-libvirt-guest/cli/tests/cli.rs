//! The diagnostic binary, run for real over the fixture lease directories.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata");
    let o = Command::new(env!("CARGO_BIN_EXE_nss-libvirt-guest"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

#[test]
fn lookup_answers_and_exit_codes() {
    let (rc, out) = run(&["lookup", "Fedora", "--lease-dir", "basic"]);
    assert_eq!(rc, 0, "{out}");
    assert!(
        out.starts_with(
            "Fedora (libvirt): fd00:1::10 192.168.122.10\nFedora (libvirt_guest): not-found\n"
        ),
        "{out}"
    );
    let (rc, out) = run(&[
        "lookup",
        "guest-fedora",
        "--service",
        "libvirt_guest",
        "--lease-dir",
        "basic",
        "--json",
    ]);
    assert_eq!(rc, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["results"][0]["addresses"],
        serde_json::json!(["fd00:1::10", "192.168.122.10"])
    );
    let (rc, out) = run(&["lookup", "nosuch", "--lease-dir", "basic"]);
    assert_eq!(
        (rc, out.as_str()),
        (
            1,
            "nosuch (libvirt): not-found\nnosuch (libvirt_guest): not-found\n"
        )
    );
    let (rc, _) = run(&["lookup", "x", "--service", "bogus"]);
    assert_eq!(rc, 2, "wrong usage");
}

#[test]
fn explain_says_why() {
    let (_, out) = run(&[
        "lookup",
        "good",
        "--explain",
        "--service",
        "libvirt",
        "--lease-dir",
        "damaged",
    ]);
    assert!(
        out.contains("taken damaged/good.status @4 10.9.0.1: expires never"),
        "{out}"
    );
    assert!(
        out.contains("file skipped damaged/dir.status: not a regular file"),
        "{out}"
    );
    assert!(out.contains("entry skipped damaged/cut.status @"), "{out}");
    assert!(
        out.contains("malformed JSON: unexpected end of file"),
        "{out}"
    );
    assert!(out.contains("\"hostname\" is not valid UTF-8"), "{out}");
    let (_, out) = run(&[
        "lookup",
        "guest-fedora",
        "--explain",
        "--service",
        "libvirt_guest",
        "--lease-dir",
        "basic",
    ]);
    assert!(
        out.contains(
            "domain found basic/virbr0.macs @4: domain guest-fedora has MACs 52:54:00:aa:bb:01"
        ),
        "{out}"
    );
    assert!(out.contains("rejected basic/virbr0.status @186 192.168.122.19: MAC 52:54:00:aa:bb:02 not in the domain's list"), "{out}");
}

#[test]
fn list_json() {
    let (rc, out) = run(&["list", "--json", "--lease-dir", "basic"]);
    assert_eq!(rc, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let first = &v.as_array().unwrap()[0];
    assert_eq!(first["domain"], "guest-fedora");
    assert_eq!(first["bridge"], "virbr0");
    assert_eq!(first["address"], "192.168.122.10");
}
