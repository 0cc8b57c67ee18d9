//! The simulator mounted over FUSE and driven by unmodified programs: the shell, Debian's
//! mdevctl 1.2 (private mount namespace, bind mounts over /sys and /etc/mdevctl.d) and
//! mdevctl 1.4 (`MDEVCTL_ENV_ROOT`), and the `ap-sim` binary itself.
//!
//! They need root and /dev/fuse, so they are `#[ignore]`d in `cargo test` and run by
//! `make check-apsim` (`--ignored`), which also installs mdevctl 1.4.0 and passes its path in
//! `MDEVCTL_1_4`. Every mount lives in a temp dir and is unmounted on drop, also when an
//! assertion fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ap_sim::{HostConfig, Mounted};

const U1: &str = "6b7a2b2e-8f3c-4e2a-9d51-1c0c7a3b2e10";
const U2: &str = "0d3c1a77-52b4-4c9e-8f0a-7e1d2c3b4a59";
const TYPE: &str = "sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough";

/// A temp root with the simulator on `root/sys` and the plain dirs mdevctl requires.
/// Field order matters: the mount is dropped (unmounted) before the temp dir is removed.
struct Host {
    m: Mounted,
    dir: tempfile::TempDir,
}

impl Host {
    fn new(cfg: HostConfig) -> Host {
        let dir = tempfile::tempdir().unwrap();
        for d in [
            "etc/mdevctl.d/scripts.d/callouts",
            "etc/mdevctl.d/scripts.d/notifiers",
            "usr/lib/mdevctl/scripts.d/callouts",
            "usr/lib/mdevctl/scripts.d/notifiers",
        ] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let m =
            Mounted::new(cfg, dir.path()).expect("mount the simulator (root and /dev/fuse needed)");
        Host { m, dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.p(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    fn sh(&self, script: &str) -> Output {
        // bash, whose echo reports the errno (dash says "I/O error" for every failed write)
        Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(self.root())
            .output()
            .unwrap()
    }

    /// A host whose adapters 2, 3 and domains 43, 44 are free for vfio_ap.
    fn freed() -> Host {
        let h = Host::new(HostConfig::example());
        fs::write(h.p("sys/bus/ap/apmask"), "-2-3").unwrap();
        fs::write(h.p("sys/bus/ap/aqmask"), "-43-44").unwrap();
        h
    }

    fn define(&self, uuid: &str, attrs: &str) {
        let d = self.p("etc/mdevctl.d/matrix");
        fs::create_dir_all(&d).unwrap();
        let json =
            format!(r#"{{"mdev_type":"vfio_ap-passthrough","start":"manual","attrs":{attrs}}}"#);
        fs::write(d.join(uuid), json).unwrap();
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
#[ignore = "needs root and /dev/fuse: make check-apsim"]
fn shell_sees_kernel_semantics() {
    let h = Host::new(HostConfig::example());
    let o = h.sh("echo -2 > sys/bus/ap/apmask && cat sys/bus/ap/apmask");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("0xdf{}\n", "f".repeat(62))
    );
    let o = h.sh("echo +300 > sys/bus/ap/apmask");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Invalid argument"),
        "{}",
        text(&o)
    );
    assert_eq!(h.read("sys/bus/ap/devices/02.002b/status"), "unassigned\n");
    assert_eq!(h.read("sys/bus/ap/bindings"), "5/5 (complete)\n");
    // create an mdev, assign, then the host may not take the APQN back
    let o = h.sh(&format!(
        "echo -43 > sys/bus/ap/aqmask && echo {U1} > {TYPE}/create && \
         echo 2 > sys/bus/mdev/devices/{U1}/assign_adapter && \
         echo 0x2b > sys/bus/mdev/devices/{U1}/assign_domain"
    ));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        h.read(&format!("sys/bus/mdev/devices/{U1}/matrix")),
        "02.002b\n"
    );
    assert_eq!(h.read("sys/bus/ap/devices/02.002b/status"), "assigned\n");
    // adapter 2 back to the host takes no APQN (domain 43 is cleared); then domain 43 would
    let o = h.sh("echo +2 > sys/bus/ap/apmask && echo +43 > sys/bus/ap/aqmask");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Device or resource busy"),
        "{}",
        text(&o)
    );
    assert!(h.m.sim().apmask().get(2) && !h.m.sim().aqmask().get(43));
    let e = fs::write(
        h.p(&format!("sys/bus/mdev/devices/{U1}/assign_domain")),
        "42",
    )
    .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL));
    let e = fs::write(
        h.p(&format!("sys/bus/mdev/devices/{U1}/assign_adapter")),
        "256",
    )
    .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENODEV));
    // symlinks resolve like sysfs, through the kernel
    let real = fs::canonicalize(h.p(&format!("sys/bus/mdev/devices/{U1}/mdev_type"))).unwrap();
    assert_eq!(real, fs::canonicalize(h.p(TYPE)).unwrap());
    assert_eq!(
        fs::read_link(h.p("sys/class/mdev_bus/matrix")).unwrap(),
        Path::new("../../devices/vfio_ap/matrix")
    );
    // sysfs has no file creation, and write-only attributes cannot be read
    let e = fs::write(h.p("sys/bus/ap/newfile"), "1").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES));
    let e = fs::read(h.p(&format!("{TYPE}/create"))).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES));
    fs::write(h.p(&format!("sys/bus/mdev/devices/{U1}/remove")), "1").unwrap();
    assert!(
        fs::read_dir(h.p("sys/bus/mdev/devices"))
            .unwrap()
            .next()
            .is_none()
    );
    assert!(h.m.sim().mdevs().is_empty());
}

fn mdevctl14() -> PathBuf {
    let p = std::env::var_os("MDEVCTL_1_4")
        .map(PathBuf::from)
        .expect("MDEVCTL_1_4 must name mdevctl 1.4.0 (make check-apsim installs it)");
    assert!(p.is_file(), "{} does not exist", p.display());
    p
}

fn mdevctl14_run(h: &Host, args: &[&str]) -> Output {
    Command::new(mdevctl14())
        .args(args)
        .env("MDEVCTL_ENV_ROOT", h.root())
        .output()
        .unwrap()
}

#[test]
#[ignore = "needs root, /dev/fuse and mdevctl 1.4.0: make check-apsim"]
fn mdevctl14_start_creates_the_device_and_stop_removes_it() {
    let h = Host::freed();
    h.define(
        U1,
        r#"[{"assign_adapter":"2"},{"assign_domain":"43"},{"assign_adapter":"3"},{"assign_control_domain":"44"}]"#,
    );
    let o = mdevctl14_run(&h, &["types"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Available instances: 65536"),
        "{}",
        text(&o)
    );
    let o = mdevctl14_run(&h, &["start", "-u", U1]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        h.read(&format!("sys/bus/mdev/devices/{U1}/matrix")),
        "02.002b\n03.002b\n"
    );
    assert_eq!(
        h.read(&format!("sys/bus/mdev/devices/{U1}/control_domains")),
        "002c\n"
    );
    let o = mdevctl14_run(&h, &["list"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{U1} matrix vfio_ap-passthrough manual (defined)\n"),
        "{}",
        text(&o)
    );
    let o = mdevctl14_run(&h, &["stop", "-u", U1]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(h.m.sim().mdevs().is_empty());
}

#[test]
#[ignore = "needs root, /dev/fuse and mdevctl 1.4.0: make check-apsim"]
fn mdevctl14_start_refused_by_the_kernel_leaves_no_device() {
    let h = Host::freed();
    h.fs_start_other();
    // 2.43 is already in U2: the kernel answers EADDRINUSE, mdevctl removes the half-made device
    h.define(U1, r#"[{"assign_domain":"43"},{"assign_adapter":"2"}]"#);
    let o = mdevctl14_run(&h, &["start", "-u", U1]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Failed to write 2 to attribute assign_adapter"),
        "{}",
        text(&o)
    );
    assert!(err.contains("Address already in use"), "{}", text(&o));
    assert_eq!(h.m.sim().mdevs(), vec![U2.to_string()]);
    // APQN 4.42 is still the host's (apmask bit 4 and aqmask bit 42 set): EADDRNOTAVAIL
    h.define(U1, r#"[{"assign_domain":"42"},{"assign_adapter":"4"}]"#);
    let o = mdevctl14_run(&h, &["start", "-u", U1]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Cannot assign requested address"),
        "{}",
        text(&o)
    );
    assert_eq!(h.m.sim().mdevs(), vec![U2.to_string()]);
}

impl Host {
    /// Start U2 with APQN 2.43 by writing sysfs directly.
    fn fs_start_other(&self) {
        fs::write(self.p(&format!("{TYPE}/create")), U2).unwrap();
        fs::write(
            self.p(&format!("sys/bus/mdev/devices/{U2}/assign_adapter")),
            "2",
        )
        .unwrap();
        fs::write(
            self.p(&format!("sys/bus/mdev/devices/{U2}/assign_domain")),
            "43",
        )
        .unwrap();
    }
}

#[test]
#[ignore = "needs root, /dev/fuse, unshare and Debian's mdevctl 1.2: make check-apsim"]
fn mdevctl12_in_a_private_namespace() {
    let mdevctl = std::env::var("AP_SIM_MDEVCTL12").unwrap_or_else(|_| "/usr/bin/mdevctl".into());
    let h = Host::freed();
    h.define(U1, r#"[{"assign_adapter":"3"},{"assign_domain":"44"}]"#);
    let root = h.root().display().to_string();
    let script = format!(
        "set -e; mount --bind {root}/sys /sys; mount --bind {root}/etc/mdevctl.d /etc/mdevctl.d; \
         {mdevctl} --version; {mdevctl} start -u {U1}; {mdevctl} list; \
         cat /sys/bus/mdev/devices/{U1}/matrix"
    );
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("mdevctl 1.2.0\n{U1} matrix vfio_ap-passthrough manual (defined)\n\n03.002c\n")
    );
    assert_eq!(h.m.sim().mdevs(), vec![U1.to_string()]);
    let o = Command::new("unshare")
        .args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &format!(
                "set -e; mount --bind {root}/sys /sys; mount --bind {root}/etc/mdevctl.d /etc/mdevctl.d; {mdevctl} stop -u {U1}"
            ),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(h.m.sim().mdevs().is_empty());
}

#[test]
#[ignore = "needs root and /dev/fuse: make check-apsim"]
fn binary_mounts_until_sigterm_and_unmounts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("host.json");
    let o = Command::new(env!("CARGO_BIN_EXE_ap-sim"))
        .arg("example-config")
        .output()
        .unwrap();
    assert!(o.status.success());
    fs::write(&cfg, &o.stdout).unwrap();
    let ready = dir.path().join("ready");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ap-sim"))
        .arg("mount")
        .arg(dir.path())
        .arg("--config")
        .arg(&cfg)
        .arg("--ready-file")
        .arg(&ready)
        .spawn()
        .unwrap();
    // kill and reap the child whatever happens below
    struct Reap<'a>(&'a mut std::process::Child);
    impl Drop for Reap<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id() as i32;
    let guard = Reap(&mut child);
    for _ in 0..100 {
        if ready.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(ready.exists(), "ap-sim did not signal readiness");
    let apmask = fs::read_to_string(dir.path().join("sys/bus/ap/apmask")).unwrap();
    assert_eq!(apmask, format!("0x{}\n", "f".repeat(64)));
    // SAFETY: pid is our child, still unreaped (the guard owns it).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = guard.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&dir.path().display().to_string()),
        "still mounted"
    );
    assert!(!ready.exists(), "ready file left behind");
    // a config the simulator refuses: clear error naming the file, no mount
    fs::write(
        &cfg,
        r#"{"cards":[{"id":2,"hwtype":13},{"id":2,"hwtype":13}]}"#,
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ap-sim"))
        .arg("mount")
        .arg(dir.path())
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("configured twice"), "{err}");
}

/// A raw listener on udev's netlink group (2) in this thread's network namespace.
fn raw_udev_listener() -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket/bind/setsockopt on a new descriptor owned at once.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::NETLINK_KOBJECT_UEVENT,
        );
        assert!(
            fd >= 0,
            "netlink socket: {}",
            std::io::Error::last_os_error()
        );
        let mut a: libc::sockaddr_nl = std::mem::zeroed();
        a.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        a.nl_groups = 2;
        let rc = libc::bind(
            fd,
            (&raw const a).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        std::os::fd::OwnedFd::from_raw_fd(fd)
    }
}

/// Every datagram waiting on a non-blocking socket, as `ACTION DEVPATH` from its properties.
fn drain(fd: &std::os::fd::OwnedFd) -> Vec<String> {
    use std::os::fd::AsRawFd;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        // SAFETY: buf is writable for its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            return out;
        }
        let msg = &buf[..n as usize];
        assert_eq!(&msg[..8], b"libudev\0");
        let props: Vec<String> = msg[40..]
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        let get = |k: &str| {
            props
                .iter()
                .find_map(|p| p.strip_prefix(&format!("{k}=")))
                .unwrap_or("")
                .to_string()
        };
        out.push(format!("{} {}", get("ACTION"), get("DEVPATH")));
    }
}

/// With udev events on, a write's events reach listeners in the writer's own network
/// namespace before the write returns: a raw netlink socket sees each datagram, and a real
/// libudev monitor filtering on subsystem "mdev" (libudev's in-kernel filter compares our
/// subsystem hash) reads the devices with their properties. The writer runs in a fresh
/// network namespace, so nothing reaches the host's listeners.
#[test]
#[ignore = "needs root and /dev/fuse: make check-apsim"]
fn udev_events_reach_the_writers_namespace_before_the_write_returns() {
    let dir = tempfile::tempdir().unwrap();
    let sim = std::sync::Arc::new(ap_sim::Sim::new(&HostConfig::example()).unwrap());
    let opts = ap_sim::MountOptions { udev_events: true };
    let m = Mounted::with_options(sim, dir.path(), opts).expect("mount (root, /dev/fuse)");
    let root = dir.path().to_path_buf();
    let t = std::thread::spawn(move || {
        // SAFETY: unshare(CLONE_NEWNET) moves only this thread into a new namespace.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
        let raw = raw_udev_listener();
        let monitor = udev::MonitorBuilder::new()
            .and_then(|b| b.match_subsystem("mdev"))
            .and_then(|b| b.listen())
            .expect("libudev monitor");
        fs::write(root.join("sys/bus/ap/apmask"), "-2-3").unwrap();
        fs::write(root.join(TYPE).join("create"), U1).unwrap();
        let dev = format!("/devices/vfio_ap/matrix/{U1}");
        // no waiting: everything must be queued by the time write(2) returned
        let raw_seen = drain(&raw);
        assert_eq!(raw_seen.len(), 8 + 2, "{raw_seen:?}");
        assert_eq!(raw_seen[0], "unbind /devices/ap/card02/02.002b");
        assert_eq!(raw_seen[8], format!("add {dev}"));
        assert_eq!(raw_seen[9], format!("bind {dev}"));
        let seen: Vec<(String, String, String, String)> = monitor
            .iter()
            .map(|e| {
                let prop = |k: &str| {
                    e.property_value(k)
                        .map(|v| v.to_string_lossy().into_owned())
                        .unwrap_or_default()
                };
                (
                    e.event_type().to_string(),
                    e.syspath().display().to_string(),
                    e.subsystem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    prop("MDEV_TYPE"),
                )
            })
            .collect();
        let syspath = format!("/sys{dev}");
        let mdev_type = "vfio_ap-passthrough".to_string();
        assert_eq!(
            seen,
            [
                (
                    "add".into(),
                    syspath.clone(),
                    "mdev".into(),
                    mdev_type.clone()
                ),
                (
                    "bind".into(),
                    syspath.clone(),
                    "mdev".into(),
                    mdev_type.clone()
                ),
            ],
            "libudev's subsystem filter passed only the mdev events"
        );
        let w = fs::write(root.join(format!("sys{dev}/remove")), "1");
        w.unwrap();
        assert_eq!(
            drain(&raw),
            [format!("unbind {dev}"), format!("remove {dev}")]
        );
    });
    let r = t.join();
    drop(m);
    r.expect("listener thread");
}

/// Off by default: a mount without the option sends nothing.
#[test]
#[ignore = "needs root and /dev/fuse: make check-apsim"]
fn udev_events_are_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mounted::new(HostConfig::example(), dir.path()).expect("mount");
    let root = dir.path().to_path_buf();
    let t = std::thread::spawn(move || {
        // SAFETY: as above, this thread only.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
        let raw = raw_udev_listener();
        fs::write(root.join("sys/bus/ap/apmask"), "-2-3").unwrap();
        fs::write(root.join(TYPE).join("create"), U1).unwrap();
        assert_eq!(drain(&raw), Vec::<String>::new());
    });
    let r = t.join();
    drop(m);
    r.expect("listener thread");
}
