//! Partition boundary planning for libvirt disk pools (issue 6).
//!
//! libvirt's disk pool backend aligns the *end* of a new partition to a cylinder boundary
//! ("on the right") and leaves the start where the free space begins. [`boundary`] holds that
//! arithmetic twice: [`boundary::Mode::Libvirt`] is a bit-identical transcription of
//! `virStorageBackendDiskPartBoundaries` (defects included, so results can be compared with a
//! real libvirt), and [`boundary::Mode::Exact`] is the corrected computation used by default.
//! [`size`] parses virsh-style sizes, [`parted`] reads a disk's label, geometry and free
//! extents through parted's machine output and creates partitions with it, [`mbr`] reads the
//! MBR partition types that parted's machine output leaves out, [`pool`] reads a libvirt disk
//! pool's XML and predicts the volume name libvirt gives a new partition. [`cli`] is the
//! binary's command line (for its shell completions).

pub mod boundary;
pub mod cli;
pub mod mbr;
pub mod parted;
pub mod pool;
pub mod size;
