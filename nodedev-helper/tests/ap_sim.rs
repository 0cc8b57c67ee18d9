//! Our mask handling against the AP bus simulator's model of the kernel (crate `ap-sim`,
//! in-process): a "reboot" that replays our generated udev rule on a freshly booted host, the
//! kernel's acceptance of what `ap set` writes, and chzdev's relative syntax against the
//! kernel's own parser (`ap_parse_bitmap_str`).

mod support;

use ap_sim::{Driver, HostConfig, Sim};
use nodedev_helper::apmask::Mask;
use nodedev_helper::chzdev::{self, MaskSpec};
use proptest::prelude::*;
use support::Host;

/// `(attribute, value)` of every `ATTR{../../bus/ap/X}="V"` assignment in a rule file, in
/// order: what udev writes when the rule fires.
fn attr_writes(rule: &str) -> Vec<(String, String)> {
    rule.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("ATTR{../../bus/ap/")?;
            let (attr, rest) = rest.split_once("}=\"")?;
            Some((attr.to_string(), rest.strip_suffix('"')?.to_string()))
        })
        .collect()
}

fn sim_mask(m: &ap_sim::Mask) -> Mask {
    m.iter().map(|b| b as u8).collect()
}

#[test]
fn reboot_restores_the_masks_from_our_rule() {
    // set the masks persistently with our binary...
    let h = Host::for_ap();
    h.ok(&["ap", "set", "apmask=-2", "aqmask=-43"]);
    h.ok(&["ap", "set", "--persistent", "aqmask=-44"]);
    let rule = h.read("etc/udev/rules.d/41-ap.rules");
    let writes = attr_writes(&rule);
    assert_eq!(writes.len(), 2, "{rule}");
    assert!(
        rule.contains("RUN{builtin}+=\"kmod load vfio_ap\""),
        "{rule}"
    );

    // ...then boot a fresh host: the kernel's default masks (all ones), vfio_ap not yet
    // loaded; udev applies the ATTR lines, then loads vfio_ap
    let sim = Sim::new(&HostConfig::example().vfio_ap(false)).unwrap();
    assert_eq!(sim_mask(&sim.apmask()), Mask::FULL);
    for (attr, value) in &writes {
        let n = sim
            .write(&format!("/sys/bus/ap/{attr}"), value.as_bytes())
            .unwrap_or_else(|e| panic!("kernel refused {attr}={value}: {e}"));
        assert_eq!(n, value.len());
    }
    sim.set_vfio_ap_loaded(true).unwrap();

    let mut ap = Mask::FULL;
    ap.clear(2);
    let mut aq = Mask::FULL;
    aq.clear(43);
    aq.clear(44);
    assert_eq!(sim_mask(&sim.apmask()), ap);
    assert_eq!(sim_mask(&sim.aqmask()), aq);
    assert_eq!(
        sim.read_string("/sys/bus/ap/apmask").unwrap(),
        format!("{ap}\n")
    );
    // what `ap show` says is persistent is what the rebooted kernel has
    let j: serde_json::Value = serde_json::from_str(&h.ok(&["ap", "show", "--json"])).unwrap();
    assert_eq!(j["persistent"]["apmask_hex"], ap.to_string());
    assert_eq!(j["persistent"]["aqmask_hex"], aq.to_string());
    // and the queues went where the masks say: 2.43 and 2.44 to vfio_ap, 3.43 too (domain
    // cleared), the CEX3C never to vfio_ap
    assert_eq!(sim.queue_driver(2, 43), Some(Driver::VfioAp));
    assert_eq!(sim.queue_driver(3, 44), Some(Driver::VfioAp));
    assert_eq!(sim.queue_driver(5, 43), None);
}

#[test]
fn the_kernel_accepts_what_ap_set_writes() {
    let h = Host::for_ap();
    let sim = Sim::new(&HostConfig::example()).unwrap();
    for args in [
        ["apmask=-2", "aqmask=-43"],
        ["apmask=+2,-4-8", "aqmask=+43,-0-42"],
        ["apmask=0-1,3", "aqmask=255"],
    ] {
        let mut a = vec!["ap", "set", "--active"];
        a.extend(args);
        h.ok(&a);
        for attr in ["apmask", "aqmask"] {
            let written = h.read(&format!("sys/bus/ap/{attr}"));
            // what we wrote (0x + 64 digits) replayed to the kernel model: same mask back
            let v = written.trim_end();
            assert_eq!(v.len(), 66, "{v}");
            sim.write(&format!("/sys/bus/ap/{attr}"), v.as_bytes())
                .unwrap();
            assert_eq!(
                sim.read_string(&format!("/sys/bus/ap/{attr}")).unwrap(),
                written
            );
        }
    }
}

#[test]
fn the_kernel_refuses_what_we_call_a_conflict() {
    // the documented refused `apmask=+2` (doc/ap-bus.md) while an mdev holds 2.43: the kernel
    // says EBUSY for the
    // very change our plan reports as a conflict
    let sim = Sim::new(&HostConfig::example()).unwrap();
    sim.write("/sys/bus/ap/apmask", b"-2").unwrap();
    let u = "6b7a2b2e-8f3c-4e2a-9d51-1c0c7a3b2e10";
    sim.write(
        "/sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create",
        u.as_bytes(),
    )
    .unwrap();
    sim.write(
        &format!("/sys/devices/vfio_ap/matrix/{u}/assign_adapter"),
        b"2",
    )
    .unwrap();
    sim.write(
        &format!("/sys/devices/vfio_ap/matrix/{u}/assign_domain"),
        b"43",
    )
    .unwrap();
    let h = Host::for_ap();
    h.write(
        "sys/bus/ap/apmask",
        &sim.read_string("/sys/bus/ap/apmask").unwrap(),
    );
    h.write(
        &format!("sys/devices/vfio_ap/matrix/{u}/matrix"),
        &sim.read_string(&format!("/sys/devices/vfio_ap/matrix/{u}/matrix"))
            .unwrap(),
    );
    let o = h.run(&["ap", "set", "--active", "apmask=+2"]);
    assert_eq!(o.status.code(), Some(9));
    assert!(
        support::stderr(&o).contains(&format!("apmask conflicts with mdev {u} APQN 2.43")),
        "{}",
        support::stderr(&o)
    );
    let full = format!("0x{}", "f".repeat(64));
    let e = sim
        .write("/sys/bus/ap/apmask", full.as_bytes())
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EBUSY));
}

/// chzdev-syntax relative lists, rendered with random bases.
fn relative_list() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        (any::<bool>(), 0u16..256, 0u16..20, 0u8..3, any::<bool>()),
        1..6,
    )
    .prop_map(|items| {
        items
            .into_iter()
            .map(|(plus, a, len, base, single)| {
                let b = (a + len).min(255);
                let r = |n: u16| match base {
                    0 => n.to_string(),
                    1 => format!("0x{n:x}"),
                    _ => format!("0{n:o}"),
                };
                let sign = if plus { "+" } else { "-" };
                if single {
                    format!("{sign}{}", r(a))
                } else {
                    format!("{sign}{}-{}", r(a), r(b))
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    })
}

proptest! {
    /// Every relative value we accept means to the kernel what it means to us.
    #[test]
    fn relative_lists_agree_with_the_kernel_parser(
        value in relative_list(),
        start in proptest::array::uniform32(any::<u8>()),
    ) {
        let current = Mask::from_bytes(start);
        let spec = chzdev::parse(&value).unwrap();
        prop_assert!(matches!(spec, MaskSpec::Relative(_)));
        let kernel_current = ap_sim::Mask::from_bits(current.iter().map(usize::from));
        let kernel = ap_sim::Mask::parse_store(value.as_bytes(), &kernel_current)
            .map_err(|_| TestCaseError::fail(format!("kernel EINVAL for {value}")))?;
        prop_assert_eq!(sim_mask(&kernel), spec.apply(current));
    }

    /// Whatever we accept as relative, the kernel accepts; whatever the kernel refuses, we refuse.
    #[test]
    fn we_never_accept_what_the_kernel_refuses(value in "[-+][-+0-9a-fx,]{0,12}") {
        if let Ok(MaskSpec::Relative(_)) = chzdev::parse(&value) {
            prop_assert!(
                ap_sim::Mask::parse_store(value.as_bytes(), &ap_sim::Mask::from_bits([])).is_ok(),
                "we accept {} but the kernel says EINVAL", value
            );
        }
    }
}
