//! The libvirt qemu hook run exactly as libvirt 9 runs it: the installed wrapper
//! (hooks/libvirt/50-nodedev-helper) with argv `GUEST OPERATION SUB-OPERATION EXTRA`, the domain
//! XML on stdin and libvirt's minimal environment (`LC_ALL=C`, PATH, HOME, USER, LOGNAME,
//! TMPDIR), over a fake host tree (sysfs, /etc/mdevctl.d, /run, /dev/log).
//!
//! mdevctl is a small script here: on plain files no real mdevctl can create an active mdev
//! (doc/mdevctl.md), so the script plays mdevctl + kernel: `start` creates
//! `sys/devices/vfio_ap/matrix/UUID/matrix` from a staged file, or fails with a staged message
//! the way mdevctl fails when its callout rejects a device; every call is logged. The same
//! cases with the real mdevctl 1.4.0 over the FUSE-mounted AP simulator: tests/hook_sim.rs.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use support::libvirt::{Syslog, ap_hostdev as ap, domain, install_wrapper};
use support::{BIN, U1, U2, mask_with, snapshot, stderr};

struct Host {
    _dir: tempfile::TempDir,
    root: PathBuf,
    syslog: Syslog,
    wrapper: PathBuf,
}

impl Host {
    /// vfio_ap loaded; the host keeps adapters 0-1 and 5 (apmask) × domains 0-42, 44 (aqmask):
    /// APQN 2.43 and 3.43 are free, 5.44 is the host's.
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for d in [
            "sys/bus/ap",
            "sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/devices",
            "etc/mdevctl.d/matrix",
            "dev",
            "bin",
            "fake-mdevctl",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(
            root.join("sys/bus/ap/apmask"),
            format!("{}\n", mask_with(&[0, 1, 5])),
        )
        .unwrap();
        let mut domains: Vec<u8> = (0..=42).collect();
        domains.push(44);
        fs::write(
            root.join("sys/bus/ap/aqmask"),
            format!("{}\n", mask_with(&domains)),
        )
        .unwrap();
        let script = format!(
            r#"#!/bin/sh
# fake mdevctl: ACTION -u UUID
R='{root}'
echo "$*" >> "$R/mdevctl.log"
[ "$2" = -u ] || {{ echo "usage" >&2; exit 1; }}
case "$1" in
start)
  if [ -e "$R/fake-mdevctl/$3.hang" ]; then sleep 30 & sleep 30; fi
  if [ -e "$R/fake-mdevctl/$3.fail" ]; then cat "$R/fake-mdevctl/$3.fail" >&2; exit 1; fi
  [ -e "$R/etc/mdevctl.d/matrix/$3" ] || {{ echo "Config for $3 does not exist" >&2; exit 1; }}
  mkdir "$R/sys/devices/vfio_ap/matrix/$3" || exit 1
  cp "$R/fake-mdevctl/$3.matrix" "$R/sys/devices/vfio_ap/matrix/$3/matrix" ;;
stop)
  rm -r "$R/sys/devices/vfio_ap/matrix/$3" ;;
*) exit 1 ;;
esac
"#,
            root = root.display()
        );
        let m = root.join("bin/mdevctl");
        fs::write(&m, script).unwrap();
        fs::set_permissions(&m, fs::Permissions::from_mode(0o755)).unwrap();
        let syslog = Syslog::bind(&root);
        let wrapper = install_wrapper(&root);
        Host {
            _dir: dir,
            root,
            syslog,
            wrapper,
        }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// `mdevctl define`d (config present), not active; `start` gives it `matrix`.
    fn define(&self, uuid: &str, matrix: &str) {
        fs::write(
            self.p(&format!("etc/mdevctl.d/matrix/{uuid}")),
            r#"{"mdev_type":"vfio_ap-passthrough","start":"manual","attrs":[]}"#,
        )
        .unwrap();
        fs::write(self.p(&format!("fake-mdevctl/{uuid}.matrix")), matrix).unwrap();
    }

    /// Active mdev (not started by the hook).
    fn activate(&self, uuid: &str, matrix: &str) {
        let d = self.p(&format!("sys/devices/vfio_ap/matrix/{uuid}"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("matrix"), matrix).unwrap();
    }

    fn active(&self, uuid: &str) -> bool {
        self.p(&format!("sys/devices/vfio_ap/matrix/{uuid}"))
            .is_dir()
    }

    fn mdevctl_calls(&self) -> Vec<String> {
        fs::read_to_string(self.p("mdevctl.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn state(&self, guest: &str) -> Option<String> {
        fs::read_to_string(self.p(&format!("run/nodedev-helper/libvirt-hook/{guest}"))).ok()
    }

    fn syslog(&self) -> Vec<String> {
        self.syslog.drain()
    }

    fn wrapper(&self) -> PathBuf {
        self.wrapper.clone()
    }

    /// Runs `program args...` as libvirt's virHookCall does, with the host's `bin/` (the fake
    /// mdevctl) first in PATH.
    fn run_as_libvirt(&self, program: &Path, args: &[&str], xml: &str) -> (Output, bool) {
        support::libvirt::run_as_libvirt(program, args, xml, &self.p("bin"))
    }

    fn hook(&self, guest: &str, op: &str, sub: &str, xml: &str) -> Output {
        let (out, _) = self.run_as_libvirt(&self.wrapper(), &[guest, op, sub, "-"], xml);
        out
    }
}

#[test]
fn guest_without_vfio_ap_starts_and_nothing_is_touched() {
    let h = Host::new();
    h.activate(U1, "02.002b\n");
    let w = h.wrapper();
    let before = snapshot(&h.root, &[]);
    let xml = domain("plain", "");
    for (op, sub) in [
        ("prepare", "begin"),
        ("start", "begin"),
        ("started", "begin"),
        ("stopped", "end"),
        ("release", "end"),
    ] {
        let (o, wrote) = h.run_as_libvirt(&w, &["plain", op, sub, "-"], &xml);
        assert!(o.status.success(), "{op} {sub}: {}", stderr(&o));
        assert!(wrote, "{op} {sub}: libvirt could not write the XML");
        assert!(
            o.stdout.is_empty() && o.stderr.is_empty(),
            "{op} {sub}: {o:?}"
        );
    }
    assert_eq!(snapshot(&h.root, &[]), before);
    assert!(h.mdevctl_calls().is_empty());
}

#[test]
fn other_operations_exit_0_at_once_even_for_crypto_guests() {
    let h = Host::new();
    // not even a valid mdev: these operations must not look at it
    let xml = domain("crypto", &ap(U1));
    let before = snapshot(&h.root, &[]);
    for (op, sub) in [
        ("start", "begin"),
        ("started", "begin"),
        ("stopped", "end"),
        ("migrate", "begin"),
        ("restore", "begin"),
        ("reconnect", "begin"),
        ("attach", "begin"),
    ] {
        let o = h.hook("crypto", op, sub, &xml);
        assert!(o.status.success(), "{op} {sub}: {}", stderr(&o));
        // migrate: anything on stdout would replace the domain XML
        assert!(o.stdout.is_empty(), "{op}: {o:?}");
    }
    assert_eq!(snapshot(&h.root, &[]), before);
}

#[test]
fn the_whole_xml_is_read_so_libvirt_never_blocks_or_gets_epipe() {
    let h = Host::new();
    // far beyond a pipe buffer (64 KiB)
    let big = format!("<!-- {} -->", "x".repeat(4 << 20));
    let xml = domain("big", &big);
    let (o, wrote) = h.run_as_libvirt(&h.wrapper(), &["big", "started", "begin", "-"], &xml);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(wrote, "the hook exited before reading libvirt's XML");
    let (o, wrote) = h.run_as_libvirt(&h.wrapper(), &["big", "prepare", "begin", "-"], &xml);
    assert!(o.status.success() && wrote, "{}", stderr(&o));
}

#[test]
fn active_mdev_with_free_apqns_is_ready_and_left_alone() {
    let h = Host::new();
    h.activate(U1, "02.002b\n03.002b\n");
    let o = h.hook("crypto", "prepare", "begin", &domain("crypto", &ap(U1)));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(h.mdevctl_calls().is_empty());
    assert_eq!(h.state("crypto"), None);
    let log = h.syslog();
    assert!(
        log.iter().any(|l| l.starts_with("<30>nodedev-helper-hook[")
            && l.contains(&format!("guest 'crypto': vfio-ap mdev {U1} is ready"))),
        "{log:?}"
    );
    // release: the hook did not start it, so it stays
    let o = h.hook("crypto", "release", "end", &domain("crypto", &ap(U1)));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(h.active(U1));
    assert!(h.mdevctl_calls().is_empty());
}

#[test]
fn defined_mdev_is_started_recorded_and_stopped_on_release() {
    let h = Host::new();
    h.define(U1, "02.002b\n");
    h.activate(U2, "03.002b\n"); // another guest's, must survive our release
    let xml = domain("crypto", &ap(U1));
    let o = h.hook("crypto", "prepare", "begin", &xml);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(h.active(U1));
    assert_eq!(h.mdevctl_calls(), vec![format!("start -u {U1}")]);
    assert_eq!(
        h.state("crypto").as_deref(),
        Some(format!("{U1}\n").as_str())
    );
    let log = h.syslog();
    assert!(
        log.iter().any(|l| l.contains(&format!(
            "guest 'crypto': started vfio-ap mdev {U1} through mdevctl"
        ))),
        "{log:?}"
    );

    // another guest's release does not touch it
    let o = h.hook("other", "release", "end", &domain("other", ""));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(h.active(U1));

    let o = h.hook("crypto", "release", "end", &xml);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!h.active(U1), "the mdev the hook started is stopped");
    assert!(h.active(U2), "an mdev the hook did not start stays");
    assert_eq!(
        h.mdevctl_calls(),
        vec![format!("start -u {U1}"), format!("stop -u {U1}")]
    );
    assert_eq!(h.state("crypto"), None);
    // a second release finds nothing to do
    let o = h.hook("crypto", "release", "end", &xml);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(h.mdevctl_calls().len(), 2);
}

#[test]
fn unknown_mdev_is_refused_naming_guest_and_uuid() {
    let h = Host::new();
    let o = h.hook("web1", "prepare", "begin", &domain("web1", &ap(U1)));
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.starts_with("nodedev-helper: guest 'web1' needs vfio-ap mdev "),
        "{e}"
    );
    assert!(e.contains(U1) && e.contains("is unknown"), "{e}");
    assert!(e.contains("mdevctl define"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(h.mdevctl_calls().is_empty());
    let log = h.syslog();
    assert!(
        log.iter()
            .any(|l| l.starts_with("<27>") && l.contains("is unknown")),
        "{log:?}"
    );
}

#[test]
fn vfio_ap_not_loaded_says_how_to_fix_it() {
    let h = Host::new();
    h.define(U1, "02.002b\n");
    fs::remove_dir_all(h.p("sys/devices/vfio_ap")).unwrap();
    let o = h.hook("web1", "prepare", "begin", &domain("web1", &ap(U1)));
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("guest 'web1'") && e.contains(U1), "{e}");
    assert!(e.contains("vfio_ap kernel module is not loaded"), "{e}");
    assert!(e.contains("modprobe vfio_ap"), "{e}");
    assert!(e.contains("etc/udev/rules.d/41-ap.rules"), "{e}");
    assert!(h.mdevctl_calls().is_empty());
}

#[test]
fn empty_matrix_is_refused() {
    let h = Host::new();
    // adapters assigned, no usage domain: the kernel prints `aa.` lines, no APQN
    h.activate(U1, "02.\n03.\n");
    let o = h.hook("web1", "prepare", "begin", &domain("web1", &ap(U1)));
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("guest 'web1'") && e.contains(U1) && e.contains("matrix is empty"),
        "{e}"
    );
    assert!(
        h.active(U1),
        "an mdev the hook did not start is never stopped"
    );
}

#[test]
fn host_owned_apqn_is_refused_naming_it() {
    let h = Host::new();
    h.activate(U1, "02.002b\n05.002c\n");
    let o = h.hook("web1", "prepare", "begin", &domain("web1", &ap(U1)));
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("guest 'web1'") && e.contains(U1), "{e}");
    assert!(e.contains("APQN 5.44 is still owned by the host"), "{e}");
    assert!(!e.contains("2.43"), "2.43 is free: {e}");
}

#[test]
fn started_mdev_that_fails_the_checks_is_stopped_again() {
    let h = Host::new();
    h.define(U1, "05.002c\n");
    let o = h.hook("web1", "prepare", "begin", &domain("web1", &ap(U1)));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("APQN 5.44"), "{}", stderr(&o));
    assert!(!h.active(U1));
    assert_eq!(
        h.mdevctl_calls(),
        vec![format!("start -u {U1}"), format!("stop -u {U1}")]
    );
    assert_eq!(h.state("web1"), None);
}

#[test]
fn more_than_one_vfio_ap_device_is_refused_before_anything_starts() {
    let h = Host::new();
    h.define(U1, "02.002b\n");
    h.define(U2, "03.002b\n");
    let xml = domain("web1", &format!("{}\n{}", ap(U1), ap(U2)));
    let o = h.hook("web1", "prepare", "begin", &xml);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("guest 'web1' has 2 vfio-ap hostdevs"), "{e}");
    assert!(e.contains(U1) && e.contains(U2), "{e}");
    assert!(h.mdevctl_calls().is_empty());
}

#[test]
fn mdevctl_refusal_is_passed_on_and_nothing_recorded() {
    let h = Host::new();
    h.define(U1, "03.002b\n");
    fs::write(
        h.p(&format!("fake-mdevctl/{U1}.fail")),
        format!("APQN 3.43 already in use by {U2}\n"),
    )
    .unwrap();
    let o = h.hook("web1", "prepare", "begin", &domain("web1", &ap(U1)));
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("guest 'web1' needs vfio-ap mdev"), "{e}");
    assert!(
        e.contains(&format!("start -u {U1}' failed with exit status 1")),
        "{e}"
    );
    assert!(
        e.contains(&format!("APQN 3.43 already in use by {U2}")),
        "{e}"
    );
    assert_eq!(h.state("web1"), None);
}

#[test]
fn hanging_mdevctl_is_killed_with_its_children_after_the_timeout() {
    let h = Host::new();
    h.define(U1, "02.002b\n");
    fs::write(h.p(&format!("fake-mdevctl/{U1}.hang")), "").unwrap();
    let xml = domain("web1", &ap(U1));
    let root = h.root.display().to_string();
    let args = [
        "--root",
        &root,
        "libvirt-hook",
        "qemu",
        "web1",
        "prepare",
        "begin",
        "-",
        "--timeout",
        "1",
    ];
    // stdout/stderr are pipes read to EOF: a surviving `sleep 30` holding them would block here
    let start = std::time::Instant::now();
    let (o, _) = h.run_as_libvirt(Path::new(BIN), &args, &xml);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        start.elapsed().as_secs() < 25,
        "a child kept the hook's stdout/stderr open"
    );
    let e = stderr(&o);
    assert!(
        e.contains("did not finish within 1 s and was killed"),
        "{e}"
    );
}

#[test]
fn malformed_xml_is_a_clear_error() {
    let h = Host::new();
    let before = snapshot(&h.root, &[]);
    for (xml, what) in [
        ("<domain><devices></domain>", "ill-formed document"),
        ("<domain><devices>", "ends inside <devices>"),
        ("", "empty document"),
    ] {
        let o = h.hook("web1", "prepare", "begin", xml);
        assert_eq!(o.status.code(), Some(1), "{xml}");
        let e = stderr(&o);
        assert!(
            e.starts_with(
                "nodedev-helper: cannot parse the domain XML of guest 'web1' read from stdin: "
            ),
            "{e}"
        );
        assert!(e.to_lowercase().contains(what), "{what}: {e}");
    }
    assert_eq!(snapshot(&h.root, &[]), before);
}

#[test]
fn wrong_arguments_are_usage_errors() {
    let h = Host::new();
    let root = h.root.display().to_string();
    let (o, _) = h.run_as_libvirt(
        Path::new(BIN),
        &[
            "--root",
            &root,
            "libvirt-hook",
            "lxc",
            "g",
            "prepare",
            "begin",
            "-",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("invalid value 'lxc'"), "{}", stderr(&o));
}
