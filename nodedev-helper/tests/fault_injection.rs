//! Bad days for `ap set`: SIGKILL at random points, a full file system under the udev rule,
//! and a privileged (setuid) copy run by an unprivileged user with hostile environment
//! overrides. The real binary runs over a fake host tree per test.
//!
//! The SIGKILL test needs nothing special and runs in `cargo test`; the tmpfs and setuid tests
//! need root (a mount namespace, chown to root) and are run by `make check-robust`.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{FULL, Host, bin, stderr};

const JOURNAL: &str = "run/nodedev-helper/ap-change.journal";
const RULE: &str = "etc/udev/rules.d/41-ap.rules";

/// Forward: adapter 5 and domain 7 to vfio_ap; back: everything to the host. Absolute values,
/// so a repeated or resumed command lands on the same state.
const FORWARD: [&str; 3] = ["set", "apmask=0-4,6-255", "aqmask=0-6,8-255"];
const BACK: [&str; 3] = ["set", "apmask=0-255", "aqmask=0-255"];

/// Active apmask/aqmask and the persistent ones (a missing rule or line = the boot default,
/// all bits), as decimal ranges.
fn state(h: &Host) -> [String; 4] {
    let o = h.run(&["ap", "show", "--json"]);
    assert!(o.status.success(), "ap show: {}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let p = |k: &str| j["persistent"][k].as_str().unwrap_or("0-255").to_string();
    [
        j["active"]["apmask"].as_str().unwrap().to_string(),
        j["active"]["aqmask"].as_str().unwrap().to_string(),
        p("apmask"),
        p("aqmask"),
    ]
}

fn whole(ap: &str, aq: &str) -> [String; 4] {
    [ap.into(), aq.into(), ap.into(), aq.into()]
}

/// xorshift64: enough randomness for kill delays, and the seed is printed for a rerun.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn ap(h: &Host, args: &[&str]) -> Output {
    let mut a = vec!["ap"];
    a.extend_from_slice(args);
    h.run(&a)
}

#[test]
fn sigkill_at_random_points_leaves_a_whole_change_or_a_record_to_finish_or_undo() {
    let h = Host::for_ap();
    let before = whole("0-255", "0-255");
    let after = whole("0-4,6-255", "0-6,8-255");
    // how long an uninterrupted run takes: kills are spread over that time
    let t = Instant::now();
    for _ in 0..3 {
        assert!(ap(&h, &FORWARD).status.success());
        assert!(ap(&h, &BACK).status.success());
    }
    let run_ns = (t.elapsed().as_nanos() / 6) as u64;
    let seed = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let mut rng = Rng(seed);
    let (mut kills, mut recorded, mut whole_before, mut whole_after) = (0, 0, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut forward = true;
    while kills < 150 && Instant::now() < deadline {
        let (args, target, origin) = if forward {
            (&FORWARD, &after, &before)
        } else {
            (&BACK, &before, &after)
        };
        let mut child = Command::new(bin())
            .arg("--root")
            .arg(h.dir.path())
            .arg("ap")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_nanos(rng.next() % (run_ns + 1)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() {
            // finished before the kill
            assert_eq!(&state(&h), target, "seed {seed}");
            forward = !forward;
            continue;
        }
        kills += 1;
        let now = state(&h);
        if h.path(JOURNAL).exists() {
            recorded += 1;
            let show = ap(&h, &["show"]);
            assert!(
                stderr(&show).contains("was interrupted"),
                "seed {seed}: {}",
                stderr(&show)
            );
            let refused = ap(&h, args);
            assert_eq!(refused.status.code(), Some(1), "seed {seed}");
            assert!(
                stderr(&refused).contains("ap recover --finish"),
                "seed {seed}"
            );
            // alternate: finish half of them, undo the other half
            let finish = recorded % 2 == 0;
            let o = ap(&h, &["recover", if finish { "--finish" } else { "--undo" }]);
            assert!(o.status.success(), "seed {seed}: recover: {}", stderr(&o));
            assert!(!h.path(JOURNAL).exists(), "seed {seed}");
            let want = if finish { target } else { origin };
            assert_eq!(&state(&h), want, "seed {seed}: after recover");
            if finish {
                forward = !forward;
            }
        } else if &now == origin {
            whole_before += 1;
        } else if &now == target {
            whole_after += 1;
            forward = !forward;
        } else {
            panic!(
                "seed {seed}: killed {args:?} left {now:?} (neither {origin:?} nor {target:?}) and no record"
            );
        }
    }
    eprintln!(
        "SIGKILL: {kills} kills (seed {seed}, spread over {} us): {recorded} left a record \
         (finished or undone by ap recover), {whole_before} changed nothing, {whole_after} \
         had completed",
        run_ns / 1000
    );
    // on a loaded machine fewer fit in the time; some must have landed for the test to mean
    // anything
    assert!(
        kills >= 10,
        "only {kills} kills landed in 40 s (seed {seed})"
    );
    // leftovers: completed runs (one of them writes the rule) clean the temporary files of
    // killed ones; the lock has none
    assert!(ap(&h, &BACK).status.success());
    assert!(ap(&h, &FORWARD).status.success());
    let temps = |dir: &str| -> Vec<String> {
        fs::read_dir(h.path(dir))
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .filter(|n| n.contains(".tmp"))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(temps("etc/udev/rules.d"), Vec::<String>::new());
    assert_eq!(temps("run/lock"), Vec::<String>::new());
    assert_eq!(temps("run/nodedev-helper"), Vec::<String>::new());
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions
    unsafe { libc::geteuid() == 0 }
}

/// Runs `bin ap ARGS` over `root` in a private mount namespace where `root/etc/udev/rules.d` is
/// a tmpfs of 32 KiB filled to the last byte.
fn on_full_rules_dir(root: &Path, args: &[&str]) -> Output {
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-ec"])
        .arg(
            r#"d="$1/etc/udev/rules.d"; mkdir -p "$d"
               mount -t tmpfs -o size=32k,nr_inodes=64 tmpfs "$d"
               if [ -n "$RULE_TEXT" ]; then printf '%s' "$RULE_TEXT" > "$d/41-ap.rules"; fi
               dd if=/dev/zero of="$d/fill" bs=1k 2>/dev/null || true
               shift; exec "$@""#,
        )
        .arg("sh")
        .arg(root)
        .arg(bin())
        .arg("--root")
        .arg(root)
        .arg("ap")
        .args(args)
        .output()
        .unwrap()
}

#[test]
#[ignore = "needs root (mount namespace, tmpfs): run by make check-robust"]
fn a_full_file_system_under_the_rule_rolls_the_active_masks_back_and_says_so() {
    assert!(is_root(), "run as root (make check-robust)");
    let h = Host::for_ap();
    let o = on_full_rules_dir(h.dir.path(), &FORWARD[..]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("No space left on device"), "{e}");
    assert!(e.contains(RULE), "{e}");
    assert!(
        e.contains("the active masks were rolled back: nothing changed"),
        "{e}"
    );
    assert_eq!(h.read("sys/bus/ap/apmask"), format!("{FULL}\n"));
    assert_eq!(h.read("sys/bus/ap/aqmask"), format!("{FULL}\n"));
    assert!(!h.path(JOURNAL).exists());
    // and the next change on a disk with room works
    assert!(ap(&h, &FORWARD).status.success());
    assert_eq!(state(&h), whole("0-4,6-255", "0-6,8-255"));
    eprintln!("ENOSPC: {}", e.trim_end());
}

#[test]
#[ignore = "needs root (chown root, setuid bit, setpriv): run by make check-robust"]
fn a_setuid_copy_run_by_nobody_ignores_every_override() {
    assert!(is_root(), "run as root (make check-robust)");
    // the attacker's tree: adapter 5 looks free
    let evil = Host::for_ap();
    evil.write("sys/bus/ap/apmask", &format!("0xfb{}\n", "f".repeat(62)));
    // readable by nobody, as an attacker's own tree would be
    assert!(
        Command::new("chmod")
            .arg("-R")
            .arg("a+rX")
            .arg(evil.dir.path())
            .status()
            .unwrap()
            .success()
    );
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join("nodedev-helper");
    fs::copy(bin(), &copy).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o4755)).unwrap();
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&copy)
            .args(args)
            .env("MDEVCTL_ENV_ROOT", evil.dir.path())
            .env("NODEDEV_HELPER_MDEVCTL", "/bin/false")
            .output()
            .unwrap()
    };
    // control: the same copy without the setuid bit honours the variable
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    let o = as_nobody(&["ap", "show"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("\"0-4,6-255\""),
        "{o:?}"
    );
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o4755)).unwrap();
    // privileged: the variable is ignored, so the real /sys is read (no AP bus here)
    let o = as_nobody(&["ap", "show"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !out.contains("0-4,6-255"),
        "read the attacker's tree: {out}"
    );
    if !Path::new("/sys/bus/ap/apmask").exists() {
        assert!(
            stderr(&o).contains("cannot read /sys/bus/ap/apmask"),
            "{o:?}"
        );
    }
    // and --root is refused
    let o = as_nobody(&["--root", evil.dir.path().to_str().unwrap(), "ap", "show"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr(&o).contains("setuid"), "{o:?}");
}
