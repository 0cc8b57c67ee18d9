//! `nodedev-helper ap show|set|list|wait-bindings` (issue 5; in progress).

use crate::root::Root;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_root: &Root, _args: &Args) -> anyhow::Result<i32> {
    anyhow::bail!("ap is not implemented yet")
}
