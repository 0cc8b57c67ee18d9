//! The simulated host: AP bus state (cards, queues, masks), the vfio_ap matrix device and its
//! mdevs, and the sysfs tree they show, with the kernel's store semantics and errno values
//! (drivers/s390/crypto/ap_bus.c, vfio_ap_ops.c, vfio_ap_drv.c; drivers/vfio/mdev).
//!
//! Everything is derived from one [`State`] behind a mutex: the tree is generated on every
//! lookup, so a queue's driver, `bindings`, `matrix` files and the mdev symlinks always agree
//! with the masks and the mdevs, as they do on a real host.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::mask::{self, Mask, kstrtoul};
use crate::uevent::Uevent;

/// Name of the one mdev type vfio_ap offers.
pub const MDEV_TYPE: &str = "vfio_ap-passthrough";
/// `max_instances` of the vfio_ap mdev driver (`MAX_ZDEV_ENTRIES_EXT` = 256 * 256).
pub const MAX_INSTANCES: usize = 65536;
/// A sysfs `show` buffer is one page; longer output is cut (the kernel uses scnprintf).
const PAGE_SIZE: usize = 4096;
/// Hardware types vfio_ap binds to: CEX4 (10) .. CEX8 (14) (`ap_queue_ids` of vfio_ap_drv.c).
pub const VFIO_AP_HWTYPES: std::ops::RangeInclusive<u32> = 10..=14;

fn errno(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

fn default_max() -> u8 {
    255
}

fn default_true() -> bool {
    true
}

/// One crypto card (adapter) of the simulated LPAR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardConfig {
    /// Adapter number (the `XX` of `cardXX`).
    pub id: u8,
    /// `hwtype` (decimal): 10..14 = CEX4..CEX8 are what vfio_ap supports.
    pub hwtype: u32,
    /// Usage domains configured for this card: one queue `XX.YYYY` each.
    #[serde(default)]
    pub domains: Vec<u8>,
}

/// The host to simulate; also the JSON format of `ap-sim mount --config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// `/sys/bus/ap/ap_max_adapter_id` (default 255).
    #[serde(default = "default_max")]
    pub ap_max_adapter_id: u8,
    /// `/sys/bus/ap/ap_max_domain_id` (default 255).
    #[serde(default = "default_max")]
    pub ap_max_domain_id: u8,
    /// The crypto cards.
    #[serde(default)]
    pub cards: Vec<CardConfig>,
    /// Initial apmask as the kernel accepts it (absolute hex); all-ones when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apmask: Option<String>,
    /// Initial aqmask as the kernel accepts it (absolute hex); all-ones when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aqmask: Option<String>,
    /// Whether module vfio_ap is loaded (the `matrix` parent exists); default true.
    #[serde(default = "default_true")]
    pub vfio_ap_loaded: bool,
    /// Fault injection for tests (not a kernel file): every write to the mdev type's `create`
    /// fails with this errno and creates nothing, e.g. 12 (ENOMEM), what the kernel returns
    /// when mdev_device_create cannot allocate the device (memory pressure, or the kernel's
    /// own failslab fault injection). Lets a test fail an `mdevctl start` after every
    /// validation has passed. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_mdev_create: Option<i32>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            ap_max_adapter_id: 255,
            ap_max_domain_id: 255,
            cards: Vec::new(),
            apmask: None,
            aqmask: None,
            vfio_ap_loaded: true,
            fail_mdev_create: None,
        }
    }
}

impl HostConfig {
    /// No cards, max ids 255, masks all-ones, vfio_ap loaded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a card with its usage domains.
    pub fn card(mut self, id: u8, hwtype: u32, domains: &[u8]) -> Self {
        self.cards.push(CardConfig {
            id,
            hwtype,
            domains: domains.to_vec(),
        });
        self
    }

    /// Set `ap_max_adapter_id` and `ap_max_domain_id`.
    pub fn max_ids(mut self, adapter: u8, domain: u8) -> Self {
        self.ap_max_adapter_id = adapter;
        self.ap_max_domain_id = domain;
        self
    }

    /// Initial masks (absolute hex as the kernel takes them, e.g. `"0x9f"`).
    pub fn masks(mut self, apmask: &str, aqmask: &str) -> Self {
        self.apmask = Some(apmask.to_string());
        self.aqmask = Some(aqmask.to_string());
        self
    }

    /// Whether vfio_ap starts loaded.
    pub fn vfio_ap(mut self, loaded: bool) -> Self {
        self.vfio_ap_loaded = loaded;
        self
    }

    /// Fault injection for tests: every mdev `create` fails with `errno` (see
    /// [`HostConfig::fail_mdev_create`]).
    pub fn fail_mdev_create(mut self, errno: i32) -> Self {
        self.fail_mdev_create = Some(errno);
        self
    }

    /// The example host of `ap-sim example-config`: a CEX7 (hwtype 13) adapter 02 and a CEX8
    /// (14) adapter 03 with domains 43 and 44, a CEX3C (9) adapter 05 with domain 43.
    pub fn example() -> Self {
        HostConfig::new()
            .card(2, 13, &[43, 44])
            .card(3, 14, &[43, 44])
            .card(5, 9, &[43])
    }
}

/// A host configuration that cannot exist.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A card id appears twice.
    #[error("card {0:#04x} is configured twice")]
    DuplicateCard(u8),
    /// A card id above `ap_max_adapter_id`.
    #[error("card {id} is above ap_max_adapter_id {max}")]
    CardAboveMax {
        /// card id
        id: u8,
        /// ap_max_adapter_id
        max: u8,
    },
    /// A domain above `ap_max_domain_id`.
    #[error("domain {dom} of card {id} is above ap_max_domain_id {max}")]
    DomainAboveMax {
        /// card id
        id: u8,
        /// domain
        dom: u8,
        /// ap_max_domain_id
        max: u8,
    },
    /// `fail_mdev_create` is not an errno (1..=4095, as the kernel's error pointers).
    #[error("fail_mdev_create {0} is not an errno (1..4095, e.g. 12 for ENOMEM)")]
    BadErrno(i32),
    /// An initial mask the kernel would not accept.
    #[error("{name} {value:?} is not an absolute hex mask")]
    BadMask {
        /// apmask or aqmask
        name: &'static str,
        /// the value
        value: String,
    },
    /// Unreadable JSON.
    #[error("host config: {0}")]
    Json(#[from] serde_json::Error),
}

/// Which driver a queue is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// The host's crypto driver (zcrypt `cex4queue`): the queue has `online`.
    Host,
    /// vfio_ap: the queue has `status`.
    VfioAp,
}

/// The state of one mdev of type vfio_ap-passthrough.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MdevState {
    /// Assigned adapters.
    pub apm: Mask,
    /// Assigned usage domains.
    pub aqm: Mask,
    /// Assigned control domains.
    pub adm: Mask,
    /// A guest has the device open (queues passed through show `status` "in use").
    pub guest: bool,
}

#[derive(Debug)]
struct Card {
    hwtype: u32,
    domains: BTreeSet<u8>,
}

/// Everything the simulated kernel knows.
#[derive(Debug)]
pub(crate) struct State {
    max_apid: u8,
    max_apqi: u8,
    cards: BTreeMap<u8, Card>,
    apm: Mask,
    aqm: Mask,
    vfio_loaded: bool,
    /// [`HostConfig::fail_mdev_create`]: the errno every `create` fails with.
    fail_create: Option<i32>,
    mdevs: BTreeMap<String, MdevState>,
    /// The IOMMU group of each mdev (`kernel/iommu_groups/N`), allocated at create like the
    /// kernel's ida: the lowest free number.
    groups: BTreeMap<String, u32>,
    /// The kernel's uevent sequence number of the last event.
    seqnum: u64,
    /// Events of stores not yet taken by [`State::take_uevents`].
    pending: Vec<Uevent>,
}

/// The variables of a `uevent` file.
type Env = Vec<(String, String)>;

/// What a directory entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ent {
    Dir,
    File(FileId, u16),
    Link(String),
}

/// Kind of a directory entry, as [`Sim::readdir`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A sysfs attribute.
    File,
    /// A symbolic link.
    Symlink,
}

/// One entry of [`Sim::readdir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// File name.
    pub name: String,
    /// Its kind (not following symlinks).
    pub kind: Kind,
}

/// Result of [`Sim::stat`] / [`Sim::lstat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Kind of the node.
    pub kind: Kind,
    /// Permission bits (sysfs: 0755 dirs, 0444/0644/0200 attributes, 0777 links).
    pub mode: u16,
}

/// An mdev attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MdevAttr {
    AssignAdapter,
    UnassignAdapter,
    AssignDomain,
    UnassignDomain,
    AssignControlDomain,
    UnassignControlDomain,
    ApConfig,
    ControlDomains,
    Matrix,
    GuestMatrix,
    Remove,
}

/// A sysfs attribute and what it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileId {
    Apmask,
    Aqmask,
    MaxAdapter,
    MaxDomain,
    Bindings,
    CardHwtype(u8),
    CardOnline(u8),
    QueueOnline(u8, u8),
    QueueStatus(u8, u8),
    TypeCreate,
    TypeAvailable,
    TypeDeviceApi,
    TypeName,
    Mdev(String, MdevAttr),
    /// The `uevent` attribute of the device at this path (symlink-free, below /sys).
    Uevent(String),
}

const R: u16 = 0o444;
const RW: u16 = 0o644;
const W: u16 = 0o200;

fn card_name(a: u8) -> String {
    format!("card{a:02x}")
}

fn queue_name(a: u8, d: u8) -> String {
    format!("{a:02x}.{d:04x}")
}

/// Parse a 36-character UUID as the kernel's `guid_parse` does (only the first 36 bytes
/// count) and return it in the lower-case form the device is named by (`%pUl`).
fn parse_uuid(buf: &[u8]) -> Option<String> {
    if buf.len() < 36 {
        return None;
    }
    let s = &buf[..36];
    for (i, &c) in s.iter().enumerate() {
        let ok = if matches!(i, 8 | 13 | 18 | 23) {
            c == b'-'
        } else {
            c.is_ascii_hexdigit()
        };
        if !ok {
            return None;
        }
    }
    Some(String::from_utf8_lossy(s).to_ascii_lowercase())
}

fn is_uuid_name(s: &str) -> bool {
    parse_uuid(s.as_bytes()).as_deref() == Some(s)
}

impl State {
    fn new(cfg: &HostConfig) -> Result<State, ConfigError> {
        let mut cards = BTreeMap::new();
        for c in &cfg.cards {
            if c.id > cfg.ap_max_adapter_id {
                return Err(ConfigError::CardAboveMax {
                    id: c.id,
                    max: cfg.ap_max_adapter_id,
                });
            }
            if let Some(&dom) = c.domains.iter().find(|&&d| d > cfg.ap_max_domain_id) {
                return Err(ConfigError::DomainAboveMax {
                    id: c.id,
                    dom,
                    max: cfg.ap_max_domain_id,
                });
            }
            let card = Card {
                hwtype: c.hwtype,
                domains: c.domains.iter().copied().collect(),
            };
            if cards.insert(c.id, card).is_some() {
                return Err(ConfigError::DuplicateCard(c.id));
            }
        }
        let mask = |name: &'static str, v: &Option<String>| match v {
            None => Ok(Mask::full()),
            Some(s) => Mask::parse_hex(s.as_bytes()).map_err(|_| ConfigError::BadMask {
                name,
                value: s.clone(),
            }),
        };
        if let Some(e) = cfg.fail_mdev_create.filter(|e| !(1..=4095).contains(e)) {
            return Err(ConfigError::BadErrno(e));
        }
        Ok(State {
            max_apid: cfg.ap_max_adapter_id,
            max_apqi: cfg.ap_max_domain_id,
            cards,
            apm: mask("apmask", &cfg.apmask)?,
            aqm: mask("aqmask", &cfg.aqmask)?,
            vfio_loaded: cfg.vfio_ap_loaded,
            fail_create: cfg.fail_mdev_create,
            mdevs: BTreeMap::new(),
            groups: BTreeMap::new(),
            seqnum: 0,
            pending: Vec::new(),
        })
    }

    fn queues(&self) -> impl Iterator<Item = (u8, u8)> + '_ {
        self.cards
            .iter()
            .flat_map(|(&a, c)| c.domains.iter().map(move |&d| (a, d)))
    }

    fn has_queue(&self, a: u8, d: u8) -> bool {
        self.cards.get(&a).is_some_and(|c| c.domains.contains(&d))
    }

    /// The driver a queue binds to after the AP bus (re)probes it: the host's driver when the
    /// masks give the APQN to the host, else vfio_ap if loaded and the card type is supported.
    fn queue_driver(&self, a: u8, d: u8) -> Option<Driver> {
        let card = self.cards.get(&a)?;
        if !card.domains.contains(&d) {
            return None;
        }
        if self.apm.get(a.into()) && self.aqm.get(d.into()) {
            Some(Driver::Host)
        } else if self.vfio_loaded && VFIO_AP_HWTYPES.contains(&card.hwtype) {
            Some(Driver::VfioAp)
        } else {
            None
        }
    }

    /// The matrix a guest would get (`vfio_ap_mdev_filter_matrix`): domains limited to the
    /// configured ones, and an adapter dropped when any of its queues in the matrix is not
    /// bound to vfio_ap.
    fn shadow(&self, m: &MdevState) -> (Mask, Mask) {
        let cfg_aqm = Mask::from_bits(self.queues().map(|(_, d)| usize::from(d)));
        let aqm = m.aqm.and(&cfg_aqm);
        let mut apm = Mask::empty();
        for a in m.apm.iter() {
            let a8 = a as u8;
            if !self.cards.contains_key(&a8) {
                continue;
            }
            let all_bound = aqm
                .iter()
                .all(|d| self.queue_driver(a8, d as u8) == Some(Driver::VfioAp));
            if all_bound {
                apm.set(a, true);
            }
        }
        (apm, aqm)
    }

    fn queue_owner(&self, a: u8, d: u8) -> Option<(&String, &MdevState)> {
        self.mdevs
            .iter()
            .find(|(_, m)| m.apm.get(a.into()) && m.aqm.get(d.into()))
    }

    /// The mdev in IOMMU group `g` (a decimal name as the directory shows it).
    fn group_member(&self, g: &str) -> Option<&str> {
        self.groups
            .iter()
            .find(|(_, n)| n.to_string() == g)
            .map(|(u, _)| u.as_str())
    }

    /// The lowest IOMMU group number not in use (the kernel allocates them with an ida).
    fn free_group(&self) -> u32 {
        let used: BTreeSet<u32> = self.groups.values().copied().collect();
        (0..).find(|n| !used.contains(n)).unwrap_or(0)
    }

    /// The subsystem and the variables of the `uevent` file of the device at `devpath`
    /// (below /sys, no leading `/`), as the kernel's `dev_uevent` and the bus's `uevent`
    /// callback fill them: DEVTYPE, DRIVER (when bound and `driver` is set), then the bus's
    /// own (`ap_uevent`: DEV_TYPE and MODALIAS of cards; `mdev_uevent`: MDEV_TYPE). Root
    /// devices (`devices/ap`, `devices/vfio_ap`) have no subsystem and no variables. None
    /// when there is no such device.
    fn device_env(&self, devpath: &str, driver: bool) -> Option<(Option<&'static str>, Env)> {
        let c: Vec<&str> = devpath.split('/').collect();
        let mut env: Env = Vec::new();
        let mut put = |k: &str, v: String| env.push((k.to_string(), v));
        let subsystem = match c.as_slice() {
            ["devices", "ap"] => None,
            ["devices", "vfio_ap"] if self.vfio_loaded => None,
            ["devices", "vfio_ap", "matrix"] if self.vfio_loaded => {
                if driver {
                    put("DRIVER", "vfio_ap".into());
                }
                Some("matrix")
            }
            ["devices", "vfio_ap", "matrix", u] if self.mdevs.contains_key(*u) => {
                if driver {
                    put("DRIVER", "vfio_ap_mdev".into());
                }
                put("MDEV_TYPE", MDEV_TYPE.into());
                Some("mdev")
            }
            ["devices", "ap", cn] => {
                let (_, card) = self.cards.iter().find(|(a, _)| card_name(**a) == *cn)?;
                put("DEVTYPE", "ap_card".into());
                if driver {
                    put("DRIVER", "cex4card".into());
                }
                put("DEV_TYPE", format!("{:04X}", card.hwtype));
                put("MODALIAS", format!("ap:t{:02X}", card.hwtype));
                Some("ap")
            }
            ["devices", "ap", cn, qn] => {
                let (a, d) = self
                    .queues()
                    .find(|&(a, d)| card_name(a) == *cn && queue_name(a, d) == *qn)?;
                put("DEVTYPE", "ap_queue".into());
                match self.queue_driver(a, d) {
                    Some(Driver::Host) if driver => put("DRIVER", "cex4queue".into()),
                    Some(Driver::VfioAp) if driver => put("DRIVER", "vfio_ap".into()),
                    _ => {}
                }
                Some("ap")
            }
            _ => return None,
        };
        Some((subsystem, env))
    }

    /// Record the event `action` of the device at `devpath`; root devices send none (the
    /// kernel's `dev_uevent_filter` drops devices without a bus or class).
    fn emit(&mut self, action: &str, devpath: &str, driver: bool) {
        if let Some((Some(subsystem), env)) = self.device_env(devpath, driver) {
            self.seqnum += 1;
            self.pending.push(Uevent {
                action: action.to_string(),
                devpath: format!("/{devpath}"),
                subsystem: subsystem.to_string(),
                env,
                seqnum: self.seqnum,
            });
        }
    }

    /// The events of the last stores, oldest first, and forget them.
    pub(crate) fn take_uevents(&mut self) -> Vec<Uevent> {
        std::mem::take(&mut self.pending)
    }

    fn queue_status(&self, a: u8, d: u8) -> &'static str {
        match self.queue_owner(a, d) {
            None => "unassigned",
            Some((_, m)) => {
                let (sapm, saqm) = self.shadow(m);
                if m.guest && sapm.get(a.into()) && saqm.get(d.into()) {
                    "in use"
                } else {
                    "assigned"
                }
            }
        }
    }

    /// The children of the directory at `comps` (a path without symlinks), or None when that
    /// is not a directory.
    pub(crate) fn children(&self, comps: &[&str]) -> Option<Vec<(String, Ent)>> {
        let dir = |n: &str| (n.to_string(), Ent::Dir);
        let file = |n: &str, f: FileId, mode: u16| (n.to_string(), Ent::File(f, mode));
        let link = |n: &str, t: String| (n.to_string(), Ent::Link(t));
        let v = match comps {
            [] => vec![dir("bus"), dir("class"), dir("devices"), dir("kernel")],
            ["bus"] => {
                let mut v = vec![dir("ap")];
                if self.vfio_loaded {
                    v.push(dir("matrix"));
                }
                v.push(dir("mdev"));
                v
            }
            // vfio_ap registers its own bus "matrix" with the one device "matrix" bound to
            // the driver "vfio_ap" (vfio_ap_drv.c); libvirt types the device by this bus
            ["bus", "matrix"] if self.vfio_loaded => vec![dir("devices"), dir("drivers")],
            ["bus", "matrix", "devices"] if self.vfio_loaded => {
                vec![link("matrix", "../../../devices/vfio_ap/matrix".into())]
            }
            ["bus", "matrix", "drivers"] if self.vfio_loaded => vec![dir("vfio_ap")],
            ["bus", "matrix", "drivers", "vfio_ap"] if self.vfio_loaded => {
                vec![link("matrix", "../../../../devices/vfio_ap/matrix".into())]
            }
            ["kernel"] => vec![dir("iommu_groups")],
            ["kernel", "iommu_groups"] => {
                self.groups.values().map(|g| dir(&g.to_string())).collect()
            }
            ["kernel", "iommu_groups", g] => {
                self.group_member(g)?;
                vec![dir("devices")]
            }
            ["kernel", "iommu_groups", g, "devices"] => {
                let u = self.group_member(g)?;
                vec![link(u, format!("../../../../devices/vfio_ap/matrix/{u}"))]
            }
            ["bus", "ap"] => vec![
                file("ap_max_adapter_id", FileId::MaxAdapter, R),
                file("ap_max_domain_id", FileId::MaxDomain, R),
                file("apmask", FileId::Apmask, RW),
                file("aqmask", FileId::Aqmask, RW),
                file("bindings", FileId::Bindings, R),
                dir("devices"),
                dir("drivers"),
            ],
            ["bus", "ap", "devices"] => {
                let mut v = Vec::new();
                for (&a, c) in &self.cards {
                    let cn = card_name(a);
                    v.push(link(&cn, format!("../../../devices/ap/{cn}")));
                    for &d in &c.domains {
                        let q = queue_name(a, d);
                        v.push(link(&q, format!("../../../devices/ap/{cn}/{q}")));
                    }
                }
                v
            }
            ["bus", "ap", "drivers"] => {
                let mut v = vec![dir("cex4card"), dir("cex4queue")];
                if self.vfio_loaded {
                    v.push(dir("vfio_ap"));
                }
                v
            }
            ["bus", "ap", "drivers", drv] => {
                let want = match *drv {
                    "cex4card" => None,
                    "cex4queue" => Some(Driver::Host),
                    "vfio_ap" if self.vfio_loaded => Some(Driver::VfioAp),
                    _ => return None,
                };
                let mut v = Vec::new();
                match want {
                    None => {
                        for &a in self.cards.keys() {
                            let cn = card_name(a);
                            v.push(link(&cn, format!("../../../../devices/ap/{cn}")));
                        }
                    }
                    Some(w) => {
                        for (a, d) in self.queues() {
                            if self.queue_driver(a, d) == Some(w) {
                                let (cn, q) = (card_name(a), queue_name(a, d));
                                v.push(link(&q, format!("../../../../devices/ap/{cn}/{q}")));
                            }
                        }
                    }
                }
                v
            }
            ["bus", "mdev"] => vec![dir("devices"), dir("drivers")],
            ["bus", "mdev", "drivers"] => {
                if self.vfio_loaded {
                    vec![dir("vfio_ap_mdev")]
                } else {
                    Vec::new()
                }
            }
            ["bus", "mdev", "drivers", "vfio_ap_mdev"] if self.vfio_loaded => self
                .mdevs
                .keys()
                .map(|u| link(u, format!("../../../../devices/vfio_ap/matrix/{u}")))
                .collect(),
            ["bus", "mdev", "devices"] => self
                .mdevs
                .keys()
                .map(|u| link(u, format!("../../../devices/vfio_ap/matrix/{u}")))
                .collect(),
            ["class"] => vec![dir("mdev_bus")],
            ["class", "mdev_bus"] => {
                if self.vfio_loaded {
                    vec![link("matrix", "../../devices/vfio_ap/matrix".to_string())]
                } else {
                    Vec::new()
                }
            }
            ["devices"] => {
                let mut v = vec![dir("ap")];
                if self.vfio_loaded {
                    v.push(dir("vfio_ap"));
                }
                v
            }
            ["devices", "ap"] => {
                let mut v: Vec<_> = self.cards.keys().map(|&a| dir(&card_name(a))).collect();
                v.push(file("uevent", FileId::Uevent("devices/ap".into()), RW));
                v
            }
            ["devices", "ap", cn] => {
                let (&a, c) = self.cards.iter().find(|(a, _)| card_name(**a) == *cn)?;
                let mut v = vec![
                    link("driver", "../../../bus/ap/drivers/cex4card".to_string()),
                    file("hwtype", FileId::CardHwtype(a), R),
                    file("online", FileId::CardOnline(a), R),
                    link("subsystem", "../../../bus/ap".to_string()),
                    file("uevent", FileId::Uevent(format!("devices/ap/{cn}")), RW),
                ];
                for &d in &c.domains {
                    v.push(dir(&queue_name(a, d)));
                }
                v
            }
            ["devices", "ap", cn, qn] => {
                let (a, d) = self
                    .queues()
                    .find(|&(a, d)| card_name(a) == *cn && queue_name(a, d) == *qn)?;
                let mut v = match self.queue_driver(a, d) {
                    Some(Driver::Host) => vec![
                        link("driver", "../../../../bus/ap/drivers/cex4queue".into()),
                        file("online", FileId::QueueOnline(a, d), R),
                    ],
                    Some(Driver::VfioAp) => vec![
                        link("driver", "../../../../bus/ap/drivers/vfio_ap".into()),
                        file("status", FileId::QueueStatus(a, d), R),
                    ],
                    None => Vec::new(),
                };
                v.push(link("subsystem", "../../../../bus/ap".into()));
                v.push(file(
                    "uevent",
                    FileId::Uevent(format!("devices/ap/{cn}/{qn}")),
                    RW,
                ));
                v
            }
            ["devices", "vfio_ap"] if self.vfio_loaded => vec![
                dir("matrix"),
                file("uevent", FileId::Uevent("devices/vfio_ap".into()), RW),
            ],
            ["devices", "vfio_ap", "matrix"] if self.vfio_loaded => {
                let mut v = vec![
                    link("driver", "../../../bus/matrix/drivers/vfio_ap".into()),
                    dir("mdev_supported_types"),
                    link("subsystem", "../../../bus/matrix".into()),
                    file(
                        "uevent",
                        FileId::Uevent("devices/vfio_ap/matrix".into()),
                        RW,
                    ),
                ];
                v.extend(self.mdevs.keys().map(|u| dir(u)));
                v
            }
            ["devices", "vfio_ap", "matrix", "mdev_supported_types"] if self.vfio_loaded => {
                vec![dir(MDEV_TYPE)]
            }
            ["devices", "vfio_ap", "matrix", "mdev_supported_types", t]
                if self.vfio_loaded && *t == MDEV_TYPE =>
            {
                vec![
                    file("available_instances", FileId::TypeAvailable, R),
                    file("create", FileId::TypeCreate, W),
                    file("device_api", FileId::TypeDeviceApi, R),
                    dir("devices"),
                    file("name", FileId::TypeName, R),
                ]
            }
            [
                "devices",
                "vfio_ap",
                "matrix",
                "mdev_supported_types",
                t,
                "devices",
            ] if self.vfio_loaded && *t == MDEV_TYPE => self
                .mdevs
                .keys()
                .map(|u| link(u, format!("../../../{u}")))
                .collect(),
            ["devices", "vfio_ap", "matrix", u] if self.mdevs.contains_key(*u) => {
                let m =
                    |n: &str, a: MdevAttr, mode: u16| file(n, FileId::Mdev(u.to_string(), a), mode);
                vec![
                    m("ap_config", MdevAttr::ApConfig, RW),
                    m("assign_adapter", MdevAttr::AssignAdapter, W),
                    m("assign_control_domain", MdevAttr::AssignControlDomain, W),
                    m("assign_domain", MdevAttr::AssignDomain, W),
                    m("control_domains", MdevAttr::ControlDomains, R),
                    link("driver", "../../../../bus/mdev/drivers/vfio_ap_mdev".into()),
                    m("guest_matrix", MdevAttr::GuestMatrix, R),
                    link(
                        "iommu_group",
                        format!("../../../../kernel/iommu_groups/{}", self.groups[*u]),
                    ),
                    m("matrix", MdevAttr::Matrix, R),
                    link("mdev_type", format!("../mdev_supported_types/{MDEV_TYPE}")),
                    m("remove", MdevAttr::Remove, W),
                    link("subsystem", "../../../../bus/mdev".to_string()),
                    m("unassign_adapter", MdevAttr::UnassignAdapter, W),
                    m(
                        "unassign_control_domain",
                        MdevAttr::UnassignControlDomain,
                        W,
                    ),
                    m("unassign_domain", MdevAttr::UnassignDomain, W),
                    file(
                        "uevent",
                        FileId::Uevent(format!("devices/vfio_ap/matrix/{u}")),
                        RW,
                    ),
                ]
            }
            _ => return None,
        };
        Some(v)
    }

    /// Resolve `path` the way the kernel walks it: symlinks in the middle are always followed,
    /// the last one only when `follow` is set. Returns the symlink-free path and its entry.
    fn resolve(&self, path: &str, follow: bool) -> io::Result<(Vec<String>, Ent)> {
        let mut todo: VecDeque<String> = split(path).into_iter().collect();
        let mut cur: Vec<String> = Vec::new();
        let mut ent = Ent::Dir;
        let mut hops = 0;
        while let Some(c) = todo.pop_front() {
            if ent != Ent::Dir {
                return Err(errno(libc::ENOTDIR));
            }
            if c == "." {
                continue;
            }
            if c == ".." {
                cur.pop();
                continue;
            }
            let refs: Vec<&str> = cur.iter().map(String::as_str).collect();
            let kids = self.children(&refs).ok_or_else(|| errno(libc::ENOTDIR))?;
            let e = kids
                .into_iter()
                .find(|(n, _)| *n == c)
                .map(|(_, e)| e)
                .ok_or_else(|| errno(libc::ENOENT))?;
            match e {
                Ent::Link(t) if follow || !todo.is_empty() => {
                    hops += 1;
                    if hops > 40 {
                        return Err(errno(libc::ELOOP));
                    }
                    for part in t.split('/').rev().filter(|p| !p.is_empty()) {
                        todo.push_front(part.to_string());
                    }
                    ent = Ent::Dir;
                }
                e => {
                    cur.push(c);
                    ent = e;
                }
            }
        }
        Ok((cur, ent))
    }

    /// What reading the attribute returns now (the kernel's `show`).
    pub(crate) fn show(&self, f: &FileId) -> io::Result<Vec<u8>> {
        let s = match f {
            FileId::Apmask => format!("0x{}\n", self.apm.hex()),
            FileId::Aqmask => format!("0x{}\n", self.aqm.hex()),
            FileId::MaxAdapter => format!("{}\n", self.max_apid),
            FileId::MaxDomain => format!("{}\n", self.max_apqi),
            FileId::Bindings => {
                let total = self.queues().count();
                let bound = self
                    .queues()
                    .filter(|&(a, d)| self.queue_driver(a, d).is_some())
                    .count();
                if bound == total {
                    format!("{bound}/{total} (complete)\n")
                } else {
                    format!("{bound}/{total}\n")
                }
            }
            FileId::CardHwtype(a) => format!("{}\n", self.cards.get(a).map_or(0, |c| c.hwtype)),
            FileId::CardOnline(_) | FileId::QueueOnline(..) => "1\n".to_string(),
            FileId::QueueStatus(a, d) => format!("{}\n", self.queue_status(*a, *d)),
            FileId::TypeAvailable => format!("{}\n", MAX_INSTANCES - self.mdevs.len()),
            FileId::TypeDeviceApi => "vfio-ap\n".to_string(),
            FileId::TypeName => "VFIO AP Passthrough Device\n".to_string(),
            FileId::TypeCreate => return Err(errno(libc::EACCES)),
            FileId::Uevent(devpath) => {
                let (_, env) = self
                    .device_env(devpath, true)
                    .ok_or_else(|| errno(libc::ENODEV))?;
                env.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
            }
            FileId::Mdev(u, attr) => {
                let m = self.mdevs.get(u).ok_or_else(|| errno(libc::ENODEV))?;
                match attr {
                    MdevAttr::Matrix => self.matrix_text(&m.apm, &m.aqm),
                    MdevAttr::GuestMatrix => {
                        let (apm, aqm) = self.shadow(m);
                        self.matrix_text(&apm, &aqm)
                    }
                    MdevAttr::ControlDomains => {
                        let mut s = String::new();
                        for d in m.adm.iter().filter(|&d| d <= self.max_apqi.into()) {
                            s.push_str(&format!("{d:04x}\n"));
                        }
                        s
                    }
                    MdevAttr::ApConfig => {
                        format!("0x{},0x{},0x{}\n", m.apm.hex(), m.aqm.hex(), m.adm.hex())
                    }
                    _ => return Err(errno(libc::EACCES)),
                }
            }
        };
        Ok(s.into_bytes())
    }

    /// `vfio_ap_mdev_matrix_show`: `aa.dddd` per APQN, `aa.` / `.dddd` when the other side is
    /// empty; cut at one page like the kernel's scnprintf loop.
    fn matrix_text(&self, apm: &Mask, aqm: &Mask) -> String {
        let aps: Vec<usize> = apm.iter().filter(|&a| a <= self.max_apid.into()).collect();
        let qis: Vec<usize> = aqm.iter().filter(|&d| d <= self.max_apqi.into()).collect();
        let mut s = String::new();
        if !aps.is_empty() && !qis.is_empty() {
            for a in &aps {
                for d in &qis {
                    s.push_str(&format!("{a:02x}.{d:04x}\n"));
                }
            }
        } else if !aps.is_empty() {
            for a in &aps {
                s.push_str(&format!("{a:02x}.\n"));
            }
        } else {
            for d in &qis {
                s.push_str(&format!(".{d:04x}\n"));
            }
        }
        s.truncate(PAGE_SIZE - 1);
        s
    }

    /// vfio_ap's `in_use` callback as the AP bus calls it before giving bits back to the
    /// host: does any mdev hold an APQN in `apm` x `aqm`?
    fn in_use(&self, apm: &Mask, aqm: &Mask) -> bool {
        self.vfio_loaded
            && self
                .mdevs
                .values()
                .any(|m| m.apm.intersects(apm) && m.aqm.intersects(aqm))
    }

    /// `vfio_ap_mdev_validate_masks` for mdev `u` with the candidate matrix `m`.
    fn validate(&self, u: &str, m: &MdevState) -> io::Result<()> {
        // ap_apqn_in_matrix_owned_by_def_drv
        if m.apm.intersects(&self.apm) && m.aqm.intersects(&self.aqm) {
            return Err(errno(libc::EADDRNOTAVAIL));
        }
        // vfio_ap_mdev_verify_no_sharing
        let shared = self
            .mdevs
            .iter()
            .filter(|(o, _)| o.as_str() != u)
            .any(|(_, o)| o.apm.intersects(&m.apm) && o.aqm.intersects(&m.aqm));
        if shared {
            return Err(errno(libc::EADDRINUSE));
        }
        Ok(())
    }

    /// The kernel's `store` for the attribute; returns the byte count like a successful write.
    pub(crate) fn store(&mut self, f: &FileId, data: &[u8]) -> io::Result<usize> {
        // kernfs hands at most one page to a sysfs store; an empty write never reaches it.
        let data = &data[..data.len().min(PAGE_SIZE)];
        let count = data.len();
        if count == 0 {
            return Ok(0);
        }
        match f {
            FileId::Uevent(devpath) => {
                // kobject_synth_uevent: an action, optionally followed by a UUID and
                // variables (not modelled); anything else is EINVAL
                let text = String::from_utf8_lossy(mask::c_str(data)).into_owned();
                let action = text.split_whitespace().next().unwrap_or("");
                if !crate::uevent::SYNTH_ACTIONS.contains(&action) {
                    return Err(errno(libc::EINVAL));
                }
                if self.device_env(devpath, true).is_none() {
                    return Err(errno(libc::ENODEV));
                }
                let devpath = devpath.clone();
                self.emit(action, &devpath, true);
                Ok(count)
            }
            FileId::Apmask | FileId::Aqmask => {
                let before: Vec<((u8, u8), Option<Driver>)> = self
                    .queues()
                    .map(|(a, d)| ((a, d), self.queue_driver(a, d)))
                    .collect();
                let r = self.store_mask(f, data);
                // the AP bus rebinds every queue whose owner changed: unbind, then bind
                for ((a, d), old) in before {
                    let new = self.queue_driver(a, d);
                    if new == old {
                        continue;
                    }
                    let path = format!("devices/ap/{}/{}", card_name(a), queue_name(a, d));
                    if old.is_some() {
                        self.emit("unbind", &path, false);
                    }
                    if new.is_some() {
                        self.emit("bind", &path, true);
                    }
                }
                r
            }
            FileId::TypeCreate => {
                let u = parse_uuid(mask::c_str(data)).ok_or_else(|| errno(libc::EINVAL))?;
                if self.mdevs.contains_key(&u) {
                    return Err(errno(libc::EEXIST));
                }
                if self.mdevs.len() >= MAX_INSTANCES {
                    return Err(errno(libc::EUSERS));
                }
                // the injected fault: as an allocation failing in mdev_device_create before
                // device_add, so no device and no uevent
                if let Some(e) = self.fail_create {
                    return Err(errno(e));
                }
                let group = self.free_group();
                self.mdevs.insert(u.clone(), MdevState::default());
                self.groups.insert(u.clone(), group);
                // device_add sends "add" before the driver binds, then "bind"
                let path = format!("devices/vfio_ap/matrix/{u}");
                self.emit("add", &path, false);
                self.emit("bind", &path, true);
                Ok(count)
            }
            FileId::Mdev(u, attr) => self.store_mdev(u, *attr, data).map(|()| count),
            _ => Err(errno(libc::EACCES)),
        }
    }

    fn store_mask(&mut self, f: &FileId, data: &[u8]) -> io::Result<usize> {
        let count = data.len();
        match f {
            FileId::Apmask | FileId::Aqmask => {
                let is_ap = *f == FileId::Apmask;
                let old = if is_ap { self.apm } else { self.aqm };
                let new = Mask::parse_store(data, &old).map_err(|_| errno(libc::EINVAL))?;
                let reserved = new.and_not(&old);
                if !reserved.is_empty() {
                    let busy = if is_ap {
                        self.in_use(&reserved, &self.aqm)
                    } else {
                        self.in_use(&self.apm, &reserved)
                    };
                    if busy {
                        return Err(errno(libc::EBUSY));
                    }
                }
                if is_ap {
                    self.apm = new;
                } else {
                    self.aqm = new;
                }
                Ok(count)
            }
            _ => Err(errno(libc::EACCES)),
        }
    }

    fn store_mdev(&mut self, u: &str, attr: MdevAttr, data: &[u8]) -> io::Result<()> {
        let cur = self
            .mdevs
            .get(u)
            .ok_or_else(|| errno(libc::ENODEV))?
            .clone();
        let num = || kstrtoul(data).map_err(|e| errno(e.errno()));
        let max_ap = u64::from(self.max_apid);
        let max_dom = u64::from(self.max_apqi);
        let mut m = cur.clone();
        match attr {
            MdevAttr::Remove => {
                if num()? != 0 {
                    // device_del: the driver unbinds ("unbind"), then "remove"
                    let path = format!("devices/vfio_ap/matrix/{u}");
                    self.emit("unbind", &path, false);
                    self.emit("remove", &path, false);
                    self.mdevs.remove(u);
                    self.groups.remove(u);
                }
                return Ok(());
            }
            MdevAttr::AssignAdapter | MdevAttr::AssignDomain => {
                let v = num()?;
                let (max, bits) = if attr == MdevAttr::AssignAdapter {
                    (max_ap, &mut m.apm)
                } else {
                    (max_dom, &mut m.aqm)
                };
                if v > max {
                    return Err(errno(libc::ENODEV));
                }
                if bits.get(v as usize) {
                    return Ok(());
                }
                bits.set(v as usize, true);
                self.validate(u, &m)?;
            }
            MdevAttr::AssignControlDomain => {
                let v = num()?;
                if v > max_dom {
                    return Err(errno(libc::ENODEV));
                }
                m.adm.set(v as usize, true);
            }
            MdevAttr::UnassignAdapter
            | MdevAttr::UnassignDomain
            | MdevAttr::UnassignControlDomain => {
                let v = num()?;
                let (max, bits) = match attr {
                    MdevAttr::UnassignAdapter => (max_ap, &mut m.apm),
                    MdevAttr::UnassignDomain => (max_dom, &mut m.aqm),
                    _ => (max_dom, &mut m.adm),
                };
                if v > max {
                    return Err(errno(libc::ENODEV));
                }
                bits.set(v as usize, false);
            }
            MdevAttr::ApConfig => {
                // ap_config_store: three hex masks split by strsep(",\n"), then
                // validate_ap_matrix (ownership, sharing, then ids above the maxima).
                let text = mask::c_str(data);
                let mut parts = text.split(|&c| c == b',' || c == b'\n');
                let mut next = || -> io::Result<Mask> {
                    let p = parts.next().ok_or_else(|| errno(libc::EINVAL))?;
                    Mask::parse_hex(p).map_err(|_| errno(libc::EINVAL))
                };
                m.apm = next()?;
                m.aqm = next()?;
                m.adm = next()?;
                self.validate(u, &m)?;
                let over = |mk: &Mask, max: u64| mk.iter().any(|b| b as u64 > max);
                if over(&m.apm, max_ap) || over(&m.aqm, max_dom) || over(&m.adm, max_dom) {
                    return Err(errno(libc::ENODEV));
                }
            }
            MdevAttr::Matrix | MdevAttr::GuestMatrix | MdevAttr::ControlDomains => {
                return Err(errno(libc::EACCES));
            }
        }
        self.mdevs.insert(u.to_string(), m);
        Ok(())
    }
}

/// Split a user path into components, dropping a leading `/sys` (or `sys`): the simulator's
/// root is the sysfs root.
fn split(path: &str) -> Vec<String> {
    let mut v: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    if v.first().map(String::as_str) == Some("sys") {
        v.remove(0);
    }
    v
}

/// The simulated host. Cheap to share (`Arc<Sim>`); every method locks the one state mutex, so
/// each sysfs read or write is atomic, as the kernel's are.
#[derive(Debug)]
pub struct Sim {
    state: Mutex<State>,
}

impl Sim {
    /// Build a host from a configuration.
    pub fn new(cfg: &HostConfig) -> Result<Sim, ConfigError> {
        Ok(Sim {
            state: Mutex::new(State::new(cfg)?),
        })
    }

    /// Build a host from the JSON of [`HostConfig`].
    pub fn from_json(json: &str) -> Result<Sim, ConfigError> {
        Sim::new(&serde_json::from_str(json)?)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another test thread must not hide this host's state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Read an attribute (`path` like `/sys/bus/ap/apmask` or `bus/ap/apmask`). Errors carry
    /// the errno a real read would get: ENOENT, ENOTDIR, EISDIR, EACCES for write-only files.
    pub fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        let st = self.lock();
        match st.resolve(path, true)? {
            (_, Ent::File(f, mode)) => {
                if mode & 0o444 == 0 {
                    return Err(errno(libc::EACCES));
                }
                st.show(&f)
            }
            (_, Ent::Dir) => Err(errno(libc::EISDIR)),
            (_, Ent::Link(_)) => Err(errno(libc::ELOOP)),
        }
    }

    /// [`Sim::read`] as UTF-8 text.
    pub fn read_string(&self, path: &str) -> io::Result<String> {
        self.read(path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Write `data` to an attribute in one `write(2)`, with the kernel's result: the byte
    /// count, or EINVAL, EBUSY, ENODEV, EADDRNOTAVAIL, EADDRINUSE, EEXIST, ERANGE...; EACCES for
    /// read-only files; ENOENT for paths that do not exist (sysfs has no file creation).
    pub fn write(&self, path: &str, data: &[u8]) -> io::Result<usize> {
        self.write_with_uevents(path, data).0
    }

    /// [`Sim::write`], and the device events the store caused (what udev would broadcast:
    /// `add`/`bind` of a created mdev, `unbind`/`remove` of a removed one, `unbind`/`bind`
    /// of queues the masks rebound, the action written to a `uevent` file).
    pub fn write_with_uevents(&self, path: &str, data: &[u8]) -> (io::Result<usize>, Vec<Uevent>) {
        let mut st = self.lock();
        let r = match st.resolve(path, true) {
            Err(e) => Err(e),
            Ok((_, Ent::File(f, mode))) => {
                if mode & 0o222 == 0 {
                    Err(errno(libc::EACCES))
                } else {
                    st.store(&f, data)
                }
            }
            Ok((_, Ent::Dir)) => Err(errno(libc::EISDIR)),
            Ok((_, Ent::Link(_))) => Err(errno(libc::ELOOP)),
        };
        (r, st.take_uevents())
    }

    /// The IOMMU group number of an active mdev.
    pub fn iommu_group(&self, uuid: &str) -> Option<u32> {
        self.lock().groups.get(&uuid.to_ascii_lowercase()).copied()
    }

    /// List a directory (following symlinks to it), sorted by name.
    pub fn readdir(&self, path: &str) -> io::Result<Vec<DirEntry>> {
        let st = self.lock();
        let (comps, ent) = st.resolve(path, true)?;
        if ent != Ent::Dir {
            return Err(errno(libc::ENOTDIR));
        }
        let refs: Vec<&str> = comps.iter().map(String::as_str).collect();
        let mut v: Vec<DirEntry> = st
            .children(&refs)
            .ok_or_else(|| errno(libc::ENOTDIR))?
            .into_iter()
            .map(|(name, e)| DirEntry {
                name,
                kind: kind_of(&e),
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    /// The target of a symlink (EINVAL when `path` is not one).
    pub fn readlink(&self, path: &str) -> io::Result<String> {
        match self.lock().resolve(path, false)? {
            (_, Ent::Link(t)) => Ok(t),
            _ => Err(errno(libc::EINVAL)),
        }
    }

    /// The symlink-free path of `path` below the sysfs root, like `realpath` (no leading `/`).
    pub fn canonicalize(&self, path: &str) -> io::Result<String> {
        self.lock().resolve(path, true).map(|(c, _)| c.join("/"))
    }

    /// Kind and mode of `path`, following symlinks.
    pub fn stat(&self, path: &str) -> io::Result<Stat> {
        self.lock().resolve(path, true).map(|(_, e)| stat_of(&e))
    }

    /// Kind and mode of `path`, not following a final symlink.
    pub fn lstat(&self, path: &str) -> io::Result<Stat> {
        self.lock().resolve(path, false).map(|(_, e)| stat_of(&e))
    }

    /// Whether `path` exists (following symlinks).
    pub fn exists(&self, path: &str) -> bool {
        self.stat(path).is_ok()
    }

    // ---- typed view, for assertions and for simulating what sysfs cannot do ----

    /// The current apmask.
    pub fn apmask(&self) -> Mask {
        self.lock().apm
    }

    /// The current aqmask.
    pub fn aqmask(&self) -> Mask {
        self.lock().aqm
    }

    /// UUIDs of the existing mdevs, sorted.
    pub fn mdevs(&self) -> Vec<String> {
        self.lock().mdevs.keys().cloned().collect()
    }

    /// One mdev's state.
    pub fn mdev(&self, uuid: &str) -> Option<MdevState> {
        self.lock().mdevs.get(&uuid.to_ascii_lowercase()).cloned()
    }

    /// The driver queue `a.d` is bound to now (None: unbound or no such queue).
    pub fn queue_driver(&self, a: u8, d: u8) -> Option<Driver> {
        self.lock().queue_driver(a, d)
    }

    /// Whether queue `a.d` exists.
    pub fn has_queue(&self, a: u8, d: u8) -> bool {
        self.lock().has_queue(a, d)
    }

    /// Load or unload module vfio_ap. Unloading fails with EBUSY while mdevs exist (the mdev
    /// parent cannot go away under its children).
    pub fn set_vfio_ap_loaded(&self, loaded: bool) -> io::Result<()> {
        let mut st = self.lock();
        if !loaded && !st.mdevs.is_empty() {
            return Err(errno(libc::EBUSY));
        }
        st.vfio_loaded = loaded;
        Ok(())
    }

    /// Whether vfio_ap is loaded.
    pub fn vfio_ap_loaded(&self) -> bool {
        self.lock().vfio_loaded
    }

    /// Fault injection for tests: from now on every mdev `create` fails with `errno` (None:
    /// creates work again). See [`HostConfig::fail_mdev_create`].
    pub fn set_fail_mdev_create(&self, errno: Option<i32>) {
        self.lock().fail_create = errno;
    }

    /// Attach (or detach) a guest to mdev `uuid`: its passed-through queues show "in use".
    /// ENODEV when there is no such mdev.
    pub fn set_guest(&self, uuid: &str, attached: bool) -> io::Result<()> {
        let mut st = self.lock();
        let m = st
            .mdevs
            .get_mut(&uuid.to_ascii_lowercase())
            .ok_or_else(|| errno(libc::ENODEV))?;
        m.guest = attached;
        Ok(())
    }
}

fn kind_of(e: &Ent) -> Kind {
    match e {
        Ent::Dir => Kind::Dir,
        Ent::File(..) => Kind::File,
        Ent::Link(_) => Kind::Symlink,
    }
}

pub(crate) fn stat_of(e: &Ent) -> Stat {
    match e {
        Ent::Dir => Stat {
            kind: Kind::Dir,
            mode: 0o755,
        },
        Ent::File(_, m) => Stat {
            kind: Kind::File,
            mode: *m,
        },
        Ent::Link(_) => Stat {
            kind: Kind::Symlink,
            mode: 0o777,
        },
    }
}

/// Whether `s` is a lower-case UUID, the form mdev directories are named by.
pub fn is_mdev_name(s: &str) -> bool {
    is_uuid_name(s)
}
