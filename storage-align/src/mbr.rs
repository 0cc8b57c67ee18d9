//! The four primary slots of an MBR (dos label), read from the first sector of the disk.
//!
//! parted's machine output (`parted -m`) does not say which partition is extended, and
//! libvirt's choice between a primary and a logical partition depends on it: with four
//! primary+extended partitions it creates a logical one, inside the extended partition.
//! The MBR layout is fixed (entries at byte 446, 16 bytes each, little-endian LBAs), so the
//! fields are decoded with `from_le_bytes`, correct on big-endian s390x too.

use std::io::Read;
use std::path::Path;

/// One used primary slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Partition number (1..=4), as parted and the kernel number it.
    pub number: u32,
    /// The system id byte (0x05, 0x0f, 0x85 = extended).
    pub system_id: u8,
    pub start_lba: u32,
    pub sectors: u32,
}

impl Slot {
    pub fn is_extended(&self) -> bool {
        matches!(self.system_id, 0x05 | 0x0f | 0x85)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MbrError {
    #[error("cannot read the MBR of {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} has no MBR boot signature (0x55AA at byte 510)")]
    NoSignature(String),
}

/// Decodes the used slots of a 512-byte MBR.
pub fn parse(sector: &[u8; 512]) -> Option<Vec<Slot>> {
    if sector[510] != 0x55 || sector[511] != 0xAA {
        return None;
    }
    let mut slots = Vec::new();
    for i in 0..4 {
        let e = &sector[446 + 16 * i..446 + 16 * (i + 1)];
        let system_id = e[4];
        if system_id == 0 {
            continue;
        }
        slots.push(Slot {
            number: i as u32 + 1,
            system_id,
            start_lba: u32::from_le_bytes([e[8], e[9], e[10], e[11]]),
            sectors: u32::from_le_bytes([e[12], e[13], e[14], e[15]]),
        });
    }
    Some(slots)
}

/// Reads the MBR of a block device or image file.
pub fn read(path: &Path) -> Result<Vec<Slot>, MbrError> {
    let io = |source| MbrError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut buf = [0u8; 512];
    f.read_exact(&mut buf).map_err(io)?;
    parse(&buf).ok_or_else(|| MbrError::NoSignature(path.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_slots_little_endian() {
        let mut s = [0u8; 512];
        s[510] = 0x55;
        s[511] = 0xAA;
        // slot 2: extended, start 2048, 0x01020304 sectors
        let e = &mut s[446 + 16..446 + 32];
        e[4] = 0x05;
        e[8..12].copy_from_slice(&2048u32.to_le_bytes());
        e[12..16].copy_from_slice(&[4, 3, 2, 1]);
        let slots = parse(&s).unwrap();
        assert_eq!(slots.len(), 1);
        assert_eq!(slots[0].number, 2);
        assert!(slots[0].is_extended());
        assert_eq!(slots[0].start_lba, 2048);
        assert_eq!(slots[0].sectors, 0x0102_0304);
        s[511] = 0;
        assert_eq!(parse(&s), None);
    }
}
