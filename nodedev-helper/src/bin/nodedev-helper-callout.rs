//! `nodedev-helper-callout`: the mdevctl callout as its own executable, for mdevctl's callout
//! directories. Same code and behaviour as `nodedev-helper callout` (see the library's
//! `callout` module), but it never touches libvirt, so it does not load libvirt.so and its
//! ~55 dependent libraries: that dynamic linking alone costs tens of milliseconds per run,
//! more than everything the callout does, and mdevctl runs the callout for every operation.

use std::process::ExitCode;

use nodedev_helper::callout;
use nodedev_helper::root::Root;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let args = argv.get(1..).unwrap_or_default();
    match callout::main_with_args(&Root::from_env(), args) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("nodedev-helper-callout: {e:#}");
            ExitCode::from(1)
        }
    }
}
