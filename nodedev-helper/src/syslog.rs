//! Best-effort messages to the system log: one datagram per message to `<root>/dev/log`,
//! where journald and rsyslog both listen, in the classic `<PRI>TAG[PID]: MSG` form.
//!
//! Used where our output has no reader otherwise: libvirt throws away the stderr of a
//! callout that succeeded (so warnings printed at `virsh nodedev-define` would be lost), and
//! libvirt hooks have no terminal. No libc `syslog()`: a plain socket needs no unsafe code and
//! follows the host [`Root`], so tests read the log from a socket of their own. A missing or
//! full log socket never fails the caller.

use std::fmt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use crate::root::Root;

/// Identifier of the callout's (and the CLI's) messages.
pub const IDENT: &str = "nodedev-helper";

/// syslog severities we use (facility daemon).
#[derive(Debug, Clone, Copy)]
pub enum Severity {
    Err = 3,
    Warning = 4,
    Info = 6,
    Debug = 7,
}

/// A log socket and the identifier (syslog tag) our messages carry.
#[derive(Debug, Clone)]
pub struct Syslog {
    socket: PathBuf,
    ident: &'static str,
}

impl Syslog {
    /// Messages tagged `ident` to `<root>/dev/log`.
    pub fn new(root: &Root, ident: &'static str) -> Self {
        Syslog {
            socket: root.path("dev/log"),
            ident,
        }
    }

    /// The datagram for one message.
    pub fn format(&self, sev: Severity, msg: &dyn fmt::Display) -> String {
        const DAEMON: u8 = 3 << 3;
        format!(
            "<{}>{}[{}]: {msg}",
            DAEMON | sev as u8,
            self.ident,
            std::process::id()
        )
    }

    /// Send one message; errors are ignored (best effort).
    pub fn log(&self, sev: Severity, msg: &dyn fmt::Display) {
        if let Ok(s) = UnixDatagram::unbound() {
            let _ = s.send_to(self.format(sev, msg).as_bytes(), &self.socket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_datagram_per_message_with_priority_tag_and_pid() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("dev")).unwrap();
        let sock = UnixDatagram::bind(dir.path().join("dev/log")).unwrap();
        let log = Syslog::new(&Root::new(dir.path()), IDENT);
        log.log(Severity::Warning, &"warning: APQN 2.43 is in use");
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        let pid = std::process::id();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            format!("<28>nodedev-helper[{pid}]: warning: APQN 2.43 is in use")
        );
    }

    #[test]
    fn no_log_socket_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        Syslog::new(&Root::new(dir.path()), IDENT).log(Severity::Err, &"lost");
    }
}
