//! The vfio_ap rules, in one place: which cards vfio_ap drives, which APQNs a matrix holds,
//! which APQNs the host's masks keep (active and persistent), and the sentences a conflict is
//! reported with.
//!
//! The callout (`pre define`/`pre start`), the libvirt qemu hook, `passthrough` and `ap set`
//! all ask this module, so a rule changes in one place and every command words a conflict the
//! same way. The sentences are ap-check's and chzdev's (scripts and users grep for them; the
//! crate documentation of `callout` and `ap` lists them), see [`Conflict`].

use std::fmt;
use std::path::Path;

use crate::apmask::{Apqn, Mask};
use crate::mdev::{self, ActiveMdev, Matrix};
use crate::root::Root;
use crate::sysfs::{self, HostError};
use crate::udev_rule;

/// vfio_ap drives CEX4 (AP hwtype 10) and newer; older cards stay with the host drivers.
pub const MIN_HWTYPE: u32 = 10;

/// The one hwtype rule: can vfio_ap drive a card of this AP hardware type?
pub fn supports_hwtype(hwtype: u32) -> bool {
    hwtype >= MIN_HWTYPE
}

/// Every diagnostic line starts with this prefix when it does not refuse anything
/// (ap-check's and mdevctl's lower case).
pub const WARNING: &str = "warning: ";

/// `warning: <msg>`.
pub fn warning(msg: impl fmt::Display) -> String {
    format!("{WARNING}{msg}")
}

impl Matrix {
    /// Whether this matrix holds `apqn`: its adapter is assigned and its usage domain too
    /// (an mdev's queues are the cross product adapters × domains).
    pub fn holds(&self, apqn: Apqn) -> bool {
        self.adapters.test(apqn.adapter) && self.domains.test(apqn.domain)
    }
}

/// Which AP bus mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MaskName {
    Apmask,
    Aqmask,
}

impl MaskName {
    pub fn as_str(self) -> &'static str {
        match self {
            MaskName::Apmask => "apmask",
            MaskName::Aqmask => "aqmask",
        }
    }
}

impl fmt::Display for MaskName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two AP bus masks: a set bit means the host's crypto drivers keep that adapter or
/// usage domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Masks {
    pub apmask: Mask,
    pub aqmask: Mask,
}

impl Masks {
    /// The kernel's boot default without `ap.apmask=`/`ap.aqmask=`: the host keeps all.
    pub const FULL: Masks = Masks {
        apmask: Mask::FULL,
        aqmask: Mask::FULL,
    };

    /// The host keeps `apqn` iff its adapter bit is set in apmask AND its domain bit in aqmask.
    pub fn keep(&self, apqn: Apqn) -> bool {
        apqn.host_owned(&self.apmask, &self.aqmask)
    }

    pub fn get(&self, name: MaskName) -> Mask {
        match name {
            MaskName::Apmask => self.apmask,
            MaskName::Aqmask => self.aqmask,
        }
    }
}

/// Why a device cannot have an APQN, or a mask change is refused. `Display` prints the
/// sentence of the tool we replace, word for word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// pre define: another auto-start config holds the APQN (ap-check).
    DefinedForAutostart { apqn: Apqn, by: String },
    /// pre define: the persistent masks keep the APQN for the host (ap-check).
    PersistentMasks { apqn: Apqn },
    /// pre start: an active mdev holds the APQN (ap-check).
    InUse { apqn: Apqn, by: String },
    /// pre start: the active masks keep the APQN for the host (ap-check).
    ActiveMasks { apqn: Apqn },
    /// A mask change would give the host an APQN an active mdev holds (chzdev, active side).
    ActiveMaskTakesBack {
        mask: MaskName,
        mdev: String,
        apqn: Apqn,
    },
    /// A mask change would give the host an APQN an auto-start config holds (chzdev,
    /// persistent side).
    PersistentMaskTakesBack {
        mask: MaskName,
        mdev: String,
        apqn: Apqn,
    },
    /// vfio_ap cannot drive this card (ours: ap-check has no hwtype check).
    UnsupportedCard { adapter: u8, hwtype: u32 },
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::DefinedForAutostart { apqn, by } => {
                write!(f, "APQN {apqn} is defined for autostart by {by}")
            }
            Conflict::PersistentMasks { apqn } => write!(
                f,
                "APQN {apqn} is not defined for vfio_ap-passthrough use by the persistent ap bus mask settings"
            ),
            Conflict::InUse { apqn, by } => write!(f, "APQN {apqn} already in use by {by}"),
            Conflict::ActiveMasks { apqn } => write!(
                f,
                "APQN {apqn} is not allowed for vfio_ap-passthrough use by the active ap bus mask settings"
            ),
            Conflict::ActiveMaskTakesBack { mask, mdev, apqn } => {
                write!(f, "{mask} conflicts with mdev {mdev} APQN {apqn}")
            }
            Conflict::PersistentMaskTakesBack { mask, mdev, apqn } => write!(
                f,
                "persistent {mask} conflicts with defined autostart mdev {mdev} APQN {apqn}"
            ),
            Conflict::UnsupportedCard { adapter, hwtype } => write!(
                f,
                "adapter {adapter} (card{adapter:02x}) has hwtype {hwtype}: vfio_ap supports only CEX4 and newer (hwtype {MIN_HWTYPE} and up)"
            ),
        }
    }
}

/// Reads one kernel mask file (`0x` + 64 hex digits).
fn read_mask_file(path: &Path) -> Result<Mask, HostError> {
    let text = sysfs::read(path)?;
    Mask::parse_sysfs(&text).map_err(|source| HostError::bad(path, source.to_string()))
}

/// `sys/bus/ap/apmask` or `aqmask`: what the running kernel's host drivers keep.
pub fn active_mask(root: &Root, name: MaskName) -> Result<Mask, HostError> {
    read_mask_file(&root.ap_bus().join(name.as_str()))
}

/// Both active masks.
pub fn active_masks(root: &Root) -> Result<Masks, HostError> {
    Ok(Masks {
        apmask: active_mask(root, MaskName::Apmask)?,
        aqmask: active_mask(root, MaskName::Aqmask)?,
    })
}

/// Where a mask used for persistent checks came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// An `ATTR` line of the udev rule.
    Rule,
    /// No rule line: the active mask, which is what ap-check falls back to.
    Active,
}

/// The masks the host will have after a reboot, as ap-check judges them: the rule's, or the
/// active one for a mask the rule does not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersistentMaskSettings {
    pub masks: Masks,
    pub apmask_source: Source,
    pub aqmask_source: Source,
}

/// Reads the persistent rule and, for a mask it does not set, the active mask.
pub fn persistent_masks(root: &Root) -> Result<PersistentMaskSettings, HostError> {
    let rule = udev_rule::read(root)
        .map_err(HostError::from)?
        .unwrap_or_default();
    let pick = |m: Option<Mask>, name| -> Result<(Mask, Source), HostError> {
        Ok(match m {
            Some(m) => (m, Source::Rule),
            None => (active_mask(root, name)?, Source::Active),
        })
    };
    let (apmask, apmask_source) = pick(rule.apmask, MaskName::Apmask)?;
    let (aqmask, aqmask_source) = pick(rule.aqmask, MaskName::Aqmask)?;
    Ok(PersistentMaskSettings {
        masks: Masks { apmask, aqmask },
        apmask_source,
        aqmask_source,
    })
}

/// The adapters of `adapters` whose card vfio_ap cannot drive, as conflicts. Absent cards
/// are not judged: the kernel accepts adapters that are not (yet) plugged.
pub fn unsupported_cards(root: &Root, adapters: &Mask) -> Result<Vec<Conflict>, HostError> {
    let mut out = Vec::new();
    for a in adapters.iter() {
        let path = root.ap_bus().join(format!("devices/card{a:02x}/hwtype"));
        let Some(text) = sysfs::read_optional(&path)? else {
            continue;
        };
        let text = text.trim().to_string();
        let hwtype: u32 = text.parse().map_err(|_| {
            HostError::bad(&path, format!("hwtype '{text}' is not a decimal number"))
        })?;
        if !supports_hwtype(hwtype) {
            out.push(Conflict::UnsupportedCard { adapter: a, hwtype });
        }
    }
    Ok(out)
}

/// The active mdevs holding any of `apqns`, asked only when vfio_ap says one of their queues
/// is taken (`status` reads `assigned` or `in use`); when no queue says so, no mdev's `matrix`
/// is read. For warnings at define time, where ap-check reads none: a queue that is missing
/// or bound to a host driver proves nothing here, and `pre start` reads every matrix anyway.
pub fn claimed_by(root: &Root, apqns: &[Apqn]) -> Result<Vec<ActiveMdev>, HostError> {
    let taken = apqns.iter().any(|q| {
        let status = root
            .ap_bus()
            .join("devices")
            .join(q.queue_name())
            .join("status");
        matches!(sysfs::read_optional_bytes(&status, 64), Ok(Some(b)) if matches!(b.trim_ascii(), b"assigned" | b"in use"))
    });
    if !taken {
        return Ok(Vec::new());
    }
    mdev::users_of(root, apqns)
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "6b7a2b2e-8f3c-4e2a-9d51-1c0c7a3b2e10";

    #[test]
    fn sentences_are_ap_checks_and_chzdevs() {
        let q = Apqn::new(2, 43);
        let by = U.to_string();
        let lines: Vec<String> = [
            Conflict::DefinedForAutostart {
                apqn: q,
                by: by.clone(),
            },
            Conflict::PersistentMasks { apqn: q },
            Conflict::InUse {
                apqn: q,
                by: by.clone(),
            },
            Conflict::ActiveMasks { apqn: q },
            Conflict::ActiveMaskTakesBack {
                mask: MaskName::Apmask,
                mdev: by.clone(),
                apqn: q,
            },
            Conflict::PersistentMaskTakesBack {
                mask: MaskName::Aqmask,
                mdev: by,
                apqn: q,
            },
            Conflict::UnsupportedCard {
                adapter: 10,
                hwtype: 9,
            },
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            lines,
            [
                format!("APQN 2.43 is defined for autostart by {U}"),
                "APQN 2.43 is not defined for vfio_ap-passthrough use by the persistent ap bus mask settings".into(),
                format!("APQN 2.43 already in use by {U}"),
                "APQN 2.43 is not allowed for vfio_ap-passthrough use by the active ap bus mask settings".into(),
                format!("apmask conflicts with mdev {U} APQN 2.43"),
                format!("persistent aqmask conflicts with defined autostart mdev {U} APQN 2.43"),
                "adapter 10 (card0a) has hwtype 9: vfio_ap supports only CEX4 and newer (hwtype 10 and up)".into(),
            ]
        );
        assert_eq!(warning("x"), "warning: x");
    }

    #[test]
    fn holds_is_the_cross_product() {
        let m = Matrix {
            adapters: Mask::EMPTY.with(2).with(3),
            domains: Mask::EMPTY.with(43),
            control_domains: Mask::EMPTY.with(44),
        };
        assert!(m.holds(Apqn::new(2, 43)) && m.holds(Apqn::new(3, 43)));
        assert!(!m.holds(Apqn::new(2, 44)) && !m.holds(Apqn::new(4, 43)));
    }

    #[test]
    fn hwtype_rule() {
        assert!(!supports_hwtype(9));
        assert!(supports_hwtype(10) && supports_hwtype(14) && supports_hwtype(15));
    }

    #[test]
    fn masks_and_cards_from_a_tree() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        std::fs::create_dir_all(root.ap_bus().join("devices/card02")).unwrap();
        std::fs::create_dir_all(root.ap_bus().join("devices/card03")).unwrap();
        std::fs::write(root.ap_bus().join("devices/card02/hwtype"), "9\n").unwrap();
        std::fs::write(root.ap_bus().join("devices/card03/hwtype"), "13\n").unwrap();
        let mut ap = Mask::FULL;
        ap.clear(2);
        std::fs::write(root.ap_bus().join("apmask"), format!("{ap}\n")).unwrap();
        std::fs::write(root.ap_bus().join("aqmask"), format!("{}\n", Mask::FULL)).unwrap();
        let m = active_masks(&root).unwrap();
        assert!(!m.keep(Apqn::new(2, 43)) && m.keep(Apqn::new(3, 43)));
        let p = persistent_masks(&root).unwrap();
        assert_eq!((p.masks, p.apmask_source), (m, Source::Active));
        let cards = Mask::EMPTY.with(2).with(3).with(4);
        assert_eq!(
            unsupported_cards(&root, &cards).unwrap(),
            vec![Conflict::UnsupportedCard {
                adapter: 2,
                hwtype: 9
            }]
        );
        std::fs::write(root.ap_bus().join("aqmask"), "0x12\n").unwrap();
        let e = active_masks(&root).unwrap_err().to_string();
        assert!(
            e.starts_with(&root.ap_bus().join("aqmask").display().to_string()),
            "{e}"
        );
    }

    fn full_without(bit: u8) -> Mask {
        let mut m = Mask::FULL;
        m.clear(bit);
        m
    }

    #[test]
    fn persistent_masks_fall_back_to_active() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        std::fs::create_dir_all(root.ap_bus()).unwrap();
        std::fs::write(root.ap_bus().join("apmask"), format!("{}\n", Mask::FULL)).unwrap();
        std::fs::write(
            root.ap_bus().join("aqmask"),
            format!("{}\n", full_without(43)),
        )
        .unwrap();
        udev_rule::write(
            &root,
            &udev_rule::PersistentMasks {
                apmask: Some(full_without(2)),
                aqmask: None,
            },
        )
        .unwrap();
        let e = persistent_masks(&root).unwrap();
        assert_eq!(e.masks.apmask, full_without(2));
        assert_eq!(e.apmask_source, Source::Rule);
        assert_eq!(e.masks.aqmask, full_without(43));
        assert_eq!(e.aqmask_source, Source::Active);
    }
}
