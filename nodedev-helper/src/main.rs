//! `nodedev-helper` command line: parses arguments, resolves the host root, dispatches to the
//! library and turns an error into one `nodedev-helper: ...` line and an exit code.

use std::process::ExitCode;

use clap::Parser;
use nodedev_helper::cli::{Cli, Command};
use nodedev_helper::{ap, callout, doctor, hook, passthrough, root::Root};

fn main() -> ExitCode {
    // Installed as `00-nodedev-helper` in mdevctl's callout directory (or run as
    // nodedev-helper-callout): mdevctl passes only the callout's own arguments.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if callout::invoked_as_callout(argv.first()) {
        return finish(callout::main_with_args(&Root::from_env(), &argv[1..]));
    }
    let cli = Cli::parse();
    let root = match Root::resolve(cli.root.as_deref()) {
        Ok(r) => r,
        Err(e) => return finish(Err(e.into())),
    };
    let result = match &cli.command {
        Command::Callout(a) => callout::run(&root, a),
        Command::Ap(a) => ap::run(&root, a),
        Command::Passthrough(a) => passthrough::run(&root, a),
        Command::LibvirtHook(a) => hook::run(&root, a),
        Command::Doctor(a) => doctor::run(&root, a),
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
