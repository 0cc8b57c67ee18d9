//! `nodedev-helper passthrough` (issue 5; in progress).

use crate::root::Root;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_root: &Root, _args: &Args) -> anyhow::Result<i32> {
    anyhow::bail!("passthrough is not implemented yet")
}
