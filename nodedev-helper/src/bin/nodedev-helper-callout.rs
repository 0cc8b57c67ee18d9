//! `nodedev-helper-callout`: the mdevctl callout as its own executable, for mdevctl's callout
//! directories. Same code and behaviour as `nodedev-helper callout` (see the library's
//! `callout` module), but it never touches libvirt, so it does not load libvirt.so and its
//! ~55 dependent libraries: that dynamic linking alone costs tens of milliseconds per run,
//! more than everything the callout does, and mdevctl runs the callout for every operation.
//!
//! It is installed as `00-nodedev-helper` in mdevctl's callout directories (a symbolic link,
//! no shell in between) and starts without Rust's runtime setup (`no_main`): that setup asks
//! glibc for the main thread's stack bounds to install a stack-overflow guard, and glibc
//! answers by reading and parsing `/proc/self/maps`, about a third of a millisecond on every
//! run — a third of the process start this callout is measured against. std still gets argv
//! (glibc passes it to std's `.init_array` hook); without the guard a stack overflow is still
//! a SIGSEGV, only without Rust's message. SIGPIPE keeps its default: mdevctl reads our pipes
//! to the end.

#![no_main]

use std::ffi::{c_char, c_int};
use std::io::Write;

use nodedev_helper::callout;
use nodedev_helper::root::Root;

/// The C entry point glibc's start code calls (instead of Rust's `lang_start`). A panic is
/// caught here and exits 1 like any failure: unwinding out of an `extern "C"` function would
/// abort, and mdevctl takes a callout killed by a signal for "not mine" and asks the next one.
#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    let code = std::panic::catch_unwind(run).unwrap_or(1);
    // Rust's runtime would flush stdout on the way out; C's exit does not know its buffer
    let _ = std::io::stdout().flush();
    code
}

fn run() -> c_int {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let args = argv.get(1..).unwrap_or_default();
    match callout::main_with_args(&Root::from_env(), args) {
        Ok(code) => u8::try_from(code).map_or(1, c_int::from),
        Err(e) => {
            eprintln!("nodedev-helper-callout: {e:#}");
            1
        }
    }
}
