//! The `storage-align` command line (parsed by src/main.rs), here so that tools can see it
//! without running it: the shell completions (packaging/completions) are generated from
//! [`command`]. Values are parsed by clap's value parsers (sizes, geometries, labels, free
//! extents), so a malformed one is a usage error (status 2) naming the option.

use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use crate::boundary::{Extent, ExtentKind, Label, Mode, PartType};
use crate::geometry::Geometry;
use crate::placement::{Options, StartGrain};
use crate::size::parse_size;

/// Shown after the options of every `--help` (sizes, modes, exit status, examples).
pub const AFTER_HELP: &str = "\
SIZES
    Plain bytes or a number with a unit, as virsh reads them: K, M, G, T, P, E and KiB, MiB,
    GiB... are powers of 1024 (K = KiB = 1024, like virsh vol-create-as); KB, MB, GB... are
    powers of 1000.

MODES
    exact (default)  the smallest cylinder-aligned end (dos) holding at least the capacity:
                     end = ceil((start + capacity) / cylinder) * cylinder - 1. Extents exactly
                     big enough are accepted, logical partitions are never short, the device's
                     logical sector size is used, --align-start can align the start too.
    libvirt          bit-identical to libvirt's virStorageBackendDiskPartBoundaries, defects
                     included: a whole cylinder wasted when the capacity is a multiple of the
                     cylinder, an exactly large enough extent rejected, logical partitions up to
                     512 bytes short, 512-byte sectors assumed, free space at byte 0 moved to 512.
    Both pick the smallest free extent that fits, and align only on dos labels.

EXIT STATUS
    0 success, 1 error (no space, no label, busy device, parted failure, bad input),
    2 usage error (also a malformed size, geometry, label or extent).

EXAMPLES
    storage-align plan --label dos --geometry 255,63 --free 32256-1073741824 --capacity 1G
    storage-align plan /dev/sdb --capacity 10G --mode libvirt --json
    storage-align create disk.img --capacity 512M --dry-run
    storage-align create /dev/loop0 --capacity 100MiB --align-start 1MiB
    storage-align vol-create --connect qemu:///system --pool disks --capacity 10G --dry-run";

/// Right-aligned partitions for libvirt disk pools.
///
/// libvirt's disk pools (pool type "disk") create a volume as a partition whose END is aligned
/// to a cylinder boundary on dos (MBR) labels. storage-align computes that partition either
/// exactly as libvirt does (--mode libvirt) or correctly and minimally (--mode exact, the
/// default), and can create it on a block device or image file with parted, or as a volume of
/// a libvirt disk pool (vol-create).
#[derive(Parser, Debug)]
#[command(name = "storage-align", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Host root: sysfs is read below DIR/sys (the device's I/O limits for --align-start
    /// optimal) instead of /sys.
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

impl Cli {
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Compute where a new partition would go, changing nothing.
    ///
    /// With DEVICE, the label, geometry, sector size and free extents are read with parted
    /// (`parted -m DEVICE unit B print free`, `unit chs print`) and the partition type is chosen
    /// like libvirt (logical once a dos label has four primary/extended partitions). Without
    /// DEVICE, describe the disk with --label, --cylinder-size or --geometry, and --free.
    #[command(after_help = AFTER_HELP)]
    Plan {
        /// Block device or image file to read (optional).
        device: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
        /// Disk label: dos (msdos), gpt, dvh, mac, bsd, pc98, sun, lvm2.
        #[arg(long, value_name = "LABEL", value_parser = parse_label)]
        label: Option<Label>,
        /// Bytes per cylinder (heads × sectors × sector size).
        #[arg(long, value_name = "BYTES", conflicts_with = "geometry", value_parser = parse_size_arg)]
        cylinder_size: Option<u64>,
        /// BIOS geometry as parted reports it, optionally with the logical sector size
        /// (default 512); cylinder = HEADS × SECTORS × SECTOR_SIZE (libvirt mode: × 512).
        #[arg(long, value_name = "HEADS,SECTORS[,SECTOR_SIZE]")]
        geometry: Option<Geometry>,
        /// A free extent START-END in bytes (START inclusive, END exclusive); `:logical` marks
        /// space inside the extended partition. Repeat for each extent, in disk order.
        #[arg(long = "free", value_name = "START-END[:logical]", value_parser = parse_free)]
        free: Vec<Extent>,
    },
    /// Create the partition on DEVICE with parted, then read the table back to verify it.
    #[command(after_help = AFTER_HELP)]
    Create {
        /// Block device or image file with a partition table.
        device: PathBuf,
        #[command(flatten)]
        common: Common,
        /// Print the plan and the parted command, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Create a volume in a libvirt disk pool: a right-aligned partition on the pool's device.
    ///
    /// Reads the pool's source device and format through the libvirt API, plans the partition
    /// on that device (read with parted, as `create`), creates it with parted, refreshes the
    /// pool and prints the volume libvirt lists for it. libvirt names a disk pool's volumes
    /// after their partition nodes (loop0p1, sdb5) and accepts no other name, so the name is
    /// chosen by the partition number: --name, when given, must be that name (it is checked
    /// before anything changes; --dry-run shows it).
    #[command(name = "vol-create", after_help = AFTER_HELP)]
    VolCreate {
        /// libvirt connection URI (qemu:///system, ...).
        #[arg(long, value_name = "URI")]
        connect: String,
        /// Name of a defined, active disk pool.
        #[arg(long, value_name = "POOL")]
        pool: String,
        /// Expected volume name: refused unless it is the name libvirt will give the new
        /// partition (its device node's name). Optional.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        #[command(flatten)]
        common: Common,
        /// Print the plan, the volume name and the parted command, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct Common {
    /// Requested capacity (see SIZES).
    #[arg(long, value_name = "SIZE", value_parser = parse_size_arg)]
    pub capacity: u64,
    /// Partition type (dos only). Default: chosen like libvirt (primary, or logical when four
    /// primary/extended partitions exist); without DEVICE, primary.
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub part_type: Option<TypeArg>,
    /// Computation mode (see MODES).
    #[arg(long, value_enum, default_value = "exact")]
    pub mode: ModeArg,
    /// Also align the start (exact mode): to a cylinder, to 1 MiB, or to the device's
    /// optimal I/O size + alignment offset (/sys/block/DEV/queue/optimal_io_size, 1 MiB when
    /// the device reports none, as parted's --align optimal).
    #[arg(long, value_enum, value_name = "GRAIN")]
    pub align_start: Option<AlignArg>,
    /// Print a JSON object (start, end inclusive, size, ...) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TypeArg {
    Primary,
    Logical,
    Extended,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    Libvirt,
    Exact,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum AlignArg {
    Cylinder,
    #[value(name = "1MiB", alias = "1mib")]
    OneMiB,
    Optimal,
}

impl Common {
    /// What the options ask for, in the engine's terms.
    pub fn options(&self) -> Options {
        Options {
            capacity: self.capacity,
            mode: match self.mode {
                ModeArg::Libvirt => Mode::Libvirt,
                ModeArg::Exact => Mode::Exact,
            },
            part_type: self.part_type.map(|t| match t {
                TypeArg::Primary => PartType::Primary,
                TypeArg::Logical => PartType::Logical,
                TypeArg::Extended => PartType::Extended,
            }),
            align_start: self.align_start.map(|a| match a {
                AlignArg::Cylinder => StartGrain::Cylinder,
                AlignArg::OneMiB => StartGrain::OneMiB,
                AlignArg::Optimal => StartGrain::Optimal,
            }),
        }
    }
}

/// Value parser for sizes (see SIZES).
fn parse_size_arg(v: &str) -> Result<u64, String> {
    parse_size(v).map_err(|e| e.to_string())
}

fn parse_label(v: &str) -> Result<Label, String> {
    Label::parse(v).map_err(|e| e.to_string())
}

/// Value parser for `--free START-END[:logical]`.
fn parse_free(v: &str) -> Result<Extent, String> {
    let (range, kind) = match v.strip_suffix(":logical") {
        Some(r) => (r, ExtentKind::Logical),
        None => (v, ExtentKind::Normal),
    };
    let (a, b) = range
        .split_once('-')
        .ok_or_else(|| format!("{v:?}: expected START-END[:logical]"))?;
    Ok(Extent {
        start: parse_size_arg(a)?,
        end: parse_size_arg(b)?,
        kind,
    })
}

/// The `clap::Command` the binary parses with (for completions).
pub fn command() -> clap::Command {
    Cli::command()
}
