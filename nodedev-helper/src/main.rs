//! `nodedev-helper` command line: parses arguments, resolves the host root, dispatches to the
//! library and turns an error into one `nodedev-helper: ...` line and an exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nodedev_helper::{ap, callout, hook, passthrough, root::Root};

#[derive(Debug, Parser)]
#[command(
    name = "nodedev-helper",
    version,
    about = "vfio_ap crypto passthrough for KVM guests on IBM Z",
    long_about = "Validates vfio_ap mediated devices as an mdevctl callout, manages the AP bus \
                  masks (active and persistent), hands crypto domains to guests and checks them \
                  when libvirt starts a guest."
)]
struct Cli {
    /// Host root all paths are resolved below (sys/, etc/, run/). Default: `/`, or
    /// MDEVCTL_ENV_ROOT when mdevctl sets it.
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// mdevctl callout for vfio_ap-passthrough devices (argv as mdevctl passes it).
    Callout(callout::Args),
    /// AP bus masks and crypto inventory.
    Ap(ap::Args),
    /// Hand crypto domains to a guest in one command (or take them back).
    Passthrough(passthrough::Args),
    /// libvirt qemu hook (installed in /etc/libvirt/hooks/qemu.d/).
    LibvirtHook(hook::Args),
}

fn main() -> ExitCode {
    // Installed as a link in mdevctl's callout directory: mdevctl passes only the callout's
    // own arguments, so any other program name means "be the callout".
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if callout::invoked_as_callout(argv.first()) {
        return finish(callout::main_with_args(&Root::resolve(None), &argv[1..]));
    }
    let cli = Cli::parse();
    let root = Root::resolve(cli.root.as_deref());
    let result = match &cli.command {
        Command::Callout(a) => callout::run(&root, a),
        Command::Ap(a) => ap::run(&root, a),
        Command::Passthrough(a) => passthrough::run(&root, a),
        Command::LibvirtHook(a) => hook::run(&root, a),
    };
    finish(result)
}

/// Turns a command's result into the exit code; an error is printed once with its chain.
fn finish(result: anyhow::Result<i32>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("nodedev-helper: {e:#}");
            ExitCode::from(1)
        }
    }
}
