//! Side by side with the real s390-tools: Debian's s390x `chzdev -t ap` / `lszdev -t ap`
//! (run under qemu-user from an unpacked tree) and `nodedev-helper ap` on the same simulated
//! host — the AP simulator mounted over FUSE, seen by the s390 tools as `/sys`, with the
//! host's `/etc/udev/rules.d`, `/etc/mdevctl.d` and `/run/lock` bind-mounted in a private
//! mount namespace.
//!
//! Needs root, /dev/fuse, `unshare`, `qemu-s390x-static` and S390_TOOLS_TREE (the unpacked
//! s390-tools, libc6 and libjson-c5 packages): the tests are `#[ignore]`d in plain
//! `cargo test` and run by `make check-s390tools`, which fetches the packages first. A
//! missing prerequisite fails, it never skips.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ap_sim::{HostConfig, Mounted};

const U1: &str = "11111111-2222-4333-8444-555555555555";

fn tree() -> PathBuf {
    let t = std::env::var_os("S390_TOOLS_TREE")
        .expect("S390_TOOLS_TREE must name the unpacked s390-tools tree (make check-s390tools)");
    let t = PathBuf::from(t);
    assert!(
        t.join("usr/sbin/chzdev").is_file(),
        "{}: no usr/sbin/chzdev",
        t.display()
    );
    t
}

/// One simulated host, shared by both tools.
struct Side {
    dir: tempfile::TempDir,
    _sim: Mounted,
    tree: PathBuf,
}

/// The mount namespace the s390 tools run in: the simulated host's sys, rules, mdevctl
/// configs and lock directory over the real paths (qemu's -L only redirects paths that
/// exist in the tree, and none of these do).
const ZDEV_NS: &str = r#"set -e
host=$1 tree=$2 tool=$3; shift 3
mount --bind "$host/sys" /sys
mount --bind "$host/etc/udev/rules.d" /etc/udev/rules.d
mkdir -p /etc/mdevctl.d /run/lock
mount --bind "$host/etc/mdevctl.d" /etc/mdevctl.d
mount --bind "$host/run/lock" /run/lock
exec qemu-s390x-static -L "$tree" "$tree/usr/sbin/$tool" "$@""#;

impl Side {
    fn new() -> Side {
        let dir = tempfile::tempdir().unwrap();
        for d in ["etc/udev/rules.d", "etc/mdevctl.d/matrix", "run/lock"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let sim = Mounted::new(HostConfig::example(), dir.path())
            .expect("mount the AP simulator (root, /dev/fuse)");
        Side {
            dir,
            _sim: sim,
            tree: tree(),
        }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn zdev_cmd(&self, tool: &str, args: &[&str]) -> Command {
        let mut c = Command::new("unshare");
        c.args(["-m", "sh", "-c", ZDEV_NS, "sh"])
            .arg(self.dir.path())
            .arg(&self.tree)
            .arg(tool)
            .args(args);
        c
    }
    /// The real chzdev or lszdev.
    fn zdev(&self, tool: &str, args: &[&str]) -> Output {
        self.zdev_cmd(tool, args).output().unwrap()
    }
    fn ours_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(support::bin());
        c.arg("--root")
            .arg(self.dir.path())
            .args(args)
            .env_remove("MDEVCTL_ENV_ROOT");
        c
    }
    fn ours(&self, args: &[&str]) -> Output {
        self.ours_cmd(args).output().unwrap()
    }
    fn rule(&self) -> Option<Vec<u8>> {
        fs::read(self.path("etc/udev/rules.d/41-ap.rules")).ok()
    }
    fn mask(&self, name: &str) -> String {
        fs::read_to_string(self.path(&format!("sys/bus/ap/{name}"))).unwrap()
    }
    /// The host's whole mask state: both active masks and the rule file.
    fn state(&self) -> (String, String, Option<Vec<u8>>) {
        (self.mask("apmask"), self.mask("aqmask"), self.rule())
    }
    /// An active vfio_ap mdev, created through the simulated sysfs as mdevctl would.
    fn active_mdev(&self, uuid: &str, adapter: u8, domain: u8) {
        let matrix = self.path("sys/devices/vfio_ap/matrix");
        fs::write(
            matrix.join("mdev_supported_types/vfio_ap-passthrough/create"),
            uuid,
        )
        .unwrap();
        fs::write(
            matrix.join(uuid).join("assign_adapter"),
            adapter.to_string(),
        )
        .unwrap();
        fs::write(matrix.join(uuid).join("assign_domain"), domain.to_string()).unwrap();
    }
    /// An auto-start mdevctl config, in mdevctl's pretty JSON.
    fn autostart(&self, uuid: &str, adapter: u8, domain: u8) {
        fs::write(
            self.path(&format!("etc/mdevctl.d/matrix/{uuid}")),
            format!(
                "{{\n  \"mdev_type\": \"vfio_ap-passthrough\",\n  \"start\": \"auto\",\n  \"attrs\": [\n    {{\n      \"assign_adapter\": \"{adapter}\"\n    }},\n    {{\n      \"assign_domain\": \"{domain}\"\n    }}\n  ]\n}}"
            ),
        )
        .unwrap();
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
fn ok(o: Output, what: &str) -> Output {
    assert_eq!(o.status.code(), Some(0), "{what}: {o:?}");
    o
}

/// The conflict sentences a tool printed: its stderr lines containing "conflicts with",
/// without the program-name prefix chzdev puts before each (`chzdev: `).
fn conflicts(o: &Output) -> Vec<String> {
    err(o)
        .lines()
        .filter(|l| l.contains("conflicts with"))
        .map(|l| l.strip_prefix("chzdev: ").unwrap_or(l).to_string())
        .collect()
}

#[test]
#[ignore = "needs root, /dev/fuse, qemu-s390x-static and S390_TOOLS_TREE; run by make check-s390tools"]
fn our_set_is_read_by_lszdev_and_chzdevs_by_us() {
    let s = Side::new();
    ok(s.ours(&["ap", "set", "apmask=-2", "aqmask=-43"]), "ours");
    // lszdev reads our active masks and our rule: its own output equals ours in its layout
    let theirs = ok(s.zdev("lszdev", &["-t", "ap"]), "lszdev");
    let mine = ok(s.ours(&["ap", "show", "--format", "lszdev"]), "show");
    assert_eq!(out(&mine), out(&theirs));
    assert!(
        out(&theirs).contains("  apmask     \"0-1,3-255\"    \"0-1,3-255\"\n"),
        "{}",
        out(&theirs)
    );
    let theirs = ok(s.zdev("lszdev", &["-t", "ap", "--pairs"]), "lszdev --pairs");
    let mine = ok(s.ours(&["ap", "show", "--format", "pairs"]), "show pairs");
    assert_eq!(out(&mine), out(&theirs));

    // chzdev changes our file and the active masks; we read theirs
    ok(
        s.zdev("chzdev", &["-t", "ap", "apmask=+2,-5", "aqmask=-1-3"]),
        "chzdev",
    );
    let j: serde_json::Value =
        serde_json::from_slice(&ok(s.ours(&["ap", "show", "--json"]), "show --json").stdout)
            .unwrap();
    for side in ["active", "persistent"] {
        assert_eq!(j[side]["apmask"], "0-4,6-255", "{j}");
        assert_eq!(j[side]["aqmask"], "0,4-42,44-255", "{j}");
    }
    // and we change theirs back, lszdev agreeing
    ok(s.ours(&["ap", "set", "aqmask=+1-3"]), "ours");
    let p = out(&ok(s.zdev("lszdev", &["-t", "ap", "--pairs"]), "lszdev"));
    assert!(
        p.contains("ATTRIBUTE=\"aqmask\" ACTIVE=\"0-42,44-255\" PERSISTENT=\"0-42,44-255\"\n"),
        "{p}"
    );
}

/// The same operations through each tool on two fresh hosts give byte-identical rule files
/// and active masks at every step, removal of a persistent mask included.
#[test]
#[ignore = "needs root, /dev/fuse, qemu-s390x-static and S390_TOOLS_TREE; run by make check-s390tools"]
fn rule_files_are_byte_identical() {
    let (a, b) = (Side::new(), Side::new());
    let steps: [(&[&str], &[&str]); 6] = [
        (&["apmask=-2", "aqmask=-43"], &["apmask=-2", "aqmask=-43"]),
        (&["-p", "apmask=-7-9"], &["-p", "apmask=-7-9"]),
        (&["-a", "aqmask=0-100"], &["-a", "aqmask=0-100"]),
        (&["-p", "-r", "apmask"], &["--remove", "apmask"]),
        (&["aqmask=0x10-0x20,200"], &["aqmask=0x10-0x20,200"]),
        (&["-p", "-r", "aqmask"], &["--remove", "aqmask"]),
    ];
    for (theirs, mine) in steps {
        let mut t = vec!["-t", "ap"];
        t.extend_from_slice(theirs);
        ok(a.zdev("chzdev", &t), &format!("chzdev {theirs:?}"));
        let mut m = vec!["ap", "set"];
        m.extend_from_slice(mine);
        ok(b.ours(&m), &format!("ap set {mine:?}"));
        let (sa, sb) = (a.state(), b.state());
        assert_eq!(
            (&sa.0, &sa.1),
            (&sb.0, &sb.1),
            "active masks after {theirs:?}"
        );
        assert_eq!(
            sa.2.as_deref().map(String::from_utf8_lossy),
            sb.2.as_deref().map(String::from_utf8_lossy),
            "rule file after {theirs:?}"
        );
        // and both tools show each host the same way
        for side in [&a, &b] {
            assert_eq!(
                out(&side.ours(&["ap", "show", "--format", "lszdev"])),
                out(&side.zdev("lszdev", &["-t", "ap"])),
                "after {theirs:?}"
            );
        }
    }
}

/// The crypto passthrough documentation's conflict example: APQN 2.43 held by an active
/// mdev and by an auto-start config.
#[test]
#[ignore = "needs root, /dev/fuse, qemu-s390x-static and S390_TOOLS_TREE; run by make check-s390tools"]
fn conflicts_print_chzdevs_lines_and_exit_9() {
    let s = Side::new();
    ok(s.ours(&["ap", "set", "apmask=-2"]), "give adapter 2 away");
    s.active_mdev(U1, 2, 43);
    s.autostart(U1, 2, 43);
    let before = s.state();
    let theirs = s.zdev("chzdev", &["-t", "ap", "apmask=+2"]);
    let mine = s.ours(&["ap", "set", "apmask=+2"]);
    assert_eq!(
        (theirs.status.code(), mine.status.code()),
        (Some(9), Some(9))
    );
    assert_eq!(
        conflicts(&mine),
        vec![
            format!("apmask conflicts with mdev {U1} APQN 2.43"),
            format!("persistent apmask conflicts with defined autostart mdev {U1} APQN 2.43"),
        ]
    );
    assert_eq!(conflicts(&mine), conflicts(&theirs), "{theirs:?}");
    assert_eq!(s.state(), before, "a refused change writes nothing");

    // both bits given away, then both asked back: all four lines, in chzdev's order
    ok(s.ours(&["ap", "set", "aqmask=-43"]), "give domain 43 away");
    let before = s.state();
    let theirs = s.zdev("chzdev", &["-t", "ap", "apmask=+2", "aqmask=+43"]);
    let mine = s.ours(&["ap", "set", "apmask=+2", "aqmask=+43"]);
    assert_eq!(
        (theirs.status.code(), mine.status.code()),
        (Some(9), Some(9))
    );
    assert_eq!(conflicts(&mine).len(), 4, "{mine:?}");
    assert_eq!(conflicts(&mine), conflicts(&theirs), "{theirs:?}");
    assert_eq!(s.state(), before);
}

#[test]
#[ignore = "needs root, /dev/fuse, qemu-s390x-static and S390_TOOLS_TREE; run by make check-s390tools"]
fn exit_codes_are_chzdevs() {
    let s = Side::new();
    let before = s.state();
    for (args, code) in [
        (&["admask=1"][..], 4),
        (&["apmask=300"][..], 6),
        (&["apmask=+1,2"][..], 6),
        (&["apmask=1", "apmask=2"][..], 6),
    ] {
        let mut t = vec!["-t", "ap"];
        t.extend_from_slice(args);
        let mut m = vec!["ap", "set"];
        m.extend_from_slice(args);
        let (theirs, mine) = (s.zdev("chzdev", &t), s.ours(&m));
        assert_eq!(
            theirs.status.code(),
            Some(code),
            "chzdev {args:?}: {theirs:?}"
        );
        assert_eq!(mine.status.code(), Some(code), "ap set {args:?}: {mine:?}");
        assert_eq!(s.state(), before, "{args:?}");
    }
}

/// Where we differ on purpose, both behaviours side by side (the man page says why).
#[test]
#[ignore = "needs root, /dev/fuse, qemu-s390x-static and S390_TOOLS_TREE; run by make check-s390tools"]
fn deliberate_differences() {
    let zero = format!("0x{}\n", "0".repeat(64));
    // a reversed range: chzdev accepts it and clears the whole mask; we refuse it (exit 6)
    let s = Side::new();
    let before = s.state();
    let mine = s.ours(&["ap", "set", "apmask=5-3"]);
    assert_eq!(mine.status.code(), Some(6), "{mine:?}");
    assert!(
        err(&mine).contains("range end is lower than its start"),
        "{mine:?}"
    );
    assert_eq!(s.state(), before);
    ok(s.zdev("chzdev", &["-t", "ap", "apmask=5-3"]), "chzdev 5-3");
    assert_eq!(s.mask("apmask"), zero, "chzdev zeroes the mask on 5-3");

    // --dry-run: chzdev still writes the active mask; ours writes nothing
    let s = Side::new();
    let before = s.state();
    let mine = ok(s.ours(&["ap", "set", "--dry-run", "apmask=-9"]), "dry run");
    assert!(out(&mine).contains("dry run: nothing written"), "{mine:?}");
    assert_eq!(s.state(), before);
    ok(
        s.zdev("chzdev", &["-t", "ap", "--dry-run", "apmask=-9"]),
        "chzdev --dry-run",
    );
    assert_ne!(
        s.mask("apmask"),
        before.0,
        "chzdev --dry-run wrote the mask"
    );
    assert_eq!(s.rule(), None, "but not the rule");
}

fn still_running(c: &mut Child, for_: Duration) -> bool {
    std::thread::sleep(for_);
    c.try_wait().unwrap().is_none()
}

/// /run/lock/s390apconfig.lock is honoured both ways: chzdev waits while we hold it, and
/// `ap set` waits while chzdev holds it.
#[test]
#[ignore = "needs root, /dev/fuse, qemu-s390x-static and S390_TOOLS_TREE; run by make check-s390tools"]
fn the_lock_is_honoured_both_ways() {
    let s = Side::new();
    let lock = s.path("run/lock/s390apconfig.lock");

    // we hold it (our lock code, for this live process): chzdev waits, then goes on
    let guard = nodedev_helper::lock::Guard::take(&lock, Duration::from_secs(5)).unwrap();
    let before = s.mask("apmask");
    let mut chz = s
        .zdev_cmd("chzdev", &["-t", "ap", "-a", "apmask=-9"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        still_running(&mut chz, Duration::from_millis(1500)),
        "chzdev did not wait for our lock"
    );
    assert_eq!(
        s.mask("apmask"),
        before,
        "chzdev wrote while we held the lock"
    );
    drop(guard);
    assert!(chz.wait().unwrap().success());
    assert_ne!(s.mask("apmask"), before);

    // chzdev holds it: stopped while it holds the lock, `ap set` must wait for it
    let mut caught = false;
    for _ in 0..20 {
        let mut chz = s
            .zdev_cmd("chzdev", &["-t", "ap", "-a", "aqmask=-9"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = chz.id();
        // chzdev runs as the unshare'd process's exec: the lock names that PID
        let mut holder = false;
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if fs::read_to_string(&lock).is_ok_and(|t| t.trim() == pid.to_string()) {
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGSTOP,
                )
                .unwrap();
                // it may have released the lock just before the stop
                holder = fs::read_to_string(&lock).is_ok_and(|t| t.trim() == pid.to_string());
                break;
            }
            if chz.try_wait().unwrap().is_some() {
                break;
            }
        }
        if !holder {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGCONT,
            );
            let _ = chz.wait();
            continue;
        }
        caught = true;
        let before = s.mask("apmask");
        let mut mine = s
            .ours_cmd(&["ap", "set", "-a", "apmask=-11"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        assert!(
            still_running(&mut mine, Duration::from_millis(1500)),
            "ap set did not wait for chzdev's lock"
        );
        assert_eq!(
            s.mask("apmask"),
            before,
            "ap set wrote while chzdev held the lock"
        );
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGCONT,
        )
        .unwrap();
        assert!(chz.wait().unwrap().success());
        assert!(mine.wait().unwrap().success());
        assert_ne!(s.mask("apmask"), before);
        break;
    }
    assert!(caught, "never caught chzdev holding the lock in 20 runs");
    assert!(!Path::new(&lock).exists(), "a lock was left behind");
}
