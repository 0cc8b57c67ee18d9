//! `storage-align`: plan and create right-aligned partitions for libvirt disk pools.
//!
//! Thin edge over the library: argument parsing, reading the disk through parted, printing.
//! Errors are printed once, with their chain, prefixed by the program name.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use storage_align::boundary::{
    self, Extent, ExtentKind, LIBVIRT_SECTOR_SIZE, Label, MIB, Mode, PartType, Plan, Request,
    StartAlign,
};
use storage_align::cli::{AlignArg, Cli, Cmd, Common, ModeArg, TypeArg};
use storage_align::parted;
use storage_align::size::parse_size;

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
            let kind = parted_kind(&disk, &o);
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
        Cmd::VolCreate {
            connect,
            pool,
            name,
            common,
            dry_run,
        } => vol_create(&connect, &pool, name.as_deref(), &common, dry_run)?,
    }
    Ok(())
}

/// parted takes "primary"/"logical"/"extended" on dos; on other labels libvirt passes
/// "primary", which parted uses as the partition name.
fn parted_kind(disk: &parted::Disk, o: &Outcome) -> &'static str {
    if disk.label == Label::Dos {
        o.req.part_type.name()
    } else {
        "primary"
    }
}

/// A libvirt connection closed explicitly: virt's `Connect` panics in `Drop` when
/// `virConnectClose` fails (e.g. the daemon went away), which would abort a command that has
/// already changed the disk. Here a failed close is only a warning.
struct Conn {
    c: std::mem::ManuallyDrop<virt::connect::Connect>,
    uri: String,
}

impl Conn {
    fn open(uri: &str) -> Result<Conn> {
        // libvirt prints every error to stderr by default; ours are printed once, with context
        virt::error::clear_error_callback();
        let c = virt::connect::Connect::open(Some(uri))
            .with_context(|| format!("cannot connect to libvirt at {uri}"))?;
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

fn vol_create(
    uri: &str,
    pool_name: &str,
    name: Option<&str>,
    common: &Common,
    dry_run: bool,
) -> Result<()> {
    let conn = Conn::open(uri)?;
    let pool = conn
        .c
        .lookup_storage_pool_by_name(pool_name)
        .with_context(|| format!("no storage pool named {pool_name:?} at {uri}"))?;
    let xml = pool
        .xml_desc(0)
        .with_context(|| format!("cannot read the definition of pool {pool_name} at {uri}"))?;
    let dp = storage_align::pool::parse_pool_xml(pool_name, &xml)?;
    let active = pool
        .is_active()
        .with_context(|| format!("cannot query pool {pool_name} at {uri}"))?;
    if !active {
        bail!(
            "pool {pool_name} at {uri} is inactive: start it first (virsh -c {uri} pool-start {pool_name})"
        );
    }
    let device = dp.device.clone();
    let (disk, o) = from_disk(&device, common)
        .with_context(|| format!("pool {pool_name}: device {}", device.display()))?;
    if let Some(f) = &dp.format {
        let want = Label::parse(f).with_context(|| format!("pool {pool_name}: format {f:?}"))?;
        if want != disk.label {
            bail!(
                "pool {pool_name} is defined with format {f} but {} has a {} label",
                device.display(),
                disk.label
            );
        }
    }
    let number = storage_align::pool::next_number(&disk, o.req.part_type, o.plan.start);
    let vol_name = storage_align::pool::volume_name(&device, number);
    if let Some(n) = name {
        if n != vol_name {
            bail!(
                "libvirt will name this volume {vol_name} (partition {number} of {}): a disk pool's volumes are named after their partitions; use --name {vol_name} or leave --name out",
                device.display()
            );
        }
    }
    if pool.lookup_storage_vol_by_name(&vol_name).is_ok() {
        bail!(
            "pool {pool_name} already has a volume {vol_name}: refresh the pool (virsh pool-refresh {pool_name})"
        );
    }
    let kind = parted_kind(&disk, &o);
    let cmd = format!(
        "parted -s {} mkpart {kind} {}B {}B",
        device.display(),
        o.plan.start,
        o.plan.end
    );
    let base = serde_json::json!({"pool": pool_name, "device": device, "name": vol_name});
    if dry_run {
        let mut extra = base;
        extra["dry_run"] = true.into();
        extra["command"] = cmd.clone().into();
        print(&o, common.json, extra);
        if !common.json {
            println!("dry run, would create volume {vol_name} in pool {pool_name}: {cmd}");
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
    let vol_name = if part.number == number {
        vol_name
    } else {
        // parted numbered it otherwise than predicted: report the volume libvirt really lists
        let actual = storage_align::pool::volume_name(&device, part.number);
        eprintln!(
            "storage-align: warning: parted numbered the new partition {} (expected {number}): the volume is {actual}",
            part.number
        );
        actual
    };
    // libvirt's refresh opens every partition node: wait for the kernel (devtmpfs/udev) to
    // create it, as libvirt waits for udev after its own mkpart
    let node = storage_align::pool::partition_path(&device, part.number);
    for _ in 0..100 {
        if node.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    pool.refresh(0).with_context(|| {
        format!(
            "created partition {} ({}-{}) on {} but refreshing pool {pool_name} failed",
            part.number,
            part.start,
            part.end,
            device.display()
        )
    })?;
    let vol = pool.lookup_storage_vol_by_name(&vol_name).with_context(|| {
        format!(
            "created partition {} on {} but pool {pool_name} lists no volume {vol_name} after a refresh",
            part.number,
            device.display()
        )
    })?;
    let path = vol
        .path()
        .with_context(|| format!("volume {vol_name}: no path"))?;
    let info = vol
        .info()
        .with_context(|| format!("volume {vol_name}: cannot read its capacity"))?;
    let mut extra = base;
    extra["name"] = vol_name.clone().into();
    extra["number"] = part.number.into();
    extra["created"] = serde_json::json!({"start": part.start, "end": part.end});
    extra["volume"] = serde_json::json!({"name": vol_name, "path": path,
        "capacity": info.capacity, "start": part.start, "end": part.end});
    print(&o, common.json, extra);
    if !common.json {
        println!(
            "created volume {vol_name} in pool {pool_name}: {path}, {} bytes, partition {} ({}-{})",
            info.capacity, part.number, part.start, part.end
        );
    }
    Ok(())
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
