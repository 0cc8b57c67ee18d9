//! The `nodedev-helper` command line (parsed by src/main.rs), here so that tools can see it
//! without running it: the shell completions (packaging/completions) are generated from
//! [`command`].

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

use crate::{ap, callout, doctor, hook, passthrough};

/// `nodedev-helper [--root DIR] callout|ap|passthrough|libvirt-hook ...`
#[derive(Debug, Parser)]
#[command(
    name = "nodedev-helper",
    version,
    about = "vfio_ap crypto passthrough for KVM guests on IBM Z",
    long_about = "Validates vfio_ap mediated devices as an mdevctl callout, manages the AP bus \
                  masks (active and persistent), hands crypto domains to guests and checks them \
                  when libvirt starts a guest."
)]
pub struct Cli {
    /// Host root all paths are resolved below (sys/, etc/, run/). Default: `/`, or
    /// MDEVCTL_ENV_ROOT when mdevctl sets it. A setuid/setgid/capability run honours neither.
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// mdevctl callout for vfio_ap-passthrough devices (argv as mdevctl passes it).
    Callout(callout::Args),
    /// AP bus masks and crypto inventory.
    Ap(ap::Args),
    /// Hand crypto domains to a guest in one command (or take them back).
    Passthrough(passthrough::Args),
    /// libvirt qemu hook (installed in /etc/libvirt/hooks/qemu.d/).
    LibvirtHook(hook::Args),
    /// Check the crypto passthrough chain of this host; say what is missing and how to fix it.
    Doctor(doctor::Args),
}

/// The `clap::Command` the binary parses with (for completions).
pub fn command() -> clap::Command {
    Cli::command()
}
