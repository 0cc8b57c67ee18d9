//! `nodedev-helper` command line: parses arguments, resolves the host root, dispatches to the
//! library and turns an error into one `nodedev-helper: ...` line and an exit code.

use std::process::ExitCode;

use clap::Parser;
use nodedev_helper::cli::{Cli, Command};
use nodedev_helper::{ap, callout, hook, passthrough, root::Root};

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
