//! Test support shared by nodedev-helper's integration tests (each test file has
//! `mod support;`): the fake host tree ([`host`]), the AP bus simulator mounted as a host
//! ([`sim`]), running the qemu hook as libvirt does ([`libvirt`]), and the helpers below —
//! golden files, process runners, the real mdevctl 1.4.0, tree snapshots.
//!
//! Golden files live in `nodedev-helper/testdata/` and are compared byte for byte by
//! [`golden`]; `UPDATE_GOLDEN=1 cargo test -p nodedev-helper` rewrites the ones a run
//! produces, to be reviewed in the diff.
#![allow(dead_code)]

pub mod host;
pub mod libvirt;
pub mod sim;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nodedev_helper::apmask::Mask;

#[allow(unused_imports)]
pub use host::Host;

pub const BIN: &str = env!("CARGO_BIN_EXE_nodedev-helper");
/// The executable `make install` links into mdevctl's callout directories.
pub const CALLOUT_BIN: &str = env!("CARGO_BIN_EXE_nodedev-helper-callout");
pub const TYPE: &str = "vfio_ap-passthrough";
pub const FULL: &str = "0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

pub const U1: &str = "11111111-1111-4111-8111-111111111111";
pub const U2: &str = "22222222-2222-4222-8222-222222222222";
pub const U3: &str = "33333333-3333-4333-8333-333333333333";
pub const U4: &str = "44444444-4444-4444-8444-444444444444";

pub fn bin() -> &'static str {
    BIN
}

/// `nodedev-helper/testdata/REL`.
pub fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

/// Compares `actual` with the golden file `testdata/REL`, or writes it when `UPDATE_GOLDEN`
/// is set (then review the diff).
pub fn golden(rel: &str, actual: &str) {
    let path = testdata(rel);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} missing ({e}); run with UPDATE_GOLDEN=1 and review the diff",
            path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "output differs from golden file {} (UPDATE_GOLDEN=1 regenerates it)",
        path.display()
    );
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `cmd` with `stdin` (or an empty stdin) and collects its output.
pub fn run(cmd: &mut Command, stdin: Option<&str>) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        // the callout may exit before reading (other type): ignore EPIPE
        let _ = child.stdin.take().unwrap().write_all(s.as_bytes());
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// Our binary as mdevctl runs a callout (argv), over `host` with `--root`.
pub fn callout_cmd(host: &Host, event: &str, action: &str, uuid: &str) -> Command {
    let mut c = Command::new(BIN);
    c.arg("callout")
        .arg("--root")
        .arg(host.root())
        .args([
            "-t", TYPE, "-e", event, "-a", action, "-s", "none", "-u", uuid, "-p", "matrix",
        ])
        .env("NODEDEV_HELPER_LOCK_WAIT", "0.3");
    c
}

/// [`callout_cmd`] run with `stdin`.
pub fn callout(host: &Host, event: &str, action: &str, uuid: &str, stdin: Option<&str>) -> Output {
    run(&mut callout_cmd(host, event, action, uuid), stdin)
}

/// Replaces the host's temporary root with `$ROOT`, for golden files.
pub fn normalize(s: &str, host: &Host) -> String {
    s.replace(&host.root().display().to_string(), "$ROOT")
}

/// A mask with every bit set but `bits`.
pub fn mask_without(bits: &[u8]) -> Mask {
    let mut m = Mask::FULL;
    for &b in bits {
        m.clear(b);
    }
    m
}

/// A mask with only `bits` set.
pub fn mask_with(bits: &[u8]) -> Mask {
    let mut m = Mask::EMPTY;
    for &b in bits {
        m.set(b);
    }
    m
}

/// mdevctl device JSON: `{"mdev_type":"vfio_ap-passthrough","start":START,"attrs":[...]}`.
pub fn device_json(start: &str, attrs: &[(&str, &str)]) -> String {
    let list: Vec<String> = attrs
        .iter()
        .map(|(k, v)| format!("{{\"{k}\":\"{v}\"}}"))
        .collect();
    format!(
        "{{\"mdev_type\":\"{TYPE}\",\"start\":\"{start}\",\"attrs\":[{}]}}",
        list.join(",")
    )
}

/// The real mdevctl 1.4.0 that `make mdevctl-1.4` builds; the make targets that run these
/// tests pass its path in `MDEVCTL_1_4`. Missing, the test fails (it is never skipped).
pub fn mdevctl_1_4() -> PathBuf {
    let p = std::env::var_os("MDEVCTL_1_4")
        .map(PathBuf::from)
        .expect("MDEVCTL_1_4 is not set: this test needs mdevctl 1.4.0 (make mdevctl-1.4 builds it; the make check targets set it)");
    assert!(p.is_file(), "MDEVCTL_1_4={} does not exist", p.display());
    p
}

/// Every entry below `root` (except the top-level names in `skip`) and what it holds:
/// a file its bytes, a symlink its target, a directory `<dir>`, anything else (a socket)
/// `<other>`. "Nothing changed" is an equality of two snapshots.
pub fn snapshot(root: &Path, skip: &[&str]) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(d: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>, skip: &[PathBuf]) {
        for e in fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let (p, t) = (e.path(), e.file_type().unwrap());
            if skip.contains(&p) {
                continue;
            }
            let v = if t.is_symlink() {
                fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if t.is_dir() {
                walk(&p, out, skip);
                b"<dir>".to_vec()
            } else if t.is_file() {
                fs::read(&p).unwrap()
            } else {
                b"<other>".to_vec()
            };
            out.insert(p, v);
        }
    }
    let skip: Vec<PathBuf> = skip.iter().map(|s| root.join(s)).collect();
    let mut m = BTreeMap::new();
    walk(root, &mut m, &skip);
    m
}
