//! nodedev-helper: vfio_ap crypto passthrough on IBM Z KVM hosts.
//!
//! - [`callout`]: the mdevctl callout that validates `vfio_ap-passthrough` devices
//!   (replaces s390-tools' `ap-check`);
//! - [`ap`]: AP bus masks, persistent udev rule, crypto inventory (replaces `chzdev/lszdev -t ap`),
//!   over the mask engine [`masks`], its change record [`journal`] and the bindings wait
//!   [`bindings`];
//! - [`passthrough`]: one-command crypto passthrough to a guest;
//! - [`hook`]: the libvirt qemu hook for guests with vfio-ap hostdevs;
//! - [`doctor`]: checks the whole crypto passthrough chain of a host.
//!
//! [`vfio_ap`] owns the rules all of them apply (hwtype, who holds an APQN, the masks, the
//! conflict sentences). Shared domain modules: [`root`] (one host root for every path),
//! [`apmask`] (masks and APQNs), [`sysfs`] (attribute and atomic file I/O), [`lock`] (the s390-tools AP configuration
//! lock), [`mdev`] (mdevctl device JSON, active and defined vfio_ap mdevs), [`chzdev`]
//! (chzdev's `apmask=`/`aqmask=` syntax), [`udev_rule`] (the persistent masks in chzdev's
//! 41-ap.rules), [`inventory`] (cards, queues and who owns each APQN), [`dirscan`] (one
//! directory through one descriptor), [`echo`] (untrusted text in messages) and [`autostart_index`] (the callout's cache of
//! auto-start configs). [`cli`] is the command line of the `nodedev-helper` binary.
//!
//! The kernel, mdevctl, s390-tools and libvirt facts these modules rely on (sysfs semantics,
//! file formats, the exact messages we keep and the defects we do not) are written down in
//! doc/ap-bus.md, doc/mdevctl.md, doc/s390-tools.md and doc/hooks.md.

pub mod ap;
pub mod apmask;
pub mod autostart_index;
pub mod bindings;
pub mod callout;
pub mod chzdev;
pub mod cli;
pub mod dirscan;
pub mod doctor;
pub mod echo;
pub mod hook;
pub mod inventory;
pub mod journal;
pub mod lock;
pub mod masks;
pub mod mdev;
pub mod passthrough;
pub mod root;
pub mod sysfs;
pub mod syslog;
pub mod udev_rule;
pub mod vfio_ap;
