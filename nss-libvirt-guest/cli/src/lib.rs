//! The `nss-libvirt-guest` diagnostic command, a package of its own so that the NSS module's
//! package (`nss-libvirt-guest`, the `.so` that sshd, sudo and systemd load) depends on libc
//! and nothing of the command's (clap, anyhow, serde_json). The command uses the module's
//! rlib for every lookup, so it answers exactly as the module does.
//!
//! [`cli`] is the command line (also read by the shell completions generator).

pub mod cli;
