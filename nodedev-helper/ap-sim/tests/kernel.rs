//! Each kernel behaviour of doc/ap-bus.md, pinned against the in-process model.

use ap_sim::{Driver, HostConfig, Kind, Mask, Sim};

const U1: &str = "6b7a2b2e-8f3c-4e2a-9d51-1c0c7a3b2e10";
const U2: &str = "0d3c1a77-52b4-4c9e-8f0a-7e1d2c3b4a59";
const TYPE: &str = "/sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough";

fn sim() -> Sim {
    Sim::new(&HostConfig::example()).unwrap()
}

fn errno(r: std::io::Result<usize>) -> i32 {
    r.expect_err("write should fail").raw_os_error().unwrap()
}

fn mdev(_s: &Sim, u: &str, attr: &str) -> String {
    format!("/sys/devices/vfio_ap/matrix/{u}/{attr}")
}

fn w(s: &Sim, path: &str, v: &str) -> std::io::Result<usize> {
    s.write(path, v.as_bytes())
}

/// Give adapters 2,3 and domains 43,44 to vfio_ap, create U1.
fn with_mdev() -> Sim {
    let s = sim();
    w(&s, "/sys/bus/ap/apmask", "-2-3").unwrap();
    w(&s, "/sys/bus/ap/aqmask", "-43-44").unwrap();
    w(&s, &format!("{TYPE}/create"), U1).unwrap();
    s
}

#[test]
fn masks_read_format_and_defaults() {
    let s = sim();
    let full = format!("0x{}\n", "f".repeat(64));
    assert_eq!(s.read_string("/sys/bus/ap/apmask").unwrap(), full);
    assert_eq!(s.read_string("bus/ap/aqmask").unwrap(), full);
    w(&s, "/sys/bus/ap/apmask", "0x41").unwrap();
    let got = s.read_string("/sys/bus/ap/apmask").unwrap();
    assert_eq!(got, format!("0x41{}\n", "0".repeat(62)));
    assert_eq!(s.apmask().iter().collect::<Vec<_>>(), vec![1, 7]);
}

#[test]
fn mask_write_syntaxes() {
    let s = sim();
    assert_eq!(w(&s, "/sys/bus/ap/apmask", "-2\n").unwrap(), 3);
    assert!(!s.apmask().get(2) && s.apmask().get(3));
    w(&s, "/sys/bus/ap/apmask", "+2,-0x10-0x12,+017").unwrap();
    let m = s.apmask();
    assert!(m.get(2) && !m.get(16) && !m.get(17) && !m.get(18) && m.get(15) && m.get(19));
    w(&s, "/sys/bus/ap/aqmask", &"f".repeat(64)).unwrap();
    assert_eq!(s.aqmask(), Mask::full());
    w(&s, "/sys/bus/ap/aqmask", "8").unwrap();
    assert_eq!(s.aqmask().iter().collect::<Vec<_>>(), vec![0]);
    for bad in [
        "+256",
        "-5-3",
        "2",
        "+1 ,+2",
        "0x",
        "zz",
        "+2,3",
        &"f".repeat(65),
    ] {
        let before = s.apmask();
        if bad == "2" || bad == "0x" {
            // "2" is a valid absolute mask (bit 6), "0x" the empty mask: both accepted
            assert!(w(&s, "/sys/bus/ap/apmask", bad).is_ok(), "{bad}");
            w(&s, "/sys/bus/ap/apmask", &before.hex()).unwrap();
            continue;
        }
        assert_eq!(
            errno(w(&s, "/sys/bus/ap/apmask", bad)),
            libc::EINVAL,
            "{bad}"
        );
        assert_eq!(s.apmask(), before, "{bad} changed the mask");
    }
}

#[test]
fn queues_follow_masks_and_bindings() {
    let s = sim();
    assert_eq!(
        s.read_string("/sys/bus/ap/bindings").unwrap(),
        "5/5 (complete)\n"
    );
    assert_eq!(s.queue_driver(2, 43), Some(Driver::Host));
    assert_eq!(
        s.read_string("/sys/bus/ap/devices/02.002b/online").unwrap(),
        "1\n"
    );
    assert_eq!(
        s.read_string("/sys/bus/ap/devices/card02/hwtype").unwrap(),
        "13\n"
    );
    assert_eq!(
        s.read_string("/sys/bus/ap/ap_max_adapter_id").unwrap(),
        "255\n"
    );
    assert_eq!(
        s.read_string("/sys/bus/ap/ap_max_domain_id").unwrap(),
        "255\n"
    );
    w(&s, "/sys/bus/ap/apmask", "-2,-5").unwrap();
    assert_eq!(s.queue_driver(2, 43), Some(Driver::VfioAp));
    assert!(!s.exists("/sys/bus/ap/devices/02.002b/online"));
    assert_eq!(
        s.read_string("/sys/bus/ap/devices/02.002b/status").unwrap(),
        "unassigned\n"
    );
    assert_eq!(
        s.readlink("/sys/devices/ap/card02/02.002b/driver").unwrap(),
        "../../../../bus/ap/drivers/vfio_ap"
    );
    // card 05 is a CEX3C (hwtype 9): vfio_ap does not bind it, so bindings is incomplete
    assert_eq!(s.queue_driver(5, 43), None);
    assert_eq!(s.read_string("/sys/bus/ap/bindings").unwrap(), "4/5\n");
    // without vfio_ap nothing takes the queues the host gave away
    let s = Sim::new(&HostConfig::example().vfio_ap(false)).unwrap();
    w(&s, "/sys/bus/ap/apmask", "-2").unwrap();
    assert_eq!(s.read_string("/sys/bus/ap/bindings").unwrap(), "3/5\n");
}

#[test]
fn matrix_parent_only_while_vfio_ap_loaded() {
    let s = Sim::new(&HostConfig::example().vfio_ap(false)).unwrap();
    assert!(!s.exists("/sys/devices/vfio_ap"));
    assert!(!s.exists("/sys/class/mdev_bus/matrix"));
    s.set_vfio_ap_loaded(true).unwrap();
    assert_eq!(
        s.canonicalize("/sys/class/mdev_bus/matrix").unwrap(),
        "devices/vfio_ap/matrix"
    );
    assert_eq!(
        s.read_string(&format!("{TYPE}/device_api")).unwrap(),
        "vfio-ap\n"
    );
    assert_eq!(
        s.read_string(&format!("{TYPE}/available_instances"))
            .unwrap(),
        "65536\n"
    );
    assert_eq!(
        s.read_string(&format!("{TYPE}/name")).unwrap(),
        "VFIO AP Passthrough Device\n"
    );
    assert_eq!(s.stat(&format!("{TYPE}/devices")).unwrap().kind, Kind::Dir);
    w(&s, &format!("{TYPE}/create"), U1).unwrap();
    assert_eq!(
        s.set_vfio_ap_loaded(false).unwrap_err().raw_os_error(),
        Some(libc::EBUSY)
    );
}

#[test]
fn mdev_create_remove_and_links() {
    let s = sim();
    assert_eq!(
        errno(w(&s, &format!("{TYPE}/create"), "not-a-uuid")),
        libc::EINVAL
    );
    w(
        &s,
        &format!("{TYPE}/create"),
        &format!("{}\n", U1.to_uppercase()),
    )
    .unwrap();
    assert_eq!(errno(w(&s, &format!("{TYPE}/create"), U1)), libc::EEXIST);
    assert_eq!(s.mdevs(), vec![U1.to_string()]);
    assert_eq!(
        s.canonicalize(&format!("/sys/bus/mdev/devices/{U1}"))
            .unwrap(),
        format!("devices/vfio_ap/matrix/{U1}")
    );
    assert_eq!(
        s.canonicalize(&format!("/sys/bus/mdev/devices/{U1}/mdev_type"))
            .unwrap(),
        "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough"
    );
    assert_eq!(
        s.canonicalize(&format!("{TYPE}/devices/{U1}")).unwrap(),
        format!("devices/vfio_ap/matrix/{U1}")
    );
    assert_eq!(
        s.read_string(&format!("{TYPE}/available_instances"))
            .unwrap(),
        "65535\n"
    );
    let rm = format!("/sys/devices/vfio_ap/matrix/{U1}/remove");
    assert_eq!(errno(w(&s, &rm, "x")), libc::EINVAL);
    w(&s, &rm, "0").unwrap();
    assert_eq!(s.mdevs().len(), 1, "remove of 0 does nothing");
    w(&s, &rm, "1").unwrap();
    assert!(s.mdevs().is_empty());
    assert!(s.readdir("/sys/bus/mdev/devices").unwrap().is_empty());
}

#[test]
fn assign_errors() {
    let s = Sim::new(&HostConfig::example().max_ids(63, 84)).unwrap();
    w(&s, "/sys/bus/ap/apmask", "-2-3").unwrap();
    w(&s, "/sys/bus/ap/aqmask", "-43-44").unwrap();
    w(&s, &format!("{TYPE}/create"), U1).unwrap();
    w(&s, &format!("{TYPE}/create"), U2).unwrap();
    let p = |u: &str, a: &str| mdev(&s, u, a);
    assert_eq!(errno(w(&s, &p(U1, "assign_adapter"), "two")), libc::EINVAL);
    assert_eq!(errno(w(&s, &p(U1, "assign_adapter"), "-1")), libc::EINVAL);
    assert_eq!(errno(w(&s, &p(U1, "assign_adapter"), "64")), libc::ENODEV);
    assert_eq!(errno(w(&s, &p(U1, "assign_domain"), "85")), libc::ENODEV);
    assert_eq!(
        errno(w(&s, &p(U1, "assign_control_domain"), "85")),
        libc::ENODEV
    );
    // ownership is per APQN: adapter 4 is the host's but 4.43 is not (domain 43 is cleared)
    w(&s, &p(U1, "assign_adapter"), "2").unwrap();
    w(&s, &p(U1, "assign_domain"), "0x2b").unwrap();
    w(&s, &p(U1, "assign_adapter"), "4").unwrap();
    // ... while 4.42 is: EADDRNOTAVAIL, and the domain is not assigned
    assert_eq!(
        errno(w(&s, &p(U1, "assign_domain"), "42")),
        libc::EADDRNOTAVAIL
    );
    assert_eq!(
        s.read_string(&p(U1, "matrix")).unwrap(),
        "02.002b\n04.002b\n"
    );
    w(&s, &p(U1, "unassign_adapter"), "4").unwrap();
    // the same APQN in a second mdev -> EADDRINUSE
    w(&s, &p(U2, "assign_domain"), "43").unwrap();
    assert_eq!(
        errno(w(&s, &p(U2, "assign_adapter"), "2")),
        libc::EADDRINUSE
    );
    w(&s, &p(U2, "assign_adapter"), "3").unwrap();
    assert_eq!(s.read_string(&p(U1, "matrix")).unwrap(), "02.002b\n");
    // write-only and read-only attributes
    assert_eq!(
        s.read(&p(U1, "assign_adapter")).unwrap_err().raw_os_error(),
        Some(libc::EACCES)
    );
    assert_eq!(errno(w(&s, &p(U1, "matrix"), "1")), libc::EACCES);
}

#[test]
fn matrix_control_domains_ap_config() {
    let s = with_mdev();
    let p = |a: &str| mdev(&s, U1, a);
    assert_eq!(s.read_string(&p("matrix")).unwrap(), "");
    w(&s, &p("assign_domain"), "43").unwrap();
    assert_eq!(s.read_string(&p("matrix")).unwrap(), ".002b\n");
    w(&s, &p("unassign_domain"), "43").unwrap();
    w(&s, &p("assign_adapter"), "3").unwrap();
    assert_eq!(s.read_string(&p("matrix")).unwrap(), "03.\n");
    w(&s, &p("assign_adapter"), "2").unwrap();
    w(&s, &p("assign_domain"), "44").unwrap();
    w(&s, &p("assign_domain"), "43").unwrap();
    assert_eq!(
        s.read_string(&p("matrix")).unwrap(),
        "02.002b\n02.002c\n03.002b\n03.002c\n"
    );
    w(&s, &p("assign_control_domain"), "43").unwrap();
    w(&s, &p("assign_control_domain"), "0").unwrap();
    assert_eq!(
        s.read_string(&p("control_domains")).unwrap(),
        "0000\n002b\n"
    );
    let cfg = s.read_string(&p("ap_config")).unwrap();
    let z = |n| "0".repeat(n);
    assert_eq!(
        cfg,
        format!(
            "0x30{},0x{}18{},0x80{}10{}\n",
            z(62),
            z(10),
            z(52),
            z(8),
            z(52)
        )
    );
    // ap_config store: replaces all three masks at once
    let new = format!("0x20,0x{}08,0x\n", z(10));
    w(&s, &p("ap_config"), &new).unwrap();
    assert_eq!(s.read_string(&p("matrix")).unwrap(), "02.002c\n");
    assert_eq!(s.read_string(&p("control_domains")).unwrap(), "");
    assert_eq!(errno(w(&s, &p("ap_config"), "0x20,0x08")), libc::EINVAL);
    // an APQN the host owns -> EADDRNOTAVAIL, and nothing changes
    assert_eq!(
        errno(w(&s, &p("ap_config"), "0x40,0x08,0")),
        libc::EADDRNOTAVAIL
    );
    assert_eq!(s.read_string(&p("matrix")).unwrap(), "02.002c\n");
    w(&s, &p("unassign_adapter"), "2").unwrap();
    w(&s, &p("unassign_adapter"), "2").unwrap();
    assert_eq!(s.read_string(&p("matrix")).unwrap(), ".002c\n");
}

#[test]
fn setting_mask_bits_of_an_mdev_is_ebusy_clearing_never_fails() {
    let s = with_mdev();
    w(&s, &mdev(&s, U1, "assign_adapter"), "2").unwrap();
    w(&s, &mdev(&s, U1, "assign_domain"), "43").unwrap();
    // adapter 2 back to the host: APQN 2.43 stays free because domain 43 is still cleared
    w(&s, "/sys/bus/ap/apmask", "+2").unwrap();
    // ... and now domain 43 would give 2.43 to the host: EBUSY, nothing changes
    let (apm, aqm) = (s.apmask(), s.aqmask());
    assert_eq!(errno(w(&s, "/sys/bus/ap/aqmask", "+43")), libc::EBUSY);
    assert_eq!(
        errno(w(&s, "/sys/bus/ap/aqmask", &"f".repeat(64))),
        libc::EBUSY
    );
    assert_eq!(
        (s.apmask(), s.aqmask()),
        (apm, aqm),
        "EBUSY changed nothing"
    );
    w(&s, "/sys/bus/ap/apmask", "-2").unwrap();
    w(&s, "/sys/bus/ap/aqmask", "+43").unwrap();
    assert_eq!(errno(w(&s, "/sys/bus/ap/apmask", "+0-3")), libc::EBUSY);
    assert_eq!(s.apmask(), apm.and_not(&Mask::from_bits([2])));
    // domain 44 / adapter 3 are not in the mdev: taking them back is fine; clearing never fails
    w(&s, "/sys/bus/ap/aqmask", "+44").unwrap();
    w(&s, "/sys/bus/ap/apmask", "+3").unwrap();
    w(&s, "/sys/bus/ap/apmask", "-0-255").unwrap();
    assert!(s.apmask().is_empty());
}

#[test]
fn queue_status_assigned_in_use() {
    let s = with_mdev();
    let st = || s.read_string("/sys/bus/ap/devices/02.002b/status").unwrap();
    assert_eq!(st(), "unassigned\n");
    w(&s, &mdev(&s, U1, "assign_adapter"), "2").unwrap();
    w(&s, &mdev(&s, U1, "assign_domain"), "43").unwrap();
    assert_eq!(st(), "assigned\n");
    s.set_guest(U1, true).unwrap();
    assert_eq!(st(), "in use\n");
    assert_eq!(
        s.read_string(&mdev(&s, U1, "guest_matrix")).unwrap(),
        "02.002b\n"
    );
}

#[test]
fn tree_listing_and_missing_paths() {
    let s = with_mdev();
    let names: Vec<String> = s
        .readdir("/sys/bus/ap/devices")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        names,
        [
            "02.002b", "02.002c", "03.002b", "03.002c", "05.002b", "card02", "card03", "card05"
        ]
    );
    assert_eq!(
        s.lstat("/sys/bus/ap/devices/card02").unwrap().kind,
        Kind::Symlink
    );
    assert_eq!(
        s.stat("/sys/bus/ap/devices/card02").unwrap().kind,
        Kind::Dir
    );
    let e = s.read("/sys/bus/ap/nothing").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    assert_eq!(errno(w(&s, "/sys/bus/ap/apmask/x", "1")), libc::ENOTDIR);
    assert_eq!(
        errno(w(&s, "/sys/bus/ap/ap_max_domain_id", "1")),
        libc::EACCES
    );
}

#[test]
fn config_errors_and_json() {
    let e = Sim::new(&HostConfig::new().card(2, 13, &[]).card(2, 13, &[])).unwrap_err();
    assert!(e.to_string().contains("twice"), "{e}");
    let e = Sim::new(&HostConfig::new().max_ids(15, 15).card(16, 13, &[])).unwrap_err();
    assert!(e.to_string().contains("ap_max_adapter_id"), "{e}");
    let e = Sim::from_json(r#"{"cards":[],"apmask":"zz"}"#).unwrap_err();
    assert!(e.to_string().contains("zz"), "{e}");
    assert!(Sim::from_json(r#"{"bogus":1}"#).is_err());
    let s =
        Sim::from_json(r#"{"cards":[{"id":2,"hwtype":13,"domains":[43]}],"aqmask":"0"}"#).unwrap();
    assert_eq!(s.queue_driver(2, 43), Some(Driver::VfioAp));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any mask written as 64 hex digits reads back identically, bit n = digit n/4's
        /// weight 8 >> (n % 4) (the kernel's inverted bit order), whatever the host's endianness.
        #[test]
        fn hex_round_trip(bits in proptest::collection::btree_set(0usize..256, 0..40)) {
            let s = sim();
            let m = Mask::from_bits(bits.iter().copied());
            w(&s, "/sys/bus/ap/apmask", &m.hex()).unwrap();
            let text = s.read_string("/sys/bus/ap/apmask").unwrap();
            let digits: Vec<u32> = text[2..66].chars().map(|c| c.to_digit(16).unwrap()).collect();
            for n in 0..256 {
                prop_assert_eq!(digits[n / 4] & (8 >> (n % 4)) != 0, bits.contains(&n));
            }
            prop_assert_eq!(s.apmask(), m);
        }

        /// A relative list of `+a-b` / `-a-b` terms equals applying the terms in order to a
        /// plain array of bools.
        #[test]
        fn relative_terms_apply_in_order(
            terms in proptest::collection::vec((any::<bool>(), 0usize..256, 0usize..256), 1..12)
        ) {
            let s = sim();
            let mut reference = [true; 256];
            let mut text = Vec::new();
            for (plus, a, b) in &terms {
                let (lo, hi) = if a <= b { (*a, *b) } else { (*b, *a) };
                for r in reference.iter_mut().take(hi + 1).skip(lo) {
                    *r = *plus;
                }
                text.push(format!("{}{lo}-{hi:#x}", if *plus { '+' } else { '-' }));
            }
            w(&s, "/sys/bus/ap/aqmask", &text.join(",")).unwrap();
            let got = s.aqmask();
            for (n, want) in reference.iter().enumerate() {
                prop_assert_eq!(got.get(n), *want, "bit {}", n);
            }
        }
    }
}

// ---- what udev and libvirt's node device driver read: uevent files, subsystem and driver
// links, the matrix bus, IOMMU groups, and the events of each store ----

fn uevent(s: &Sim, path: &str) -> String {
    s.read_string(&format!("{path}/uevent")).unwrap()
}

#[test]
fn matrix_device_is_on_the_matrix_bus_bound_to_vfio_ap() {
    let s = sim();
    let m = "/sys/devices/vfio_ap/matrix";
    // no DEVTYPE line: libvirt types the device by its subsystem alone
    assert_eq!(uevent(&s, m), "DRIVER=vfio_ap\n");
    assert_eq!(
        s.readlink(&format!("{m}/subsystem")).unwrap(),
        "../../../bus/matrix"
    );
    assert_eq!(
        s.canonicalize(&format!("{m}/driver")).unwrap(),
        "bus/matrix/drivers/vfio_ap"
    );
    assert_eq!(
        s.canonicalize("/sys/bus/matrix/devices/matrix").unwrap(),
        "devices/vfio_ap/matrix"
    );
    assert_eq!(
        s.canonicalize("/sys/bus/matrix/drivers/vfio_ap/matrix")
            .unwrap(),
        "devices/vfio_ap/matrix"
    );
    // root devices have a uevent file without variables
    assert_eq!(uevent(&s, "/sys/devices/vfio_ap"), "");
    assert_eq!(uevent(&s, "/sys/devices/ap"), "");
}

#[test]
fn matrix_bus_exists_only_while_vfio_ap_is_loaded() {
    let s = Sim::new(&HostConfig::example().vfio_ap(false)).unwrap();
    assert!(!s.exists("/sys/bus/matrix"));
    let names: Vec<String> = s
        .readdir("/sys/bus")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["ap", "mdev"]);
    assert!(s.readdir("/sys/bus/mdev/drivers").unwrap().is_empty());
    s.set_vfio_ap_loaded(true).unwrap();
    assert!(s.exists("/sys/bus/matrix/devices/matrix/mdev_supported_types"));
}

#[test]
fn cards_and_queues_have_uevent_and_subsystem() {
    let s = sim();
    assert_eq!(
        uevent(&s, "/sys/bus/ap/devices/card02"),
        "DEVTYPE=ap_card\nDRIVER=cex4card\nDEV_TYPE=000D\nMODALIAS=ap:t0D\n"
    );
    assert_eq!(
        s.canonicalize("/sys/devices/ap/card02/subsystem").unwrap(),
        "bus/ap"
    );
    assert_eq!(
        uevent(&s, "/sys/bus/ap/devices/02.002b"),
        "DEVTYPE=ap_queue\nDRIVER=cex4queue\n"
    );
    assert_eq!(
        s.canonicalize("/sys/devices/ap/card02/02.002b/subsystem")
            .unwrap(),
        "bus/ap"
    );
    w(&s, "/sys/bus/ap/apmask", "-2").unwrap();
    assert_eq!(
        uevent(&s, "/sys/bus/ap/devices/02.002b"),
        "DEVTYPE=ap_queue\nDRIVER=vfio_ap\n"
    );
    // a CEX3C queue given away from the host binds to no driver: no DRIVER line
    w(&s, "/sys/bus/ap/apmask", "-5").unwrap();
    assert_eq!(
        uevent(&s, "/sys/bus/ap/devices/05.002b"),
        "DEVTYPE=ap_queue\n"
    );
    assert!(s.exists("/sys/devices/ap/card05/05.002b/subsystem"));
}

#[test]
fn mdev_has_uevent_driver_and_an_iommu_group_of_its_own() {
    let s = with_mdev();
    let d = format!("/sys/devices/vfio_ap/matrix/{U1}");
    assert_eq!(
        uevent(&s, &d),
        "DRIVER=vfio_ap_mdev\nMDEV_TYPE=vfio_ap-passthrough\n"
    );
    assert_eq!(
        s.readlink(&format!("{d}/iommu_group")).unwrap(),
        "../../../../kernel/iommu_groups/0"
    );
    assert_eq!(
        s.canonicalize(&format!("{d}/driver")).unwrap(),
        "bus/mdev/drivers/vfio_ap_mdev"
    );
    assert_eq!(
        s.canonicalize(&format!("/sys/kernel/iommu_groups/0/devices/{U1}"))
            .unwrap(),
        format!("devices/vfio_ap/matrix/{U1}")
    );
    // the next device gets the next free number; a freed number is reused (ida)
    w(&s, &format!("{TYPE}/create"), U2).unwrap();
    assert_eq!(s.iommu_group(U2), Some(1));
    w(&s, &mdev(&s, U1, "remove"), "1").unwrap();
    assert!(!s.exists("/sys/kernel/iommu_groups/0"));
    let groups: Vec<String> = s
        .readdir("/sys/kernel/iommu_groups")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(groups, ["1"]);
    w(&s, &format!("{TYPE}/create"), U1).unwrap();
    assert_eq!(s.iommu_group(U1), Some(0));
    assert_eq!(
        s.readdir("/sys/bus/mdev/drivers/vfio_ap_mdev")
            .unwrap()
            .len(),
        2
    );
}

fn summary(evs: &[ap_sim::Uevent]) -> Vec<String> {
    evs.iter()
        .map(|e| {
            let drv = e
                .get("DRIVER")
                .map(|d| format!(" DRIVER={d}"))
                .unwrap_or_default();
            format!("{} {} {}{drv}", e.action, e.subsystem, e.devpath)
        })
        .collect()
}

#[test]
fn mdev_create_and_remove_send_add_bind_unbind_remove() {
    let s = sim();
    w(&s, "/sys/bus/ap/apmask", "-2-3").unwrap();
    let (r, evs) = s.write_with_uevents(&format!("{TYPE}/create"), U1.as_bytes());
    r.unwrap();
    let dev = format!("/devices/vfio_ap/matrix/{U1}");
    assert_eq!(
        summary(&evs),
        [
            format!("add mdev {dev}"),
            format!("bind mdev {dev} DRIVER=vfio_ap_mdev"),
        ]
    );
    assert!(
        evs.iter()
            .all(|e| e.get("MDEV_TYPE") == Some("vfio_ap-passthrough"))
    );
    assert_eq!(evs[1].seqnum, evs[0].seqnum + 1);
    let (r, evs) = s.write_with_uevents(&mdev(&s, U1, "remove"), b"1");
    r.unwrap();
    assert_eq!(
        summary(&evs),
        [format!("unbind mdev {dev}"), format!("remove mdev {dev}")]
    );
    // a refused store sends nothing
    let (r, evs) = s.write_with_uevents(&format!("{TYPE}/create"), b"not-a-uuid");
    assert!(r.is_err());
    assert!(evs.is_empty());
}

#[test]
fn mask_writes_rebind_queues_with_unbind_and_bind_events() {
    let s = sim();
    let (r, evs) = s.write_with_uevents("/sys/bus/ap/apmask", b"-2");
    r.unwrap();
    assert_eq!(
        summary(&evs),
        [
            "unbind ap /devices/ap/card02/02.002b",
            "bind ap /devices/ap/card02/02.002b DRIVER=vfio_ap",
            "unbind ap /devices/ap/card02/02.002c",
            "bind ap /devices/ap/card02/02.002c DRIVER=vfio_ap",
        ]
    );
    assert!(evs.iter().all(|e| e.get("DEVTYPE") == Some("ap_queue")));
    // nothing changes owner: no event
    let (r, evs) = s.write_with_uevents("/sys/bus/ap/apmask", b"-2");
    r.unwrap();
    assert!(evs.is_empty());
    // the CEX3C queue leaves the host driver and binds to none: unbind only
    let (_, evs) = s.write_with_uevents("/sys/bus/ap/apmask", b"-5");
    assert_eq!(summary(&evs), ["unbind ap /devices/ap/card05/05.002b"]);
}

#[test]
fn writing_an_action_to_uevent_synthesizes_that_event() {
    let s = sim();
    let (r, evs) = s.write_with_uevents("/sys/devices/vfio_ap/matrix/uevent", b"change\n");
    assert_eq!(r.unwrap(), 7);
    assert_eq!(
        summary(&evs),
        ["change matrix /devices/vfio_ap/matrix DRIVER=vfio_ap"]
    );
    let (r, _) = s.write_with_uevents("/sys/devices/vfio_ap/matrix/uevent", b"explode");
    assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EINVAL));
    // root devices accept the write but have no subsystem: no event
    let (r, evs) = s.write_with_uevents("/sys/devices/ap/uevent", b"add");
    r.unwrap();
    assert!(evs.is_empty());
}

/// The fault-injection knob: every `create` fails with the configured errno, nothing is
/// created (no device, no uevent, available_instances unchanged); clearing it at run time
/// makes creates work again. Not an errno: a config error.
#[test]
fn injected_create_fault() {
    let s = Sim::new(&HostConfig::example().fail_mdev_create(libc::ENOMEM)).unwrap();
    let (r, events) = s.write_with_uevents(&format!("{TYPE}/create"), U1.as_bytes());
    assert_eq!(errno(r), libc::ENOMEM);
    assert!(events.is_empty(), "{events:?}");
    assert!(s.mdevs().is_empty());
    assert!(!s.exists(&format!("/sys/bus/mdev/devices/{U1}")));
    assert_eq!(
        s.read_string(&format!("{TYPE}/available_instances"))
            .unwrap(),
        "65536\n"
    );
    // the other checks of create still come first
    assert_eq!(errno(w(&s, &format!("{TYPE}/create"), "x")), libc::EINVAL);
    s.set_fail_mdev_create(None);
    w(&s, &format!("{TYPE}/create"), U1).unwrap();
    assert_eq!(s.mdevs(), vec![U1.to_string()]);
    s.set_fail_mdev_create(Some(libc::EUSERS));
    assert_eq!(errno(w(&s, &format!("{TYPE}/create"), U2)), libc::EUSERS);
    assert_eq!(errno(w(&s, &format!("{TYPE}/create"), U1)), libc::EEXIST);

    let json = r#"{"cards":[{"id":2,"hwtype":13,"domains":[43]}],"fail_mdev_create":12}"#;
    let s = Sim::from_json(json).unwrap();
    assert_eq!(errno(w(&s, &format!("{TYPE}/create"), U1)), libc::ENOMEM);
    let e = Sim::from_json(r#"{"fail_mdev_create":0}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "fail_mdev_create 0 is not an errno (1..4095, e.g. 12 for ENOMEM)"
    );
}
