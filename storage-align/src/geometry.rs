//! A disk's BIOS geometry as the command line gives it: `HEADS,SECTORS[,SECTOR_SIZE]`.
//!
//! The cylinder size is heads × sectors × sector size. libvirt multiplies by 512 whatever
//! the real sector size (doc/storage.md, "Inputs"), so the libvirt mode does too.

use std::fmt;
use std::str::FromStr;

use crate::boundary::{LIBVIRT_SECTOR_SIZE, Mode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub heads: u64,
    pub sectors: u64,
    /// The logical sector size; 512 when not given.
    pub sector_size: u64,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum GeometryError {
    #[error("{0:?}: expected HEADS,SECTORS[,SECTOR_SIZE]")]
    Syntax(String),
    #[error("{value:?}: {field:?} is not a number")]
    NotANumber { value: String, field: String },
}

impl FromStr for Geometry {
    type Err = GeometryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(',').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(GeometryError::Syntax(s.to_string()));
        }
        let n = |x: &str| {
            x.trim()
                .parse::<u64>()
                .map_err(|_| GeometryError::NotANumber {
                    value: s.to_string(),
                    field: x.to_string(),
                })
        };
        Ok(Geometry {
            heads: n(parts[0])?,
            sectors: n(parts[1])?,
            sector_size: match parts.get(2) {
                Some(x) => n(x)?,
                None => 512,
            },
        })
    }
}

impl fmt::Display for Geometry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{}", self.heads, self.sectors, self.sector_size)
    }
}

impl Geometry {
    /// Bytes per cylinder in `mode`; None when the product does not fit in 64 bits.
    pub fn cylinder_size(&self, mode: Mode) -> Option<u64> {
        let sector = match mode {
            Mode::Libvirt => LIBVIRT_SECTOR_SIZE,
            Mode::Exact => self.sector_size,
        };
        self.heads.checked_mul(self.sectors)?.checked_mul(sector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_multiplies() {
        let g: Geometry = "255,63".parse().unwrap();
        assert_eq!(g.sector_size, 512);
        assert_eq!(g.cylinder_size(Mode::Exact), Some(8_225_280));
        let g: Geometry = "4, 32, 4096".parse().unwrap();
        assert_eq!(g.cylinder_size(Mode::Exact), Some(4 * 32 * 4096));
        assert_eq!(g.cylinder_size(Mode::Libvirt), Some(4 * 32 * 512));
        let g: Geometry = "4294967296,4294967296".parse().unwrap();
        assert_eq!(g.cylinder_size(Mode::Exact), None);
    }

    #[test]
    fn rejects_malformed() {
        assert!(matches!(
            "255".parse::<Geometry>(),
            Err(GeometryError::Syntax(_))
        ));
        assert!(matches!(
            "1,2,3,4".parse::<Geometry>(),
            Err(GeometryError::Syntax(_))
        ));
        assert_eq!(
            "255,x".parse::<Geometry>(),
            Err(GeometryError::NotANumber {
                value: "255,x".into(),
                field: "x".into()
            })
        );
    }
}
