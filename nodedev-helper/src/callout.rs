//! The mdevctl callout for `vfio_ap-passthrough` devices; replaces s390-tools' `ap-check`.
//!
//! mdevctl runs every executable in its callout directories as
//! `SCRIPT -t TYPE -e EVENT -a ACTION -s STATE -u UUID -p PARENT`, with the device JSON on
//! stdin for `pre`/`post`/`live` (doc/mdevctl.md). Exit 2 means "not my
//! type"; a non-zero exit in `pre` aborts the operation and mdevctl shows our stderr. The
//! first script answering anything but 2 owns the device type.
//!
//! What we answer:
//! - `get capabilities`: the v2 handshake (mdevctl ≥ 1.3): what mdevctl offers intersected
//!   with what we handle (so mdevctl calls us for `live`); mdevctl 1.2 never asks and uses us
//!   unversioned, which works the same.
//! - `pre define|modify`: the device's values, conflicts with other auto-start configs and
//!   the persistent AP masks (errors for `start: auto`, warnings for manual devices), like
//!   ap-check, plus range, hwtype and active-device checks it lacks.
//! - `pre start`: vfio_ap loaded, usage domain present, conflicts with active mdevs and the
//!   active masks, hwtype, ids within `ap_max_*_id`.
//! - `get attributes`: the active device as mdevctl attributes (`[]` when empty, nothing when
//!   inactive — ap-check prints `[{}]`, spec "Defects").
//! - `live modify`: checks the new matrix like `start` and writes it to `ap_config` at once.
//! - warnings of `pre define|modify` also go to the system log ([`crate::syslog`]): libvirt
//!   discards a successful callout's stderr, so `virsh nodedev-define` users see them only there.
//! - `pre` takes the s390-tools AP configuration lock for mdevctl (our parent) and `post`
//!   releases it; a rejected or failed `pre` releases it again ([`crate::lock`]).
//!
//! Messages are ap-check's where ap-check has one (scripts and users know them), one line
//! per problem; our additions name the attribute and value.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::autostart_index;
use crate::lock;
use crate::mdev::{self, DeviceConfig, Matrix, VFIO_AP_TYPE};
use crate::root::Root;
use crate::sysfs::{self, HostError};
use crate::vfio_ap::{self, Conflict};

/// The only parent vfio_ap devices have.
pub const PARENT: &str = "matrix";

/// Environment variable bounding the wait for a lock held by another live process
/// (seconds; default [`lock::DEFAULT_WAIT`]).
pub const LOCK_WAIT_ENV: &str = "NODEDEV_HELPER_LOCK_WAIT";

/// Exit codes, as mdevctl reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Exit {
    /// Accepted / done.
    Ok = 0,
    /// Rejected, a usage error, or an error reading the host's state.
    Rejected = 1,
    /// Not a vfio_ap-passthrough device: mdevctl asks the next script.
    NotMyType = 2,
}

const USAGE: &str = "\
mdevctl callout for vfio_ap-passthrough devices (replaces s390-tools' ap-check).

Usage: nodedev-helper callout -t TYPE -e EVENT -a ACTION -s STATE -u UUID -p PARENT [--root DIR]
   or: nodedev-helper-callout -t TYPE ...   (a link in mdevctl's callout directory)

mdevctl runs it with the device JSON on stdin for pre/post/live events.
Events: pre, post, get, live, notify. Actions: define, undefine, start, stop, modify,
attributes, capabilities.

Exit status: 0 accepted, 1 rejected or usage error (one line per problem on stderr),
2 not a vfio_ap-passthrough device (mdevctl asks the next callout).

Paths are below --root DIR, else MDEVCTL_ENV_ROOT (set by mdevctl >= 1.3), else /.
The AP configuration lock /run/lock/s390apconfig.lock is shared with chzdev and ap-check;
NODEDEV_HELPER_LOCK_WAIT (seconds, default 60) bounds the wait for it.
";

/// `nodedev-helper callout …`: the arguments are parsed by [`Invocation::parse`] exactly as
/// ap-check does (clap's own errors would exit 2, which mdevctl reads as "not my type").
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true, after_help = USAGE)]
pub struct Args {
    /// -t TYPE -e EVENT -a ACTION -s STATE -u UUID -p PARENT, as mdevctl passes them.
    #[arg(
        num_args = 0..,
        allow_hyphen_values = true,
        trailing_var_arg = true,
        value_name = "ARGS"
    )]
    pub argv: Vec<OsString>,
}

/// One parsed invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub mdev_type: String,
    pub event: String,
    pub action: String,
    pub state: String,
    pub uuid: String,
    pub parent: String,
    pub root: Option<PathBuf>,
}

/// What argument parsing decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Run(Invocation),
    Help,
    /// ap-check's usage message, exit 1.
    Usage(&'static str),
    /// Another mdev type: exit 2 silently.
    NotMine,
}

impl Invocation {
    /// ap-check's rules: each of -t -e -a -s -u -p exactly once ("Duplicate or missing
    /// operand"), nothing else ("Unknown operand"), then the type (exit 2 for others), then
    /// UUID and parent. `--root DIR` is accepted anywhere (our global option).
    pub fn parse(argv: &[OsString]) -> Parsed {
        let mut slots: [Option<String>; 6] = Default::default();
        let mut dup = false;
        let mut root = None;
        let mut it = argv.iter();
        while let Some(a) = it.next() {
            let Some(a) = a.to_str() else {
                return Parsed::Usage("Unknown operand");
            };
            if a == "-h" || a == "--help" {
                return Parsed::Help;
            }
            if let Some(r) = a.strip_prefix("--root=") {
                root = Some(PathBuf::from(r));
                continue;
            }
            if a == "--root" {
                match it.next() {
                    Some(r) => root = Some(PathBuf::from(r)),
                    None => return Parsed::Usage("Duplicate or missing operand"),
                }
                continue;
            }
            let idx = match a.get(..2) {
                Some("-t") => 0,
                Some("-e") => 1,
                Some("-a") => 2,
                Some("-s") => 3,
                Some("-u") => 4,
                Some("-p") => 5,
                _ => return Parsed::Usage("Unknown operand"),
            };
            // getopt style: the value follows attached (`-tfoo`) or as the next argument
            let value = if a.len() > 2 {
                a[2..].to_string()
            } else {
                match it.next().and_then(|v| v.to_str()) {
                    Some(v) => v.to_string(),
                    None => return Parsed::Usage("Duplicate or missing operand"),
                }
            };
            if slots[idx].is_some() {
                dup = true;
            }
            slots[idx] = Some(value);
        }
        if dup || slots.iter().any(Option::is_none) {
            return Parsed::Usage("Duplicate or missing operand");
        }
        let [t, e, a, s, u, p] = slots.map(Option::unwrap_or_default);
        if t != VFIO_AP_TYPE {
            return Parsed::NotMine;
        }
        if !mdev::is_uuid(&u) {
            return Parsed::Usage("Invalid UUID specified");
        }
        if p != PARENT {
            return Parsed::Usage("Invalid parent specified");
        }
        Parsed::Run(Invocation {
            mdev_type: t,
            event: e,
            action: a,
            state: s,
            uuid: u.to_ascii_lowercase(),
            parent: p,
            root,
        })
    }
}

/// The most problem lines one run prints (a device has at most a few dozen attributes; more
/// lines would only flood mdevctl's and libvirt's error message).
pub const REPORT_MAX_LINES: usize = 32;

/// Problems found by a check: errors reject, warnings are printed and accepted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
    /// An error, or a warning when `fatal` is false (manual-start devices).
    fn problem(&mut self, fatal: bool, msg: impl std::fmt::Display) {
        if fatal {
            self.errors.push(msg.to_string());
        } else {
            self.warn(msg);
        }
    }
    /// A warning (`warning: …`), printed after the errors; it rejects nothing.
    fn warn(&mut self, msg: impl std::fmt::Display) {
        self.warnings.push(vfio_ap::warning(msg));
    }
    /// What goes to stderr: errors first (ap-check's lines), then warnings; at most
    /// [`REPORT_MAX_LINES`] lines, then how many more there were.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let all: Vec<&String> = self.errors.iter().chain(&self.warnings).collect();
        for l in all.iter().take(REPORT_MAX_LINES) {
            s.push_str(l);
            s.push('\n');
        }
        if all.len() > REPORT_MAX_LINES {
            s.push_str(&format!(
                "... and {} more problems not shown\n",
                all.len() - REPORT_MAX_LINES
            ));
        }
        s
    }
}

/// Errors reading the host's state (not a rejection of the device: the host is broken).
#[derive(Debug, thiserror::Error)]
pub enum CalloutError {
    #[error(transparent)]
    State(#[from] HostError),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
}

impl From<sysfs::FileError> for CalloutError {
    fn from(e: sysfs::FileError) -> Self {
        CalloutError::State(e.into())
    }
}

/// `sys/bus/ap/ap_max_{adapter,domain}_id`, when the host has it.
fn read_max(root: &Root, name: &str) -> Result<Option<u64>, CalloutError> {
    let path = root.ap_bus().join(name);
    let Some(t) = sysfs::read_optional(&path)? else {
        return Ok(None);
    };
    Ok(Some(t.trim().parse().map_err(|_| {
        HostError::bad(&path, format!("'{}' is not a decimal number", t.trim()))
    })?))
}

/// Values, ranges and ids against this host's `ap_max_*_id`. Errors for any device: an id the
/// kernel refuses makes the device unusable whatever its start mode.
fn check_values(
    root: &Root,
    attrs: &[(String, String)],
    report: &mut Report,
) -> Result<Matrix, CalloutError> {
    let (matrix, errors) = Matrix::from_attrs(attrs);
    report.errors.extend(errors.iter().map(ToString::to_string));
    let max_a = read_max(root, "ap_max_adapter_id")?;
    let max_d = read_max(root, "ap_max_domain_id")?;
    for (name, value) in attrs {
        let (max, file) = match name.as_str() {
            "assign_adapter" => (max_a, "ap_max_adapter_id"),
            "assign_domain" | "assign_control_domain" => (max_d, "ap_max_domain_id"),
            _ => continue,
        };
        if let (Some(max), Some(v)) = (max, mdev::parse_value(value)) {
            if v <= 255 && v > max {
                report.errors.push(format!(
                    "{name} value '{value}' is above this host's {file} ({max})"
                ));
            }
        }
    }
    Ok(matrix)
}

/// Which pre operation a define-time check is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefineOp {
    Define,
    Modify,
}

/// `pre define` / `pre modify`: will this config work at boot?
pub fn check_define(
    root: &Root,
    uuid: &str,
    config: &DeviceConfig,
    op: DefineOp,
) -> Result<Report, CalloutError> {
    let mut r = Report::default();
    let config_path = root.mdevctl_configs().join(uuid);
    match op {
        DefineOp::Define if config_path.exists() => r.errors.push("Config already exists".into()),
        DefineOp::Modify if !config_path.exists() => r.errors.push("Config doesn't exist".into()),
        _ => {}
    }
    let matrix = check_values(root, &config.attrs, &mut r)?;
    let auto = config.autostart;
    let mine = matrix.apqns();

    // through the index in /run: only configs changed since the last run are read
    let scan = autostart_index::scan(root, &mut |d| {
        d.uuid.as_str() != uuid
            && mine
                .iter()
                .any(|q| d.adapters.test(q.adapter) && d.domains.test(q.domain))
    })?;
    for d in &scan.autostart {
        for q in &mine {
            if d.adapters.test(q.adapter) && d.domains.test(q.domain) {
                let by = d.uuid.to_string();
                r.problem(auto, Conflict::DefinedForAutostart { apqn: *q, by });
            }
        }
    }
    for b in &scan.broken {
        r.warn(format_args!("ignored unreadable mdev config {b}"));
    }
    let scan_index = scan.index;

    let persistent = vfio_ap::persistent_masks(root)?;
    for q in &mine {
        if persistent.masks.keep(*q) {
            r.problem(auto, Conflict::PersistentMasks { apqn: *q });
        }
    }

    // Beyond ap-check: what stops the device from starting right now. Only the queues'
    // own word (vfio_ap's `status`) is asked here; the active mdevs' matrices are read when
    // a queue says it is taken, never all of them on every define.
    for a in vfio_ap::claimed_by(root, &mine)? {
        if a.uuid == uuid {
            continue;
        }
        for q in &mine {
            if a.matrix.holds(*q) {
                r.warn(format_args!(
                    "APQN {q} is in use by active mdev {}; this device cannot start while that one is active",
                    a.uuid
                ));
            }
        }
    }
    for c in vfio_ap::unsupported_cards(root, &matrix.adapters)? {
        r.warn(format_args!("{c}; this device cannot start"));
    }
    if r.ok() {
        scan_index.save();
    }
    Ok(r)
}

/// `pre start` (and `live modify`): can this matrix be given to mdev `uuid` now? The libvirt
/// hook starts devices through mdevctl, so this is what it gets asked too.
pub fn check_start(
    root: &Root,
    uuid: &str,
    attrs: &[(String, String)],
) -> Result<Report, CalloutError> {
    let mut r = Report::default();
    if !root.vfio_ap().is_dir() {
        r.errors.push("vfio_ap module is not loaded".into());
        return Ok(r);
    }
    let matrix = check_values(root, attrs, &mut r)?;
    if !matrix.control_domains.is_empty() && matrix.domains.is_empty() {
        r.errors
            .push("At least one usage domain must be specified".into());
    }
    let mine = matrix.apqns();
    for a in mdev::users_of(root, &mine)? {
        if a.uuid == uuid {
            continue;
        }
        for q in &mine {
            if a.matrix.holds(*q) {
                let by = a.uuid.clone();
                r.errors.push(Conflict::InUse { apqn: *q, by }.to_string());
            }
        }
    }
    let active = vfio_ap::active_masks(root)?;
    for q in &mine {
        if active.keep(*q) {
            r.errors
                .push(Conflict::ActiveMasks { apqn: *q }.to_string());
        }
    }
    for c in vfio_ap::unsupported_cards(root, &matrix.adapters)? {
        r.errors.push(c.to_string());
    }
    Ok(r)
}

/// `get attributes`: the active device's attributes in mdevctl's JSON, `None` when inactive.
pub fn attributes(root: &Root, uuid: &str) -> Result<Option<String>, CalloutError> {
    Ok(mdev::read_active(root, uuid)?.map(|a| mdev::attrs_json(&a.matrix.to_attrs())))
}

/// The actions and events this callout handles, in mdevctl's v2 vocabulary.
pub const SUPPORTED_ACTIONS: &[&str] = &[
    "start",
    "stop",
    "define",
    "undefine",
    "modify",
    "attributes",
    "capabilities",
];
pub const SUPPORTED_EVENTS: &[&str] = &["pre", "post", "notify", "get", "live"];
/// The callout protocol version we speak.
pub const PROTOCOL_VERSION: u64 = 2;

/// `get capabilities` (mdevctl ≥ 1.3): stdin is what mdevctl offers,
/// `{"provides":{"version":2,"actions":[...],"events":[...]}}`; the answer is what both sides
/// support, `{"supports":{"version":V,"actions":[...],"events":[...]}}` — the intersection,
/// in our order, at the lower of the two versions, as ap-check answers. An empty or
/// malformed stdin is an error (exit 1), as in ap-check: a callout must not claim actions its
/// caller never offered.
pub fn capabilities(stdin: &[u8]) -> Result<String, String> {
    if stdin.trim_ascii().is_empty() {
        return Err(
            "get capabilities: stdin is empty (mdevctl sends {\"provides\":{\"version\":...,\"actions\":[...],\"events\":[...]}})"
                .into(),
        );
    }
    let v: serde_json::Value = serde_json::from_slice(stdin)
        .map_err(|e| format!("get capabilities: stdin is not JSON: {e}"))?;
    let Some(provides) = v.get("provides").and_then(|p| p.as_object()) else {
        return Err("get capabilities: stdin has no \"provides\" object".into());
    };
    let offered = |key: &str| -> Result<Vec<String>, String> {
        match provides.get(key) {
            None | Some(serde_json::Value::Null) => Ok(Vec::new()),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str().map(str::to_string).ok_or_else(|| {
                        format!("get capabilities: provides.{key} holds a non-string: {x}")
                    })
                })
                .collect(),
            Some(other) => Err(format!(
                "get capabilities: provides.{key} is not a list: {other}"
            )),
        }
    };
    let (actions, events) = (offered("actions")?, offered("events")?);
    let version = match provides.get("version") {
        None => PROTOCOL_VERSION,
        Some(x) => x
            .as_u64()
            .ok_or_else(|| format!("get capabilities: provides.version is not a number: {x}"))?
            .min(PROTOCOL_VERSION),
    };
    let both = |ours: &[&str], theirs: &[String]| -> Vec<String> {
        ours.iter()
            .filter(|o| theirs.iter().any(|t| t == *o))
            .map(|o| o.to_string())
            .collect()
    };
    // built by hand so that "version" comes first, as in ap-check's answer
    let list = |v: Vec<String>| serde_json::Value::from(v).to_string();
    Ok(format!(
        r#"{{"supports":{{"version":{version},"actions":{},"events":{}}}}}"#,
        list(both(SUPPORTED_ACTIONS, &actions)),
        list(both(SUPPORTED_EVENTS, &events))
    ))
}

fn lock_wait() -> Duration {
    crate::root::env(LOCK_WAIT_ENV)
        .and_then(|v| v.to_str().and_then(|v| v.trim().parse::<f64>().ok()))
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(lock::DEFAULT_WAIT)
}

/// The most of stdin that is read: mdevctl's device JSON is a few hundred bytes, and a config
/// this large could not be stored by mdevctl either ([`mdev::CONFIG_MAX`]).
pub const STDIN_MAX: usize = mdev::CONFIG_MAX;

/// Reads stdin, at most [`STDIN_MAX`] bytes and one more (to tell that there was more).
fn read_stdin() -> Vec<u8> {
    let mut buf = Vec::new();
    // A closed or unreadable stdin is an empty document, reported as malformed JSON.
    let _ = std::io::stdin()
        .take(STDIN_MAX as u64 + 1)
        .read_to_end(&mut buf);
    buf
}

/// Parses the device JSON of a pre/live event and checks it names our type.
fn stdin_config(inv: &Invocation, bytes: &[u8]) -> Result<DeviceConfig, String> {
    if bytes.len() > STDIN_MAX {
        return Err(format!(
            "the device JSON on stdin is larger than {STDIN_MAX} bytes: not an mdevctl device"
        ));
    }
    let c = DeviceConfig::parse(bytes).map_err(|e| e.to_string())?;
    if c.mdev_type != inv.mdev_type {
        return Err(format!(
            "the device JSON's mdev_type '{}' does not match -t {}",
            crate::echo::echo(&c.mdev_type),
            inv.mdev_type
        ));
    }
    Ok(c)
}

/// Runs one invocation with `stdin` already read (tests pass it directly); returns the exit
/// code and writes stdout/stderr.
pub fn run_invocation(
    root: &Root,
    inv: &Invocation,
    stdin: &mut dyn FnMut() -> Vec<u8>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32, CalloutError> {
    let parent_pid = nix::unistd::getppid().as_raw();
    let lock_path = root.ap_lock();
    let say = |err: &mut dyn Write, s: &str| {
        let _ = err.write_all(s.as_bytes());
    };
    match (inv.event.as_str(), inv.action.as_str()) {
        ("get", "capabilities") => match capabilities(&stdin()) {
            Ok(answer) => {
                let _ = writeln!(out, "{answer}");
                Ok(Exit::Ok as i32)
            }
            Err(msg) => {
                say(err, &format!("{msg}\n"));
                Ok(Exit::Rejected as i32)
            }
        },
        ("get", "attributes") => {
            // mdevctl asks during `define` of an active device, between our pre (which took
            // the lock for it) and post: then the lock is already ours to use.
            let _guard = if lock::holder(&lock_path)? == lock::Holder::Pid(parent_pid) {
                None
            } else {
                Some(lock::Guard::take(&lock_path, lock_wait())?)
            };
            if let Some(json) = attributes(root, &inv.uuid)? {
                let _ = out.write_all(json.as_bytes());
            }
            Ok(Exit::Ok as i32)
        }
        ("pre", action) => {
            let bytes = stdin();
            let config = match action {
                "define" | "modify" | "start" => match stdin_config(inv, &bytes) {
                    Ok(c) => Some(c),
                    Err(msg) => {
                        say(err, &format!("{msg}\n"));
                        return Ok(Exit::Rejected as i32);
                    }
                },
                // stop/undefine must work even for a config that became unreadable
                _ => None,
            };
            let taken = lock::acquire(&lock_path, parent_pid, lock_wait())?;
            let result = match (action, &config) {
                ("define", Some(c)) => check_define(root, &inv.uuid, c, DefineOp::Define),
                ("modify", Some(c)) => check_define(root, &inv.uuid, c, DefineOp::Modify),
                ("start", Some(c)) => check_start(root, &inv.uuid, &c.attrs),
                _ => Ok(Report::default()),
            };
            let release = |_: ()| {
                // a rejected or failed pre never leaves the lock behind; a lock mdevctl
                // already held before us is its own business
                if taken {
                    let _ = lock::release(&lock_path, parent_pid);
                }
            };
            match result {
                Ok(report) => {
                    say(err, &report.render());
                    // libvirt discards a successful define's stderr: keep the warnings
                    if matches!(action, "define" | "modify") {
                        let log = crate::syslog::Syslog::new(root, crate::syslog::IDENT);
                        for w in &report.warnings {
                            log.log(
                                crate::syslog::Severity::Warning,
                                &format_args!("mdev {}: {w}", inv.uuid),
                            );
                        }
                    }
                    if report.ok() {
                        Ok(Exit::Ok as i32)
                    } else {
                        release(());
                        Ok(Exit::Rejected as i32)
                    }
                }
                Err(e) => {
                    release(());
                    Err(e)
                }
            }
        }
        ("post", _) => {
            let _ = stdin();
            lock::release(&lock_path, parent_pid)?;
            Ok(Exit::Ok as i32)
        }
        ("live", "modify") => {
            let bytes = stdin();
            let config = match stdin_config(inv, &bytes) {
                Ok(c) => c,
                Err(msg) => {
                    say(err, &format!("{msg}\n"));
                    return Ok(Exit::Rejected as i32);
                }
            };
            let _guard = if lock::holder(&lock_path)? == lock::Holder::Pid(parent_pid) {
                None
            } else {
                Some(lock::Guard::take(&lock_path, lock_wait())?)
            };
            let dev = root.matrix().join(&inv.uuid);
            if !dev.is_dir() {
                say(
                    err,
                    &format!("mdev {} is not active: nothing to modify live\n", inv.uuid),
                );
                return Ok(Exit::Rejected as i32);
            }
            let report = check_start(root, &inv.uuid, &config.attrs)?;
            say(err, &report.render());
            if !report.ok() {
                return Ok(Exit::Rejected as i32);
            }
            let ap_config = dev.join("ap_config");
            if !ap_config.exists() {
                say(
                    err,
                    &format!(
                        "{} does not exist: this kernel cannot change an active vfio_ap mdev at once (ap_config needs Linux 6.1 or newer); stop and start the device instead\n",
                        ap_config.display()
                    ),
                );
                return Ok(Exit::Rejected as i32);
            }
            let (matrix, _) = Matrix::from_attrs(&config.attrs);
            sysfs::write_attr(&ap_config, &matrix.ap_config())?;
            Ok(Exit::Ok as i32)
        }
        // notify goes to notifier scripts; unknown events/actions of a newer mdevctl are
        // accepted so that they do not fail operations we have nothing to say about.
        _ => Ok(Exit::Ok as i32),
    }
}

/// Entry point from argv (after the program name or the `callout` subcommand).
pub fn main_with_args(default_root: &Root, argv: &[OsString]) -> anyhow::Result<i32> {
    let inv = match Invocation::parse(argv) {
        Parsed::Run(inv) => inv,
        Parsed::Help => {
            print!("{USAGE}");
            return Ok(Exit::Ok as i32);
        }
        Parsed::Usage(msg) => {
            eprintln!("{msg}");
            return Ok(Exit::Rejected as i32);
        }
        Parsed::NotMine => return Ok(Exit::NotMyType as i32),
    };
    let root = match &inv.root {
        Some(r) if crate::root::privileged_exec() => {
            return Err(crate::root::PrivilegedRoot(r.clone()).into());
        }
        Some(r) => Root::new(r),
        None => default_root.clone(),
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let code = run_invocation(
        &root,
        &inv,
        &mut read_stdin,
        &mut stdout.lock(),
        &mut stderr.lock(),
    )?;
    Ok(code)
}

/// `nodedev-helper callout …`.
pub fn run(root: &Root, args: &Args) -> anyhow::Result<i32> {
    main_with_args(root, &args.argv)
}

/// The program names that make `nodedev-helper` the callout: the installed callout executable
/// and the entry in mdevctl's callout directories (a link to the binary there).
pub const CALLOUT_NAMES: [&str; 2] = ["nodedev-helper-callout", "00-nodedev-helper"];

/// Whether the program was started under one of [`CALLOUT_NAMES`]: then it is the callout
/// with argv as mdevctl passes it. Any other name (a copy, a renamed binary) is the normal
/// command line, which refuses mdevctl's arguments instead of acting on them.
pub fn invoked_as_callout(argv0: Option<&OsString>) -> bool {
    argv0
        .map(Path::new)
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .is_some_and(|n| CALLOUT_NAMES.contains(&n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }
    const U: &str = "6b7a2b2e-8f3c-4e2a-9d51-1c0c7a3b2e10";

    #[test]
    fn argv_as_mdevctl_passes_it() {
        let p = Invocation::parse(&args(&format!(
            "-t vfio_ap-passthrough -e pre -a define -s none -u {U} -p matrix"
        )));
        let Parsed::Run(inv) = p else { panic!("{p:?}") };
        assert_eq!(
            (inv.event.as_str(), inv.action.as_str(), inv.uuid.as_str()),
            ("pre", "define", U)
        );
        let p = Invocation::parse(&args(&format!(
            "--root /r -tvfio_ap-passthrough -e pre -a define -s none -u {U} -p matrix"
        )));
        let Parsed::Run(inv) = p else { panic!("{p:?}") };
        assert_eq!(inv.root, Some(PathBuf::from("/r")));
    }

    #[test]
    fn usage_errors_use_ap_check_wording() {
        let base = format!("-e pre -a define -s none -u {U} -p matrix");
        let p = |s: String| Invocation::parse(&args(&s));
        assert_eq!(
            p(format!("-t vfio_ap-passthrough {base} -x 1")),
            Parsed::Usage("Unknown operand")
        );
        assert_eq!(
            p(base.clone()),
            Parsed::Usage("Duplicate or missing operand")
        );
        assert_eq!(
            p(format!(
                "-t vfio_ap-passthrough -t vfio_ap-passthrough {base}"
            )),
            Parsed::Usage("Duplicate or missing operand")
        );
        assert_eq!(
            p("-t vfio_ap-passthrough -e pre -a define -s none -u nope -p matrix".into()),
            Parsed::Usage("Invalid UUID specified")
        );
        assert_eq!(
            p(format!(
                "-t vfio_ap-passthrough -e pre -a define -s none -u {U} -p css"
            )),
            Parsed::Usage("Invalid parent specified")
        );
        // another type is not ours, whatever its parent
        assert_eq!(
            p(format!(
                "-t i915-GVTg_V5_4 -e pre -a define -s none -u {U} -p 0000:00:02.0"
            )),
            Parsed::NotMine
        );
    }

    #[test]
    fn program_name_selects_the_callout() {
        assert!(!invoked_as_callout(Some(&"/usr/bin/nodedev-helper".into())));
        assert!(!invoked_as_callout(None));
        assert!(invoked_as_callout(Some(
            &"/usr/lib/mdevctl/scripts.d/callouts/nodedev-helper-callout".into()
        )));
        assert!(invoked_as_callout(Some(
            &"/etc/mdevctl.d/scripts.d/callouts/00-nodedev-helper".into()
        )));
        for other in [
            "/tmp/x",
            "nodedev-helper.bak",
            "ap-check",
            "nodedev-helper-callout2",
        ] {
            assert!(!invoked_as_callout(Some(&other.into())), "{other}");
        }
    }
}
