//! `storage-align`: plan and create right-aligned partitions for libvirt disk pools.
//!
//! Thin edge over the library: argument parsing, reading the disk through parted, printing.
//! Errors are printed once, with their chain, prefixed by the program name.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use storage_align::boundary::{
    self, Extent, ExtentKind, LIBVIRT_SECTOR_SIZE, Label, MIB, Mode, PartType, Plan, Request,
    StartAlign,
};
use storage_align::parted;
use storage_align::size::parse_size;

const AFTER_HELP: &str = "\
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
    2 usage error.

EXAMPLES
    storage-align plan --label dos --geometry 255,63 --free 32256-1073741824 --capacity 1G
    storage-align plan /dev/sdb --capacity 10G --mode libvirt --json
    storage-align create disk.img --capacity 512M --dry-run
    storage-align create /dev/loop0 --capacity 100MiB --align-start 1MiB";

/// Right-aligned partitions for libvirt disk pools.
///
/// libvirt's disk pools (pool type "disk") create a volume as a partition whose END is aligned
/// to a cylinder boundary on dos (MBR) labels. storage-align computes that partition either
/// exactly as libvirt does (--mode libvirt) or correctly and minimally (--mode exact, the
/// default), and can create it on a block device or image file with parted.
#[derive(Parser, Debug)]
#[command(name = "storage-align", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
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
        #[arg(long, value_name = "LABEL")]
        label: Option<String>,
        /// Bytes per cylinder (heads × sectors × sector size).
        #[arg(long, value_name = "BYTES", conflicts_with = "geometry")]
        cylinder_size: Option<String>,
        /// BIOS geometry as parted reports it, optionally with the logical sector size
        /// (default 512); cylinder = HEADS × SECTORS × SECTOR_SIZE (libvirt mode: × 512).
        #[arg(long, value_name = "HEADS,SECTORS[,SECTOR_SIZE]")]
        geometry: Option<String>,
        /// A free extent START-END in bytes (START inclusive, END exclusive); `:logical` marks
        /// space inside the extended partition. Repeat for each extent, in disk order.
        #[arg(long = "free", value_name = "START-END[:logical]")]
        free: Vec<String>,
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
}

#[derive(clap::Args, Debug)]
struct Common {
    /// Requested capacity (see SIZES).
    #[arg(long, value_name = "SIZE")]
    capacity: String,
    /// Partition type (dos only). Default: chosen like libvirt (primary, or logical when four
    /// primary/extended partitions exist); without DEVICE, primary.
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    part_type: Option<TypeArg>,
    /// Computation mode (see MODES).
    #[arg(long, value_enum, default_value = "exact")]
    mode: ModeArg,
    /// Also align the start (exact mode): to a cylinder, to 1 MiB, or to the device's
    /// optimal I/O size + alignment offset (/sys/block/DEV/queue/optimal_io_size, 1 MiB when
    /// the device reports none, as parted's --align optimal).
    #[arg(long, value_enum, value_name = "GRAIN")]
    align_start: Option<AlignArg>,
    /// Print a JSON object (start, end inclusive, size, ...) instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TypeArg {
    Primary,
    Logical,
    Extended,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    Libvirt,
    Exact,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum AlignArg {
    Cylinder,
    #[value(name = "1MiB", alias = "1mib")]
    OneMiB,
    Optimal,
}

fn size_arg(name: &str, v: &str) -> Result<u64> {
    parse_size(v).with_context(|| format!("--{name}"))
}

fn parse_free(v: &str) -> Result<Extent> {
    let (range, kind) = match v.strip_suffix(":logical") {
        Some(r) => (r, ExtentKind::Logical),
        None => (v, ExtentKind::Normal),
    };
    let (a, b) = range
        .split_once('-')
        .with_context(|| format!("--free {v:?}: expected START-END[:logical]"))?;
    Ok(Extent {
        start: size_arg("free", a)?,
        end: size_arg("free", b)?,
        kind,
    })
}

/// `(grain, offset)` from sysfs for `--align-start optimal`; `root` is /sys unless
/// STORAGE_ALIGN_SYSFS says otherwise (tests).
fn optimal_align(device: Option<&Path>) -> Result<StartAlign> {
    let root = std::env::var_os("STORAGE_ALIGN_SYSFS").unwrap_or_else(|| "/sys".into());
    let name = device
        .and_then(|d| std::fs::canonicalize(d).ok())
        .filter(|d| d.starts_with("/dev"))
        .and_then(|d| d.file_name().map(|n| n.to_owned()));
    let Some(name) = name else {
        // an image file has no queue limits: parted's default grain
        return Ok(StartAlign {
            grain: MIB,
            offset: 0,
        });
    };
    let dir = Path::new(&root).join("block").join(&name);
    let read = |p: PathBuf| -> Result<u64> {
        let s =
            std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
        s.trim()
            .parse()
            .with_context(|| format!("{}: not a number: {:?}", p.display(), s.trim()))
    };
    let io = read(dir.join("queue/optimal_io_size"))?;
    let offset = read(dir.join("alignment_offset"))?;
    Ok(StartAlign {
        grain: if io == 0 { MIB } else { io },
        offset,
    })
}

struct Outcome {
    req: Request,
    extents: Vec<Extent>,
    plan: Plan,
}

fn compute(
    common: &Common,
    label: Label,
    cylinder: u64,
    sector: u64,
    part_type: PartType,
    extents: Vec<Extent>,
    device: Option<&Path>,
) -> Result<Outcome> {
    let mode = match common.mode {
        ModeArg::Libvirt => Mode::Libvirt,
        ModeArg::Exact => Mode::Exact,
    };
    let start_align = match common.align_start {
        None => None,
        Some(AlignArg::Cylinder) => Some(StartAlign {
            grain: cylinder,
            offset: 0,
        }),
        Some(AlignArg::OneMiB) => Some(StartAlign {
            grain: MIB,
            offset: 0,
        }),
        Some(AlignArg::Optimal) => Some(optimal_align(device)?),
    };
    let req = Request {
        label,
        mode,
        cylinder_size: cylinder,
        sector_size: if mode == Mode::Libvirt {
            LIBVIRT_SECTOR_SIZE
        } else {
            sector
        },
        capacity: size_arg("capacity", &common.capacity)?,
        part_type,
        start_align,
    };
    let plan = boundary::plan(&req, &extents)?;
    Ok(Outcome { req, extents, plan })
}

fn print(o: &Outcome, json: bool, extra: serde_json::Value) {
    let p = &o.plan;
    let ext = &o.extents[p.extent];
    let slack = p.size() as i128 - o.req.capacity as i128;
    if json {
        let mut v = serde_json::json!({
            "mode": o.req.mode,
            "label": o.req.label,
            "type": o.req.part_type,
            "capacity": o.req.capacity,
            "start": p.start,
            "end": p.end,
            "size": p.size(),
            "slack": slack as i64,
            "cylinder_size": o.req.cylinder_size,
            "sector_size": o.req.sector_size,
            "extent": ext,
        });
        if let (Some(m), serde_json::Value::Object(x)) = (v.as_object_mut(), extra) {
            m.extend(x);
        }
        println!("{v}");
    } else {
        println!(
            "{} partition on {} label ({} mode): start {} end {} (inclusive), {} bytes for {} requested ({:+} bytes)",
            o.req.part_type.name(),
            o.req.label,
            match o.req.mode {
                Mode::Libvirt => "libvirt",
                Mode::Exact => "exact",
            },
            p.start,
            p.end,
            p.size(),
            o.req.capacity,
            slack
        );
        println!(
            "free extent {}-{} ({} bytes), cylinder {} bytes",
            ext.start,
            ext.end,
            ext.size(),
            o.req.cylinder_size
        );
    }
}

/// libvirt's virStorageBackendDiskPartTypeToCreate plus the extended-partition check of
/// virStorageBackendDiskPartFormat.
fn libvirt_type(disk: &parted::Disk, asked: Option<TypeArg>) -> Result<PartType> {
    Ok(match asked {
        Some(TypeArg::Primary) => PartType::Primary,
        Some(TypeArg::Extended) => {
            if disk.extended().is_some() {
                bail!("{}: extended partition already exists", disk.path.display());
            }
            PartType::Extended
        }
        Some(TypeArg::Logical) => PartType::Logical,
        None if disk.label == Label::Dos && disk.primary_count() >= 4 => {
            if disk.extended().is_none() {
                bail!(
                    "{}: no extended partition found and no primary partition available",
                    disk.path.display()
                );
            }
            PartType::Logical
        }
        None => PartType::Primary,
    })
}

fn from_disk(device: &Path, common: &Common) -> Result<(parted::Disk, Outcome)> {
    let disk = parted::read_disk(device)?;
    let part_type = libvirt_type(&disk, common.part_type)?;
    // libvirt: heads × sectors × 512 whatever the sector size; exact: the real sector size
    let sector = match common.mode {
        ModeArg::Libvirt => LIBVIRT_SECTOR_SIZE,
        ModeArg::Exact => disk.logical_sector_size,
    };
    let cylinder = disk.heads * disk.sectors * sector;
    let o = compute(
        common,
        disk.label,
        cylinder,
        disk.logical_sector_size,
        part_type,
        disk.free.clone(),
        Some(device),
    )
    .with_context(|| {
        format!(
            "cannot place {} bytes on {}",
            common.capacity,
            device.display()
        )
    })?;
    Ok((disk, o))
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Plan {
            device: Some(device),
            common,
            label,
            cylinder_size,
            geometry,
            free,
        } => {
            if label.is_some() || cylinder_size.is_some() || geometry.is_some() || !free.is_empty()
            {
                bail!(
                    "with DEVICE, the label, geometry, sector size and free extents are read from the disk; drop --label/--cylinder-size/--geometry/--free"
                );
            }
            let (_, o) = from_disk(&device, &common)?;
            print(&o, common.json, serde_json::json!({"device": device}));
        }
        Cmd::Plan {
            device: None,
            common,
            label,
            cylinder_size,
            geometry,
            free,
        } => {
            let label = label.context("--label is required without DEVICE")?;
            let label = Label::parse(&label).with_context(|| format!("--label {label:?}"))?;
            let parts: Vec<&str> = geometry
                .as_deref()
                .map(|g| g.split(',').collect())
                .unwrap_or_default();
            let g = geometry.as_deref().unwrap_or("");
            if geometry.is_some() && !(2..=3).contains(&parts.len()) {
                bail!("--geometry {g:?}: expected HEADS,SECTORS[,SECTOR_SIZE]");
            }
            let n = |x: &str| {
                x.trim()
                    .parse::<u64>()
                    .with_context(|| format!("--geometry {g:?}: {x:?} is not a number"))
            };
            let sector = match parts.get(2) {
                Some(s) => n(s)?,
                None => 512,
            };
            let cylinder = match (cylinder_size, &geometry) {
                (Some(c), _) => size_arg("cylinder-size", &c)?,
                (None, Some(_)) => {
                    let (h, s) = (parts[0], parts[1]);
                    let mult = if common.mode.is_libvirt() {
                        LIBVIRT_SECTOR_SIZE
                    } else {
                        sector
                    };
                    n(h)?
                        .checked_mul(n(s)?)
                        .and_then(|v| v.checked_mul(mult))
                        .with_context(|| format!("--geometry {g:?}: too large"))?
                }
                (None, None) if label == Label::Dos => {
                    bail!("a dos label needs --cylinder-size or --geometry")
                }
                // other labels do not align; libvirt still divides by the cylinder size, so
                // give it parted's image-file geometry
                (None, None) => 4 * 32 * 512,
            };
            if free.is_empty() {
                bail!("give at least one --free START-END extent (or a DEVICE to read)");
            }
            let extents = free
                .iter()
                .map(|f| parse_free(f))
                .collect::<Result<Vec<_>>>()?;
            let part_type = match common.part_type {
                None | Some(TypeArg::Primary) => PartType::Primary,
                Some(TypeArg::Logical) => PartType::Logical,
                Some(TypeArg::Extended) => PartType::Extended,
            };
            let o = compute(&common, label, cylinder, sector, part_type, extents, None)?;
            print(&o, common.json, serde_json::json!({}));
        }
        Cmd::Create {
            device,
            common,
            dry_run,
        } => {
            let (disk, o) = from_disk(&device, &common)?;
            // parted takes "primary"/"logical"/"extended" on dos; on other labels libvirt
            // passes "primary", which parted uses as the partition name
            let kind = if disk.label == Label::Dos {
                o.req.part_type.name()
            } else {
                "primary"
            };
            let cmd = format!(
                "parted -s {} mkpart {kind} {}B {}B",
                device.display(),
                o.plan.start,
                o.plan.end
            );
            if dry_run {
                print(
                    &o,
                    common.json,
                    serde_json::json!({"device": device, "dry_run": true, "command": cmd}),
                );
                if !common.json {
                    println!("dry run, would run: {cmd}");
                }
                return Ok(());
            }
            let part = parted::mkpart(
                &device,
                kind,
                o.plan.start,
                o.plan.end,
                disk.logical_sector_size,
            )?;
            print(
                &o,
                common.json,
                serde_json::json!({"device": device, "number": part.number,
                    "created": {"start": part.start, "end": part.end}}),
            );
            if !common.json {
                println!(
                    "created partition {} ({}-{}) on {} and verified it in the table",
                    part.number,
                    part.start,
                    part.end,
                    device.display()
                );
            }
        }
    }
    Ok(())
}

impl ModeArg {
    fn is_libvirt(self) -> bool {
        matches!(self, ModeArg::Libvirt)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("storage-align: {e:#}");
            ExitCode::FAILURE
        }
    }
}
