//! The libvirt qemu hook run exactly as libvirt 9 runs it — the installed wrapper
//! (hooks/libvirt/50-nodedev-helper, `@SBINDIR@` filled in), argv `GUEST OPERATION
//! SUB-OPERATION -`, the domain XML on stdin, libvirt's minimal environment (`LC_ALL=C`, PATH,
//! HOME, USER, LOGNAME, TMPDIR and nothing else) — over the AP bus simulator mounted as a real
//! sysfs (ap-sim, FUSE), with the real mdevctl 1.4.0 found in PATH and our callout installed in
//! the root's `usr/lib/mdevctl/scripts.d/callouts`. So `prepare begin` really creates the
//! device (the simulator shows its matrix), the callout really validates it, and `release end`
//! really removes it.
//!
//! Needs root, /dev/fuse and mdevctl 1.4.0 (MDEVCTL_1_4): `#[ignore]`d in `cargo test`, run by
//! `make check-hooks` (step check-hooks-sim) with `--include-ignored`, where a missing
//! prerequisite fails the test instead of skipping it.

mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::process::Output;

use ap_sim::HostConfig;
use support::libvirt::{Syslog, ap_hostdev as ap, domain, install_wrapper, run_as_libvirt};
use support::sim::SimHost;
use support::{U1, U2, mdevctl_1_4, stderr};

struct Host {
    sim: SimHost,
    syslog: Syslog,
    wrapper: PathBuf,
}

impl Host {
    /// Cards 2 and 3 (CEX7) with domains 43 and 44; masks all-ones (the host owns every
    /// queue) until a test gives some to vfio_ap; vfio_ap loaded.
    fn new() -> Host {
        let cfg = HostConfig::new()
            .card(2, 13, &[43, 44])
            .card(3, 13, &[43, 44])
            .vfio_ap(true);
        // our callout where mdevctl >= 1.3 looks for it (what `make install` puts there)
        let sim = SimHost::mount(cfg, true);
        let root = sim.root();
        // the hook finds mdevctl in PATH, as on a host where the package installed it
        fs::create_dir_all(root.join("bin")).unwrap();
        symlink(mdevctl_1_4(), root.join("bin/mdevctl")).unwrap();
        let syslog = Syslog::bind(root);
        let wrapper = install_wrapper(root);
        Host {
            sim,
            syslog,
            wrapper,
        }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.sim.path(rel)
    }

    /// Adapters 2, 3 and domains 43, 44 to vfio_ap, written as an admin (or our udev rule) does.
    fn give_to_vfio_ap(&self) {
        fs::write(self.p("sys/bus/ap/apmask"), "-2-3").unwrap();
        fs::write(self.p("sys/bus/ap/aqmask"), "-43-44").unwrap();
    }

    /// The real mdevctl 1.4.0 on the simulated host, run by the test as an admin would.
    fn mdevctl(&self, args: &[&str]) -> Output {
        self.sim.mdevctl(args)
    }

    /// `mdevctl define` a manual-start vfio_ap-passthrough device (config only, not active).
    fn define(&self, uuid: &str, adapters: &[u8], domains: &[u8]) {
        let attrs: Vec<String> = adapters
            .iter()
            .map(|a| format!("{{\"assign_adapter\":\"{a}\"}}"))
            .chain(
                domains
                    .iter()
                    .map(|d| format!("{{\"assign_domain\":\"{d}\"}}")),
            )
            .collect();
        let json = format!(
            "{{\"mdev_type\":\"vfio_ap-passthrough\",\"start\":\"manual\",\"attrs\":[{}]}}",
            attrs.join(",")
        );
        let o = self.sim.define(uuid, &json);
        assert!(o.status.success(), "mdevctl define: {}", stderr(&o));
        assert!(self.p(&format!("etc/mdevctl.d/matrix/{uuid}")).is_file());
    }

    fn start(&self, uuid: &str) {
        let o = self.mdevctl(&["start", "-u", uuid]);
        assert!(o.status.success(), "mdevctl start: {}", stderr(&o));
        assert!(self.sim.m.sim().mdev(uuid).is_some());
    }

    /// The kernel's (simulator's) active mdevs.
    fn active(&self) -> Vec<String> {
        let mut v = self.sim.m.sim().mdevs();
        v.sort();
        v
    }

    /// APQNs of an active mdev as the kernel prints them in its `matrix` attribute.
    fn matrix(&self, uuid: &str) -> String {
        fs::read_to_string(self.p(&format!("sys/devices/vfio_ap/matrix/{uuid}/matrix"))).unwrap()
    }

    fn state(&self, guest: &str) -> Option<String> {
        fs::read_to_string(self.p(&format!("run/nodedev-helper/libvirt-hook/{guest}"))).ok()
    }

    fn syslog(&self) -> Vec<String> {
        self.syslog.drain()
    }

    /// As libvirt's virHookCall: argv `GUEST OP SUB -`, libvirt's environment, the XML on
    /// stdin, which the hook must read.
    fn hook(&self, guest: &str, op: &str, sub: &str, xml: &str) -> Output {
        let (out, wrote) =
            run_as_libvirt(&self.wrapper, &[guest, op, sub, "-"], xml, &self.p("bin"));
        assert!(
            wrote,
            "{op} {sub}: the hook exited before reading libvirt's XML"
        );
        out
    }

    /// Everything the hook could change outside the simulator: etc/, run/, usr/ (file
    /// contents), and the simulator's masks and active mdevs with their matrices.
    fn snapshot(&self) -> Vec<(String, String)> {
        // the FUSE mount is compared through the model below
        let mut out: Vec<(String, String)> = support::snapshot(self.sim.root(), &["sys"])
            .into_iter()
            .map(|(p, v)| {
                let rel = p
                    .strip_prefix(self.sim.root())
                    .unwrap()
                    .display()
                    .to_string();
                (rel, String::from_utf8_lossy(&v).into_owned())
            })
            .collect();
        let sim = self.sim.m.sim();
        out.push(("apmask".into(), sim.apmask().hex()));
        out.push(("aqmask".into(), sim.aqmask().hex()));
        for u in self.active() {
            out.push((format!("mdev {u}"), format!("{:?}", sim.mdev(&u))));
        }
        out.sort();
        out
    }
}

/// A refusal as libvirt shows it: exit 1, one `nodedev-helper: guest 'GUEST' ...` message.
fn refused(o: &Output, guest: &str) -> String {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(o.stdout.is_empty(), "{o:?}");
    assert!(
        e.starts_with(&format!("nodedev-helper: guest '{guest}' ")),
        "{e}"
    );
    e
}

#[test]
#[ignore = "needs root, /dev/fuse and mdevctl 1.4.0: run by make check-hooks"]
fn defined_mdev_is_started_through_mdevctl_and_only_it_is_stopped_on_release() {
    let h = Host::new();
    h.give_to_vfio_ap();
    h.define(U1, &[2], &[43, 44]);
    // another guest's device, already active before any hook ran
    h.define(U2, &[3], &[43]);
    h.start(U2);
    assert_eq!(h.active(), vec![U2.to_string()]);

    let xml = domain("crypto", &ap(U1));
    let o = h.hook("crypto", "prepare", "begin", &xml);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{o:?}");
    // the kernel (simulator) has the device, with the matrix of its mdevctl config
    let dev = h
        .sim
        .m
        .sim()
        .mdev(U1)
        .expect("prepare begin started the mdev");
    assert_eq!(dev.apm.iter().collect::<Vec<_>>(), vec![2]);
    assert_eq!(dev.aqm.iter().collect::<Vec<_>>(), vec![43, 44]);
    assert_eq!(h.matrix(U1), "02.002b\n02.002c\n");
    assert_eq!(h.matrix(U2), "03.002b\n");
    assert_eq!(
        h.state("crypto").as_deref(),
        Some(format!("{U1}\n").as_str())
    );
    let log = h.syslog();
    for want in [
        format!("guest 'crypto': started vfio-ap mdev {U1} through mdevctl"),
        format!("guest 'crypto': vfio-ap mdev {U1} is ready"),
    ] {
        assert!(log.iter().any(|l| l.contains(&want)), "{want}: {log:?}");
    }
    // the callout's lock is released (mdevctl ran it for the start)
    assert!(!h.p("run/lock/s390apconfig.lock").exists());

    // the guest owning the already-active U2: ready, nothing started, nothing recorded
    let other = domain("other", &ap(U2));
    let o = h.hook("other", "prepare", "begin", &other);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(h.state("other"), None);
    let o = h.hook("other", "release", "end", &other);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(h.active(), {
        let mut v = vec![U1.to_string(), U2.to_string()];
        v.sort();
        v
    });

    // release of the crypto guest: exactly the mdev the hook started goes
    let o = h.hook("crypto", "release", "end", &xml);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    assert_eq!(h.active(), vec![U2.to_string()]);
    assert_eq!(h.matrix(U2), "03.002b\n");
    assert_eq!(h.state("crypto"), None);
    assert!(
        h.syslog().iter().any(|l| l.contains(&format!(
            "guest 'crypto': stopped vfio-ap mdev {U1} (started by this hook)"
        ))),
        "no release log"
    );
    // stopped, not undefined: the admin's config stays
    assert!(h.p(&format!("etc/mdevctl.d/matrix/{U1}")).is_file());
    let o = h.mdevctl(&["list", "-d", "-u", U1]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(U1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // a second release finds nothing to do and leaves U2 alone
    let o = h.hook("crypto", "release", "end", &xml);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(h.active(), vec![U2.to_string()]);

    // and the guest can be started again
    let o = h.hook("crypto", "prepare", "begin", &xml);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(h.matrix(U1), "02.002b\n02.002c\n");
}

#[test]
#[ignore = "needs root, /dev/fuse and mdevctl 1.4.0: run by make check-hooks"]
fn defined_mdev_with_a_host_owned_apqn_is_refused_by_the_callout_and_nothing_starts() {
    let h = Host::new();
    // adapter 2 and domain 43 go to vfio_ap: a queue stays the host's only while both its
    // adapter and its domain bit are set (the kernel's ap_owned_by_def_drv), so of
    // 2.43 2.44 3.43 3.44 only 3.44 is the host's
    fs::write(h.p("sys/bus/ap/apmask"), "-2").unwrap();
    fs::write(h.p("sys/bus/ap/aqmask"), "-43").unwrap();
    h.define(U1, &[2, 3], &[43, 44]);
    let o = h.hook("web1", "prepare", "begin", &domain("web1", &ap(U1)));
    let e = refused(&o, "web1");
    assert!(e.contains(U1), "{e}");
    assert!(e.contains(&format!("start -u {U1}")), "{e}");
    // the callout's reason, relayed by mdevctl and the hook: the APQN is named
    assert!(
        e.contains(
            "APQN 3.44 is not allowed for vfio_ap-passthrough use by the active ap bus mask settings"
        ),
        "{e}"
    );
    for free in ["2.43", "2.44", "3.43"] {
        assert!(
            !e.contains(&format!("APQN {free} ")),
            "{free} is vfio_ap's: {e}"
        );
    }
    assert!(h.active().is_empty(), "{:?}", h.active());
    assert_eq!(h.state("web1"), None);
    assert!(!h.p("run/lock/s390apconfig.lock").exists());
    // a release after libvirt gave up does nothing
    let o = h.hook("web1", "release", "end", &domain("web1", &ap(U1)));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(h.active().is_empty());
}

#[test]
#[ignore = "needs root, /dev/fuse and mdevctl 1.4.0: run by make check-hooks"]
fn apqn_in_use_by_another_active_mdev_is_refused_and_the_other_is_untouched() {
    let h = Host::new();
    h.give_to_vfio_ap();
    h.define(U2, &[2], &[43]);
    h.start(U2);
    h.define(U1, &[2, 3], &[43]);
    let o = h.hook("web1", "prepare", "begin", &domain("web1", &ap(U1)));
    let e = refused(&o, "web1");
    assert!(e.contains(U1), "{e}");
    assert!(
        e.contains(&format!("APQN 2.43 already in use by {U2}")),
        "{e}"
    );
    assert_eq!(h.active(), vec![U2.to_string()]);
    assert_eq!(h.matrix(U2), "02.002b\n");
    assert_eq!(h.state("web1"), None);
}

#[test]
#[ignore = "needs root, /dev/fuse and mdevctl 1.4.0: run by make check-hooks"]
fn defined_mdev_without_domains_is_refused_and_not_left_started() {
    let h = Host::new();
    h.give_to_vfio_ap();
    h.define(U1, &[2], &[]);
    let o = h.hook("web1", "prepare", "begin", &domain("web1", &ap(U1)));
    let e = refused(&o, "web1");
    assert!(
        e.contains(&format!("vfio-ap mdev {U1}, whose matrix is empty")),
        "{e}"
    );
    // the callout lets an adapter-only device start (ap-check does too); the hook's own check
    // refuses it and stops what it started
    assert!(
        h.syslog()
            .iter()
            .any(|l| l.contains(&format!("started vfio-ap mdev {U1} through mdevctl"))),
        "mdevctl did not start it: the empty matrix was seen on the config, not the device"
    );
    assert!(h.active().is_empty(), "{e}: {:?}", h.active());
    assert_eq!(h.state("web1"), None);
    assert!(h.p(&format!("etc/mdevctl.d/matrix/{U1}")).is_file());
}

#[test]
#[ignore = "needs root, /dev/fuse and mdevctl 1.4.0: run by make check-hooks"]
fn without_the_callout_the_kernel_refusal_is_relayed_and_nothing_is_left_started() {
    let h = Host::new();
    // a host where our callout is not installed: mdevctl tries to start anything
    fs::remove_file(h.p("usr/lib/mdevctl/scripts.d/callouts/nodedev-helper-callout")).unwrap();
    fs::write(h.p("sys/bus/ap/apmask"), "-2").unwrap();
    fs::write(h.p("sys/bus/ap/aqmask"), "-43").unwrap();
    h.define(U1, &[2, 3], &[43, 44]);
    let o = h.hook("web1", "prepare", "begin", &domain("web1", &ap(U1)));
    let e = refused(&o, "web1");
    assert!(e.contains(&format!("needs vfio-ap mdev {U1}: ")), "{e}");
    assert!(
        e.contains(&format!("start -u {U1}' failed with exit status 1")),
        "{e}"
    );
    // the kernel (vfio_ap_ops.c) refuses to assign domain 44 while queue 3.44 is the host's;
    // mdevctl removes the half-made device
    assert!(
        e.contains("Failed to write 44 to attribute assign_domain"),
        "{e}"
    );
    assert!(h.active().is_empty(), "left started: {:?}", h.active());
    assert_eq!(h.state("web1"), None);
}

#[test]
#[ignore = "needs root, /dev/fuse and mdevctl 1.4.0: run by make check-hooks"]
fn vfio_ap_not_loaded_is_refused_with_the_modprobe_hint() {
    let h = Host::new();
    h.give_to_vfio_ap();
    h.define(U1, &[2], &[43]);
    h.sim.m.sim().set_vfio_ap_loaded(false).unwrap();
    assert!(!h.p("sys/devices/vfio_ap").exists());
    let before = h.snapshot();
    let o = h.hook("web1", "prepare", "begin", &domain("web1", &ap(U1)));
    let e = refused(&o, "web1");
    assert!(e.contains(U1), "{e}");
    assert!(e.contains("vfio_ap kernel module is not loaded"), "{e}");
    assert!(e.contains("run 'modprobe vfio_ap'"), "{e}");
    assert!(e.contains("etc/udev/rules.d/41-ap.rules"), "{e}");
    assert_eq!(h.snapshot(), before);
    assert!(h.active().is_empty());
}

#[test]
#[ignore = "needs root, /dev/fuse and mdevctl 1.4.0: run by make check-hooks"]
fn unknown_mdev_is_refused() {
    let h = Host::new();
    h.give_to_vfio_ap();
    h.define(U2, &[3], &[44]);
    let before = h.snapshot();
    let o = h.hook("web1", "prepare", "begin", &domain("web1", &ap(U1)));
    let e = refused(&o, "web1");
    assert!(e.contains(U1) && e.contains("is unknown"), "{e}");
    assert!(e.contains("mdevctl define"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert_eq!(h.snapshot(), before);
    assert!(
        h.syslog()
            .iter()
            .any(|l| l.starts_with("<27>") && l.contains("is unknown")),
        "the refusal is logged at err"
    );
}

#[test]
#[ignore = "needs root, /dev/fuse and mdevctl 1.4.0: run by make check-hooks"]
fn two_vfio_ap_hostdevs_are_refused_before_anything_starts() {
    let h = Host::new();
    h.give_to_vfio_ap();
    h.define(U1, &[2], &[43]);
    h.define(U2, &[3], &[44]);
    let before = h.snapshot();
    let xml = domain("web1", &format!("{}\n    {}", ap(U1), ap(U2)));
    let o = h.hook("web1", "prepare", "begin", &xml);
    let e = refused(&o, "web1");
    assert!(e.contains("guest 'web1' has 2 vfio-ap hostdevs"), "{e}");
    assert!(e.contains(U1) && e.contains(U2), "{e}");
    assert_eq!(h.snapshot(), before);
    assert!(h.active().is_empty());
}

#[test]
#[ignore = "needs root, /dev/fuse and mdevctl 1.4.0: run by make check-hooks"]
fn guest_without_crypto_exits_0_and_nothing_is_touched() {
    let h = Host::new();
    h.give_to_vfio_ap();
    h.define(U1, &[2], &[43]);
    h.define(U2, &[3], &[44]);
    h.start(U2);
    let before = h.snapshot();
    let plain = domain("plain", "");
    // and a crypto guest for operations the hook ignores (its defined mdev stays inactive)
    let crypto = domain("crypto", &ap(U1));
    for (guest, xml, op, sub) in [
        ("plain", &plain, "prepare", "begin"),
        ("plain", &plain, "start", "begin"),
        ("plain", &plain, "started", "begin"),
        ("plain", &plain, "stopped", "end"),
        ("plain", &plain, "release", "end"),
        ("crypto", &crypto, "start", "begin"),
        ("crypto", &crypto, "started", "begin"),
        ("crypto", &crypto, "stopped", "end"),
        ("crypto", &crypto, "migrate", "begin"),
        ("crypto", &crypto, "release", "end"),
    ] {
        let o = h.hook(guest, op, sub, xml);
        assert!(o.status.success(), "{guest} {op} {sub}: {}", stderr(&o));
        assert!(
            o.stdout.is_empty() && o.stderr.is_empty(),
            "{guest} {op} {sub}: {o:?}"
        );
    }
    assert_eq!(h.snapshot(), before);
    assert_eq!(h.active(), vec![U2.to_string()]);
}
