//! A disk's label, geometry, partitions and free extents, read with GNU parted, and
//! partition creation through `parted -s DEV mkpart`.
//!
//! The same tool libvirt uses (its `libvirt_parthelper` links libparted, its disk backend runs
//! `parted mkpart`), so what we read is what libvirt would read. Machine output (`-m`) is
//! parsed: `unit B print free` for bytes (parted prints inclusive ends; we store exclusive
//! ones) and `unit chs print` for the BIOS geometry line `cylinders:heads:sectors:size;`.
//! Which partition is extended comes from the MBR ([`crate::mbr`]): the machine output does not
//! say, and a free extent inside the extended partition is logical space.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::boundary::{Extent, ExtentKind, Label};

/// A partition as parted lists it, in bytes (`end` inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Partition {
    pub number: u32,
    pub start: u64,
    pub end: u64,
    pub extended: bool,
}

/// What `parted -m DEV unit B print free` + `unit chs print` say about a disk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Disk {
    pub path: PathBuf,
    pub size: u64,
    pub logical_sector_size: u64,
    pub physical_sector_size: u64,
    pub label: Label,
    pub heads: u64,
    pub sectors: u64,
    pub partitions: Vec<Partition>,
    pub free: Vec<Extent>,
}

impl Disk {
    /// Primary + extended partitions on a dos label: libvirt creates a logical partition
    /// once there are four.
    pub fn primary_count(&self) -> usize {
        self.partitions.iter().filter(|p| p.number <= 4).count()
    }

    pub fn extended(&self) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.extended)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PartedError {
    #[error("cannot run parted (is it installed?): {0}")]
    Spawn(std::io::Error),
    #[error(
        "{path} has no partition table (disk label); create one first, e.g. `parted -s {path} mklabel msdos`"
    )]
    NoLabel { path: String },
    #[error("{path} has a {label} partition table, which libvirt disk pools do not support")]
    UnsupportedLabel { path: String, label: String },
    #[error("{path} is busy: {detail}")]
    Busy { path: String, detail: String },
    #[error("parted {args} failed on {path}: {stderr}")]
    Failed {
        path: String,
        args: String,
        stderr: String,
    },
    #[error("cannot parse parted's output for {path}: {detail} in line {line:?}")]
    Parse {
        path: String,
        detail: String,
        line: String,
    },
    #[error(transparent)]
    Mbr(#[from] crate::mbr::MbrError),
    #[error("parted did not create the partition {start}-{end} on {path} (table now: {table})")]
    NotCreated {
        path: String,
        start: u64,
        end: u64,
        table: String,
    },
}

fn run(path: &Path, args: &[&str]) -> Result<String, PartedError> {
    let out = Command::new("parted")
        .arg("-m")
        .arg("-s")
        .arg(path)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .map_err(PartedError::Spawn)?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if stderr.contains("unrecognised disk label") {
        return Err(PartedError::NoLabel {
            path: path.display().to_string(),
        });
    }
    if !out.status.success() {
        if stderr.contains("in use") || stderr.contains("busy") {
            return Err(PartedError::Busy {
                path: path.display().to_string(),
                detail: stderr,
            });
        }
        return Err(PartedError::Failed {
            path: path.display().to_string(),
            args: args.join(" "),
            stderr,
        });
    }
    Ok(stdout)
}

fn bytes(path: &Path, field: &str, line: &str) -> Result<u64, PartedError> {
    field
        .strip_suffix('B')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| PartedError::Parse {
            path: path.display().to_string(),
            detail: format!("expected a byte count like 1024B, got {field:?}"),
            line: line.to_string(),
        })
}

/// The parsed `unit B print free` listing (without the geometry and MBR details).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub size: u64,
    pub logical_sector_size: u64,
    pub physical_sector_size: u64,
    pub label: String,
    /// (number, start, end inclusive)
    pub partitions: Vec<(u32, u64, u64)>,
    /// (start, end exclusive)
    pub free: Vec<(u64, u64)>,
}

/// Parses `parted -m DEV unit B print [free]`.
pub fn parse_listing(path: &Path, text: &str) -> Result<Listing, PartedError> {
    let perr = |detail: &str, line: &str| PartedError::Parse {
        path: path.display().to_string(),
        detail: detail.to_string(),
        line: line.to_string(),
    };
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    match lines.next() {
        Some("BYT;") => {}
        other => return Err(perr("expected BYT; header", other.unwrap_or(""))),
    }
    let dev = lines
        .next()
        .ok_or_else(|| perr("missing device line", ""))?;
    // path:size:transport:logical:physical:label:model:flags; -- the path may contain ':',
    // so fields are taken from the right.
    let f: Vec<&str> = dev.trim_end_matches(';').rsplitn(8, ':').collect();
    if f.len() != 8 {
        return Err(perr("device line has too few fields", dev));
    }
    let (label, physical, logical, size) = (f[2], f[3], f[4], f[6]);
    let num = |s: &str| s.parse::<u64>().map_err(|_| perr("bad sector size", dev));
    let mut listing = Listing {
        size: bytes(path, size, dev)?,
        logical_sector_size: num(logical)?,
        physical_sector_size: num(physical)?,
        label: label.to_string(),
        partitions: Vec::new(),
        free: Vec::new(),
    };
    for line in lines {
        let f: Vec<&str> = line.trim_end_matches(';').split(':').collect();
        if f.len() < 5 {
            return Err(perr("partition line has too few fields", line));
        }
        let start = bytes(path, f[1], line)?;
        let end = bytes(path, f[2], line)?;
        if f[4] == "free" {
            listing.free.push((start, end + 1));
        } else {
            let n = f[0]
                .parse()
                .map_err(|_| perr("bad partition number", line))?;
            listing.partitions.push((n, start, end));
        }
    }
    Ok(listing)
}

/// Parses the BIOS geometry line of `parted -m DEV unit chs print`: `(heads, sectors)`.
pub fn parse_chs(path: &Path, text: &str) -> Result<(u64, u64), PartedError> {
    let perr = |detail: &str, line: &str| PartedError::Parse {
        path: path.display().to_string(),
        detail: detail.to_string(),
        line: line.to_string(),
    };
    let line = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .nth(2)
        .ok_or_else(|| perr("missing geometry line", ""))?;
    let f: Vec<&str> = line.trim_end_matches(';').split(':').collect();
    if f.len() != 4 {
        return Err(perr("expected cylinders:heads:sectors:size", line));
    }
    let n = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| perr("bad geometry number", line))
    };
    Ok((n(f[1])?, n(f[2])?))
}

/// Reads everything [`crate::boundary::plan`] needs from a block device or image file.
pub fn read_disk(path: &Path) -> Result<Disk, PartedError> {
    let listing = parse_listing(path, &run(path, &["unit", "B", "print", "free"])?)?;
    let label = match listing.label.as_str() {
        "unknown" | "" | "loop" => {
            return Err(PartedError::NoLabel {
                path: path.display().to_string(),
            });
        }
        l => Label::parse(l).map_err(|_| PartedError::UnsupportedLabel {
            path: path.display().to_string(),
            label: l.to_string(),
        })?,
    };
    let (heads, sectors) = parse_chs(path, &run(path, &["unit", "chs", "print"])?)?;
    let slots = if label == Label::Dos {
        crate::mbr::read(path)?
    } else {
        Vec::new()
    };
    let partitions: Vec<Partition> = listing
        .partitions
        .iter()
        .map(|&(number, start, end)| Partition {
            number,
            start,
            end,
            extended: slots.iter().any(|s| s.number == number && s.is_extended()),
        })
        .collect();
    let ext = partitions.iter().find(|p| p.extended).copied();
    // libparted's msdos label reserves the trailing partial cylinder as metadata (libvirt's
    // parthelper lists it so), but `parted print free` shows it as free: trim it off.
    let cyl = heads * sectors * listing.logical_sector_size;
    let whole = listing
        .size
        .checked_div(cyl)
        .map_or(listing.size, |n| n * cyl);
    let free = listing
        .free
        .iter()
        .map(|&(start, end)| {
            if label == Label::Dos && end == listing.size && whole > start {
                (start, whole)
            } else {
                (start, end)
            }
        })
        .map(|(start, end)| Extent {
            start,
            end,
            kind: match ext {
                Some(e) if start >= e.start && end <= e.end + 1 => ExtentKind::Logical,
                _ => ExtentKind::Normal,
            },
        })
        .collect();
    Ok(Disk {
        path: path.to_path_buf(),
        size: listing.size,
        logical_sector_size: listing.logical_sector_size,
        physical_sector_size: listing.physical_sector_size,
        label,
        heads,
        sectors,
        partitions,
        free,
    })
}

/// Fails with [`PartedError::Busy`] if a block device is held exclusively (mounted, in use by
/// device-mapper, a RAID...): the kernel would refuse to re-read its partition table.
pub fn check_not_busy(path: &Path) -> Result<(), PartedError> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let is_block = std::fs::metadata(path)
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false);
    if !is_block {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Err(PartedError::Busy {
            path: path.display().to_string(),
            detail: "the device or one of its partitions is in use (mounted or held)".into(),
        }),
        Err(_) => Ok(()),
    }
}

/// Runs `parted -s DEV mkpart <type> <start>B <end>B` (libvirt's command line; gpt and
/// the other labels get `primary`, which parted takes as the partition name) and reads the
/// table back: the partition must exist with these boundaries, taken to whole sectors the way
/// parted does (the start's sector from its first byte, the end's sector to its last byte:
/// libvirt's unaligned gpt ends grow up to the end of their sector).
pub fn mkpart(
    path: &Path,
    kind: &str,
    start: u64,
    end: u64,
    sector_size: u64,
) -> Result<Partition, PartedError> {
    check_not_busy(path)?;
    let s = format!("{start}B");
    let e = format!("{end}B");
    run(path, &["mkpart", kind, &s, &e])?;
    let ss = sector_size.max(1);
    let (start, end) = (start / ss * ss, (end / ss + 1) * ss - 1);
    let listing = parse_listing(path, &run(path, &["unit", "B", "print"])?)?;
    listing
        .partitions
        .iter()
        .find(|&&(_, ps, pe)| ps == start && pe == end)
        .map(|&(number, start, end)| Partition {
            number,
            start,
            end,
            extended: kind == "extended",
        })
        .ok_or_else(|| PartedError::NotCreated {
            path: path.display().to_string(),
            start,
            end,
            table: listing
                .partitions
                .iter()
                .map(|(n, s, e)| format!("{n}:{s}-{e}"))
                .collect::<Vec<_>>()
                .join(" "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_print_free() {
        let text = "BYT;\n/tmp/a:b.img:104857600B:file:512:512:msdos::;\n\
            1:16384B:1048575B:1032192B:free;\n1:1048576B:50000383B:48951808B:::lba;\n\
            5:1049088B:3000319B:1951232B:::;\n1:3000320B:50000383B:47000064B:free;\n";
        let l = parse_listing(Path::new("/tmp/a:b.img"), text).unwrap();
        assert_eq!(l.size, 104_857_600);
        assert_eq!(l.logical_sector_size, 512);
        assert_eq!(l.label, "msdos");
        assert_eq!(
            l.partitions,
            vec![(1, 1_048_576, 50_000_383), (5, 1_049_088, 3_000_319)]
        );
        assert_eq!(l.free, vec![(16384, 1_048_576), (3_000_320, 50_000_384)]);
    }

    #[test]
    fn parses_chs() {
        let text = "CHS;\n/tmp/t.img:1599,3,31:file:512:512:msdos::;\n1600:4:32:65.5kB;\n";
        assert_eq!(parse_chs(Path::new("/tmp/t.img"), text).unwrap(), (4, 32));
    }

    #[test]
    fn rejects_garbage() {
        let p = Path::new("x");
        assert!(parse_listing(p, "").is_err());
        assert!(parse_listing(p, "BYT;\nshort;\n").is_err());
        assert!(parse_listing(p, "BYT;\nx:1B:file:512:512:gpt::;\n1:12:13B:1B:free;\n").is_err());
        assert!(parse_chs(p, "CHS;\nx;\n").is_err());
    }
}
