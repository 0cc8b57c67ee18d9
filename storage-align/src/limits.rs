//! A block device's I/O limits from sysfs, for `--align-start optimal`.
//!
//! parted's `--align optimal` starts partitions on a multiple of the device's
//! `queue/optimal_io_size` plus its `alignment_offset` (`/sys/block/<dev>/`), and on 1 MiB
//! when the device reports no optimal size (0) — as do image files, which have no queue.

use std::path::{Path, PathBuf};

use crate::boundary::{MIB, StartAlign};
use crate::root::Root;

#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a number: {value:?}", path.display())]
    NotANumber { path: PathBuf, value: String },
}

/// The start alignment parted's `--align optimal` would use for `device`.
pub fn optimal_start(root: &Root, device: Option<&Path>) -> Result<StartAlign, LimitsError> {
    let name = device
        .and_then(|d| std::fs::canonicalize(d).ok())
        .filter(|d| d.starts_with("/dev"))
        .and_then(|d| d.file_name().map(|n| n.to_owned()));
    let Some(name) = name else {
        return Ok(StartAlign {
            grain: MIB,
            offset: 0,
        });
    };
    let dir = root.block(&name);
    let io = read_number(&dir.join("queue/optimal_io_size"))?;
    let offset = read_number(&dir.join("alignment_offset"))?;
    Ok(StartAlign {
        grain: if io == 0 { MIB } else { io },
        offset,
    })
}

fn read_number(path: &Path) -> Result<u64, LimitsError> {
    let s = std::fs::read_to_string(path).map_err(|source| LimitsError::Read {
        path: path.to_owned(),
        source,
    })?;
    s.trim().parse().map_err(|_| LimitsError::NotANumber {
        path: path.to_owned(),
        value: s.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(io: &str, offset: &str) -> tempfile::TempDir {
        // /dev/null is a device node every system has; its sysfs entry is faked under the root
        let d = tempfile::tempdir().unwrap();
        let b = d.path().join("sys/block/null");
        std::fs::create_dir_all(b.join("queue")).unwrap();
        std::fs::write(b.join("queue/optimal_io_size"), io).unwrap();
        std::fs::write(b.join("alignment_offset"), offset).unwrap();
        d
    }

    #[test]
    fn reads_the_device_limits_below_the_root() {
        let d = host("4194304\n", "512\n");
        let a = optimal_start(&Root::new(d.path()), Some(Path::new("/dev/null"))).unwrap();
        assert_eq!(
            a,
            StartAlign {
                grain: 4 << 20,
                offset: 512
            }
        );
        let d = host("0\n", "0\n");
        let a = optimal_start(&Root::new(d.path()), Some(Path::new("/dev/null"))).unwrap();
        assert_eq!(a.grain, MIB, "no optimal size reported: 1 MiB, as parted");
    }

    #[test]
    fn image_files_and_no_device_get_one_mib() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("disk.img");
        std::fs::write(&img, b"").unwrap();
        let r = Root::new(d.path());
        assert_eq!(optimal_start(&r, Some(&img)).unwrap().grain, MIB);
        assert_eq!(optimal_start(&r, None).unwrap().grain, MIB);
    }

    #[test]
    fn bad_sysfs_values_name_the_file() {
        let d = host("lots\n", "0\n");
        let e = optimal_start(&Root::new(d.path()), Some(Path::new("/dev/null")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("optimal_io_size") && e.contains("lots"), "{e}");
        let d = tempfile::tempdir().unwrap();
        let e = optimal_start(&Root::new(d.path()), Some(Path::new("/dev/null")))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot read ") && e.contains("sys/block/null"),
            "{e}"
        );
    }
}
