//! `nodedev-helper libvirt-hook qemu GUEST OPERATION SUB-OPERATION EXTRA` (issue 7; in progress).

use crate::root::Root;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_root: &Root, _args: &Args) -> anyhow::Result<i32> {
    anyhow::bail!("the libvirt hook is not implemented yet")
}
