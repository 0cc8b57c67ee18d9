//! Sending [`Uevent`]s the way udevd does: one datagram per event to the multicast group of
//! udev events (2) of `NETLINK_KOBJECT_UEVENT`, in the network namespace of the process that
//! caused them.
//!
//! Netlink multicast is per network namespace, and programs under test (a libvirtd in a
//! private namespace) listen in their own, so the socket is created in the caller's
//! namespace: a short-lived thread enters `/proc/PID/ns/net` (`setns` changes only the
//! calling thread), opens the socket there (a socket keeps the namespace it was created in)
//! and sends. The FUSE request carries the caller's PID; sending before the write returns
//! means a program that waits for the event after its write cannot miss it.
//!
//! Sending to a netlink multicast group needs CAP_NET_ADMIN (ap-sim runs as root). The
//! receivers (libudev) check the sender's credentials: uid 0.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::uevent::{UDEV_GROUP, Uevent};

/// Send `events` to udev's group in the network namespace of process `pid` (in our PID
/// namespace), each before the next. Nothing to send: nothing happens.
pub fn send_in_netns_of(pid: u32, events: &[Uevent]) -> io::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    let msgs: Vec<Vec<u8>> = events.iter().map(Uevent::libudev_message).collect();
    std::thread::scope(|s| {
        s.spawn(|| -> io::Result<()> {
            // SAFETY: ns is an open namespace file; setns affects only this thread, which
            // ends when the scope does.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            let sock = socket()?;
            for m in &msgs {
                send(&sock, m)?;
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("netlink sender thread panicked")))
    })
}

/// Send `events` to udev's group in our own network namespace.
pub fn send_here(events: &[Uevent]) -> io::Result<()> {
    let sock = socket()?;
    for e in events {
        send(&sock, &e.libudev_message())?;
    }
    Ok(())
}

fn socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_KOBJECT_UEVENT,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn send(sock: &OwnedFd, msg: &[u8]) -> io::Result<()> {
    // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_groups = UDEV_GROUP;
    // SAFETY: msg and addr outlive the call; the lengths are theirs.
    let n = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    // ECONNREFUSED: nobody listens in that namespace, which is not an error for a broadcast
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ECONNREFUSED) {
            return Err(e);
        }
    }
    Ok(())
}
