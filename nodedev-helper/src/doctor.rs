//! `nodedev-helper doctor`: checks the whole crypto passthrough chain of a host, in the order
//! an administrator sets it up, and for each gap says what is missing and the command that
//! fixes it.
//!
//! The chain: module vfio_ap loaded (`/sys/devices/vfio_ap/matrix`) and set to load at boot
//! (modules-load.d, or chzdev's 41-ap.rules, whose `kmod load vfio_ap` does it); libvirt sees
//! the parent `ap_matrix` (it only learns of it from udev, so a libvirtd started before
//! vfio_ap may not); mdevctl installed, and our callout installed in mdevctl's callout
//! directories and answering before s390-tools' `ap-check`; the persistent AP masks leave
//! every APQN of an auto-start mdev to vfio_ap (and no mask change was left half done), and no two auto-start mdevs claim one APQN;
//! every auto-start mdev is active; every guest's vfio-ap hostdev names a defined mdev.
//!
//! Nothing is changed: the fixes are printed, not run. Exit status: see [`Exit`].

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::apmask::Apqn;
use crate::hook;
use crate::journal;
use crate::mdev::{self, DefinedMdev};
use crate::root::Root;
use crate::sysfs;
use crate::vfio_ap;

/// Exit status of `doctor` (documented in `--help` and the man page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every check passed (skipped checks aside).
    Healthy = 0,
    /// Doctor itself failed (e.g. stdout closed).
    Error = 1,
    // 2 is clap's usage error.
    /// At least one problem was found.
    Problems = 3,
    /// No problem found, but some checks could not run (e.g. libvirt unreachable).
    Incomplete = 4,
}

const AFTER_HELP: &str = "\
Checks, in order: vfio_ap-loaded, vfio_ap-at-boot, mdevctl, callout, libvirt-ap_matrix,
persistent-masks, autostart-conflicts, autostart-active, guest-hostdevs. Each is ok, problem
(with the command that fixes it), unknown (could not be checked, with the reason) or skipped
(--no-libvirt). Nothing on the host is changed.

Exit status: 0 healthy; 1 doctor failed; 2 usage error; 3 at least one problem;
4 no problem found, but some checks could not run.";

/// `nodedev-helper doctor`
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// libvirt connection URI for the ap_matrix and guest checks (default: libvirt's default,
    /// e.g. qemu:///system).
    #[arg(long, value_name = "URI")]
    pub connect: Option<String>,
    /// Skip the checks that need libvirt (libvirt-ap_matrix, guest-hostdevs).
    #[arg(long)]
    pub no_libvirt: bool,
    /// Machine-readable output: {"checks":[{"id","status","message","fix"}],"problems":N,"unknown":N}.
    #[arg(long)]
    pub json: bool,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Problem,
    Unknown,
    Skipped,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub status: Status,
    pub message: String,
    /// The command (or action) that fixes a problem; for unknown, what to do to check it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(id: &'static str, message: impl Into<String>) -> Check {
        Check {
            id,
            status: Status::Ok,
            message: message.into(),
            fix: None,
        }
    }
    fn problem(id: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            id,
            status: Status::Problem,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
    fn unknown(id: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            id,
            status: Status::Unknown,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

/// All findings of one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
    pub problems: usize,
    pub unknown: usize,
}

impl Report {
    fn push(&mut self, c: Check) {
        match c.status {
            Status::Problem => self.problems += 1,
            Status::Unknown => self.unknown += 1,
            _ => {}
        }
        self.checks.push(c);
    }

    pub fn exit(&self) -> Exit {
        if self.problems > 0 {
            Exit::Problems
        } else if self.unknown > 0 {
            Exit::Incomplete
        } else {
            Exit::Healthy
        }
    }

    /// One line per check, fixes indented below, then a summary line.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for c in &self.checks {
            let tag = match c.status {
                Status::Ok => "ok     ",
                Status::Problem => "PROBLEM",
                Status::Unknown => "unknown",
                Status::Skipped => "skipped",
            };
            s.push_str(&format!("{tag} {:<20} {}\n", c.id, c.message));
            if let Some(f) = &c.fix {
                s.push_str(&format!("        {:<20} fix: {f}\n", ""));
            }
        }
        s.push_str(&match self.exit() {
            Exit::Healthy => "the crypto passthrough chain is complete\n".to_string(),
            _ => format!(
                "{} problem(s), {} check(s) could not run\n",
                self.problems, self.unknown
            ),
        });
        s
    }
}

/// What the libvirt checks need: whether `ap_matrix` is a node device, and every guest's
/// (inactive) definition; implemented over the virt crate by [`run`].
pub trait Libvirt {
    /// Whether libvirt lists the node device `ap_matrix`.
    fn has_ap_matrix(&self) -> Result<bool, String>;
    /// (name, inactive XML) of every defined or running guest.
    fn guests(&self) -> Result<Vec<(String, String)>, String>;
}

/// Runs every check. `libvirt` is None when those checks are skipped; Err(reason) when the
/// connection failed (they are unknown then).
pub fn examine(root: &Root, libvirt: Option<Result<&dyn Libvirt, String>>) -> Report {
    let mut r = Report::default();
    let loaded = root.matrix().is_dir();
    r.push(if loaded {
        Check::ok(
            "vfio_ap-loaded",
            "module vfio_ap is loaded (the matrix device exists)",
        )
    } else {
        Check::problem(
            "vfio_ap-loaded",
            format!(
                "module vfio_ap is not loaded: {} is missing",
                root.matrix().display()
            ),
            "modprobe vfio_ap",
        )
    });
    r.push(at_boot(root));
    r.push(mdevctl_installed(root));
    r.push(callout_order(root));
    match &libvirt {
        None => r.push(Check {
            id: "libvirt-ap_matrix",
            status: Status::Skipped,
            message: "--no-libvirt".into(),
            fix: None,
        }),
        Some(Err(e)) => r.push(Check::unknown(
            "libvirt-ap_matrix",
            format!("cannot ask libvirt: {e}"),
            "systemctl start libvirtd (or give --connect URI)",
        )),
        Some(Ok(l)) => r.push(match l.has_ap_matrix() {
            Ok(true) => Check::ok("libvirt-ap_matrix", "libvirt lists the node device ap_matrix"),
            Ok(false) if !loaded => Check::problem(
                "libvirt-ap_matrix",
                "libvirt has no node device ap_matrix (vfio_ap is not loaded): virsh nodedev-define fails with \"invalid parent device 'ap_matrix'\"",
                "modprobe vfio_ap",
            ),
            Ok(false) => Check::problem(
                "libvirt-ap_matrix",
                "vfio_ap is loaded but libvirt has no node device ap_matrix (libvirt learns of devices from udev events)",
                "systemctl restart libvirtd",
            ),
            Err(e) => Check::unknown(
                "libvirt-ap_matrix",
                format!("cannot list node devices: {e}"),
                "virsh nodedev-list --cap ap_matrix",
            ),
        }),
    }
    let (defined, broken) = match mdev::defined(root) {
        Ok(d) => d,
        Err(e) => {
            for id in [
                "persistent-masks",
                "autostart-conflicts",
                "autostart-active",
            ] {
                r.push(Check::unknown(
                    id,
                    format!("cannot read the mdev configs: {e}"),
                    format!("check {}", root.mdevctl_configs().display()),
                ));
            }
            (Vec::new(), Vec::new())
        }
    };
    for b in broken {
        r.push(Check::problem(
            "mdev-configs",
            format!("unusable mdev config: {b}"),
            "fix or remove the file (mdevctl undefine -u UUID)",
        ));
    }
    let auto: Vec<&DefinedMdev> = defined.iter().filter(|d| d.autostart).collect();
    r.push(mask_change(root));
    r.push(persistent_masks(root, &auto));
    r.push(autostart_conflicts(&auto));
    r.push(autostart_active(root, &auto));
    match &libvirt {
        None => r.push(Check {
            id: "guest-hostdevs",
            status: Status::Skipped,
            message: "--no-libvirt".into(),
            fix: None,
        }),
        Some(Err(e)) => r.push(Check::unknown(
            "guest-hostdevs",
            format!("cannot ask libvirt: {e}"),
            "systemctl start libvirtd (or give --connect URI)",
        )),
        Some(Ok(l)) => r.push(guest_hostdevs(*l, &defined)),
    }
    r
}

/// modules-load.d(5) directories, in their precedence order.
const MODULES_LOAD_DIRS: [&str; 4] = [
    "etc/modules-load.d",
    "run/modules-load.d",
    "usr/lib/modules-load.d",
    "lib/modules-load.d",
];

fn at_boot(root: &Root) -> Check {
    for d in MODULES_LOAD_DIRS {
        let Ok(entries) = fs::read_dir(root.path(d)) else {
            continue;
        };
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in names
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        {
            let Ok(Some(text)) = sysfs::read_optional(p) else {
                continue;
            };
            let lists = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
                .any(|l| l == "vfio_ap" || l == "vfio-ap");
            if lists {
                return Check::ok(
                    "vfio_ap-at-boot",
                    format!("vfio_ap is loaded at boot ({})", shown(root, p)),
                );
            }
        }
    }
    let rule = root.ap_udev_rule();
    if sysfs::read_optional(&rule).is_ok_and(|t| t.is_some_and(|t| t.contains("kmod load vfio_ap")))
    {
        return Check::ok(
            "vfio_ap-at-boot",
            format!("vfio_ap is loaded at boot by {}", shown(root, &rule)),
        );
    }
    Check::problem(
        "vfio_ap-at-boot",
        "nothing loads vfio_ap at boot (no modules-load.d entry, no kmod load in 41-ap.rules): auto-start mdevs will not start after a reboot",
        "echo vfio_ap > /etc/modules-load.d/vfio_ap.conf",
    )
}

/// A path as the host sees it (without the root prefix of a test tree).
fn shown(root: &Root, p: &Path) -> String {
    match p.strip_prefix(root.base()) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => p.display().to_string(),
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn mdevctl_installed(root: &Root) -> Check {
    let mut dirs: Vec<PathBuf> = ["usr/sbin", "usr/bin", "sbin", "bin"]
        .iter()
        .map(|d| root.path(d))
        .collect();
    // on the real host, PATH too (libvirt finds mdevctl on its PATH)
    if root.base() == Path::new("/") {
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
    }
    match dirs
        .iter()
        .map(|d| d.join("mdevctl"))
        .find(|p| is_executable(p))
    {
        Some(p) => Check::ok(
            "mdevctl",
            format!("mdevctl is installed ({})", shown(root, &p)),
        ),
        None => Check::problem(
            "mdevctl",
            "mdevctl is not installed: libvirt cannot define or start mediated devices",
            "apt-get install mdevctl (Debian, Ubuntu) or dnf install mdevctl (RHEL)",
        ),
    }
}

/// mdevctl ≥ 1.3 runs `/usr/lib/mdevctl/scripts.d/callouts/*` then
/// `/etc/mdevctl.d/scripts.d/callouts/*` (each sorted); 1.2 only the second. The first
/// script that does not answer "not my type" owns the device, so ours must come before
/// ap-check in that order, and be in /etc for mdevctl 1.2.
fn callout_order(root: &Root) -> Check {
    const ID: &str = "callout";
    let dirs = [
        "usr/lib/mdevctl/scripts.d/callouts",
        "etc/mdevctl.d/scripts.d/callouts",
    ];
    let mut order: Vec<(PathBuf, bool)> = Vec::new(); // (script, is ours)
    for d in dirs {
        let Ok(entries) = fs::read_dir(root.path(d)) else {
            continue;
        };
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in names {
            let ours = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().contains("nodedev-helper"));
            order.push((p, ours));
        }
    }
    let reinstall = "reinstall virt-hostkit (it installs /usr/lib/mdevctl/scripts.d/callouts/00-nodedev-helper and /etc/mdevctl.d/scripts.d/callouts/00-nodedev-helper)";
    let Some((first, _)) = order.iter().find(|(p, ours)| {
        *ours
            || p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains("ap-check"))
    }) else {
        return Check::problem(
            ID,
            "the nodedev-helper mdevctl callout is not installed: vfio_ap devices are not validated",
            reinstall,
        );
    };
    if !order.iter().any(|(p, o)| *o && p == first) {
        return Check::problem(
            ID,
            format!(
                "s390-tools' ap-check ({}) answers before the nodedev-helper callout",
                shown(root, first)
            ),
            reinstall,
        );
    }
    let etc = root.path(dirs[1]);
    if !order.iter().any(|(p, o)| *o && p.starts_with(&etc)) {
        return Check::problem(
            ID,
            format!(
                "no nodedev-helper callout in {}: mdevctl 1.2 (Debian 12) runs only callouts from there",
                shown(root, &etc)
            ),
            reinstall,
        );
    }
    // the callout must reach the binary: `make install` links it (a link is resolved below
    // the root, absolute or relative); a wrapper script names it in its `exec` line
    for (p, _) in order.iter().filter(|(_, o)| *o) {
        let (target, resolved) = if let Ok(link) = fs::read_link(p) {
            let resolved = if link.is_absolute() {
                root.path(&link)
            } else {
                p.parent().unwrap_or(Path::new("/")).join(&link)
            };
            (link.display().to_string(), resolved)
        } else {
            let Ok(Some(text)) = sysfs::read_optional(p) else {
                continue;
            };
            let exec = text.lines().rev().find_map(|l| {
                let l = l.trim();
                l.strip_prefix("exec ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .filter(|t| t.starts_with('/'))
                    .map(str::to_string)
            });
            let Some(t) = exec else { continue };
            let resolved = root.path(&t);
            (t, resolved)
        };
        if !is_executable(&resolved) {
            return Check::problem(
                ID,
                format!("{} runs {target}, which is missing", shown(root, p)),
                reinstall,
            );
        }
    }
    Check::ok(
        ID,
        format!(
            "the nodedev-helper callout answers first ({})",
            shown(root, first)
        ),
    )
}

fn apqn_list(apqns: &[Apqn]) -> String {
    apqns
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn persistent_masks(root: &Root, auto: &[&DefinedMdev]) -> Check {
    const ID: &str = "persistent-masks";
    if auto.is_empty() {
        return Check::ok(
            ID,
            "no auto-start mdevs: nothing the persistent masks must leave free",
        );
    }
    let settings = match vfio_ap::persistent_masks(root) {
        Ok(s) => s,
        Err(e) => {
            return Check::unknown(
                ID,
                format!("cannot read the persistent masks: {e}"),
                "nodedev-helper ap show",
            );
        }
    };
    let mut bad = Vec::new();
    for d in auto {
        let kept: Vec<Apqn> = d
            .apqns()
            .into_iter()
            .filter(|q| settings.masks.keep(*q))
            .collect();
        if !kept.is_empty() {
            bad.push((d.uuid.clone(), kept));
        }
    }
    if bad.is_empty() {
        return Check::ok(
            ID,
            format!(
                "the persistent masks leave every APQN of the {} auto-start mdev(s) to vfio_ap",
                auto.len()
            ),
        );
    }
    let mut adapters = std::collections::BTreeSet::new();
    let mut domains = std::collections::BTreeSet::new();
    let msg: Vec<String> = bad
        .iter()
        .map(|(u, qs)| {
            for q in qs {
                adapters.insert(q.adapter);
                domains.insert(q.domain);
            }
            format!(
                "auto-start mdev {u}: APQN {} kept by the host",
                apqn_list(qs)
            )
        })
        .collect();
    let join = |s: &std::collections::BTreeSet<u8>| {
        s.iter()
            .map(|v| format!("-{v}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    Check::problem(
        ID,
        format!(
            "{} after a reboot (persistent masks, 41-ap.rules)",
            msg.join("; ")
        ),
        format!(
            "nodedev-helper ap set --persistent apmask={} aqmask={}",
            join(&adapters),
            join(&domains)
        ),
    )
}

fn autostart_conflicts(auto: &[&DefinedMdev]) -> Check {
    const ID: &str = "autostart-conflicts";
    let mut clashes = Vec::new();
    for (i, a) in auto.iter().enumerate() {
        for b in &auto[i + 1..] {
            let shared: Vec<Apqn> = a
                .apqns()
                .into_iter()
                .filter(|q| b.apqns().contains(q))
                .collect();
            if !shared.is_empty() {
                clashes.push((a.uuid.clone(), b.uuid.clone(), shared));
            }
        }
    }
    match clashes.first() {
        None => Check::ok(ID, "no two auto-start mdevs claim the same APQN"),
        Some((_, b, _)) => Check::problem(
            ID,
            clashes
                .iter()
                .map(|(a, b, q)| {
                    format!(
                        "auto-start mdevs {a} and {b} both claim APQN {}",
                        apqn_list(q)
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            format!("mdevctl modify -u {b} --manual (only one of them can start)"),
        ),
    }
}

/// An `ap set`/`passthrough` mask change that was interrupted (its record in
/// [`crate::journal`] outlived its process): the masks may be half changed.
fn mask_change(root: &Root) -> Check {
    const ID: &str = "ap-mask-change";
    match journal::interrupted(root) {
        Ok(None) => Check::ok(ID, "no interrupted AP mask change is recorded"),
        Ok(Some(i)) => Check::problem(
            ID,
            i.to_string(),
            "nodedev-helper ap recover --finish (or --undo)",
        ),
        Err(e) => Check::unknown(
            ID,
            format!("cannot read the record of AP mask changes: {e}"),
            format!("check {}", journal::path(root).display()),
        ),
    }
}

fn autostart_active(root: &Root, auto: &[&DefinedMdev]) -> Check {
    const ID: &str = "autostart-active";
    let inactive: Vec<&str> = auto
        .iter()
        .filter(|d| !root.matrix().join(&d.uuid).is_dir())
        .map(|d| d.uuid.as_str())
        .collect();
    match inactive.as_slice() {
        [] => Check::ok(
            ID,
            format!("every auto-start mdev is active ({})", auto.len()),
        ),
        _ => Check::problem(
            ID,
            format!("auto-start mdev(s) not active: {}", inactive.join(", ")),
            inactive
                .iter()
                .map(|u| format!("mdevctl start -u {u}"))
                .collect::<Vec<_>>()
                .join("; "),
        ),
    }
}

fn guest_hostdevs(l: &dyn Libvirt, defined: &[DefinedMdev]) -> Check {
    const ID: &str = "guest-hostdevs";
    let guests = match l.guests() {
        Ok(g) => g,
        Err(e) => {
            return Check::unknown(
                ID,
                format!("cannot list the guests: {e}"),
                "virsh list --all",
            );
        }
    };
    let mut missing = Vec::new();
    let mut count = 0;
    for (name, xml) in &guests {
        let devs = match hook::vfio_ap_hostdevs(name, xml.as_bytes()) {
            Ok(d) => d,
            Err(e) => {
                missing.push((name.clone(), format!("unreadable definition: {e}")));
                continue;
            }
        };
        for h in devs {
            count += 1;
            if !defined
                .iter()
                .any(|d| d.uuid == h.uuid.to_ascii_lowercase())
            {
                missing.push((name.clone(), h.uuid));
            }
        }
    }
    if missing.is_empty() {
        return Check::ok(
            ID,
            format!(
                "{count} vfio-ap hostdev(s) of {} guest(s) name defined mdevs",
                guests.len()
            ),
        );
    }
    Check::problem(
        ID,
        missing
            .iter()
            .map(|(g, u)| format!("guest {g}: vfio-ap hostdev mdev {u} is not defined"))
            .collect::<Vec<_>>()
            .join("; "),
        "define the mdev (mdevctl define -u UUID ..., or nodedev-helper passthrough --domain GUEST ...) or remove the hostdev (virsh edit GUEST)",
    )
}

/// The real libvirt, through the virt crate.
struct Connected(virt::connect::Connect);

impl Libvirt for Connected {
    fn has_ap_matrix(&self) -> Result<bool, String> {
        match self.0.lookup_node_device_by_name("ap_matrix") {
            Ok(_) => Ok(true),
            Err(e) if e.code() == virt::error::ErrorNumber::NoNodeDevice.into() => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }

    fn guests(&self) -> Result<Vec<(String, String)>, String> {
        let doms = self.0.list_all_domains(0).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for d in doms {
            let name = d.name().map_err(|e| e.to_string())?;
            let xml = d
                .xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE)
                .map_err(|e| e.to_string())?;
            out.push((name, xml));
        }
        Ok(out)
    }
}

/// `nodedev-helper doctor`.
pub fn run(root: &Root, args: &Args) -> Result<i32> {
    let conn = if args.no_libvirt {
        None
    } else {
        virt::error::clear_error_callback();
        Some(
            virt::connect::Connect::open(args.connect.as_deref())
                .map(Connected)
                .map_err(|e| format!("{} ({e})", args.connect.as_deref().unwrap_or("default URI"))),
        )
    };
    let libvirt = conn
        .as_ref()
        .map(|c| c.as_ref().map(|c| c as &dyn Libvirt).map_err(Clone::clone));
    let report = examine(root, libvirt);
    let mut out = std::io::stdout().lock();
    let text = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        report.render()
    };
    use std::io::Write;
    match out.write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r?,
    }
    Ok(report.exit() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_mask_change_is_a_problem_with_its_fix() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        assert_eq!(mask_change(&root).status, Status::Ok);
        let dead = {
            let mut c = std::process::Command::new("true").spawn().unwrap();
            let pid = c.id() as i32;
            c.wait().unwrap();
            pid
        };
        let j = journal::Journal {
            pid: dead,
            ..journal::Journal::now(Some((vfio_ap::Masks::FULL, vfio_ap::Masks::FULL)), None)
        };
        journal::begin(&root, &j).unwrap();
        let c = mask_change(&root);
        assert_eq!(c.status, Status::Problem);
        assert!(c.message.contains("was interrupted"), "{}", c.message);
        assert!(c.fix.unwrap().contains("ap recover --finish"));
    }
}
