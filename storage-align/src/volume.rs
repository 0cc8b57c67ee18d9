//! `vol-create`: a right-aligned partition created as a volume of a libvirt disk pool.
//!
//! The pool's device and format come from libvirt (its XML, read by [`crate::pool`]); the
//! partition is planned and created as `create` does ([`crate::placement`]); then the pool is
//! refreshed so that libvirt lists the new volume, which is read back. Everything that can be
//! refused (pool type or state, label, name, an existing volume) is checked before the disk
//! changes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::boundary::{self, Label};
use crate::parted::{PartedError, Partition};
use crate::placement::{self, Options, PlaceError, Placement};
use crate::pool::{self, PoolError};
use crate::root::Root;

/// What to create, and where.
#[derive(Debug, Clone, Copy)]
pub struct VolCreate<'a> {
    /// libvirt connection URI.
    pub uri: &'a str,
    pub pool: &'a str,
    /// The name the caller expects; refused unless it is the one libvirt will give.
    pub name: Option<&'a str>,
    pub dry_run: bool,
}

/// The volume, planned (`--dry-run`) or created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Volume {
    Planned {
        name: String,
        command: String,
    },
    Created {
        name: String,
        path: String,
        capacity: u64,
        partition: Partition,
    },
}

/// The outcome of [`vol_create`], for printing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolReport {
    pub pool: String,
    pub device: PathBuf,
    pub placement: Placement,
    pub volume: Volume,
    /// Things worth telling that did not stop the command.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum VolError {
    #[error("cannot connect to libvirt at {uri}")]
    Connect {
        uri: String,
        #[source]
        source: virt::error::Error,
    },
    #[error("no storage pool named {pool:?} at {uri}")]
    NoPool {
        pool: String,
        uri: String,
        #[source]
        source: virt::error::Error,
    },
    #[error("cannot {what} pool {pool} at {uri}")]
    PoolCall {
        what: &'static str,
        pool: String,
        uri: String,
        #[source]
        source: virt::error::Error,
    },
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("pool {pool} at {uri} is inactive: start it first (virsh -c {uri} pool-start {pool})")]
    Inactive { pool: String, uri: String },
    #[error("pool {pool}: device {}", device.display())]
    Device {
        pool: String,
        device: PathBuf,
        #[source]
        source: Box<PlaceError>,
    },
    #[error("pool {pool}: format {format:?}")]
    Format {
        pool: String,
        format: String,
        #[source]
        source: boundary::Error,
    },
    #[error("pool {pool} is defined with format {format} but {} has a {label} label", device.display())]
    LabelMismatch {
        pool: String,
        format: String,
        device: PathBuf,
        label: Label,
    },
    #[error(
        "libvirt will name this volume {expected} (partition {number} of {}): a disk pool's volumes are named after their partitions; use --name {expected} or leave --name out",
        device.display()
    )]
    WrongName {
        expected: String,
        number: u32,
        device: PathBuf,
    },
    #[error(
        "pool {pool} already has a volume {name}: refresh the pool (virsh pool-refresh {pool})"
    )]
    VolumeExists { pool: String, name: String },
    #[error(transparent)]
    Parted(#[from] PartedError),
    #[error(
        "created partition {} ({}-{}) on {} but refreshing pool {pool} failed",
        partition.number, partition.start, partition.end, device.display()
    )]
    Refresh {
        partition: Partition,
        device: PathBuf,
        pool: String,
        #[source]
        source: virt::error::Error,
    },
    #[error(
        "created partition {number} on {} but pool {pool} lists no volume {name} after a refresh",
        device.display()
    )]
    NotListed {
        number: u32,
        device: PathBuf,
        pool: String,
        name: String,
        #[source]
        source: virt::error::Error,
    },
    #[error("volume {name}: {what}")]
    VolumeCall {
        name: String,
        what: &'static str,
        #[source]
        source: virt::error::Error,
    },
}

/// A libvirt connection closed explicitly: virt's `Connect` panics in `Drop` when
/// `virConnectClose` fails (e.g. the daemon went away, doc/packaging.md "Crates"), which would
/// abort a command that has already changed the disk. Here a failed close is only a warning.
struct Conn {
    c: std::mem::ManuallyDrop<virt::connect::Connect>,
    uri: String,
}

impl Conn {
    fn open(uri: &str) -> Result<Conn, VolError> {
        // libvirt prints every error to stderr by default; ours are printed once, with context
        virt::error::clear_error_callback();
        let c = virt::connect::Connect::open(Some(uri)).map_err(|source| VolError::Connect {
            uri: uri.to_string(),
            source,
        })?;
        Ok(Conn {
            c: std::mem::ManuallyDrop::new(c),
            uri: uri.to_string(),
        })
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // SAFETY: the pointer is the live connection owned by `self.c`, which is never used
        // or dropped after this (ManuallyDrop); pools and volumes hold their own references.
        let r = unsafe { virt::sys::virConnectClose(self.c.as_ptr()) };
        if r < 0 {
            eprintln!(
                "storage-align: warning: closing the connection to {} failed",
                self.uri
            );
        }
    }
}

/// Plans, and unless `req.dry_run` creates, a partition of `opts.capacity` bytes as a new
/// volume of the disk pool `req.pool`.
pub fn vol_create(root: &Root, req: &VolCreate, opts: &Options) -> Result<VolReport, VolError> {
    let (uri, pool_name) = (req.uri, req.pool);
    let call = |what: &'static str| {
        move |source| VolError::PoolCall {
            what,
            pool: pool_name.to_string(),
            uri: uri.to_string(),
            source,
        }
    };
    let conn = Conn::open(uri)?;
    let pool = conn
        .c
        .lookup_storage_pool_by_name(pool_name)
        .map_err(|source| VolError::NoPool {
            pool: pool_name.to_string(),
            uri: uri.to_string(),
            source,
        })?;
    let xml = pool.xml_desc(0).map_err(call("read the definition of"))?;
    let dp = pool::parse_pool_xml(pool_name, &xml)?;
    if !pool.is_active().map_err(call("query"))? {
        return Err(VolError::Inactive {
            pool: pool_name.to_string(),
            uri: uri.to_string(),
        });
    }
    let device = dp.device.clone();
    let (disk, placed) =
        placement::on_disk(root, &device, opts).map_err(|source| VolError::Device {
            pool: pool_name.to_string(),
            device: device.clone(),
            source: Box::new(source),
        })?;
    if let Some(f) = &dp.format {
        let want = Label::parse(f).map_err(|source| VolError::Format {
            pool: pool_name.to_string(),
            format: f.clone(),
            source,
        })?;
        if want != disk.label {
            return Err(VolError::LabelMismatch {
                pool: pool_name.to_string(),
                format: f.clone(),
                device,
                label: disk.label,
            });
        }
    }
    let number = pool::next_number(&disk, placed.request.part_type, placed.plan.start);
    let name = pool::volume_name(&device, number);
    if req.name.is_some_and(|n| n != name) {
        return Err(VolError::WrongName {
            expected: name,
            number,
            device,
        });
    }
    if pool.lookup_storage_vol_by_name(&name).is_ok() {
        return Err(VolError::VolumeExists {
            pool: pool_name.to_string(),
            name,
        });
    }
    let mut report = VolReport {
        pool: pool_name.to_string(),
        device: device.clone(),
        placement: placed,
        volume: Volume::Planned {
            name: name.clone(),
            command: String::new(),
        },
        warnings: Vec::new(),
    };
    if req.dry_run {
        report.volume = Volume::Planned {
            name,
            command: placement::mkpart_command(&device, &disk, &report.placement),
        };
        return Ok(report);
    }
    let part = placement::create(&device, &disk, &report.placement)?;
    let name = if part.number == number {
        name
    } else {
        // parted numbered it otherwise than predicted: report the volume libvirt really lists
        let actual = pool::volume_name(&device, part.number);
        report.warnings.push(format!(
            "parted numbered the new partition {} (expected {number}): the volume is {actual}",
            part.number
        ));
        actual
    };
    wait_for_node(&pool::partition_path(&device, part.number));
    pool.refresh(0).map_err(|source| VolError::Refresh {
        partition: part,
        device: device.clone(),
        pool: pool_name.to_string(),
        source,
    })?;
    let vol = pool
        .lookup_storage_vol_by_name(&name)
        .map_err(|source| VolError::NotListed {
            number: part.number,
            device: device.clone(),
            pool: pool_name.to_string(),
            name: name.clone(),
            source,
        })?;
    let volume_call = |what: &'static str| {
        let name = name.clone();
        move |source| VolError::VolumeCall { name, what, source }
    };
    let path = vol.path().map_err(volume_call("no path"))?;
    let info = vol
        .info()
        .map_err(volume_call("cannot read its capacity"))?;
    report.volume = Volume::Created {
        name,
        path,
        capacity: info.capacity,
        partition: part,
    };
    Ok(report)
}

/// libvirt's refresh opens every partition node: wait (up to 5 s) for the kernel
/// (devtmpfs/udev) to create the new one, as libvirt waits for udev after its own mkpart.
fn wait_for_node(node: &Path) {
    for _ in 0..100 {
        if node.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
