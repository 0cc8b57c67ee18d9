//! The libvirt qemu hook run as libvirt 9 runs it (doc/hooks.md): the installed wrapper
//! (hooks/libvirt/50-nodedev-helper) with argv `GUEST OPERATION SUB-OPERATION -`, the domain
//! XML on stdin, libvirt's minimal environment; plus the domain XML and the syslog socket the
//! hook logs to.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::BIN;

/// Installs the wrapper as `ROOT/50-nodedev-helper`, with `@SBINDIR@/nodedev-helper` (which
/// install-hooks fills in) pointing at the built binary and `--root ROOT`.
pub fn install_wrapper(root: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hooks/libvirt/50-nodedev-helper");
    let text = fs::read_to_string(&src).unwrap();
    assert!(
        text.contains("exec @SBINDIR@/nodedev-helper libvirt-hook qemu \"$@\""),
        "{text}"
    );
    let text = text.replace(
        "@SBINDIR@/nodedev-helper",
        &format!("'{BIN}' --root '{}'", root.display()),
    );
    let w = root.join("50-nodedev-helper");
    fs::write(&w, text).unwrap();
    fs::set_permissions(&w, fs::Permissions::from_mode(0o755)).unwrap();
    w
}

/// Runs `program args...` as libvirt's virHookCall does: the environment cleared to libvirt's
/// set (PATH starting with `bin_dir`), the XML written to stdin from another thread (libvirt's
/// event loop). Returns the output and whether the whole XML could be written.
pub fn run_as_libvirt(program: &Path, args: &[&str], xml: &str, bin_dir: &Path) -> (Output, bool) {
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin_dir.display());
    let mut tries = 0;
    let mut child = loop {
        let r = Command::new(program)
            .args(args)
            .env_clear()
            .env("LC_ALL", "C")
            .env("PATH", &path)
            .env("HOME", "/root")
            .env("USER", "root")
            .env("LOGNAME", "root")
            .env("TMPDIR", "/tmp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        match r {
            // a script just written can be briefly "busy" (ETXTBSY) while another test
            // thread's fork still holds its write fd (closed at that child's exec): retry
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => break r.unwrap(),
        }
    };
    let mut stdin = child.stdin.take().unwrap();
    let xml = xml.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(xml.as_bytes()).is_ok());
    let out = child.wait_with_output().unwrap();
    (out, writer.join().unwrap())
}

/// A domain definition with one disk and `devices` added.
pub fn domain(name: &str, devices: &str) -> String {
    format!(
        "<domain type='kvm'>\n  <name>{name}</name>\n  <memory unit='KiB'>1048576</memory>\n  \
         <os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type></os>\n  <devices>\n    \
         <disk type='file' device='disk'><source file='/var/lib/libvirt/images/{name}.qcow2'/>\
         <target dev='vda' bus='virtio'/></disk>\n    {devices}\n  </devices>\n</domain>\n"
    )
}

/// A guest's vfio-ap hostdev for the mdev `uuid`.
pub fn ap_hostdev(uuid: &str) -> String {
    format!(
        "<hostdev mode='subsystem' type='mdev' managed='no' model='vfio-ap'>\n      \
         <source><address uuid='{uuid}'/></source>\n    </hostdev>"
    )
}

/// `ROOT/dev/log`, where the hook (through `--root`) sends its syslog lines.
pub struct Syslog(UnixDatagram);

impl Syslog {
    pub fn bind(root: &Path) -> Syslog {
        fs::create_dir_all(root.join("dev")).unwrap();
        let s = UnixDatagram::bind(root.join("dev/log")).unwrap();
        s.set_nonblocking(true).unwrap();
        Syslog(s)
    }

    /// The messages received since the last call.
    pub fn drain(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = self.0.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }
}
