//! `ap-sim`: mount the AP bus simulator as a live sysfs for shell tests and demos.
//!
//! `ap-sim mount DIR --config host.json` mounts the simulated sysfs on `DIR/sys` (DIR stays a
//! plain directory for `etc/`, `run/`, `usr/`) and serves it in the foreground until SIGTERM,
//! SIGINT or SIGHUP (then it unmounts) or until someone unmounts `DIR/sys`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use ap_sim::{HostConfig, Sim};

#[derive(Parser)]
#[command(
    name = "ap-sim",
    version,
    about = "Simulated s390 AP bus and vfio_ap sysfs (FUSE), for tests without IBM Z hardware",
    long_about = "Simulated s390 AP bus and vfio_ap sysfs, mounted over FUSE so that unmodified \
programs (mdevctl, a shell, our binaries) see a live /sys/bus/ap, /sys/devices/vfio_ap and \
/sys/bus/mdev with the kernel's semantics: mask parsing, EBUSY, queue rebinding, mdev \
create/remove and assign errors. Needs root and /dev/fuse.\n\n\
Use with mdevctl >= 1.3:   MDEVCTL_ENV_ROOT=DIR mdevctl list\n\
Use with mdevctl 1.2:      unshare -m sh -c 'mount --bind DIR/sys /sys; mdevctl list'"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Mount the simulated sysfs on DIR/sys and serve it until SIGTERM/SIGINT or unmount.
    Mount {
        /// Root directory; the simulator is mounted on DIR/sys (created if missing).
        dir: PathBuf,
        /// Host description (JSON, see `ap-sim example-config`); the example host if absent.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Write our PID to FILE once the mount is live (tests wait for this file).
        #[arg(long, value_name = "FILE")]
        ready_file: Option<PathBuf>,
        /// Send udev's netlink events (group 2, libudev's format) for the device events a
        /// write causes (mdev add/bind/unbind/remove, queue rebinds, `uevent` writes), in the
        /// writer's network namespace, before the write returns. For udev listeners such as
        /// libvirt's node device driver.
        #[arg(long)]
        udev_events: bool,
    },
    /// Print the example host configuration (JSON) to adapt for --config.
    ExampleConfig,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("ap-sim: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::ExampleConfig => {
            let json = serde_json::to_string_pretty(&HostConfig::example())?;
            let mut out = std::io::stdout().lock();
            // a closed pipe (`| head`) is not an error
            match writeln!(out, "{json}") {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                r => r.context("cannot write to stdout"),
            }
        }
        Cmd::Mount {
            dir,
            config,
            ready_file,
            udev_events,
        } => mount(dir, config, ready_file, udev_events),
    }
}

fn load(config: Option<PathBuf>) -> Result<Sim> {
    let cfg = match config {
        None => HostConfig::example(),
        Some(p) => {
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("invalid host config {}", p.display()))?
        }
    };
    Sim::new(&cfg).context("invalid host config")
}

/// Block the stop signals in every thread (the FUSE thread inherits the mask), so that the
/// main thread alone receives them through sigtimedwait.
fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise the local set; pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn mount(
    dir: PathBuf,
    config: Option<PathBuf>,
    ready_file: Option<PathBuf>,
    udev_events: bool,
) -> Result<()> {
    let sim = Arc::new(load(config)?);
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let set = stop_signals();
    let opts = ap_sim::MountOptions { udev_events };
    let mounted = ap_sim::Mounted::with_options(sim, &dir, opts)?;
    eprintln!("ap-sim: serving {}", mounted.sys().display());
    if let Some(f) = &ready_file {
        let r = std::fs::write(f, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write {}", f.display()));
        if let Err(e) = r {
            mounted.unmount().ok();
            return Err(e);
        }
    }
    let timeout = libc::timespec {
        tv_sec: 0,
        tv_nsec: 200_000_000,
    };
    loop {
        // SAFETY: set is an initialised sigset; a null siginfo pointer is allowed.
        let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
        if sig > 0 {
            eprintln!(
                "ap-sim: signal {sig}, unmounting {}",
                mounted.sys().display()
            );
            break;
        }
        if !mounted.is_serving() {
            eprintln!("ap-sim: {} was unmounted", mounted.sys().display());
            break;
        }
    }
    if let Some(f) = &ready_file {
        std::fs::remove_file(f).ok();
    }
    mounted.unmount().context("unmount failed")
}
