//! What the host has: AP cards and queues, active vfio_ap mdevs, defined mdevctl configs.
//!
//! Everything is read below one [`Root`], from the places listed in spec/ap.md ("Kernel
//! sysfs", "mdevctl callouts"): `sys/bus/ap/devices/cardXX/hwtype`, queue dirs `XX.YYYY`,
//! `sys/devices/vfio_ap/matrix/<uuid>/matrix`, `etc/mdevctl.d/matrix/<uuid>`. Each reader
//! returns errors naming the file and the value; `ap list`, `ap set` and `passthrough` share
//! them so that the conflicts they report agree.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::apmask::{Apqn, Mask};
use crate::root::Root;
use crate::sysfs;

/// The only mdev type vfio_ap offers.
pub const VFIO_AP_TYPE: &str = "vfio_ap-passthrough";
/// vfio_ap supports CEX4 (hwtype 10) up to CEX8 (hwtype 14).
pub const VFIO_AP_HWTYPES: std::ops::RangeInclusive<u32> = 10..=14;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error(transparent)]
    File(#[from] sysfs::FileError),
    #[error("cannot list {}: {source}", path.display())]
    List { path: PathBuf, source: io::Error },
    #[error("{}: {msg}", path.display())]
    Bad { path: PathBuf, msg: String },
}

fn bad(path: &Path, msg: impl Into<String>) -> InventoryError {
    InventoryError::Bad {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Directory entries' names, sorted; an absent directory is empty.
fn names(dir: &Path) -> Result<Vec<String>, InventoryError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(InventoryError::List {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut v = Vec::new();
    for e in rd {
        let e = e.map_err(|source| InventoryError::List {
            path: dir.to_path_buf(),
            source,
        })?;
        v.push(e.file_name().to_string_lossy().into_owned());
    }
    v.sort();
    Ok(v)
}

/// Reads `sys/bus/ap/{name}` as a kernel mask.
pub fn active_mask(root: &Root, name: &str) -> Result<Mask, InventoryError> {
    let path = root.ap_bus().join(name);
    let text = sysfs::read(&path)?;
    Mask::parse_sysfs(&text).map_err(|e| bad(&path, e.to_string()))
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
        VFIO_AP_HWTYPES.contains(&self.hwtype)
    }
}

/// Every `cardXX` under `sys/bus/ap/devices` with its queues.
pub fn cards(root: &Root) -> Result<Vec<Card>, InventoryError> {
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

/// An mdev of parent `matrix` that exists now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveMdev {
    pub uuid: String,
    pub apqns: Vec<Apqn>,
}

/// Parses the `matrix` attribute: `%02x.%04x` lines, `aa.` / `.dddd` when one side is empty
/// (such lines contribute no APQN).
pub fn parse_matrix(text: &str, path: &Path) -> Result<Vec<Apqn>, InventoryError> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (a, d) = line
            .split_once('.')
            .ok_or_else(|| bad(path, format!("matrix line '{line}' is not aa.dddd")))?;
        if a.is_empty() || d.is_empty() {
            continue;
        }
        let a = u8::from_str_radix(a, 16)
            .map_err(|_| bad(path, format!("matrix line '{line}': bad adapter")))?;
        let d = u16::from_str_radix(d, 16)
            .ok()
            .and_then(|d| u8::try_from(d).ok())
            .ok_or_else(|| bad(path, format!("matrix line '{line}': bad domain")))?;
        out.push(Apqn::new(a, d));
    }
    Ok(out)
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Every active mdev below `sys/devices/vfio_ap/matrix`.
pub fn active_mdevs(root: &Root) -> Result<Vec<ActiveMdev>, InventoryError> {
    let dir = root.matrix();
    let mut out = Vec::new();
    for name in names(&dir)? {
        if !is_uuid(&name) {
            continue;
        }
        let path = dir.join(&name).join("matrix");
        let text = sysfs::read(&path)?;
        out.push(ActiveMdev {
            apqns: parse_matrix(&text, &path)?,
            uuid: name,
        });
    }
    Ok(out)
}

/// An mdevctl config of parent `matrix` and type vfio_ap-passthrough.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinedMdev {
    pub uuid: String,
    pub autostart: bool,
    pub adapters: Mask,
    pub domains: Mask,
    pub control_domains: Mask,
}

impl DefinedMdev {
    pub fn apqns(&self) -> Vec<Apqn> {
        Apqn::product(&self.adapters, &self.domains)
    }
}

/// Parses a base-0 attribute value (`"43"`, `"0x2b"`, `"053"`) as ap-check and the kernel do.
pub fn parse_id(v: &str) -> Option<u8> {
    let (digits, radix) = if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        (h, 16)
    } else if v.len() > 1 && v.starts_with('0') {
        (&v[1..], 8)
    } else {
        (v, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix)
        .ok()
        .and_then(|n| u8::try_from(n).ok())
}

/// Parses one mdevctl config; `Ok(None)` for a device of another type.
pub fn parse_config(
    uuid: &str,
    text: &str,
    path: &Path,
) -> Result<Option<DefinedMdev>, InventoryError> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(path, format!("not JSON: {e}")))?;
    let Some(ty) = v.get("mdev_type").and_then(|t| t.as_str()) else {
        return Err(bad(path, "no \"mdev_type\""));
    };
    if ty != VFIO_AP_TYPE {
        return Ok(None);
    }
    let autostart = v.get("start").and_then(|s| s.as_str()) == Some("auto");
    let mut d = DefinedMdev {
        uuid: uuid.to_string(),
        autostart,
        adapters: Mask::EMPTY,
        domains: Mask::EMPTY,
        control_domains: Mask::EMPTY,
    };
    let attrs = match v.get("attrs") {
        None => &Vec::new(),
        Some(a) => a
            .as_array()
            .ok_or_else(|| bad(path, "\"attrs\" is not a list"))?,
    };
    for attr in attrs {
        let Some(obj) = attr.as_object() else {
            return Err(bad(path, format!("attribute {attr} is not an object")));
        };
        for (k, val) in obj {
            let s = val.as_str().unwrap_or_default();
            let id = || {
                parse_id(s).ok_or_else(|| bad(path, format!("{k} value '{s}' is not an id 0..255")))
            };
            match k.as_str() {
                "assign_adapter" => d.adapters.set(id()?),
                "assign_domain" => d.domains.set(id()?),
                "assign_control_domain" => d.control_domains.set(id()?),
                "unassign_adapter" => d.adapters.clear(id()?),
                "unassign_domain" => d.domains.clear(id()?),
                "unassign_control_domain" => d.control_domains.clear(id()?),
                _ => {}
            }
        }
    }
    // The kernel also makes every usage domain a control domain.
    d.control_domains = d.control_domains.or(d.domains);
    Ok(Some(d))
}

/// Every vfio_ap-passthrough config under `etc/mdevctl.d/matrix`.
pub fn defined_mdevs(root: &Root) -> Result<Vec<DefinedMdev>, InventoryError> {
    let dir = root.mdevctl_configs();
    let mut out = Vec::new();
    for name in names(&dir)? {
        if !is_uuid(&name) {
            continue;
        }
        let path = dir.join(&name);
        let text = sysfs::read(&path)?;
        if let Some(d) = parse_config(&name, &text, &path)? {
            out.push(d);
        }
    }
    Ok(out)
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
    apmask: &Mask,
    aqmask: &Mask,
    persistent: (&Mask, &Mask),
    active: &[ActiveMdev],
    defined: &[DefinedMdev],
) -> Vec<ApqnOwner> {
    let mut map: BTreeMap<Apqn, ApqnOwner> = BTreeMap::new();
    fn entry<'a>(
        map: &'a mut BTreeMap<Apqn, ApqnOwner>,
        q: Apqn,
        apmask: &Mask,
        aqmask: &Mask,
    ) -> &'a mut ApqnOwner {
        map.entry(q).or_insert_with(|| ApqnOwner {
            apqn: q.to_string(),
            adapter: q.adapter,
            domain: q.domain,
            present: false,
            owner: if q.host_owned(apmask, aqmask) {
                "host"
            } else {
                "vfio_ap"
            },
            active_mdev: None,
            defined_for: Vec::new(),
            problems: Vec::new(),
        })
    }
    for c in cards {
        for (d, _) in &c.queues {
            entry(&mut map, Apqn::new(c.adapter, *d), apmask, aqmask).present = true;
        }
    }
    for m in active {
        for q in &m.apqns {
            let e = entry(&mut map, *q, apmask, aqmask);
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
            let e = entry(&mut map, q, apmask, aqmask);
            e.defined_for
                .push((d.uuid.clone(), if d.autostart { "auto" } else { "manual" }));
        }
    }
    for (q, e) in map.iter_mut() {
        let defined: Vec<&(String, &str)> = e.defined_for.iter().collect();
        if !defined.is_empty() && q.host_owned(apmask, aqmask) {
            e.problems
                .push("defined for an mdev but owned by the host (active masks)".to_string());
        }
        if !defined.is_empty() && q.host_owned(persistent.0, persistent.1) {
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

    #[test]
    fn matrix_lines() {
        let p = Path::new("matrix");
        assert_eq!(
            parse_matrix("02.002b\n03.002b\n", p).unwrap(),
            vec![Apqn::new(2, 43), Apqn::new(3, 43)]
        );
        assert_eq!(parse_matrix("02.\n.002b\n", p).unwrap(), vec![]);
        assert!(parse_matrix("zz.0001\n", p).is_err());
        assert!(parse_matrix("02002b\n", p).is_err());
    }

    #[test]
    fn configs_apply_assign_and_unassign_in_order() {
        let p = Path::new("c");
        let text = r#"{"mdev_type":"vfio_ap-passthrough","start":"auto","attrs":[
            {"assign_adapter":"2"},{"assign_adapter":"0x3"},{"assign_domain":"053"},
            {"unassign_adapter":"3"},{"assign_control_domain":"1"}]}"#;
        let d = parse_config("u", text, p).unwrap().unwrap();
        assert!(d.autostart);
        assert_eq!(d.apqns(), vec![Apqn::new(2, 43)]);
        assert_eq!(d.control_domains.ranges(), "1,43");
        let other = r#"{"mdev_type":"i915-GVTg_V5_4","start":"manual"}"#;
        assert_eq!(parse_config("u", other, p).unwrap(), None);
        let e = parse_config("u", r#"{"start":"auto"}"#, p).unwrap_err();
        assert_eq!(e.to_string(), "c: no \"mdev_type\"");
        let e = parse_config(
            "u",
            r#"{"mdev_type":"vfio_ap-passthrough","attrs":[{"assign_domain":"256"}]}"#,
            p,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "c: assign_domain value '256' is not an id 0..255"
        );
    }

    #[test]
    fn uuid_shape() {
        assert!(is_uuid("6b7a2b2e-8f3c-4e2a-9d51-1c0c7a3b2e10"));
        assert!(!is_uuid("mdev_supported_types"));
    }
}
