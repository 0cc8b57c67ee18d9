//! vfio_ap mediated devices as mdevctl describes them and as the kernel shows them.
//!
//! - [`DeviceConfig::parse`]: the device JSON mdevctl hands to callouts on stdin and stores in
//!   `/etc/mdevctl.d/matrix/<uuid>` (`{"mdev_type":…,"start":"auto"|"manual","attrs":[{k:v},…]}`).
//!   The bytes are untrusted (a user's `--jsonfile`): every defect is a [`ConfigError`] naming
//!   the field, never a panic (fuzzed in `fuzz/`).
//! - [`Matrix::from_attrs`]: what the kernel would make of the attributes when mdevctl writes
//!   them one by one to sysfs: `assign_*` and `unassign_*` applied in order, each value one
//!   base-0 integer (kstrtoul semantics: `43`, `0x2b`, `053`), ids 0..255.
//! - [`active`]/[`read_active`]: mdevs that exist under `sys/devices/vfio_ap/matrix`, from their
//!   `matrix` and `control_domains` attributes.
//! - [`defined`]: every vfio_ap config under `etc/mdevctl.d/matrix`, its attributes applied.
//!
//! This is the one model of an mdev in the crate: [`ActiveMdev`] (exists now) and
//! [`DefinedMdev`] (has a config), both carrying a [`Matrix`]. Files are read through
//! [`sysfs`] (bounded, non-blocking); errors are [`HostError`]s naming the path.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::apmask::{Apqn, Mask};
use crate::echo::echo;
use crate::root::Root;
use crate::sysfs::{self, HostError};

/// The only mdev type vfio_ap offers.
pub const VFIO_AP_TYPE: &str = "vfio_ap-passthrough";

/// Which id space an attribute addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Adapter,
    Domain,
    ControlDomain,
}

impl IdKind {
    pub fn noun(self) -> &'static str {
        match self {
            IdKind::Adapter => "adapter",
            IdKind::Domain => "domain",
            IdKind::ControlDomain => "control domain",
        }
    }
}

/// The attributes vfio_ap understands: (name, id kind, assign?).
const ATTRS: [(&str, IdKind, bool); 6] = [
    ("assign_adapter", IdKind::Adapter, true),
    ("assign_domain", IdKind::Domain, true),
    ("assign_control_domain", IdKind::ControlDomain, true),
    ("unassign_adapter", IdKind::Adapter, false),
    ("unassign_domain", IdKind::Domain, false),
    ("unassign_control_domain", IdKind::ControlDomain, false),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the device JSON is not valid UTF-8")]
    NotUtf8,
    #[error("the device JSON is {0} bytes, more than the {CONFIG_MAX} an mdevctl device can be")]
    TooLarge(usize),
    #[error("the device JSON is malformed: {0}")]
    Json(String),
    #[error("the device JSON is not an object")]
    NotObject,
    #[error("the device JSON has no \"{0}\"")]
    Missing(&'static str),
    #[error("the device JSON's \"{field}\" is {found}, expected {expected}")]
    WrongType {
        field: &'static str,
        found: String,
        expected: &'static str,
    },
    #[error("the device JSON's \"start\" is '{}', expected 'auto' or 'manual'", echo(.0))]
    BadStart(String),
    #[error(
        "attribute #{index} of \"attrs\" is {found}, expected an object like {{\"assign_adapter\":\"3\"}}"
    )]
    BadAttr { index: usize, found: String },
    #[error(
        "attribute {} has the value {found}; values are strings like \"43\" or \"0x2b\"",
        echo(.name)
    )]
    AttrNotString { name: String, found: String },
}

/// The device JSON of one mdev, attributes kept in their order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    pub mdev_type: String,
    pub autostart: bool,
    pub attrs: Vec<(String, String)>,
}

fn kind_of(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "null".into(),
        serde_json::Value::Bool(b) => format!("the boolean {b}"),
        serde_json::Value::Number(n) => format!("the number {n}"),
        serde_json::Value::String(s) => format!("the string \"{}\"", echo(s)),
        serde_json::Value::Array(_) => "a list".into(),
        serde_json::Value::Object(_) => "an object".into(),
    }
}

impl DeviceConfig {
    /// [`parse`](DeviceConfig::parse) of at most [`CONFIG_MAX`] bytes: what the callout reads
    /// from stdin and from `/etc/mdevctl.d` (more is refused without parsing).
    pub fn parse_bounded(bytes: &[u8]) -> Result<DeviceConfig, ConfigError> {
        if bytes.len() > CONFIG_MAX {
            return Err(ConfigError::TooLarge(bytes.len()));
        }
        DeviceConfig::parse(bytes)
    }

    /// Parses mdevctl's device JSON. `start` defaults to manual when absent (as mdevctl
    /// itself does for a config without it); `attrs` defaults to none.
    pub fn parse(bytes: &[u8]) -> Result<DeviceConfig, ConfigError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ConfigError::NotUtf8)?;
        let text = text.trim_end_matches(['\0', '\n', ' ', '\t', '\r']);
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ConfigError::Json(e.to_string()))?;
        let obj = v.as_object().ok_or(ConfigError::NotObject)?;
        let mdev_type = match obj.get("mdev_type") {
            None => return Err(ConfigError::Missing("mdev_type")),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(ConfigError::WrongType {
                    field: "mdev_type",
                    found: kind_of(other),
                    expected: "a string",
                });
            }
        };
        let autostart = match obj.get("start") {
            None => false,
            Some(serde_json::Value::String(s)) => match s.as_str() {
                "auto" => true,
                "manual" => false,
                _ => return Err(ConfigError::BadStart(s.clone())),
            },
            Some(other) => {
                return Err(ConfigError::WrongType {
                    field: "start",
                    found: kind_of(other),
                    expected: "\"auto\" or \"manual\"",
                });
            }
        };
        let mut attrs = Vec::new();
        match obj.get("attrs") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Array(list)) => {
                for (i, a) in list.iter().enumerate() {
                    let o = a.as_object().ok_or_else(|| ConfigError::BadAttr {
                        index: i + 1,
                        found: kind_of(a),
                    })?;
                    if o.is_empty() {
                        return Err(ConfigError::BadAttr {
                            index: i + 1,
                            found: "an empty object".into(),
                        });
                    }
                    for (k, val) in o {
                        let s = val.as_str().ok_or_else(|| ConfigError::AttrNotString {
                            name: k.clone(),
                            found: kind_of(val),
                        })?;
                        attrs.push((k.clone(), s.to_string()));
                    }
                }
            }
            Some(other) => {
                return Err(ConfigError::WrongType {
                    field: "attrs",
                    found: kind_of(other),
                    expected: "a list",
                });
            }
        }
        Ok(DeviceConfig {
            mdev_type,
            autostart,
            attrs,
        })
    }
}

/// A problem with one attribute, as a user reads it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttrError {
    #[error(
        "unknown attribute {} (value '{}'): vfio_ap accepts assign_adapter, assign_domain, assign_control_domain and their unassign_ forms",
        echo(.name), echo(.value)
    )]
    Unknown { name: String, value: String },
    #[error(
        "{name} value '{}' is not a single integer (one decimal, 0x hex or 0 octal number per attribute; the kernel rejects lists and signs)",
        echo(.value)
    )]
    NotInteger { name: String, value: String },
    #[error("{name} value '{}' is out of range: {} ids are 0..255", echo(.value), kind.noun())]
    OutOfRange {
        name: String,
        value: String,
        kind: IdKind,
    },
}

/// Parses one value the way the kernel's `kstrtoul(buf, 0, …)` does, minus the trailing
/// newline it tolerates: `0x`/`0X` hex, leading `0` octal, else decimal; nothing else.
pub fn parse_value(v: &str) -> Option<u64> {
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
    u64::from_str_radix(digits, radix).ok()
}

/// Adapters, usage domains and control domains of one mdev.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Matrix {
    pub adapters: Mask,
    pub domains: Mask,
    pub control_domains: Mask,
}

impl Matrix {
    /// Applies `attrs` in order, as mdevctl writes them to sysfs. Collects every problem
    /// (one per attribute) instead of stopping at the first.
    pub fn from_attrs(attrs: &[(String, String)]) -> (Matrix, Vec<AttrError>) {
        let mut m = Matrix::default();
        let mut errors = Vec::new();
        for (name, value) in attrs {
            let Some(&(_, kind, assign)) = ATTRS.iter().find(|(n, _, _)| n == name) else {
                errors.push(AttrError::Unknown {
                    name: name.clone(),
                    value: value.clone(),
                });
                continue;
            };
            let Some(n) = parse_value(value) else {
                errors.push(AttrError::NotInteger {
                    name: name.clone(),
                    value: value.clone(),
                });
                continue;
            };
            let Ok(id) = u8::try_from(n) else {
                errors.push(AttrError::OutOfRange {
                    name: name.clone(),
                    value: value.clone(),
                    kind,
                });
                continue;
            };
            let mask = match kind {
                IdKind::Adapter => &mut m.adapters,
                IdKind::Domain => &mut m.domains,
                IdKind::ControlDomain => &mut m.control_domains,
            };
            if assign {
                mask.set(id);
            } else {
                mask.clear(id);
            }
        }
        (m, errors)
    }

    /// APQNs: adapters × usage domains.
    pub fn apqns(&self) -> Vec<Apqn> {
        Apqn::product(&self.adapters, &self.domains)
    }

    /// The attribute list that recreates this matrix, in mdevctl's order (adapters, domains,
    /// control domains; ascending; decimal strings) — what `get attributes` prints.
    pub fn to_attrs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, mask) in [
            ("assign_adapter", &self.adapters),
            ("assign_domain", &self.domains),
            ("assign_control_domain", &self.control_domains),
        ] {
            out.extend(mask.iter().map(|b| (name.to_string(), b.to_string())));
        }
        out
    }

    /// `0x<apm>,0x<aqm>,0x<adm>`: the kernel's `ap_config` attribute.
    pub fn ap_config(&self) -> String {
        format!(
            "{},{},{}",
            self.adapters, self.domains, self.control_domains
        )
    }
}

/// The attributes as mdevctl's JSON list: `[{"assign_adapter":"3"},{"assign_domain":"43"}]`.
pub fn attrs_json(attrs: &[(String, String)]) -> String {
    let list: Vec<serde_json::Value> = attrs
        .iter()
        .map(|(k, v)| {
            let mut o = serde_json::Map::new();
            o.insert(k.clone(), serde_json::Value::String(v.clone()));
            serde_json::Value::Object(o)
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// `8-4-4-4-12` hex digits, as mdevctl and the kernel name mdevs.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// UUID-named entries of `dir`, sorted; an absent directory has none.
fn uuid_entries(dir: &Path) -> Result<Vec<String>, HostError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(HostError::list(dir, e)),
    };
    let mut v = Vec::new();
    for e in rd {
        let e = e.map_err(|e| HostError::list(dir, e))?;
        if let Some(name) = e.file_name().to_str() {
            if is_uuid(name) {
                v.push(name.to_string());
            }
        }
    }
    v.sort();
    Ok(v)
}

/// Parses the `matrix` attribute: `%02x.%04x` lines; `aa.` (adapter without domains) and
/// `.dddd` (domain without adapters) keep their one side.
pub fn parse_matrix(text: &str, path: &Path) -> Result<(Mask, Mask), HostError> {
    let bad =
        |line: &str| HostError::bad(path, format!("matrix line '{line}' is not aa.dddd (hex)"));
    let (mut ap, mut aq) = (Mask::EMPTY, Mask::EMPTY);
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (a, d) = line.split_once('.').ok_or_else(|| bad(line))?;
        if !a.is_empty() {
            ap.set(u8::from_str_radix(a, 16).map_err(|_| bad(line))?);
        }
        if !d.is_empty() {
            let d = u16::from_str_radix(d, 16)
                .ok()
                .and_then(|d| u8::try_from(d).ok())
                .ok_or_else(|| bad(line))?;
            aq.set(d);
        }
    }
    Ok((ap, aq))
}

/// Parses `control_domains`: one `%04x` per line.
pub fn parse_control_domains(text: &str, path: &Path) -> Result<Mask, HostError> {
    let mut m = Mask::EMPTY;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let d = u16::from_str_radix(line, 16)
            .ok()
            .and_then(|d| u8::try_from(d).ok())
            .ok_or_else(|| {
                HostError::bad(
                    path,
                    format!("control domain line '{line}' is not a hex domain id"),
                )
            })?;
        m.set(d);
    }
    Ok(m)
}

/// An mdev that exists now below the matrix parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveMdev {
    pub uuid: String,
    pub matrix: Matrix,
}

impl ActiveMdev {
    /// APQNs as the kernel lists them in `matrix` (only full lines count).
    pub fn apqns(&self) -> Vec<Apqn> {
        self.matrix.apqns()
    }
}

/// The active mdev `uuid`, or `None` when it does not exist.
pub fn read_active(root: &Root, uuid: &str) -> Result<Option<ActiveMdev>, HostError> {
    let dir = root.matrix().join(uuid);
    let mpath = dir.join("matrix");
    // no `matrix` attribute (or no device directory): not an active vfio_ap mdev
    let Some(text) = sysfs::read_optional(&mpath)? else {
        return Ok(None);
    };
    let (adapters, domains) = parse_matrix(&text, &mpath)?;
    let cpath = dir.join("control_domains");
    let control_domains = match sysfs::read_optional(&cpath)? {
        Some(t) => parse_control_domains(&t, &cpath)?,
        None => Mask::EMPTY,
    };
    Ok(Some(ActiveMdev {
        uuid: uuid.to_string(),
        matrix: Matrix {
            adapters,
            domains,
            control_domains,
        },
    }))
}

/// Every active mdev of the matrix parent.
pub fn active(root: &Root) -> Result<Vec<ActiveMdev>, HostError> {
    let mut out = Vec::new();
    for uuid in uuid_entries(&root.matrix())? {
        if let Some(m) = read_active(root, &uuid)? {
            out.push(m);
        }
    }
    Ok(out)
}

/// Up to this many APQNs, [`users_of`] asks each queue's `status` first.
const QUEUE_STATUS_MAX: usize = 32;

/// Whether the kernel says no mdev holds APQN `q`: its queue is bound to vfio_ap and its
/// `status` reads `unassigned` (vfio_ap computes it from every mdev's matrix). A missing
/// queue (card not plugged, host driver) proves nothing.
fn queue_unassigned(root: &Root, q: &Apqn) -> bool {
    let path = root
        .ap_bus()
        .join("devices")
        .join(q.queue_name())
        .join("status");
    matches!(sysfs::read_optional_bytes(&path, 64), Ok(Some(b)) if b.trim_ascii() == b"unassigned")
}

/// The active mdevs (sorted by UUID) whose matrix holds any of `apqns`: the conflicts of a
/// device about to start. With 200 active mdevs, reading every `matrix` was most of a
/// `pre start`; when every queue reports `unassigned` none of them needs reading.
pub fn users_of(root: &Root, apqns: &[Apqn]) -> Result<Vec<ActiveMdev>, HostError> {
    if apqns.is_empty()
        || (apqns.len() <= QUEUE_STATUS_MAX && apqns.iter().all(|q| queue_unassigned(root, q)))
    {
        return Ok(Vec::new());
    }
    let path = root.matrix();
    let list_err = |source| HostError::list(&path, source);
    let Some(dir) = crate::dirscan::Dir::open(&path).map_err(list_err)? else {
        return Ok(Vec::new());
    };
    let mut uuids = dir.names().map_err(list_err)?;
    uuids.retain(|n| is_uuid(n));
    uuids.sort();
    let mut out = Vec::new();
    for uuid in uuids {
        let rel = format!("{uuid}/matrix");
        let mpath = path.join(&rel);
        let bytes = match dir.read_keyed(&rel, sysfs::ATTR_MAX) {
            Ok(Some((_, b))) => b,
            // not a vfio_ap mdev (no matrix attribute), or removed meanwhile
            Ok(None) => continue,
            Err(source) => {
                return Err(sysfs::FileError::Read {
                    path: mpath,
                    cause: source,
                }
                .into());
            }
        };
        let text = String::from_utf8(bytes).map_err(|_| HostError::bad(&mpath, "not UTF-8"))?;
        let (adapters, domains) = parse_matrix(&text, &mpath)?;
        if apqns
            .iter()
            .any(|q| adapters.test(q.adapter) && domains.test(q.domain))
        {
            // control domains matter to nobody asking about conflicts
            out.push(ActiveMdev {
                uuid,
                matrix: Matrix {
                    adapters,
                    domains,
                    control_domains: Mask::EMPTY,
                },
            });
        }
    }
    Ok(out)
}

/// A `vfio_ap-passthrough` config of parent `matrix`, its attributes applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinedMdev {
    pub uuid: String,
    pub path: PathBuf,
    pub autostart: bool,
    pub matrix: Matrix,
}

impl DefinedMdev {
    /// APQNs: adapters × usage domains.
    pub fn apqns(&self) -> Vec<Apqn> {
        self.matrix.apqns()
    }
}

/// A config file that could not be used, with the reason (reported, never fatal: one broken
/// file must not block every other device).
#[derive(Debug)]
pub struct BadConfig {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for BadConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// The most of an mdevctl config that is read (they are a few hundred bytes).
pub const CONFIG_MAX: usize = 1 << 20;

/// Reads and parses one config file; `Ok(None)` when it is gone.
pub fn read_config(path: &Path) -> Result<Option<DeviceConfig>, BadConfig> {
    let bad = |reason: String| BadConfig {
        path: path.to_path_buf(),
        reason,
    };
    match sysfs::read_optional_bytes(path, CONFIG_MAX) {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => DeviceConfig::parse_bounded(&bytes)
            .map(Some)
            .map_err(|e| bad(e.to_string())),
        Err(sysfs::FileError::Read { cause, .. }) | Err(sysfs::FileError::Write { cause, .. }) => {
            Err(bad(format!("cannot read: {cause}")))
        }
    }
}

/// Every vfio_ap-passthrough config under `etc/mdevctl.d/matrix` (configs of other types are
/// skipped), and one warning per file or attribute that could not be used (a broken config
/// must not block every other operation, but the user must hear that it was not checked).
pub fn defined(root: &Root) -> Result<(Vec<DefinedMdev>, Vec<String>), HostError> {
    let dir = root.mdevctl_configs();
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for uuid in uuid_entries(&dir)? {
        let path = dir.join(&uuid);
        let config = match read_config(&path) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(b) => {
                warnings.push(format!("ignoring mdevctl config {b}"));
                continue;
            }
        };
        if config.mdev_type != VFIO_AP_TYPE {
            continue;
        }
        let (matrix, errors) = Matrix::from_attrs(&config.attrs);
        for e in errors {
            warnings.push(format!("{}: {e} (attribute ignored)", path.display()));
        }
        out.push(DefinedMdev {
            uuid,
            path,
            autostart: config.autostart,
            matrix,
        });
    }
    Ok((out, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_mdevctl_json_in_order() {
        let c = DeviceConfig::parse(
            br#"{"mdev_type":"vfio_ap-passthrough","start":"auto","attrs":[{"assign_adapter":"2"},{"assign_domain":"0x2b"}]}"#,
        )
        .unwrap();
        assert_eq!(c.mdev_type, VFIO_AP_TYPE);
        assert!(c.autostart);
        assert_eq!(
            c.attrs,
            attrs(&[("assign_adapter", "2"), ("assign_domain", "0x2b")])
        );
    }

    #[test]
    fn json_defects_are_named() {
        let e = |s: &str| DeviceConfig::parse(s.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            e(r#"{"start":"auto"}"#),
            "the device JSON has no \"mdev_type\""
        );
        assert!(e("{").starts_with("the device JSON is malformed: "));
        assert_eq!(e("[]"), "the device JSON is not an object");
        assert_eq!(
            e(r#"{"mdev_type":"vfio_ap-passthrough","start":"sometimes"}"#),
            "the device JSON's \"start\" is 'sometimes', expected 'auto' or 'manual'"
        );
        assert_eq!(
            e(r#"{"mdev_type":"vfio_ap-passthrough","attrs":[{"assign_domain":43}]}"#),
            "attribute assign_domain has the value the number 43; values are strings like \"43\" or \"0x2b\""
        );
        assert_eq!(
            e(r#"{"mdev_type":"vfio_ap-passthrough","attrs":{"assign_domain":"43"}}"#),
            "the device JSON's \"attrs\" is an object, expected a list"
        );
        assert_eq!(
            e(r#"{"mdev_type":"vfio_ap-passthrough","attrs":["x"]}"#),
            "attribute #1 of \"attrs\" is the string \"x\", expected an object like {\"assign_adapter\":\"3\"}"
        );
        assert_eq!(
            DeviceConfig::parse(b"\xff").unwrap_err(),
            ConfigError::NotUtf8
        );
    }

    #[test]
    fn values_follow_kstrtoul_base_0() {
        assert_eq!(parse_value("43"), Some(43));
        assert_eq!(parse_value("0x2b"), Some(43));
        assert_eq!(parse_value("053"), Some(43));
        assert_eq!(parse_value("0"), Some(0));
        for bad in ["", "-1", "+1", "1,2", "0x", "08", " 1", "1 ", "abc", "1.5"] {
            assert_eq!(parse_value(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn unassign_applies_in_order_and_errors_name_the_value() {
        let (m, errs) = Matrix::from_attrs(&attrs(&[
            ("assign_adapter", "2"),
            ("assign_adapter", "3"),
            ("unassign_adapter", "2"),
            ("assign_domain", "43"),
            ("assign_adapter", "2"),
            ("unassign_domain", "43"),
            ("assign_domain", "44"),
        ]));
        assert!(errs.is_empty());
        assert_eq!(m.adapters.ranges(), "2-3");
        assert_eq!(m.domains.ranges(), "44");
        let (_, errs) = Matrix::from_attrs(&attrs(&[
            ("assign_adapter", "256"),
            ("assign_domain", "1,2"),
            ("assign_domain", "-3"),
            ("frobnicate", "1"),
        ]));
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            msgs[0],
            "assign_adapter value '256' is out of range: adapter ids are 0..255"
        );
        assert!(msgs[1].starts_with("assign_domain value '1,2' is not a single integer"));
        assert!(msgs[2].starts_with("assign_domain value '-3' is not a single integer"));
        assert!(msgs[3].starts_with("unknown attribute frobnicate (value '1')"));
    }

    #[test]
    fn attrs_roundtrip_through_json() {
        let m = Matrix {
            adapters: Mask::EMPTY.with(3),
            domains: Mask::EMPTY.with(43),
            control_domains: Mask::EMPTY,
        };
        assert_eq!(
            attrs_json(&m.to_attrs()),
            r#"[{"assign_adapter":"3"},{"assign_domain":"43"}]"#
        );
        assert_eq!(attrs_json(&[]), "[]");
    }

    #[test]
    fn small_files_of_any_size_read_whole() {
        let d = tempfile::tempdir().unwrap();
        for len in [0usize, 1, 4095, 4096, 4097, 20000] {
            let p = d.path().join(format!("f{len}"));
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            fs::write(&p, &data).unwrap();
            assert_eq!(
                sysfs::read_optional_bytes(&p, CONFIG_MAX).unwrap(),
                Some(data),
                "{len}"
            );
        }
    }

    #[test]
    fn matrix_attribute_keeps_one_sided_lines() {
        let p = Path::new("matrix");
        let (a, d) = parse_matrix("02.002b\n03.002b\n", p).unwrap();
        assert_eq!((a.ranges().as_str(), d.ranges().as_str()), ("2-3", "43"));
        let (a, d) = parse_matrix("05.\n", p).unwrap();
        assert_eq!((a.ranges().as_str(), d.ranges().as_str()), ("5", ""));
        let (a, d) = parse_matrix(".0004\n", p).unwrap();
        assert_eq!((a.ranges().as_str(), d.ranges().as_str()), ("", "4"));
        assert!(parse_matrix("zz.0001\n", p).is_err());
        assert_eq!(
            parse_control_domains("0001\n002b\n", p).unwrap().ranges(),
            "1,43"
        );
    }

    #[test]
    fn users_of_trusts_unassigned_queues_and_reads_the_mdevs_otherwise() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let w = |rel: &str, text: &str| {
            let p = root.path(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        };
        let m = "sys/devices/vfio_ap/matrix";
        let (u1, u2) = (
            "11111111-1111-4111-8111-111111111111",
            "22222222-2222-4222-8222-222222222222",
        );
        w(&format!("{m}/{u1}/matrix"), "02.002b\n02.002c\n");
        w(&format!("{m}/{u2}/matrix"), "03.002b\n");
        let q = |a, d| Apqn::new(a, d);
        let uuids = |v: Vec<ActiveMdev>| v.into_iter().map(|a| a.uuid).collect::<Vec<_>>();
        // no queue devices: every matrix is read
        assert_eq!(uuids(users_of(&root, &[q(2, 44)]).unwrap()), [u1]);
        assert_eq!(
            uuids(users_of(&root, &[q(3, 43), q(2, 43)]).unwrap()),
            [u1, u2]
        );
        assert!(users_of(&root, &[q(4, 43)]).unwrap().is_empty());
        assert!(users_of(&root, &[]).unwrap().is_empty());
        // the kernel's answer for a free queue: no matrix needs reading, so even an
        // unreadable one (a directory here) does not matter
        w("sys/bus/ap/devices/04.002b/status", "unassigned\n");
        fs::remove_file(root.path(format!("{m}/{u2}/matrix"))).unwrap();
        fs::create_dir(root.path(format!("{m}/{u2}/matrix"))).unwrap();
        assert!(users_of(&root, &[q(4, 43)]).unwrap().is_empty());
        // any queue without that answer: the matrices are read (and the error surfaces)
        w("sys/bus/ap/devices/02.002b/status", "assigned\n");
        assert!(users_of(&root, &[q(4, 43), q(2, 43)]).is_err());
    }
}
