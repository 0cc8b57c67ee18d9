//! The command line of the `nss-libvirt-guest` diagnostic binary (src/main.rs), here so that
//! tools can see it without running it: the shell completions (packaging/completions) are
//! generated from [`command`]. It lives in the command's package, not the module's: the NSS
//! shared object carries none of it.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

/// `nss-libvirt-guest [--lease-dir DIR] [--nsswitch FILE] lookup|list|check ...`
#[derive(Parser)]
#[command(
    name = "nss-libvirt-guest",
    version,
    about = "Explain how libvirt guest names resolve through the libvirt / libvirt_guest NSS modules",
    long_about = "Explain how libvirt guest names resolve through the libvirt (DHCP hostname) and \
libvirt_guest (domain name) NSS services, using the same code as libnss_libvirt{,_guest}.so.2.\n\n\
Exit status: 0 resolved / nothing wrong, 1 not resolved / problems found or errors, 2 wrong usage, \
3 (check) guest names resolve but with warnings."
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
    /// Lease directory to read instead of /var/lib/libvirt/dnsmasq (tests).
    #[arg(long, global = true, hide = true)]
    pub lease_dir: Option<PathBuf>,
    /// Running domains' MAC map to read instead of /run/virt-hostkit/guests.macs (tests).
    #[arg(long, global = true, hide = true)]
    pub guests_map: Option<PathBuf>,
    /// `check`: read FILE instead of ROOT/etc/nsswitch.conf.
    #[arg(long, global = true, value_name = "FILE")]
    pub nsswitch: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Svc {
    Libvirt,
    #[value(name = "libvirt_guest")]
    LibvirtGuest,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Resolve NAME as the module does; --explain shows every lease considered and why.
    Lookup {
        name: String,
        /// Only this service (default: libvirt, then libvirt_guest, as in nsswitch.conf).
        #[arg(long, value_enum)]
        service: Option<Svc>,
        /// Show every lease file read and every entry considered, taken or rejected and why.
        #[arg(long)]
        explain: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show every live guest: domain, hostname, MAC, address, expiry, bridge, source.
    ///
    /// Source: lease (libvirt's dnsmasq) or neighbour (a running domain without a lease whose
    /// MAC the host's neighbour table has seen at that address).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Find why guest names would not reach the libvirt services, and say how to fix it.
    ///
    /// Reads the hosts: line of nsswitch.conf as the running glibc does and reports: the
    /// services missing; a service before them whose action ([NOTFOUND=return],
    /// [!UNAVAIL=return]) ends the lookup first; DNS or systemd-resolved asked first; the
    /// module file missing for a listed service; a hosts cache (nscd, unscd) keeping stale
    /// or negative answers; authselect managing the file (Fedora, RHEL). Each with the fix.
    /// Exit status: 0 nothing to fix, 1 guest names do not resolve, 3 they resolve with
    /// warnings, 2 wrong usage.
    Check {
        /// Print JSON (verdict, the parsed hosts: line, modules, caches, findings with fixes).
        #[arg(long)]
        json: bool,
        /// Check the host tree under DIR instead of / (etc/nsswitch.conf, etc/nscd.conf,
        /// etc/ld.so.conf, etc/authselect, proc).
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
        /// Read nsswitch.conf as glibc VERSION does instead of the running glibc (tests).
        #[arg(long, value_name = "VERSION", hide = true)]
        glibc: Option<String>,
    },
    /// libvirt hook (qemu.d, lxc.d): keep the map of running domains' MACs up to date.
    ///
    /// Run by the wrappers installed in /etc/libvirt/hooks/qemu.d and lxc.d with libvirt's
    /// arguments and the domain XML on stdin. started, reconnect and attach record the
    /// domain's interface MACs, stopped and release remove it; the map
    /// (/run/virt-hostkit/guests.macs) is rebuilt from libvirt's status files when missing.
    /// The libvirt_guest service answers a running domain's name with the addresses the
    /// host's neighbour table has seen behind those MACs when it has no lease. Exits 0 even
    /// when the map cannot be written (the error goes to stderr, which libvirt logs): a
    /// failing hook would make libvirt abort or kill the guest.
    Hook {
        /// qemu or lxc.
        object: String,
        /// The domain's name.
        domain: String,
        /// libvirt's operation (started, stopped, release, reconnect, ...).
        operation: String,
        /// libvirt's sub-operation (begin, end, -).
        sub_operation: Option<String>,
        /// libvirt's extra argument.
        extra: Option<String>,
        /// Work under DIR instead of / (DIR/run/virt-hostkit, DIR/run/libvirt).
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
    },
}

/// The `clap::Command` the binary parses with (for completions and man page checks).
pub fn command() -> clap::Command {
    Cli::command()
}
