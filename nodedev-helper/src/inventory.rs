//! What the host has: AP cards and queues, active vfio_ap mdevs, defined mdevctl configs.
//!
//! Everything is read below one [`Root`], from the places listed in doc/ap-bus.md ("Kernel
//! sysfs", "mdevctl callouts"): `sys/bus/ap/devices/cardXX/hwtype`, queue dirs `XX.YYYY`,
//! `sys/devices/vfio_ap/matrix/<uuid>/matrix`, `etc/mdevctl.d/matrix/<uuid>`. Each reader
//! returns errors naming the file and the value; `ap list`, `ap set` and `passthrough` share
//! them so that the conflicts they report agree.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use crate::apmask::Apqn;
use crate::mdev::{self, ActiveMdev, DefinedMdev};
use crate::root::Root;
use crate::sysfs::{self, HostError};
use crate::vfio_ap::Masks;

pub use crate::mdev::VFIO_AP_TYPE;

fn bad(path: &Path, msg: impl Into<String>) -> HostError {
    HostError::bad(path, msg)
}

/// Directory entries' names, sorted; an absent directory is empty.
fn names(dir: &Path) -> Result<Vec<String>, HostError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(HostError::list(dir, source)),
    };
    let mut v = Vec::new();
    for e in rd {
        let e = e.map_err(|source| HostError::list(dir, source))?;
        v.push(e.file_name().to_string_lossy().into_owned());
    }
    v.sort();
    Ok(v)
}

/// Who drives an AP queue, from its sysfs attributes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "driver")]
pub enum QueueDriver {
    /// A host crypto driver (the queue has `online`).
    Host,
    /// vfio_ap, with its `status` (`assigned`, `unassigned`, `in use`).
    VfioAp { status: String },
    /// Not bound (yet).
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Card {
    pub adapter: u8,
    pub hwtype: u32,
    /// Usage domains with a queue device.
    pub queues: Vec<(u8, QueueDriver)>,
}

impl Card {
    pub fn vfio_ap_capable(&self) -> bool {
        crate::vfio_ap::supports_hwtype(self.hwtype)
    }
}

/// Every `cardXX` under `sys/bus/ap/devices` with its queues.
pub fn cards(root: &Root) -> Result<Vec<Card>, HostError> {
    let devices = root.ap_bus().join("devices");
    let all = names(&devices)?;
    let mut cards = Vec::new();
    for name in &all {
        let Some(hex) = name.strip_prefix("card") else {
            continue;
        };
        let adapter = u8::from_str_radix(hex, 16)
            .map_err(|_| bad(&devices.join(name), "card name is not card<hex id>"))?;
        let hw_path = devices.join(name).join("hwtype");
        let hw = sysfs::read_trimmed(&hw_path)?;
        let hwtype = hw
            .parse()
            .map_err(|_| bad(&hw_path, format!("hwtype '{hw}' is not a decimal number")))?;
        cards.push(Card {
            adapter,
            hwtype,
            queues: Vec::new(),
        });
    }
    for name in &all {
        let Some((a, d)) = name.split_once('.') else {
            continue;
        };
        let (Ok(a), Ok(d)) = (u8::from_str_radix(a, 16), u16::from_str_radix(d, 16)) else {
            continue;
        };
        let Ok(d) = u8::try_from(d) else { continue };
        let dir = devices.join(name);
        let driver = if dir.join("online").exists() {
            QueueDriver::Host
        } else if dir.join("status").exists() {
            QueueDriver::VfioAp {
                status: sysfs::read_trimmed(&dir.join("status"))?,
            }
        } else {
            QueueDriver::None
        };
        if let Some(c) = cards.iter_mut().find(|c| c.adapter == a) {
            c.queues.push((d, driver));
        }
    }
    Ok(cards)
}

/// `8-4-4-4-12` hex digits, as mdevctl names devices.
pub fn is_uuid(s: &str) -> bool {
    mdev::is_uuid(s)
}

/// Parses a base-0 id (`"43"`, `"0x2b"`, `"053"`) ≤ 255, as the kernel reads attributes.
pub fn parse_id(v: &str) -> Option<u8> {
    mdev::parse_value(v).and_then(|n| u8::try_from(n).ok())
}

/// Who an APQN belongs to, for `ap list`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApqnOwner {
    pub apqn: String,
    pub adapter: u8,
    pub domain: u8,
    /// Has a queue device on the AP bus.
    pub present: bool,
    /// `host` (the active masks keep it) or `vfio_ap` (free for or used by vfio_ap).
    pub owner: &'static str,
    /// The active mdev it is assigned to.
    pub active_mdev: Option<String>,
    /// Configs that define it: `(uuid, "auto"|"manual")`.
    pub defined_for: Vec<(String, &'static str)>,
    pub problems: Vec<String>,
}

/// The complete ownership map: every present queue and every APQN some mdev mentions.
pub fn owners(
    cards: &[Card],
    masks: &Masks,
    persistent: &Masks,
    active: &[ActiveMdev],
    defined: &[DefinedMdev],
) -> Vec<ApqnOwner> {
    let mut map: BTreeMap<Apqn, ApqnOwner> = BTreeMap::new();
    fn entry<'a>(
        map: &'a mut BTreeMap<Apqn, ApqnOwner>,
        q: Apqn,
        masks: &Masks,
    ) -> &'a mut ApqnOwner {
        map.entry(q).or_insert_with(|| ApqnOwner {
            apqn: q.to_string(),
            adapter: q.adapter,
            domain: q.domain,
            present: false,
            owner: if masks.keep(q) { "host" } else { "vfio_ap" },
            active_mdev: None,
            defined_for: Vec::new(),
            problems: Vec::new(),
        })
    }
    for c in cards {
        for (d, _) in &c.queues {
            entry(&mut map, Apqn::new(c.adapter, *d), masks).present = true;
        }
    }
    for m in active {
        for q in &m.apqns() {
            let e = entry(&mut map, *q, masks);
            if let Some(other) = &e.active_mdev {
                e.problems.push(format!(
                    "assigned to two active mdevs: {other} and {}",
                    m.uuid
                ));
            } else {
                e.active_mdev = Some(m.uuid.clone());
            }
        }
    }
    for d in defined {
        for q in d.apqns() {
            let e = entry(&mut map, q, masks);
            e.defined_for
                .push((d.uuid.clone(), if d.autostart { "auto" } else { "manual" }));
        }
    }
    for (q, e) in map.iter_mut() {
        let defined: Vec<&(String, &str)> = e.defined_for.iter().collect();
        if !defined.is_empty() && masks.keep(*q) {
            e.problems
                .push("defined for an mdev but owned by the host (active masks)".to_string());
        }
        if !defined.is_empty() && persistent.keep(*q) {
            e.problems
                .push("defined for an mdev but owned by the host (persistent masks)".to_string());
        }
        let autos: Vec<&str> = defined
            .iter()
            .filter(|(_, s)| *s == "auto")
            .map(|(u, _)| u.as_str())
            .collect();
        if autos.len() > 1 {
            e.problems
                .push(format!("defined for autostart twice: {}", autos.join(", ")));
        } else if defined.len() > 1 {
            e.problems.push(format!(
                "defined for {} mdevs (only one can be active at a time)",
                defined.len()
            ));
        }
        if !e.present && (e.active_mdev.is_some() || !defined.is_empty()) {
            e.problems.push("no such queue on the AP bus".to_string());
        }
    }
    map.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apmask::Mask;

    fn card(adapter: u8, domains: &[u8]) -> Card {
        Card {
            adapter,
            hwtype: 13,
            queues: domains.iter().map(|d| (*d, QueueDriver::Host)).collect(),
        }
    }

    fn defined(uuid: &str, auto: bool, a: u8, d: u8) -> DefinedMdev {
        DefinedMdev {
            uuid: uuid.into(),
            path: uuid.into(),
            autostart: auto,
            matrix: crate::mdev::Matrix {
                adapters: Mask::EMPTY.with(a),
                domains: Mask::EMPTY.with(d),
                control_domains: Mask::EMPTY.with(d),
            },
        }
    }

    #[test]
    fn owners_and_problems() {
        let mut ap = Mask::FULL;
        ap.clear(2);
        let full = Mask::FULL;
        let active = [ActiveMdev {
            uuid: "A".into(),
            matrix: crate::mdev::Matrix {
                adapters: Mask::EMPTY.with(2),
                domains: Mask::EMPTY.with(43),
                control_domains: Mask::EMPTY,
            },
        }];
        let defs = [
            defined("A", true, 2, 43),
            defined("B", true, 2, 43),
            defined("C", false, 3, 1),
        ];
        let o = owners(
            &[card(2, &[43, 44]), card(3, &[1])],
            &Masks {
                apmask: ap,
                aqmask: full,
            },
            &Masks {
                apmask: ap,
                aqmask: full,
            },
            &active,
            &defs,
        );
        let get = |s: &str| o.iter().find(|x| x.apqn == s).unwrap();
        assert_eq!(get("2.43").active_mdev.as_deref(), Some("A"));
        assert_eq!(
            get("2.43").problems,
            vec!["defined for autostart twice: A, B"]
        );
        assert_eq!(get("2.44").owner, "vfio_ap");
        assert!(get("2.44").problems.is_empty());
        assert_eq!(get("3.1").owner, "host");
        assert_eq!(
            get("3.1").problems,
            vec![
                "defined for an mdev but owned by the host (active masks)",
                "defined for an mdev but owned by the host (persistent masks)"
            ]
        );
    }

    #[test]
    fn ids_are_base_0() {
        assert_eq!(parse_id("0x2b"), Some(43));
        assert_eq!(parse_id("053"), Some(43));
        assert_eq!(parse_id("256"), None);
        assert_eq!(parse_id("-1"), None);
    }
}
