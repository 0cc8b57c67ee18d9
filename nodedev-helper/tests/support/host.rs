//! A fake host tree: plain files in a temp dir laid out like sysfs (doc/ap-bus.md), mdevctl's
//! directories (doc/mdevctl.md) and `/run/lock`, one per test; our binary runs over it with
//! `--root`. Plain files cannot act like the kernel (nothing creates an mdev on `start`): the
//! tests that need that use [`super::sim`].
//!
//! [`Host::new`] is the common base; [`Host::for_ap`] and [`Host::for_callout`] add what the
//! `ap`/`passthrough` and the callout tests start from, built from the same pieces.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nodedev_helper::apmask::Mask;

use super::{BIN, CALLOUT_BIN, FULL, mask_without};

pub struct Host {
    pub dir: tempfile::TempDir,
}

impl Host {
    /// The base: mdevctl's config, callout and notifier directories, the AP bus without
    /// cards, both masks all-ones (the host owns every APQN), vfio_ap loaded (the `matrix`
    /// parent with its type), `/run/lock`.
    pub fn new() -> Host {
        let h = Host {
            dir: tempfile::tempdir().unwrap(),
        };
        for d in [
            "sys/bus/ap/devices",
            "sys/bus/mdev/devices",
            "sys/class/mdev_bus",
            "etc/mdevctl.d/matrix",
            "etc/mdevctl.d/scripts.d/callouts",
            "usr/lib/mdevctl/scripts.d/callouts",
            "usr/lib/mdevctl/scripts.d/notifiers",
            "run/lock",
        ] {
            fs::create_dir_all(h.path(d)).unwrap();
        }
        h.write("sys/bus/ap/apmask", &format!("{FULL}\n"));
        h.write("sys/bus/ap/aqmask", &format!("{FULL}\n"));
        h.load_vfio_ap();
        h
    }

    /// The `ap`/`passthrough` tests' host: cards 02 (CEX7, hwtype 13) and 05 (CEX3C, hwtype 9)
    /// with domains 43 and 44 bound to the host driver, all bindings complete.
    pub fn for_ap() -> Host {
        let h = Host::new();
        h.write("sys/bus/ap/bindings", "4/4 (complete)\n");
        for (card, hw) in [(2, 13), (5, 9)] {
            h.card(card, hw);
            for dom in [43, 44] {
                h.write(
                    &format!("sys/bus/ap/devices/{card:02x}.{dom:04x}/online"),
                    "1\n",
                );
            }
        }
        h
    }

    /// The callout tests' host: adapters 2-3 and domains 43-44 given to vfio_ap (cleared in
    /// apmask/aqmask; the persistent masks, when a test sets them, are separate), cards 02
    /// and 03 (CEX7, hwtype 13) and 05 (CEX3C, hwtype 9), `ap_max_adapter_id` 255 and
    /// `ap_max_domain_id` 84.
    pub fn for_callout() -> Host {
        let h = Host::new();
        fs::create_dir_all(h.path("etc/udev/rules.d")).unwrap();
        h.write("sys/bus/ap/ap_max_adapter_id", "255\n");
        h.write("sys/bus/ap/ap_max_domain_id", "84\n");
        h.set_active_masks(&mask_without(&[2, 3]), &mask_without(&[43, 44]));
        h.card(2, 13);
        h.card(3, 13);
        h.card(5, 9);
        h
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }
    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).symlink_metadata().is_ok()
    }
    pub fn lock_path(&self) -> PathBuf {
        self.path("run/lock/s390apconfig.lock")
    }

    /// Every file of the tree and its contents ([`super::snapshot`]).
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        super::snapshot(self.root(), &[])
    }

    /// `nodedev-helper --root ROOT ARGS` (mdevctl's root variable removed).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--root")
            .arg(self.root())
            .args(args)
            .env_remove("MDEVCTL_ENV_ROOT")
            .output()
            .unwrap()
    }

    /// [`Host::run`] that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    pub fn set_active_masks(&self, ap: &Mask, aq: &Mask) {
        self.write("sys/bus/ap/apmask", &format!("{ap}\n"));
        self.write("sys/bus/ap/aqmask", &format!("{aq}\n"));
    }

    /// The persistent masks as chzdev writes them (doc/s390-tools.md, "The persistent rule").
    pub fn set_persistent_masks(&self, ap: &Mask, aq: &Mask) {
        self.write(
            "etc/udev/rules.d/41-ap.rules",
            &format!(
                "# Generated by chzdev\n\
ACTION==\"add\", DEVPATH==\"/bus/ap\", ATTR{{bindings_complete_count}}!=\"0\", GOTO=\"cfg_ap\"\n\
ACTION==\"change\", SUBSYSTEM==\"ap\", DEVPATH==\"/devices/ap\", ENV{{BINDINGS}}==\"complete\", ENV{{COMPLETECOUNT}}==\"1\", GOTO=\"cfg_ap\"\n\
GOTO=\"end_ap\"\n\nLABEL=\"cfg_ap\"\n\n\
ATTR{{../../bus/ap/apmask}}=\"{ap}\"\n\
ATTR{{../../bus/ap/aqmask}}=\"{aq}\"\n\
RUN{{builtin}}+=\"kmod load vfio_ap\"\n\nLABEL=\"end_ap\"\n"
            ),
        );
    }

    pub fn card(&self, adapter: u8, hwtype: u32) {
        self.write(
            &format!("sys/bus/ap/devices/card{adapter:02x}/hwtype"),
            &format!("{hwtype}\n"),
        );
    }

    /// The vfio_ap parent as the kernel and mdevctl see it.
    pub fn load_vfio_ap(&self) {
        let t = "sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough";
        self.write(&format!("{t}/create"), "");
        self.write(&format!("{t}/available_instances"), "65535\n");
        self.write(&format!("{t}/device_api"), "vfio-ap\n");
        self.write(&format!("{t}/name"), "VFIO AP Passthrough Device\n");
        fs::create_dir_all(self.path(&format!("{t}/devices"))).unwrap();
        let link = self.path("sys/class/mdev_bus/matrix");
        if link.symlink_metadata().is_err() {
            symlink("../../devices/vfio_ap/matrix", link).unwrap();
        }
    }

    pub fn unload_vfio_ap(&self) {
        fs::remove_dir_all(self.path("sys/devices/vfio_ap")).unwrap();
        fs::remove_file(self.path("sys/class/mdev_bus/matrix")).unwrap();
    }

    /// A stored mdevctl config.
    pub fn config(&self, uuid: &str, json: &str) {
        self.write(&format!("etc/mdevctl.d/matrix/{uuid}"), json);
    }

    /// An active mdev with the kernel's `matrix` and `control_domains` attributes and the
    /// links mdevctl follows.
    pub fn active(&self, uuid: &str, apqns: &[(u8, u8)], control: &[u8]) {
        let dev = format!("sys/devices/vfio_ap/matrix/{uuid}");
        let matrix: String = apqns
            .iter()
            .map(|(a, d)| format!("{a:02x}.{d:04x}\n"))
            .collect();
        self.write(&format!("{dev}/matrix"), &matrix);
        let cd: String = control.iter().map(|d| format!("{d:04x}\n")).collect();
        self.write(&format!("{dev}/control_domains"), &cd);
        self.write(&format!("{dev}/remove"), "");
        self.write(
            &format!("{dev}/ap_config"),
            &format!("{},{},{}\n", Mask::EMPTY, Mask::EMPTY, Mask::EMPTY),
        );
        let _ = symlink(
            "../mdev_supported_types/vfio_ap-passthrough",
            self.path(&format!("{dev}/mdev_type")),
        );
        let _ = symlink(
            format!("../../../devices/vfio_ap/matrix/{uuid}"),
            self.path(&format!("sys/bus/mdev/devices/{uuid}")),
        );
    }

    /// One APQN in an mdevctl config (`start` auto or manual), and, when `active`, in the
    /// kernel's `matrix` of the running device.
    pub fn mdev(&self, uuid: &str, start: &str, adapter: u8, domain: u8, active: bool) {
        if active {
            self.write(
                &format!("sys/devices/vfio_ap/matrix/{uuid}/matrix"),
                &format!("{adapter:02x}.{domain:04x}\n"),
            );
        }
        let (a, d) = (adapter.to_string(), domain.to_string());
        self.config(
            uuid,
            &format!(
                "{}\n",
                super::device_json(start, &[("assign_adapter", &a), ("assign_domain", &d)])
            ),
        );
    }

    /// Installs the callout into mdevctl's callout dir as `make install` does: a link named
    /// `00-nodedev-helper` to the `nodedev-helper-callout` executable.
    pub fn install_callout(&self, dir: &str) -> PathBuf {
        self.install_callout_to(dir, Path::new(CALLOUT_BIN))
    }
    /// The same link, to any target (a missing one: the package was removed).
    pub fn install_callout_to(&self, dir: &str, target: &Path) -> PathBuf {
        let p = self.path(dir).join("00-nodedev-helper");
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let _ = fs::remove_file(&p);
        symlink(target, &p).unwrap();
        p
    }
}
