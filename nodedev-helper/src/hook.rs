//! `nodedev-helper libvirt-hook qemu GUEST OPERATION SUB-OPERATION EXTRA`: the libvirt qemu
//! hook for guests with a vfio-ap crypto device.
//!
//! libvirt runs every executable in `/etc/libvirt/hooks/qemu.d/` synchronously, with the
//! domain XML on stdin and a minimal environment (`LC_ALL=C`, PATH, HOME, USER, LOGNAME,
//! TMPDIR); a non-zero exit of `prepare begin` aborts the start and libvirt puts our stderr
//! into the `virsh start` error (doc/hooks.md). So:
//!
//! - `prepare begin`: the guest's one `<hostdev mode='subsystem' type='mdev' model='vfio-ap'>`
//!   must name an mdev that is active, or defined and startable (we start it through mdevctl,
//!   so the mdevctl callout validates it, and record that we did under `run/`), with a
//!   non-empty matrix none of whose APQNs the host still owns, and `vfio_ap` must be loaded.
//!   Every refusal names the guest, the UUID and the APQN.
//! - `release end`: stop the mdevs this hook started for the guest, and only those.
//! - anything else, or a guest without vfio-ap devices: exit 0 touching nothing.
//!
//! The hook never calls libvirt (it would deadlock: libvirtd waits for us), gives mdevctl no
//! handle on our stdout/stderr (its output goes to an unlinked file we read back), and waits
//! for it at most `--timeout` seconds before killing its whole process group.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, IsTerminal, Read, Seek, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use quick_xml::events::Event;

use crate::apmask::Apqn;
use crate::mdev;
use crate::root::Root;
use crate::sysfs::{self, FileError, HostError};
pub use crate::syslog::{Severity, Syslog};
use crate::vfio_ap;

/// Arguments exactly as libvirt passes them to a qemu hook.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Installed as /etc/libvirt/hooks/qemu.d/50-nodedev-helper (a two-line wrapper). libvirt runs it \
with the domain XML on stdin. Only 'prepare begin' and 'release end' do anything, and only for \
guests with a <hostdev mode='subsystem' type='mdev' model='vfio-ap'>.

Exit status: 0 = nothing to do or the crypto device is ready; 1 = the guest must not start \
(the reason is on stderr, which libvirt shows in the 'virsh start' error, and in syslog).

State: RUN/nodedev-helper/libvirt-hook/GUEST lists the mdevs this hook started for GUEST; \
'release end' stops exactly those.")]
pub struct Args {
    /// The hook object; libvirt's qemu driver passes `qemu`.
    #[arg(value_enum)]
    pub object: Object,
    /// Guest (domain) name.
    pub guest: String,
    /// libvirt operation: prepare, start, started, stopped, release, migrate, restore, reconnect...
    pub operation: String,
    /// Sub-operation: begin or end.
    pub sub_operation: String,
    /// Extra argument (`-` when libvirt has none).
    #[arg(default_value = "-")]
    pub extra: String,
    /// mdevctl to start/stop mdevs with (default: `mdevctl` found in PATH, /usr/sbin, /usr/bin).
    #[arg(long, value_name = "PATH")]
    pub mdevctl: Option<PathBuf>,
    /// Seconds to wait for mdevctl before killing it (the hook must never hang libvirtd).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Object {
    Qemu,
}

/// Why the hook refuses a guest or fails.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("cannot parse the domain XML of guest '{guest}' read from stdin: {reason}")]
    Xml { guest: String, reason: String },
    #[error(
        "guest '{guest}' has {} vfio-ap hostdevs ({}): a guest can use only one vfio-ap mediated \
         device; assign all its adapters and domains to one mdev",
        uuids.len(), uuids.join(", ")
    )]
    TooMany { guest: String, uuids: Vec<String> },
    #[error(
        "guest '{guest}' needs vfio-ap mdev {uuid}, but the vfio_ap kernel module is not loaded \
         ({} does not exist): run 'modprobe vfio_ap'; to have it loaded at every boot after the AP \
         masks are applied, persist the masks with 'nodedev-helper ap set' (its udev rule {} ends \
         with RUN{{builtin}}+=\"kmod load vfio_ap\")",
        path.display(), rule.display()
    )]
    NotLoaded {
        guest: String,
        uuid: String,
        path: PathBuf,
        rule: PathBuf,
    },
    #[error(
        "guest '{guest}' needs vfio-ap mdev {uuid}, which is unknown: it is neither active ({}) \
         nor defined ({}); define it with 'mdevctl define' or 'virsh nodedev-define', or correct \
         the UUID in the guest's <hostdev>",
        active.display(), config.display()
    )]
    Unknown {
        guest: String,
        uuid: String,
        active: PathBuf,
        config: PathBuf,
    },
    #[error(
        "guest '{guest}' needs vfio-ap mdev {uuid}: '{command}' {outcome}{}",
        tail(output)
    )]
    Mdevctl {
        guest: String,
        uuid: String,
        command: String,
        outcome: String,
        output: String,
    },
    #[error(
        "guest '{guest}' needs vfio-ap mdev {uuid}, whose matrix is empty (no adapter and usage \
         domain pair is assigned in {}): the guest would see no crypto; assign adapters and domains \
         first ('nodedev-helper passthrough' or 'mdevctl modify')",
        path.display()
    )]
    EmptyMatrix {
        guest: String,
        uuid: String,
        path: PathBuf,
    },
    #[error(
        "guest '{guest}' needs vfio-ap mdev {uuid}, but APQN {} {} still owned by the host's crypto \
         drivers (apmask/aqmask): give {} to vfio_ap with 'nodedev-helper ap set' first",
        list(apqns), if apqns.len() == 1 { "is" } else { "are" },
        if apqns.len() == 1 { "it" } else { "them" }
    )]
    HostOwned {
        guest: String,
        uuid: String,
        apqns: Vec<Apqn>,
    },
    #[error("guest '{guest}': invalid vfio-ap mdev UUID '{uuid}' in the domain XML")]
    BadUuid { guest: String, uuid: String },
    #[error(transparent)]
    State(#[from] HostError),
    #[error("invalid guest name '{0}' (empty, '/' or leading '.')")]
    BadGuest(String),
    #[error("cannot find mdevctl in PATH, /usr/sbin or /usr/bin (is package mdevctl installed?)")]
    NoMdevctl,
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
}

fn tail(output: &str) -> String {
    let t = output.trim();
    if t.is_empty() {
        String::new()
    } else {
        format!(": {t}")
    }
}

fn list(apqns: &[Apqn]) -> String {
    apqns
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One `<hostdev mode='subsystem' type='mdev' model='vfio-ap'>` of the domain XML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfioApHostdev {
    pub uuid: String,
}

/// Finds the vfio-ap hostdevs in a domain XML (any other hostdev is ignored). The XML must be
/// well-formed; a `<hostdev>` without `<source><address uuid=...>` is reported as malformed.
pub fn vfio_ap_hostdevs(guest: &str, xml: &[u8]) -> Result<Vec<VfioApHostdev>, HookError> {
    let xml_err = |reason: String| HookError::Xml {
        guest: guest.to_string(),
        reason,
    };
    let mut reader = quick_xml::Reader::from_reader(xml);
    reader.config_mut().check_end_names = true;
    let mut buf = Vec::new();
    // element names from the root down
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut in_vfio_ap = false;
    let mut uuid: Option<String> = None;
    let mut out = Vec::new();
    let mut saw_root = false;
    loop {
        let pos = reader.buffer_position();
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| xml_err(format!("{e} (near byte {pos})")))?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let name = e.name().as_ref().to_vec();
                if stack.is_empty() {
                    if saw_root {
                        return Err(xml_err("more than one root element".into()));
                    }
                    saw_root = true;
                    if name != b"domain" {
                        return Err(xml_err(format!(
                            "the root element is <{}>, not <domain>",
                            String::from_utf8_lossy(&name)
                        )));
                    }
                }
                let attr = |key: &[u8]| -> Result<Option<String>, HookError> {
                    for a in e.attributes() {
                        let a = a.map_err(|err| xml_err(format!("{err} (near byte {pos})")))?;
                        if a.key.as_ref() == key {
                            let v = a
                                .unescape_value()
                                .map_err(|err| xml_err(format!("{err} (near byte {pos})")))?;
                            return Ok(Some(v.into_owned()));
                        }
                    }
                    Ok(None)
                };
                let path: Vec<&[u8]> = stack.iter().map(|s| s.as_slice()).collect();
                if name == b"hostdev" && path == [b"domain".as_slice(), b"devices".as_slice()] {
                    in_vfio_ap = attr(b"mode")?.as_deref() == Some("subsystem")
                        && attr(b"type")?.as_deref() == Some("mdev")
                        && attr(b"model")?.as_deref() == Some("vfio-ap");
                    uuid = None;
                    if in_vfio_ap && empty {
                        return Err(xml_err(
                            "a vfio-ap <hostdev> has no <source><address uuid='...'/>".into(),
                        ));
                    }
                } else if in_vfio_ap
                    && name == b"address"
                    && stack.len() == 4
                    && stack[3] == b"source"
                {
                    uuid = attr(b"uuid")?;
                }
                if !empty {
                    stack.push(name);
                }
            }
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                if name == b"hostdev" && stack.len() == 2 && in_vfio_ap {
                    in_vfio_ap = false;
                    match uuid.take() {
                        Some(u) => out.push(VfioApHostdev { uuid: u }),
                        None => {
                            return Err(xml_err(
                                "a vfio-ap <hostdev> has no <source><address uuid='...'/>".into(),
                            ));
                        }
                    }
                }
            }
            Event::Eof => break,
            Event::Text(ref t)
                if stack.is_empty() && !t.iter().all(|c| c.is_ascii_whitespace()) =>
            {
                return Err(xml_err("text outside the <domain> element".into()));
            }
            _ => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err(xml_err(format!(
            "the document ends inside <{}>",
            String::from_utf8_lossy(stack.last().map(|v| v.as_slice()).unwrap_or(b""))
        )));
    }
    if !saw_root {
        return Err(xml_err("empty document (no <domain>)".into()));
    }
    for h in &out {
        if !mdev::is_uuid(&h.uuid) {
            return Err(HookError::BadUuid {
                guest: guest.to_string(),
                uuid: h.uuid.clone(),
            });
        }
    }
    Ok(out)
}

/// The hook's messages go to the system log tagged `nodedev-helper-hook`.
pub const SYSLOG_IDENT: &str = "nodedev-helper-hook";

/// What the hook needs from the host, all below one [`Root`].
pub struct Hook<'a> {
    pub root: &'a Root,
    pub mdevctl: Option<PathBuf>,
    pub timeout: Duration,
    pub log: Syslog,
}

/// Outcome of one hook run (exit status 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An operation or guest the hook does not handle.
    Ignored,
    /// `prepare begin`: the mdev was already active and is fit for the guest.
    Ready { uuid: String },
    /// `prepare begin`: the hook started the defined mdev and recorded it.
    Started { uuid: String },
    /// `release end`: the mdevs stopped (those the hook had started and were still active).
    Released { stopped: Vec<String> },
}

impl<'a> Hook<'a> {
    pub fn new(root: &'a Root) -> Self {
        Hook {
            root,
            mdevctl: None,
            timeout: Duration::from_secs(60),
            log: Syslog::new(root, SYSLOG_IDENT),
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.root.path("run/nodedev-helper/libvirt-hook")
    }

    fn state_file(&self, guest: &str) -> Result<PathBuf, HookError> {
        if guest.is_empty() || guest.contains('/') || guest.starts_with('.') {
            return Err(HookError::BadGuest(guest.to_string()));
        }
        Ok(self.state_dir().join(guest))
    }

    /// The mdevs recorded as started by the hook for `guest`.
    pub fn started_for(&self, guest: &str) -> Result<BTreeSet<String>, HookError> {
        let p = self.state_file(guest)?;
        Ok(sysfs::read_optional(&p)?
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| mdev::is_uuid(l))
            .map(String::from)
            .collect())
    }

    fn record(&self, guest: &str, set: &BTreeSet<String>) -> Result<(), HookError> {
        let p = self.state_file(guest)?;
        if set.is_empty() {
            return match fs::remove_file(&p) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(FileError::Write {
                    path: p,
                    cause: source,
                }
                .into()),
            };
        }
        let body: String = set.iter().map(|u| format!("{u}\n")).collect();
        sysfs::write_atomic(&p, body.as_bytes(), 0o644)?;
        Ok(())
    }

    fn active_dir(&self, uuid: &str) -> PathBuf {
        self.root.matrix().join(uuid)
    }
    fn is_active(&self, uuid: &str) -> bool {
        self.active_dir(uuid).is_dir()
    }

    /// Runs the hook for one invocation; `xml` is the domain XML libvirt wrote to stdin.
    pub fn run(&self, guest: &str, op: &str, sub: &str, xml: &[u8]) -> Result<Outcome, HookError> {
        match (op, sub) {
            ("prepare", "begin") => self.prepare(guest, xml),
            ("release", "end") => self.release(guest),
            _ => Ok(Outcome::Ignored),
        }
    }

    fn prepare(&self, guest: &str, xml: &[u8]) -> Result<Outcome, HookError> {
        let devs = vfio_ap_hostdevs(guest, xml)?;
        let uuid = match devs.as_slice() {
            [] => return Ok(Outcome::Ignored),
            [one] => one.uuid.clone(),
            _ => {
                return Err(HookError::TooMany {
                    guest: guest.to_string(),
                    uuids: devs.into_iter().map(|d| d.uuid).collect(),
                });
            }
        };
        self.state_file(guest)?;
        if !self.root.vfio_ap().is_dir() {
            return Err(HookError::NotLoaded {
                guest: guest.to_string(),
                uuid,
                path: self.root.vfio_ap(),
                rule: self.root.ap_udev_rule(),
            });
        }
        let mut started = false;
        if !self.is_active(&uuid) {
            let config = self.root.mdevctl_configs().join(&uuid);
            if !config.is_file() {
                return Err(HookError::Unknown {
                    guest: guest.to_string(),
                    active: self.active_dir(&uuid),
                    uuid,
                    config,
                });
            }
            self.mdevctl(guest, &uuid, "start")?;
            // recorded before any further check: if we die now, release still stops it
            let mut set = self.started_for(guest)?;
            set.insert(uuid.clone());
            self.record(guest, &set)?;
            started = true;
            self.log.log(
                Severity::Info,
                &format_args!("guest '{guest}': started vfio-ap mdev {uuid} through mdevctl"),
            );
            if !self.is_active(&uuid) {
                let err = HookError::Mdevctl {
                    guest: guest.to_string(),
                    command: format!("{} start -u {uuid}", self.mdevctl_path()?.display()),
                    uuid: uuid.clone(),
                    outcome: format!(
                        "succeeded but {} did not appear",
                        self.active_dir(&uuid).display()
                    ),
                    output: String::new(),
                };
                return Err(err);
            }
        }
        match self.check_matrix(guest, &uuid) {
            Ok(()) if started => Ok(Outcome::Started { uuid }),
            Ok(()) => Ok(Outcome::Ready { uuid }),
            Err(e) => {
                if started {
                    // we brought it up only for this guest: take it down again
                    if let Err(stop) = self.stop_recorded(guest, &uuid) {
                        self.log.log(Severity::Warning, &stop);
                    }
                }
                Err(e)
            }
        }
    }

    fn check_matrix(&self, guest: &str, uuid: &str) -> Result<(), HookError> {
        let path = self.active_dir(uuid).join("matrix");
        // the mdev can vanish between the checks (an admin's mdevctl stop): then it is unknown
        let apqns = match mdev::read_active(self.root, uuid)? {
            Some(active) => active.apqns(),
            None => {
                return Err(HookError::Unknown {
                    guest: guest.to_string(),
                    uuid: uuid.to_string(),
                    active: self.active_dir(uuid),
                    config: self.root.mdevctl_configs().join(uuid),
                });
            }
        };
        if apqns.is_empty() {
            return Err(HookError::EmptyMatrix {
                guest: guest.to_string(),
                uuid: uuid.to_string(),
                path,
            });
        }
        let active = vfio_ap::active_masks(self.root)?;
        let owned: Vec<Apqn> = apqns.into_iter().filter(|q| active.keep(*q)).collect();
        if !owned.is_empty() {
            return Err(HookError::HostOwned {
                guest: guest.to_string(),
                uuid: uuid.to_string(),
                apqns: owned,
            });
        }
        Ok(())
    }

    fn stop_recorded(&self, guest: &str, uuid: &str) -> Result<(), HookError> {
        if self.is_active(uuid) {
            self.mdevctl(guest, uuid, "stop")?;
        }
        let mut set = self.started_for(guest)?;
        set.remove(uuid);
        self.record(guest, &set)
    }

    fn release(&self, guest: &str) -> Result<Outcome, HookError> {
        let set = self.started_for(guest)?;
        let mut stopped = Vec::new();
        let mut first_err = None;
        for uuid in &set {
            let was_active = self.is_active(uuid);
            match self.stop_recorded(guest, uuid) {
                Ok(()) if was_active => {
                    self.log.log(
                        Severity::Info,
                        &format_args!(
                            "guest '{guest}': stopped vfio-ap mdev {uuid} (started by this hook)"
                        ),
                    );
                    stopped.push(uuid.clone());
                }
                Ok(()) => {}
                Err(e) => {
                    self.log.log(Severity::Err, &e);
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(Outcome::Released { stopped }),
        }
    }

    fn mdevctl_path(&self) -> Result<PathBuf, HookError> {
        if let Some(p) = &self.mdevctl {
            return Ok(p.clone());
        }
        // a privileged run ignores the caller's PATH ([`crate::root::env`])
        let path = crate::root::env("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
            .map(|d| d.join("mdevctl"))
            .find(|p| p.is_file())
            .ok_or(HookError::NoMdevctl)
    }

    /// `mdevctl ACTION -u UUID` with a bounded wait. Its stdout/stderr go to an unlinked file
    /// (not a pipe: a grandchild keeping a pipe open could block us; and not our own stderr,
    /// which libvirt reads until EOF).
    fn mdevctl(&self, guest: &str, uuid: &str, action: &str) -> Result<(), HookError> {
        let prog = self.mdevctl_path()?;
        let command = format!("{} {action} -u {uuid}", prog.display());
        let io_err = |what: &str, source| HookError::Io {
            what: format!("{what} ({command})"),
            source,
        };
        let dir = self.root.path("run/nodedev-helper");
        fs::create_dir_all(&dir).map_err(|e| io_err("cannot create run/nodedev-helper", e))?;
        let mut out = sysfs::anonymous_file(&dir)
            .map_err(|e| io_err("cannot create the mdevctl output file", e))?;
        let err_file = out
            .try_clone()
            .map_err(|e| io_err("cannot duplicate the output file", e))?;
        let out_file = out
            .try_clone()
            .map_err(|e| io_err("cannot duplicate the output file", e))?;
        let mut cmd = Command::new(&prog);
        cmd.args([action, "-u", uuid])
            .stdin(Stdio::null())
            .stdout(out_file)
            .stderr(err_file)
            .env("LC_ALL", "C")
            .process_group(0);
        // under --root, mdevctl (>= 1.3 honours MDEVCTL_ENV_ROOT) must act on the same host
        // tree the hook checks, not on `/`; on a real host the root is `/` and nothing is set
        if self.root.base() != std::path::Path::new("/") {
            cmd.env(crate::root::MDEVCTL_ENV_ROOT, self.root.base());
        } else {
            cmd.env_remove(crate::root::MDEVCTL_ENV_ROOT);
        }
        let mut child = cmd.spawn().map_err(|e| io_err("cannot run mdevctl", e))?;
        let deadline = Instant::now() + self.timeout;
        let status: Option<ExitStatus> = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) if Instant::now() >= deadline => break None,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(io_err("cannot wait for mdevctl", e)),
            }
        };
        if status.is_none() {
            // the leader is not reaped yet, so its process group id is still ours to kill:
            // mdevctl and whatever it started (callouts) go together
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
        }
        let mut output = String::new();
        let _ = out.rewind();
        let _ = (&mut out).take(64 * 1024).read_to_string(&mut output);
        let mk = |outcome: String| HookError::Mdevctl {
            guest: guest.to_string(),
            uuid: uuid.to_string(),
            command: command.clone(),
            outcome,
            output: output.clone(),
        };
        match status {
            None => Err(mk(format!(
                "did not finish within {} s and was killed",
                self.timeout.as_secs()
            ))),
            Some(st) if st.success() => Ok(()),
            Some(st) => Err(mk(match st.code() {
                Some(c) => format!("failed with exit status {c}"),
                None => format!("was killed ({st})"),
            })),
        }
    }
}

/// Reads libvirt's XML from stdin: always to the end (libvirt writes the whole document into
/// a pipe and must never be left blocked on it), but not from a terminal (a human running the
/// hook by hand for an operation that needs no XML).
fn read_stdin(needed: bool) -> anyhow::Result<Vec<u8>> {
    let stdin = io::stdin();
    let mut buf = Vec::new();
    if stdin.is_terminal() && !needed {
        return Ok(buf);
    }
    stdin
        .lock()
        .read_to_end(&mut buf)
        .map_err(|e| anyhow::anyhow!("cannot read the domain XML from stdin: {e}"))?;
    Ok(buf)
}

pub fn run(root: &Root, args: &Args) -> anyhow::Result<i32> {
    let Object::Qemu = args.object;
    let needed = args.operation == "prepare" && args.sub_operation == "begin";
    let xml = read_stdin(needed)?;
    let mut hook = Hook::new(root);
    hook.mdevctl = args.mdevctl.clone();
    hook.timeout = Duration::from_secs(args.timeout);
    let guest = &args.guest;
    match hook.run(guest, &args.operation, &args.sub_operation, &xml) {
        Ok(Outcome::Ignored) => {
            if needed {
                hook.log.log(
                    Severity::Debug,
                    &format_args!(
                        "guest '{guest}': prepare begin: no vfio-ap hostdev, nothing to do"
                    ),
                );
            }
            Ok(0)
        }
        Ok(Outcome::Ready { uuid }) | Ok(Outcome::Started { uuid }) => {
            hook.log.log(
                Severity::Info,
                &format_args!("guest '{guest}': vfio-ap mdev {uuid} is ready"),
            );
            Ok(0)
        }
        Ok(Outcome::Released { .. }) => Ok(0),
        Err(e) => {
            hook.log.log(Severity::Err, &e);
            let mut err = io::stderr().lock();
            let _ = writeln!(err, "nodedev-helper: {e}");
            Ok(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "6dfd3ec5-e8b3-4e18-a6fe-57bc9eceb920";
    const U2: &str = "0f2f8b8a-1111-4e18-a6fe-57bc9eceb921";

    fn domain(devices: &str) -> String {
        format!("<domain type='kvm'><name>g</name><devices>{devices}</devices></domain>")
    }
    fn ap(uuid: &str) -> String {
        format!(
            "<hostdev mode='subsystem' type='mdev' model='vfio-ap'><source><address uuid='{uuid}'/></source></hostdev>"
        )
    }

    #[test]
    fn finds_vfio_ap_hostdevs_only() {
        let other = "<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee'/></source></hostdev>";
        let xml = domain(&format!("{other}{}<disk type='file'/>", ap(U1)));
        let devs = vfio_ap_hostdevs("g", xml.as_bytes()).unwrap();
        assert_eq!(devs, vec![VfioApHostdev { uuid: U1.into() }]);
        let xml = domain(&format!("{}{}", ap(U1), ap(U2)));
        assert_eq!(vfio_ap_hostdevs("g", xml.as_bytes()).unwrap().len(), 2);
        assert!(
            vfio_ap_hostdevs("g", domain("").as_bytes())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn malformed_xml_is_an_error_naming_the_guest() {
        for bad in [
            "<domain><devices></domain>",
            "<domain><devices>",
            "",
            "<notdomain/>",
            "<domain/><domain/>",
        ] {
            let e = vfio_ap_hostdevs("web1", bad.as_bytes()).unwrap_err();
            assert!(matches!(e, HookError::Xml { .. }), "{bad}: {e}");
            assert!(e.to_string().contains("guest 'web1'"), "{e}");
        }
        let no_uuid =
            domain("<hostdev mode='subsystem' type='mdev' model='vfio-ap'><source/></hostdev>");
        assert!(vfio_ap_hostdevs("g", no_uuid.as_bytes()).is_err());
        let bad_uuid = domain(&ap("../../etc"));
        let e = vfio_ap_hostdevs("g", bad_uuid.as_bytes()).unwrap_err();
        assert!(matches!(e, HookError::BadUuid { .. }), "{e}");
    }

    #[test]
    fn messages_name_guest_uuid_and_apqn() {
        let e = HookError::HostOwned {
            guest: "web1".into(),
            uuid: U1.into(),
            apqns: vec![Apqn::new(5, 44)],
        };
        let s = e.to_string();
        assert!(
            s.contains("guest 'web1'") && s.contains(U1) && s.contains("APQN 5.44 is"),
            "{s}"
        );
    }
}
