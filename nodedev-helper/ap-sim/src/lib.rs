//! AP bus + vfio_ap simulator: a faithful model of the s390 AP bus and vfio_ap sysfs (masks,
//! cards, queues and their driver binding, the `matrix` mdev parent, mdevs and their
//! attributes), usable in-process ([`Sim`]) and mounted as a real filesystem over FUSE
//! ([`mount`]) so that unmodified programs — mdevctl, shell `echo -2 > apmask`, our binaries —
//! see a live sysfs, optionally with udev's netlink events ([`uevent`], [`netlink`]). What it
//! simulates is described in doc/ap-bus.md; README.md has the layout and the kernel behaviours
//! it pins.

pub mod fuse;
pub mod mask;
pub mod model;
pub mod netlink;
pub mod uevent;

pub use fuse::{MountError, MountOptions, Mounted};
pub use mask::{Mask, kstrtoul};
pub use model::{
    CardConfig, ConfigError, DirEntry, Driver, HostConfig, Kind, MDEV_TYPE, MdevState, Sim, Stat,
};
pub use uevent::Uevent;
