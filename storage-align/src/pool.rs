//! What `vol-create` needs from a libvirt disk pool, without talking to libvirt: the pool's
//! type, source device and format from its XML, and the name libvirt will give the new volume.
//!
//! A disk pool's volumes are its partitions, and libvirt names each one after the partition's
//! device node (`loop0p1`, `sdb5`) when it refreshes the pool: a volume cannot be given another
//! name. So the name is predicted from the number parted will assign, before anything changes.

use std::path::{Path, PathBuf};

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::boundary::{Label, PartType};
use crate::parted::Disk;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("pool {pool}: cannot parse its XML: {detail}")]
    Xml { pool: String, detail: String },
    #[error("pool {pool} is a {kind} pool, not a disk pool (vol-create only handles type='disk')")]
    NotDisk { pool: String, kind: String },
    #[error("pool {pool}: no <source><device path=.../> in its definition")]
    NoDevice { pool: String },
}

/// The parts of `<pool type='disk'>` that vol-create uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskPool {
    pub device: PathBuf,
    /// `<source><format type=.../>`; None when absent or `unknown` (libvirt then accepts
    /// whatever label the disk has).
    pub format: Option<String>,
}

/// Reads the pool type, source device and format from `virsh pool-dumpxml`-style XML.
pub fn parse_pool_xml(pool: &str, xml: &str) -> Result<DiskPool, PoolError> {
    let mut r = Reader::from_str(xml);
    let mut path: Vec<Vec<u8>> = Vec::new();
    let (mut kind, mut device, mut format) = (None, None, None);
    let err = |detail: String| PoolError::Xml {
        pool: pool.to_string(),
        detail,
    };
    loop {
        let ev = r.read_event().map_err(|e| err(e.to_string()))?;
        let (e, empty) = match &ev {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                path.pop();
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let name = e.name().as_ref().to_vec();
        let attr = |key: &[u8]| -> Result<Option<String>, PoolError> {
            for a in e.attributes() {
                let a = a.map_err(|x| err(x.to_string()))?;
                if a.key.as_ref() == key {
                    let v = a.unescape_value().map_err(|x| err(x.to_string()))?;
                    return Ok(Some(v.into_owned()));
                }
            }
            Ok(None)
        };
        let parents: Vec<&[u8]> = path.iter().map(|p| p.as_slice()).collect();
        match (parents.as_slice(), name.as_slice()) {
            ([], b"pool") => kind = attr(b"type")?,
            ([b"pool", b"source"], b"device") if device.is_none() => device = attr(b"path")?,
            ([b"pool", b"source"], b"format") => format = attr(b"type")?,
            _ => {}
        }
        if !empty {
            path.push(name);
        }
    }
    let kind = kind.ok_or_else(|| err("no <pool type=...> element".into()))?;
    if kind != "disk" {
        return Err(PoolError::NotDisk {
            pool: pool.to_string(),
            kind,
        });
    }
    let device = device.ok_or_else(|| PoolError::NoDevice {
        pool: pool.to_string(),
    })?;
    Ok(DiskPool {
        device: device.into(),
        format: format.filter(|f| f != "unknown"),
    })
}

/// The number parted gives a new partition starting at `start`: the lowest free primary
/// number (1-4) on dos, logical partitions numbered 5, 6... in disk order (parted renumbers
/// them by position), the lowest free number on the other labels.
pub fn next_number(disk: &Disk, part_type: PartType, start: u64) -> u32 {
    let used = |n: u32| disk.partitions.iter().any(|p| p.number == n);
    match (disk.label, part_type) {
        (Label::Dos, PartType::Logical) => {
            5 + disk
                .partitions
                .iter()
                .filter(|p| p.number >= 5 && p.start < start)
                .count() as u32
        }
        _ => (1..).find(|&n| !used(n)).unwrap_or(1),
    }
}

/// The device node of partition `number` of `device`, as libvirt's parthelper builds it
/// (a `p` separator when the device name ends in a digit: loop0p1, nvme0n1p2, sdb3).
pub fn partition_path(device: &Path, number: u32) -> PathBuf {
    let s = device.as_os_str().to_string_lossy();
    let sep = if s.ends_with(|c: char| c.is_ascii_digit()) {
        "p"
    } else {
        ""
    };
    PathBuf::from(format!("{s}{sep}{number}"))
}

/// The volume name libvirt gives that partition after a refresh: its node's file name.
pub fn volume_name(device: &Path, number: u32) -> String {
    partition_path(device, number)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parted::Partition;

    const XML: &str = "<pool type='disk'>\n  <name>pa</name>\n  <source>\n    \
        <device path='/dev/loop3'>\n      <freeExtent start='1' end='2'/>\n    </device>\n    \
        <format type='dos'/>\n  </source>\n  <target>\n    <path>/dev</path>\n    \
        <format type='ignored'/>\n  </target>\n</pool>\n";

    #[test]
    fn reads_disk_pool() {
        let p = parse_pool_xml("pa", XML).unwrap();
        assert_eq!(p.device, PathBuf::from("/dev/loop3"));
        assert_eq!(p.format.as_deref(), Some("dos"));
        let unknown = XML.replace("'dos'", "'unknown'");
        assert_eq!(parse_pool_xml("pa", &unknown).unwrap().format, None);
    }

    #[test]
    fn refuses_other_pools() {
        let dir = "<pool type='dir'><name>d</name><target><path>/x</path></target></pool>";
        let e = parse_pool_xml("d", dir).unwrap_err().to_string();
        assert!(e.contains("pool d is a dir pool, not a disk pool"), "{e}");
        let nodev = "<pool type='disk'><source><format type='gpt'/></source></pool>";
        assert!(matches!(
            parse_pool_xml("n", nodev),
            Err(PoolError::NoDevice { .. })
        ));
        assert!(matches!(
            parse_pool_xml("b", "<pool type='disk'><source>"),
            Err(PoolError::Xml { .. }) | Err(PoolError::NoDevice { .. })
        ));
        assert!(parse_pool_xml("e", "").is_err());
    }

    fn disk(label: Label, parts: &[(u32, u64)]) -> Disk {
        Disk {
            path: "/dev/loop0".into(),
            size: 1 << 30,
            logical_sector_size: 512,
            physical_sector_size: 512,
            label,
            heads: 255,
            sectors: 2,
            partitions: parts
                .iter()
                .map(|&(number, start)| Partition {
                    number,
                    start,
                    end: start + 999,
                    extended: false,
                })
                .collect(),
            free: vec![],
        }
    }

    #[test]
    fn numbers_like_parted() {
        let d = disk(Label::Dos, &[(1, 1000), (3, 5000)]);
        assert_eq!(next_number(&d, PartType::Primary, 9000), 2);
        assert_eq!(next_number(&d, PartType::Extended, 9000), 2);
        let d = disk(
            Label::Dos,
            &[(1, 0), (2, 0), (3, 0), (4, 0), (5, 1000), (6, 5000)],
        );
        assert_eq!(next_number(&d, PartType::Logical, 9000), 7);
        assert_eq!(next_number(&d, PartType::Logical, 3000), 6);
        let g = disk(Label::Gpt, &[(1, 1000), (2, 5000), (4, 9000)]);
        assert_eq!(next_number(&g, PartType::Primary, 20000), 3);
        assert_eq!(next_number(&disk(Label::Gpt, &[]), PartType::Primary, 0), 1);
    }

    #[test]
    fn names_like_libvirt() {
        assert_eq!(volume_name(Path::new("/dev/loop0"), 1), "loop0p1");
        assert_eq!(volume_name(Path::new("/dev/sdb"), 5), "sdb5");
        assert_eq!(
            partition_path(Path::new("/dev/nvme0n1"), 2),
            PathBuf::from("/dev/nvme0n1p2")
        );
    }
}
