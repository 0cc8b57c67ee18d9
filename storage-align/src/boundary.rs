//! Where a new partition of a disk pool starts and ends.
//!
//! Two modes share one input ([`Request`] + free [`Extent`]s):
//!
//! * [`Mode::Libvirt`] transcribes `virStorageBackendDiskPartBoundaries`
//!   (libvirt `src/storage/storage_backend_disk.c`) operation for operation, with `u64`
//!   wrap-around where C's `unsigned long long` wraps. Its defects are kept on purpose so that
//!   the result equals what `virsh vol-create-as` would create (doc/storage.md, "defects"):
//!   a whole cylinder wasted when the capacity is a multiple of the cylinder size, an extent
//!   exactly large enough rejected (`size > needed`), logical partitions up to 512 bytes short,
//!   512 hard-coded as the sector size, and a free extent starting at byte 0 moved to 512.
//! * [`Mode::Exact`] (the default) computes the smallest cylinder-aligned end that holds at
//!   least the capacity, `e = ceil((s + c) / l) * l - 1`, accepts extents that are exactly big
//!   enough, never makes a logical partition short, uses the device's logical sector size and
//!   can align the start as well. Like libvirt it picks the smallest extent that fits.
//!
//! All arithmetic is checked: bad input (zero geometry or capacity, unsorted or overlapping
//! extents, sizes that overflow `u64`) is an [`Error`], never a panic or a division by zero.

use std::fmt;

/// libvirt's `SECTOR_SIZE`: the sector size its disk backend assumes for every disk.
pub const LIBVIRT_SECTOR_SIZE: u64 = 512;

/// One mebibyte, parted's default start alignment grain.
pub const MIB: u64 = 1024 * 1024;

/// The disk label (`<source><format type=...>` of a libvirt disk pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// MSDOS/MBR: the only label libvirt aligns to cylinders.
    Dos,
    Gpt,
    Dvh,
    Mac,
    Bsd,
    Pc98,
    Sun,
    Lvm2,
}

impl Label {
    /// Every label, in libvirt's `virStoragePoolFormatDisk` order (minus `unknown`).
    pub const ALL: [Label; 8] = [
        Label::Dos,
        Label::Dvh,
        Label::Gpt,
        Label::Mac,
        Label::Bsd,
        Label::Pc98,
        Label::Sun,
        Label::Lvm2,
    ];

    /// libvirt's name for the label (`dos`, not parted's `msdos`).
    pub fn name(self) -> &'static str {
        match self {
            Label::Dos => "dos",
            Label::Gpt => "gpt",
            Label::Dvh => "dvh",
            Label::Mac => "mac",
            Label::Bsd => "bsd",
            Label::Pc98 => "pc98",
            Label::Sun => "sun",
            Label::Lvm2 => "lvm2",
        }
    }

    /// Accepts libvirt's names and parted's (`msdos`, `loop` is not a partition table).
    pub fn parse(s: &str) -> Result<Label, Error> {
        match s {
            "dos" | "msdos" => Ok(Label::Dos),
            "gpt" => Ok(Label::Gpt),
            "dvh" => Ok(Label::Dvh),
            "mac" => Ok(Label::Mac),
            "bsd" => Ok(Label::Bsd),
            "pc98" => Ok(Label::Pc98),
            "sun" => Ok(Label::Sun),
            "lvm2" => Ok(Label::Lvm2),
            other => Err(Error::UnknownLabel(other.to_string())),
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which computation to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Bit-identical to libvirt, defects included.
    Libvirt,
    /// Smallest aligned partition that holds the capacity.
    #[default]
    Exact,
}

/// The partition type (only meaningful on `dos` labels; every other label has primaries only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PartType {
    Primary,
    Logical,
    Extended,
}

impl PartType {
    pub fn name(self) -> &'static str {
        match self {
            PartType::Primary => "primary",
            PartType::Logical => "logical",
            PartType::Extended => "extended",
        }
    }
}

/// Whether a free extent lies inside the extended partition (libvirt's
/// `VIR_STORAGE_FREE_LOGICAL`) or not (`VIR_STORAGE_FREE_NORMAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtentKind {
    Normal,
    Logical,
}

/// A free extent in bytes: `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Extent {
    pub start: u64,
    pub end: u64,
    pub kind: ExtentKind,
}

impl Extent {
    pub fn size(&self) -> u64 {
        self.end - self.start
    }
}

/// How the start of a partition is aligned in [`Mode::Exact`]: `start ≡ offset (mod grain)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StartAlign {
    pub grain: u64,
    pub offset: u64,
}

/// Everything the computation needs besides the free extents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub label: Label,
    pub mode: Mode,
    /// Bytes per cylinder (`heads × sectors × sector size`); used on `dos` labels.
    pub cylinder_size: u64,
    /// The device's logical sector size ([`Mode::Libvirt`] always uses 512).
    pub sector_size: u64,
    /// Requested capacity in bytes.
    pub capacity: u64,
    pub part_type: PartType,
    /// Start alignment ([`Mode::Exact`] only); `None` starts where the free space begins.
    pub start_align: Option<StartAlign>,
}

/// The computed partition: `start` and `end` are both inclusive byte offsets, as libvirt
/// passes them to `parted mkpart ... <start>B <end>B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    pub start: u64,
    pub end: u64,
    /// Index into the extents given to [`plan`].
    pub extent: usize,
}

impl Plan {
    /// Bytes in the partition.
    pub fn size(&self) -> u64 {
        self.end - self.start + 1
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("unknown disk label {0:?} (use dos, gpt, dvh, mac, bsd, pc98, sun or lvm2)")]
    UnknownLabel(String),
    #[error("capacity {0} is too large: libvirt's arithmetic would wrap around 64 bits")]
    WrapsAround(u64),
    #[error("capacity must be greater than zero")]
    ZeroCapacity,
    #[error(
        "cylinder size is zero (geometry with zero heads or sectors); libvirt would divide by zero"
    )]
    ZeroCylinder,
    #[error("sector size {0} is not a power of two of at least 512 bytes")]
    BadSectorSize(u64),
    #[error("cylinder size {cylinder} is not a multiple of the sector size {sector}")]
    CylinderNotSectorMultiple { cylinder: u64, sector: u64 },
    #[error(
        "start alignment grain must be a non-zero multiple of the sector size {sector}, got {grain}"
    )]
    BadStartAlign { grain: u64, sector: u64 },
    #[error(
        "start alignment is not available in libvirt mode (libvirt starts where the free space begins)"
    )]
    StartAlignInLibvirtMode,
    #[error("free extent {index} ({start}-{end}) is empty or reversed")]
    EmptyExtent { index: usize, start: u64, end: u64 },
    #[error(
        "free extents {index} and {next} are unsorted or overlap ({start}-{end} then {next_start}-{next_end})"
    )]
    UnsortedExtents {
        index: usize,
        next: usize,
        start: u64,
        end: u64,
        next_start: u64,
        next_end: u64,
    },
    #[error("logical and extended partitions exist only on dos labels, not on {0}")]
    TypeNeedsDos(Label),
    #[error("no large enough free extent for {capacity} bytes ({kind} space)")]
    NoSpace { capacity: u64, kind: &'static str },
}

fn check_extents(extents: &[Extent]) -> Result<(), Error> {
    for (i, e) in extents.iter().enumerate() {
        if e.start >= e.end {
            return Err(Error::EmptyExtent {
                index: i,
                start: e.start,
                end: e.end,
            });
        }
    }
    for (i, w) in extents.windows(2).enumerate() {
        if w[0].end > w[1].start {
            return Err(Error::UnsortedExtents {
                index: i,
                next: i + 1,
                start: w[0].start,
                end: w[0].end,
                next_start: w[1].start,
                next_end: w[1].end,
            });
        }
    }
    Ok(())
}

/// Computes the new partition's boundaries in `req.mode`.
pub fn plan(req: &Request, extents: &[Extent]) -> Result<Plan, Error> {
    if req.capacity == 0 {
        return Err(Error::ZeroCapacity);
    }
    if req.label != Label::Dos && req.part_type != PartType::Primary {
        return Err(Error::TypeNeedsDos(req.label));
    }
    check_extents(extents)?;
    match req.mode {
        Mode::Libvirt => plan_libvirt(req, extents),
        Mode::Exact => plan_exact(req, extents),
    }
}

/// `virStorageBackendDiskPartBoundaries`, transcribed. Comments quote what the C code does.
fn plan_libvirt(req: &Request, extents: &[Extent]) -> Result<Plan, Error> {
    if req.start_align.is_some() {
        return Err(Error::StartAlignInLibvirtMode);
    }
    // extraBytes = cylinderSize - (allocation % cylinderSize): computed for every label,
    // so a zero geometry divides by zero even on gpt.
    let cyl = req.cylinder_size;
    if cyl == 0 {
        return Err(Error::ZeroCylinder);
    }
    // C wraps silently and libvirt would hand parted a nonsense range; refuse instead.
    if cyl
        .checked_mul(2)
        .and_then(|x| x.checked_add(req.capacity))
        .is_none()
    {
        return Err(Error::WrapsAround(req.capacity));
    }
    let dos = req.label == Label::Dos;
    // virStorageBackendDiskPartTypeToCreate never answers "extended": an extended partition
    // is placed like a primary one.
    let logical = req.part_type == PartType::Logical;
    let allocation = req.capacity;
    let extra = cyl - allocation % cyl;
    let mut smallest: Option<usize> = None;
    let mut smallest_size: u64 = 0;
    let mut aligned_allocation = allocation;
    for (i, ext) in extents.iter().enumerate() {
        // virStorageBackendDiskMakeFreeExtent: "first block reported as free, even if it is not"
        let start = if ext.start == 0 {
            LIBVIRT_SECTOR_SIZE
        } else {
            ext.start
        };
        let mut size = ext.end.wrapping_sub(start);
        let mut needed = allocation;
        if dos {
            needed = needed.wrapping_add(extra);
            // strictly greater: an offset equal to the slack gets no extra cylinder
            if start % cyl > extra {
                needed = needed.wrapping_add(cyl);
            }
            // the logical partition's +512 shift is taken off the extent, not added to needed
            if logical {
                size = size.wrapping_sub(LIBVIRT_SECTOR_SIZE);
            }
        }
        // strict comparison: an exactly large enough extent is rejected
        if size > needed && (smallest_size == 0 || size < smallest_size) {
            let wanted = if logical {
                ExtentKind::Logical
            } else {
                ExtentKind::Normal
            };
            if ext.kind != wanted {
                continue;
            }
            smallest_size = size;
            smallest = Some(i);
            aligned_allocation = needed;
        }
    }
    let i = smallest.ok_or(Error::NoSpace {
        capacity: req.capacity,
        kind: if logical { "logical" } else { "primary" },
    })?;
    let mut start = if extents[i].start == 0 {
        LIBVIRT_SECTOR_SIZE
    } else {
        extents[i].start
    };
    if logical {
        start = start.wrapping_add(LIBVIRT_SECTOR_SIZE);
    }
    let mut end = start.wrapping_add(aligned_allocation);
    if dos {
        end = end.wrapping_sub(start % cyl);
    }
    end = end.wrapping_sub(1);
    Ok(Plan {
        start,
        end,
        extent: i,
    })
}

fn round_up(x: u64, grain: u64) -> Option<u64> {
    x.checked_add(grain - 1).map(|v| v / grain * grain)
}

/// Rounds `x` up to the next value `≡ offset (mod grain)`.
fn align_up(x: u64, a: StartAlign) -> Option<u64> {
    let off = a.offset % a.grain;
    if x <= off {
        return Some(off);
    }
    round_up(x - off, a.grain).and_then(|v| v.checked_add(off))
}

/// Where a partition placed in `ext` would start and end (inclusive), or `None` if it does
/// not fit. Shared by [`plan_exact`] and the tests' reference.
fn place_exact(req: &Request, ext: &Extent) -> Option<(u64, u64)> {
    let sector = req.sector_size;
    // The first sector holds the label (MBR / protective MBR): never part of a partition.
    let mut start = ext.start.max(sector);
    if req.part_type == PartType::Logical {
        // the EBR of a logical partition occupies the sector before it
        start = start.checked_add(sector)?;
    }
    start = round_up(start, sector)?;
    if let Some(a) = req.start_align {
        start = align_up(start, a)?;
    }
    let end_excl = if req.label == Label::Dos {
        round_up(start.checked_add(req.capacity)?, req.cylinder_size)?
    } else {
        start.checked_add(round_up(req.capacity, sector)?)?
    };
    if end_excl <= ext.end {
        Some((start, end_excl - 1))
    } else {
        None
    }
}

fn plan_exact(req: &Request, extents: &[Extent]) -> Result<Plan, Error> {
    let sector = req.sector_size;
    if sector < 512 || !sector.is_power_of_two() {
        return Err(Error::BadSectorSize(sector));
    }
    if req.label == Label::Dos {
        if req.cylinder_size == 0 {
            return Err(Error::ZeroCylinder);
        }
        if req.cylinder_size % sector != 0 {
            return Err(Error::CylinderNotSectorMultiple {
                cylinder: req.cylinder_size,
                sector,
            });
        }
    }
    if let Some(a) = req.start_align {
        if a.grain == 0 || a.grain % sector != 0 || a.offset % sector != 0 {
            return Err(Error::BadStartAlign {
                grain: a.grain,
                sector,
            });
        }
    }
    let wanted = if req.part_type == PartType::Logical {
        ExtentKind::Logical
    } else {
        ExtentKind::Normal
    };
    let mut best: Option<(u64, Plan)> = None;
    for (i, ext) in extents.iter().enumerate() {
        if ext.kind != wanted {
            continue;
        }
        let Some((start, end)) = place_exact(req, ext) else {
            continue;
        };
        // like libvirt: the smallest extent wins, the first of equal ones
        let better = match best {
            None => true,
            Some((size, _)) => ext.size() < size,
        };
        if better {
            best = Some((
                ext.size(),
                Plan {
                    start,
                    end,
                    extent: i,
                },
            ));
        }
    }
    best.map(|(_, p)| p).ok_or(Error::NoSpace {
        capacity: req.capacity,
        kind: if wanted == ExtentKind::Logical {
            "logical"
        } else {
            "primary"
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CYL64K: u64 = 4 * 32 * 512; // a fresh image file's geometry in parted
    const CYL_CLASSIC: u64 = 255 * 63 * 512;

    fn req(mode: Mode, label: Label, cyl: u64, cap: u64, t: PartType) -> Request {
        Request {
            label,
            mode,
            cylinder_size: cyl,
            sector_size: 512,
            capacity: cap,
            part_type: t,
            start_align: None,
        }
    }

    fn normal(start: u64, end: u64) -> Extent {
        Extent {
            start,
            end,
            kind: ExtentKind::Normal,
        }
    }

    fn logical(start: u64, end: u64) -> Extent {
        Extent {
            start,
            end,
            kind: ExtentKind::Logical,
        }
    }

    #[test]
    fn libvirt_wastes_a_whole_cylinder_on_multiples() {
        // c = 10 cylinders, start aligned: libvirt ends 11 cylinders later.
        let r = req(
            Mode::Libvirt,
            Label::Dos,
            CYL64K,
            10 * CYL64K,
            PartType::Primary,
        );
        let p = plan(&r, &[normal(CYL64K, 100 * CYL64K)]).unwrap();
        assert_eq!(p.start, CYL64K);
        assert_eq!(p.end, 12 * CYL64K - 1);
        assert_eq!(p.size(), 11 * CYL64K);
        let e = plan(
            &Request {
                mode: Mode::Exact,
                ..r
            },
            &[normal(CYL64K, 100 * CYL64K)],
        )
        .unwrap();
        assert_eq!(e.end, 11 * CYL64K - 1);
        assert_eq!(e.size(), 10 * CYL64K);
    }

    #[test]
    fn libvirt_rejects_an_exactly_large_enough_extent() {
        // gpt, no alignment: needed = c, and the extent holds exactly c bytes.
        let r = req(
            Mode::Libvirt,
            Label::Gpt,
            CYL64K,
            1_000_000,
            PartType::Primary,
        );
        let ext = [normal(1_048_576, 1_048_576 + 1_000_000)];
        assert!(matches!(plan(&r, &ext), Err(Error::NoSpace { .. })));
        let e = plan(
            &Request {
                mode: Mode::Exact,
                sector_size: 512,
                capacity: 999_936,
                ..r
            },
            &ext,
        );
        assert_eq!(e.unwrap().end, 1_048_576 + 999_936 - 1);
    }

    #[test]
    fn libvirt_logical_partition_comes_out_short() {
        // The extended partition starts on a cylinder boundary; the logical one 512 bytes
        // later. libvirt subtracts start % l (= 512) from the end without adding a cylinder.
        let c = 3 * CYL64K + 100;
        let r = req(Mode::Libvirt, Label::Dos, CYL64K, c, PartType::Logical);
        let p = plan(&r, &[logical(16 * CYL64K, 64 * CYL64K)]).unwrap();
        assert_eq!(p.start, 16 * CYL64K + 512);
        assert_eq!(p.end, 20 * CYL64K - 1);
        // r = l - 100, so the partition is (4l - 512) bytes: holds c. Now a capacity whose slack
        // is below 512: libvirt's partition is shorter than asked.
        let c = 3 * CYL64K + CYL64K - 100;
        let r = Request { capacity: c, ..r };
        let p = plan(&r, &[logical(16 * CYL64K, 64 * CYL64K)]).unwrap();
        assert_eq!(p.size(), 4 * CYL64K - 512);
        assert!(
            p.size() < c,
            "libvirt's logical partition is {} bytes short",
            c - p.size()
        );
        let e = plan(
            &Request {
                mode: Mode::Exact,
                ..r
            },
            &[logical(16 * CYL64K, 64 * CYL64K)],
        )
        .unwrap();
        assert!(e.size() >= c);
        assert_eq!((e.start, e.end), (16 * CYL64K + 512, 21 * CYL64K - 1));
    }

    #[test]
    fn libvirt_first_sector_rule() {
        let r = req(Mode::Libvirt, Label::Gpt, CYL64K, 4096, PartType::Primary);
        let p = plan(&r, &[normal(0, 1 << 20)]).unwrap();
        assert_eq!((p.start, p.end), (512, 512 + 4096 - 1));
        let r = req(Mode::Libvirt, Label::Dos, CYL64K, 4096, PartType::Primary);
        let p = plan(&r, &[normal(0, 1 << 20)]).unwrap();
        // end aligned to the first cylinder boundary
        assert_eq!((p.start, p.end), (512, CYL64K - 1));
    }

    #[test]
    fn libvirt_offset_equal_to_slack_gets_no_extra_cylinder() {
        // start % l == r exactly: (2) applies, end is aligned and holds c.
        let c = CYL_CLASSIC * 2 + 1000;
        let rr = CYL_CLASSIC - 1000;
        let r = req(Mode::Libvirt, Label::Dos, CYL_CLASSIC, c, PartType::Primary);
        let p = plan(&r, &[normal(CYL_CLASSIC + rr, 100 * CYL_CLASSIC)]).unwrap();
        assert_eq!((p.end + 1) % CYL_CLASSIC, 0);
        assert_eq!(p.end + 1, 4 * CYL_CLASSIC);
        // one byte further: the extra cylinder.
        let p = plan(&r, &[normal(CYL_CLASSIC + rr + 512, 100 * CYL_CLASSIC)]).unwrap();
        assert_eq!(p.end + 1, 5 * CYL_CLASSIC);
    }

    #[test]
    fn libvirt_extended_is_placed_like_primary() {
        let a = req(
            Mode::Libvirt,
            Label::Dos,
            CYL64K,
            5_000_000,
            PartType::Extended,
        );
        let b = Request {
            part_type: PartType::Primary,
            ..a
        };
        let ext = [normal(16384, 100 << 20)];
        assert_eq!(plan(&a, &ext), plan(&b, &ext));
    }

    #[test]
    fn smallest_fitting_extent_wins_in_both_modes() {
        let ext = [
            normal(1 << 20, 64 << 20),
            normal(64 << 20, 70 << 20),
            normal(80 << 20, 82 << 20),
        ];
        for mode in [Mode::Libvirt, Mode::Exact] {
            let r = req(mode, Label::Dos, CYL64K, 3 << 20, PartType::Primary);
            assert_eq!(plan(&r, &ext).unwrap().extent, 1, "{mode:?}");
        }
    }

    #[test]
    fn kinds_must_match() {
        let ext = [normal(1 << 20, 64 << 20), logical(64 << 20, 128 << 20)];
        for mode in [Mode::Libvirt, Mode::Exact] {
            let r = req(mode, Label::Dos, CYL64K, 1 << 20, PartType::Logical);
            assert_eq!(plan(&r, &ext).unwrap().extent, 1);
            let r = req(mode, Label::Dos, CYL64K, 1 << 20, PartType::Primary);
            assert_eq!(plan(&r, &ext).unwrap().extent, 0);
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let ext = [normal(1 << 20, 64 << 20)];
        for mode in [Mode::Libvirt, Mode::Exact] {
            let r = req(mode, Label::Dos, 0, 1 << 20, PartType::Primary);
            assert_eq!(plan(&r, &ext), Err(Error::ZeroCylinder));
            let r = req(mode, Label::Dos, CYL64K, 0, PartType::Primary);
            assert_eq!(plan(&r, &ext), Err(Error::ZeroCapacity));
            let r = req(mode, Label::Dos, CYL64K, 1 << 20, PartType::Primary);
            let bad = [normal(10 << 20, 20 << 20), normal(5 << 20, 8 << 20)];
            assert!(matches!(plan(&r, &bad), Err(Error::UnsortedExtents { .. })));
            let bad = [normal(10 << 20, 20 << 20), normal(19 << 20, 30 << 20)];
            assert!(matches!(plan(&r, &bad), Err(Error::UnsortedExtents { .. })));
            let bad = [normal(10 << 20, 10 << 20)];
            assert!(matches!(plan(&r, &bad), Err(Error::EmptyExtent { .. })));
            let r = req(mode, Label::Gpt, CYL64K, 1 << 20, PartType::Logical);
            assert_eq!(plan(&r, &ext), Err(Error::TypeNeedsDos(Label::Gpt)));
            let r = req(mode, Label::Dos, CYL64K, u64::MAX - 5, PartType::Primary);
            assert!(matches!(
                plan(&r, &ext),
                Err(Error::NoSpace { .. } | Error::WrapsAround(_))
            ));
        }
        let r = Request {
            sector_size: 1000,
            ..req(Mode::Exact, Label::Dos, CYL64K, 1 << 20, PartType::Primary)
        };
        assert_eq!(plan(&r, &ext), Err(Error::BadSectorSize(1000)));
    }

    #[test]
    fn exact_uses_the_device_sector_size_and_start_alignment() {
        // 4K-sector disk: cylinder = 4 * 32 * 4096; logical start skips one 4 KiB sector.
        let cyl = 4 * 32 * 4096;
        let r = Request {
            sector_size: 4096,
            ..req(Mode::Exact, Label::Dos, cyl, 10_000, PartType::Logical)
        };
        let p = plan(&r, &[logical(cyl, 10 * cyl)]).unwrap();
        assert_eq!((p.start, p.end), (cyl + 4096, 2 * cyl - 1));
        let r = Request {
            start_align: Some(StartAlign {
                grain: MIB,
                offset: 0,
            }),
            ..req(Mode::Exact, Label::Gpt, CYL64K, 10_000, PartType::Primary)
        };
        let p = plan(&r, &[normal(17408, 100 << 20)]).unwrap();
        assert_eq!((p.start, p.end), (MIB, MIB + 10_240 - 1));
    }

    /// The reference: try every sector-aligned start and every aligned end in the extent,
    /// smallest first — slow and obviously right.
    fn reference_end(req: &Request, ext: &Extent, start: u64) -> Option<u64> {
        let grain = if req.label == Label::Dos {
            req.cylinder_size
        } else {
            req.sector_size
        };
        let mut end_excl = grain;
        while end_excl <= ext.end {
            if end_excl > start && end_excl - start >= req.capacity {
                return Some(end_excl - 1);
            }
            end_excl += grain;
        }
        None
    }

    fn arb_layout() -> impl Strategy<Value = (u64, Vec<Extent>, Vec<(u64, u64)>)> {
        // heads 1..=8, sectors 1..=63: small cylinders make many boundaries reachable
        (
            1u64..=8,
            1u64..=63,
            proptest::collection::vec((1u64..400, 1u64..400), 1..6),
        )
            .prop_map(|(h, s, gaps)| {
                let cyl = h * s * 512;
                // alternate used partition / free extent, in sectors
                let mut pos = 1u64;
                let mut free = Vec::new();
                let mut used = Vec::new();
                for (u, f) in gaps {
                    used.push((pos * 512, (pos + u) * 512));
                    pos += u;
                    free.push(normal(pos * 512, (pos + f) * 512));
                    pos += f;
                }
                (cyl, free, used)
            })
    }

    proptest! {
        #[test]
        fn exact_matches_reference((cyl, free, used) in arb_layout(), cap in 1u64..300_000,
                                   gpt in any::<bool>()) {
            let label = if gpt { Label::Gpt } else { Label::Dos };
            let r = req(Mode::Exact, label, cyl, cap, PartType::Primary);
            let got = plan(&r, &free);
            // reference: best (smallest, first) extent in which an end exists
            let mut best: Option<(u64, usize, u64)> = None;
            for (i, e) in free.iter().enumerate() {
                let start = e.start.max(512);
                if let Some(end) = reference_end(&r, e, start) {
                    if best.is_none_or(|(sz, _, _)| e.size() < sz) {
                        best = Some((e.size(), i, end));
                    }
                }
            }
            match (got, best) {
                (Ok(p), Some((_, i, end))) => {
                    prop_assert_eq!(p.extent, i);
                    prop_assert_eq!(p.end, end);
                    let e = free[i];
                    prop_assert!(p.start >= e.start && p.end < e.end, "inside the extent");
                    prop_assert!(p.size() >= cap, "holds the capacity");
                    if label == Label::Dos {
                        prop_assert_eq!((p.end + 1) % cyl, 0, "aligned end");
                        prop_assert!(p.end + 1 - cyl < p.start + cap, "minimal");
                    }
                    for &(us, ue) in &used {
                        prop_assert!(p.end < us || p.start >= ue, "overlaps a partition");
                    }
                }
                (Err(Error::NoSpace { .. }), None) => {}
                (g, b) => prop_assert!(false, "plan {:?} vs reference {:?}", g, b),
            }
        }

        #[test]
        fn libvirt_is_the_closed_form((cyl, free, _used) in arb_layout(), cap in 1u64..300_000) {
            // doc/storage.md's closed form: e = s + c + r - (s mod l) - 1, plus l if s mod l > r
            let r = req(Mode::Libvirt, Label::Dos, cyl, cap, PartType::Primary);
            if let Ok(p) = plan(&r, &free) {
                let s = p.start;
                let rr = cyl - cap % cyl;
                let mut e = s + cap + rr - s % cyl - 1;
                if s % cyl > rr { e += cyl; }
                prop_assert_eq!(p.end, e);
                prop_assert_eq!((p.end + 1) % cyl, 0);
                // never smaller than exact on primary partitions, and at most 2 cylinders more
                let x = plan(&Request { mode: Mode::Exact, ..r }, &free);
                if let Ok(x) = x {
                    if x.extent == p.extent {
                        prop_assert!(x.end <= p.end);
                        prop_assert!(p.end - x.end <= cyl);
                    }
                }
            }
        }

        #[test]
        fn logical_never_short_in_exact((cyl, free, used) in arb_layout(), cap in 1u64..300_000) {
            let free: Vec<Extent> = free.into_iter().map(|e| Extent { kind: ExtentKind::Logical, ..e }).collect();
            let r = req(Mode::Exact, Label::Dos, cyl, cap, PartType::Logical);
            if let Ok(p) = plan(&r, &free) {
                let e = free[p.extent];
                prop_assert!(p.start >= e.start + 512, "room for the EBR");
                prop_assert!(p.size() >= cap);
                prop_assert_eq!((p.end + 1) % cyl, 0);
                prop_assert!(p.end < e.end);
                for &(us, ue) in &used {
                    prop_assert!(p.end < us || p.start >= ue);
                }
            }
        }

        #[test]
        fn never_panics(cyl in 0u64..1 << 40, cap in 0u64..u64::MAX, sector in 0u64..10_000,
                        raw in proptest::collection::vec((any::<u64>(), any::<u64>(), any::<bool>()), 0..5),
                        libvirt in any::<bool>(), t in 0u8..3, label in 0usize..8,
                        grain in proptest::option::of((0u64..1 << 30, 0u64..1 << 30))) {
            let ext: Vec<Extent> = raw.into_iter().map(|(a, b, l)| Extent {
                start: a, end: b, kind: if l { ExtentKind::Logical } else { ExtentKind::Normal } }).collect();
            let r = Request {
                label: Label::ALL[label],
                mode: if libvirt { Mode::Libvirt } else { Mode::Exact },
                cylinder_size: cyl,
                sector_size: sector,
                capacity: cap,
                part_type: [PartType::Primary, PartType::Logical, PartType::Extended][t as usize],
                start_align: grain.map(|(g, o)| StartAlign { grain: g, offset: o }),
            };
            let _ = plan(&r, &ext);
        }

        #[test]
        fn start_alignment_holds((cyl, free, used) in arb_layout(), cap in 1u64..300_000,
                                 grain_sectors in 1u64..4096, off_sectors in 0u64..64) {
            let a = StartAlign { grain: grain_sectors * 512, offset: off_sectors * 512 };
            let r = Request { start_align: Some(a), ..req(Mode::Exact, Label::Dos, cyl, cap, PartType::Primary) };
            if let Ok(p) = plan(&r, &free) {
                prop_assert_eq!(p.start % a.grain, a.offset % a.grain);
                prop_assert!(p.size() >= cap && (p.end + 1) % cyl == 0);
                prop_assert!(p.start >= free[p.extent].start && p.end < free[p.extent].end);
                for &(us, ue) in &used {
                    prop_assert!(p.end < us || p.start >= ue);
                }
            }
        }
    }
}
