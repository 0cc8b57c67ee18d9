//! The mdevctl callout for `vfio_ap-passthrough` devices (issue 4; in progress).

use crate::root::Root;

/// `nodedev-helper callout -t TYPE -e EVENT -a ACTION -s STATE -u UUID -p PARENT`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_root: &Root, _args: &Args) -> anyhow::Result<i32> {
    anyhow::bail!("the callout is not implemented yet")
}
