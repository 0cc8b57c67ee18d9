//! The whole crypto passthrough over the AP bus simulator mounted as a real sysfs (FUSE), with
//! the real mdevctl 1.4.0 creating the device through `MDEVCTL_ENV_ROOT`, and the kernel's
//! EBUSY reaching `ap set`'s write path.
//!
//! FUSE needs root and /dev/fuse, mdevctl ≥ 1.3 comes from MDEVCTL_1_4: these
//! tests are `#[ignore]`d in plain `cargo test` and run by `make check-apmask`.

mod support;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use ap_sim::{Driver, HostConfig};
use nodedev_helper::apmask::Mask;
use nodedev_helper::chzdev;
use nodedev_helper::masks::{self, Request};
use nodedev_helper::root::Root;
use support::sim::SimHost;

const NEW: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(support::bin())
        .arg("--root")
        .arg(dir)
        .args(args)
        .env_remove("MDEVCTL_ENV_ROOT")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
#[ignore = "needs root + /dev/fuse and MDEVCTL_1_4; run by make check-apmask"]
fn passthrough_to_an_active_device_and_back_with_the_real_mdevctl() {
    let mdevctl = support::mdevctl_1_4();
    let mdevctl = mdevctl.to_str().unwrap();
    let h = SimHost::mount(HostConfig::example(), false);
    let (m, dir) = (&h.m, &h.dir);
    let sim = m.sim().clone();
    assert_eq!(sim.queue_driver(2, 43), Some(Driver::Host));

    let o = run(
        dir.path(),
        &[
            "passthrough",
            "2.43",
            "--control-domain",
            "1",
            "--uuid",
            NEW,
            "--mdevctl",
            mdevctl,
            "--domain",
            "test",
            "--connect",
            "test:///default",
        ],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    for want in [
        "[2] host gave up the APQNs: apmask=-2 aqmask=-43 (active and persistent)",
        &format!("[4] mdev {NEW} is active; its matrix holds 2.43"),
        "[5] attached to the persistent definition of guest test",
        &format!("<address uuid='{NEW}'/>"),
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    // the kernel (simulated) has the device with the right matrix, the queue moved to vfio_ap
    let dev = sim.mdev(NEW).expect("mdev exists in the simulator");
    assert_eq!(dev.apm.iter().collect::<Vec<_>>(), vec![2]);
    assert_eq!(dev.aqm.iter().collect::<Vec<_>>(), vec![43]);
    // the extra control domain we asked for (usage domains are implied by the kernel)
    assert_eq!(dev.adm.iter().collect::<Vec<_>>(), vec![1]);
    assert_eq!(sim.queue_driver(2, 43), Some(Driver::VfioAp));
    assert!(!sim.apmask().get(2) && !sim.aqmask().get(43));
    // persistent: the rule and an auto-start config
    let rule = fs::read_to_string(dir.path().join("etc/udev/rules.d/41-ap.rules")).unwrap();
    assert!(rule.contains("ATTR{../../bus/ap/apmask}=\"0xdf"), "{rule}");
    let cfg = fs::read_to_string(dir.path().join(format!("etc/mdevctl.d/matrix/{NEW}"))).unwrap();
    assert!(cfg.contains("\"auto\""), "{cfg}");

    // the documented refused change (doc/ap-bus.md), now against a real (simulated) active device
    let o = run(dir.path(), &["ap", "set", "apmask=+2", "aqmask=+43"]);
    assert_eq!(o.status.code(), Some(9));
    let out = text(&o);
    assert!(
        out.contains(&format!("apmask conflicts with mdev {NEW} APQN 2.43")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "persistent apmask conflicts with defined autostart mdev {NEW} APQN 2.43"
        )),
        "{out}"
    );
    // and ap list sees it
    let out = text(&run(dir.path(), &["ap", "list"]));
    assert!(
        out.contains(&format!(
            "2.43     02.002b  assigned to active mdev {NEW}; defined for mdev {NEW} (auto)"
        )),
        "{out}"
    );

    // --remove gives everything back
    let o = run(
        dir.path(),
        &["passthrough", "--remove", NEW, "--mdevctl", mdevctl],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains(&format!("mdev {NEW} stopped")), "{out}");
    assert!(out.contains(&format!("mdev {NEW} undefined")), "{out}");
    assert!(out.contains("host took back apmask=+2 aqmask=+43"), "{out}");
    assert!(sim.mdevs().is_empty());
    assert!(
        !dir.path()
            .join(format!("etc/mdevctl.d/matrix/{NEW}"))
            .exists()
    );
    assert_eq!(sim.queue_driver(2, 43), Some(Driver::Host));
    assert!(sim.apmask().get(2) && sim.aqmask().get(43));
}

#[test]
#[ignore = "needs root + /dev/fuse; run by make check-apmask"]
fn kernel_ebusy_is_reported_rolled_back_and_the_rule_left_alone() {
    let h = SimHost::mount(HostConfig::example(), false);
    let (m, dir) = (&h.m, &h.dir);
    let sim = m.sim().clone();
    let root = Root::new(dir.path());
    fs::write(dir.path().join("sys/bus/ap/apmask"), "-2").unwrap();

    // plan `apmask=+2 aqmask=-44` while nothing holds 2.43: no conflict...
    let state = masks::read_state(&root).unwrap();
    let req = Request {
        apmask: Some(chzdev::parse("+2").unwrap()),
        aqmask: Some(chzdev::parse("-44").unwrap()),
        active: true,
        persistent: true,
        ..Request::default()
    };
    let plan = masks::plan(&req, &state, &[], &[]);
    assert!(plan.conflicts.is_empty());
    // ...then something that ignores the lock assigns 2.43 to an mdev before we write
    let t = "sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create";
    fs::write(dir.path().join(t), NEW).unwrap();
    let dev = dir.path().join(format!("sys/devices/vfio_ap/matrix/{NEW}"));
    fs::write(dev.join("assign_adapter"), "2").unwrap();
    fs::write(dev.join("assign_domain"), "43").unwrap();
    let before = (sim.apmask(), sim.aqmask());

    let e = masks::execute(&root, &plan).unwrap_err();
    let msg = e.to_string();
    assert_eq!(e.raw_os_error(), Some(libc::EBUSY), "{msg}");
    assert!(
        msg.contains("sys/bus/ap/apmask: Device or resource busy"),
        "{msg}"
    );
    // aqmask had been written first (removals first): it is put back
    assert!(
        msg.contains("rolled back:") && msg.contains("aqmask"),
        "{msg}"
    );
    assert_eq!((sim.apmask(), sim.aqmask()), before);
    assert!(!dir.path().join("etc/udev/rules.d/41-ap.rules").exists());
    let mut ap = Mask::FULL;
    ap.clear(2);
    let active = masks::read_state(&root).unwrap().active;
    assert_eq!((active.apmask, active.aqmask), (ap, Mask::FULL));
}
