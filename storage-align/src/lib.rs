//! Partition boundary planning for libvirt disk pools.
//!
//! libvirt's disk pool backend aligns the *end* of a new partition to a cylinder boundary
//! ("on the right") and leaves the start where the free space begins (doc/storage.md).
//! [`boundary`] holds that arithmetic twice: [`boundary::Mode::Libvirt`] is a bit-identical
//! transcription of `virStorageBackendDiskPartBoundaries` (defects included, so results can be
//! compared with a real libvirt), and [`boundary::Mode::Exact`] is the corrected computation
//! used by default.
//!
//! Around it: [`size`] parses virsh-style sizes and [`geometry`] BIOS geometries;
//! [`parted`] reads a disk's label, geometry and free extents through parted's machine output
//! and creates partitions with it; [`mbr`] reads the MBR partition types that parted's machine
//! output leaves out; [`limits`] reads a device's I/O limits below the host [`root`];
//! [`placement`] turns options and a disk into a planned or created partition; [`pool`] reads
//! a libvirt disk pool's XML and predicts the volume name libvirt gives a new partition;
//! [`volume`] creates that partition as a pool volume through the libvirt API; [`report`] is
//! what the commands print. [`cli`] is the binary's command line (for its shell completions).

pub mod boundary;
pub mod cli;
pub mod geometry;
pub mod limits;
pub mod mbr;
pub mod parted;
pub mod placement;
pub mod pool;
pub mod report;
pub mod root;
pub mod size;
pub mod volume;
