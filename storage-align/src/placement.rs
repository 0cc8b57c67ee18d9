//! From a disk to a planned (and, on request, created) partition: the engine behind `plan`,
//! `create` and `vol-create`.
//!
//! A disk is either read with parted ([`on_disk`]: label, geometry, sector size, free space,
//! and the partition type chosen as libvirt chooses it) or described by the caller
//! ([`described`]). Either way the request goes to [`boundary::plan`]; [`create`] then runs
//! libvirt's `parted mkpart` command line and verifies the result in the table.

use std::path::{Path, PathBuf};

use crate::boundary::{
    self, Extent, LIBVIRT_SECTOR_SIZE, Label, MIB, Mode, PartType, Plan, Request, StartAlign,
};
use crate::geometry::Geometry;
use crate::limits::{self, LimitsError};
use crate::parted::{self, Disk, PartedError, Partition};
use crate::root::Root;

/// parted's geometry for an image file (4 heads × 32 sectors × 512 bytes): the cylinder size
/// given to labels that do not align, since libvirt's arithmetic still divides by one.
pub const IMAGE_CYLINDER: u64 = 4 * 32 * 512;

/// Where the start of the partition is aligned (`--align-start`; exact mode only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartGrain {
    Cylinder,
    OneMiB,
    /// The device's optimal I/O size and alignment offset ([`limits::optimal_start`]).
    Optimal,
}

/// What is asked for, whatever the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub capacity: u64,
    pub mode: Mode,
    /// None: chosen like libvirt on a disk, primary on a described one.
    pub part_type: Option<PartType>,
    pub align_start: Option<StartGrain>,
}

/// A disk given on the command line instead of read from a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    pub label: Label,
    pub cylinder_size: Option<u64>,
    pub geometry: Option<Geometry>,
    pub free: Vec<Extent>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error(transparent)]
    Parted(#[from] PartedError),
    #[error(transparent)]
    Plan(#[from] boundary::Error),
    #[error(transparent)]
    Limits(#[from] LimitsError),
    #[error("{}: extended partition already exists", .0.display())]
    ExtendedExists(PathBuf),
    #[error("{}: no extended partition found and no primary partition available", .0.display())]
    NoPrimarySlot(PathBuf),
    #[error("a dos label needs --cylinder-size or --geometry")]
    NoGeometry,
    #[error("--geometry {0}: the cylinder size does not fit in 64 bits")]
    GeometryTooLarge(Geometry),
    #[error("give at least one --free START-END extent (or a DEVICE to read)")]
    NoFreeExtent,
    #[error("cannot place {capacity} bytes on {}", device.display())]
    OnDevice {
        device: PathBuf,
        capacity: u64,
        #[source]
        source: Box<PlaceError>,
    },
}

/// A computed partition and what it was computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub request: Request,
    pub extents: Vec<Extent>,
    pub plan: Plan,
}

impl Placement {
    /// The free extent the partition goes into.
    pub fn extent(&self) -> &Extent {
        &self.extents[self.plan.extent]
    }

    /// Bytes beyond the requested capacity (negative: short, libvirt's logical defect).
    pub fn slack(&self) -> i128 {
        self.plan.size() as i128 - self.request.capacity as i128
    }
}

fn place(
    request: Request,
    extents: Vec<Extent>,
    grain: Option<StartGrain>,
    root: &Root,
    device: Option<&Path>,
) -> Result<Placement, PlaceError> {
    let start_align = match grain {
        None => None,
        Some(StartGrain::Cylinder) => Some(StartAlign {
            grain: request.cylinder_size,
            offset: 0,
        }),
        Some(StartGrain::OneMiB) => Some(StartAlign {
            grain: MIB,
            offset: 0,
        }),
        Some(StartGrain::Optimal) => Some(limits::optimal_start(root, device)?),
    };
    let request = Request {
        start_align,
        ..request
    };
    let plan = boundary::plan(&request, &extents)?;
    Ok(Placement {
        request,
        extents,
        plan,
    })
}

/// The partition type libvirt creates (`virStorageBackendDiskPartTypeToCreate`, with the
/// extended-partition check of `virStorageBackendDiskPartFormat`).
pub fn part_type_for(disk: &Disk, asked: Option<PartType>) -> Result<PartType, PlaceError> {
    Ok(match asked {
        Some(PartType::Extended) if disk.extended().is_some() => {
            return Err(PlaceError::ExtendedExists(disk.path.clone()));
        }
        Some(t) => t,
        None if disk.label == Label::Dos && disk.primary_count() >= 4 => {
            if disk.extended().is_none() {
                return Err(PlaceError::NoPrimarySlot(disk.path.clone()));
            }
            PartType::Logical
        }
        None => PartType::Primary,
    })
}

/// Reads `device` with parted and plans the partition on its free space.
pub fn on_disk(
    root: &Root,
    device: &Path,
    opts: &Options,
) -> Result<(Disk, Placement), PlaceError> {
    let disk = parted::read_disk(device)?;
    let part_type = part_type_for(&disk, opts.part_type)?;
    // libvirt: heads × sectors × 512 whatever the sector size; exact: the real sector size
    let sector = match opts.mode {
        Mode::Libvirt => LIBVIRT_SECTOR_SIZE,
        Mode::Exact => disk.logical_sector_size,
    };
    let request = Request {
        label: disk.label,
        mode: opts.mode,
        cylinder_size: disk.heads * disk.sectors * sector,
        sector_size: sector,
        capacity: opts.capacity,
        part_type,
        start_align: None,
    };
    let placed = place(
        request,
        disk.free.clone(),
        opts.align_start,
        root,
        Some(device),
    )
    .map_err(|e| PlaceError::OnDevice {
        device: device.to_owned(),
        capacity: opts.capacity,
        source: Box::new(e),
    })?;
    Ok((disk, placed))
}

/// Plans the partition on a disk described by label, geometry and free extents.
pub fn described(root: &Root, d: &Description, opts: &Options) -> Result<Placement, PlaceError> {
    let sector = d.geometry.map_or(512, |g| g.sector_size);
    let cylinder = match (d.cylinder_size, d.geometry) {
        (Some(c), _) => c,
        (None, Some(g)) => g
            .cylinder_size(opts.mode)
            .ok_or(PlaceError::GeometryTooLarge(g))?,
        (None, None) if d.label == Label::Dos => return Err(PlaceError::NoGeometry),
        (None, None) => IMAGE_CYLINDER,
    };
    if d.free.is_empty() {
        return Err(PlaceError::NoFreeExtent);
    }
    let request = Request {
        label: d.label,
        mode: opts.mode,
        cylinder_size: cylinder,
        sector_size: match opts.mode {
            Mode::Libvirt => LIBVIRT_SECTOR_SIZE,
            Mode::Exact => sector,
        },
        capacity: opts.capacity,
        part_type: opts.part_type.unwrap_or(PartType::Primary),
        start_align: None,
    };
    place(request, d.free.clone(), opts.align_start, root, None)
}

/// The type word of libvirt's `parted mkpart`: primary/logical/extended on dos; on other
/// labels libvirt passes "primary", which parted takes as the partition name.
pub fn parted_kind(disk: &Disk, p: &Placement) -> &'static str {
    if disk.label == Label::Dos {
        p.request.part_type.name()
    } else {
        "primary"
    }
}

/// The parted command line [`create`] runs (shown by `--dry-run`).
pub fn mkpart_command(device: &Path, disk: &Disk, p: &Placement) -> String {
    format!(
        "parted -s {} mkpart {} {}B {}B",
        device.display(),
        parted_kind(disk, p),
        p.plan.start,
        p.plan.end
    )
}

/// Creates the planned partition with parted and returns it as read back from the table.
pub fn create(device: &Path, disk: &Disk, p: &Placement) -> Result<Partition, PartedError> {
    parted::mkpart(
        device,
        parted_kind(disk, p),
        p.plan.start,
        p.plan.end,
        disk.logical_sector_size,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boundary::ExtentKind;

    fn opts(capacity: u64) -> Options {
        Options {
            capacity,
            mode: Mode::Exact,
            part_type: None,
            align_start: None,
        }
    }

    fn desc(label: Label, geometry: Option<&str>) -> Description {
        Description {
            label,
            cylinder_size: None,
            geometry: geometry.map(|g| g.parse().unwrap()),
            free: vec![Extent {
                start: 32256,
                end: 1 << 30,
                kind: ExtentKind::Normal,
            }],
        }
    }

    #[test]
    fn described_disk_with_classic_geometry() {
        let p = described(
            &Root::default(),
            &desc(Label::Dos, Some("255,63")),
            &opts(100 << 20),
        )
        .unwrap();
        assert_eq!(p.plan.start, 32256);
        assert_eq!(p.plan.end, 13 * 8_225_280 - 1);
        assert_eq!(p.request.part_type, PartType::Primary);
        assert!(p.slack() > 0);
    }

    #[test]
    fn described_disk_needs_geometry_on_dos_only() {
        let r = Root::default();
        assert!(matches!(
            described(&r, &desc(Label::Dos, None), &opts(1)),
            Err(PlaceError::NoGeometry)
        ));
        let p = described(&r, &desc(Label::Gpt, None), &opts(1)).unwrap();
        assert_eq!(p.request.cylinder_size, IMAGE_CYLINDER);
        let mut d = desc(Label::Gpt, None);
        d.free.clear();
        assert!(matches!(
            described(&r, &d, &opts(1)),
            Err(PlaceError::NoFreeExtent)
        ));
    }
}
