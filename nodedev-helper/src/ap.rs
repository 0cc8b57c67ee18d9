//! `nodedev-helper ap show|set|list|wait-bindings`: the AP bus masks, active and persistent,
//! and the crypto inventory — a replacement for `chzdev -t ap` / `lszdev -t ap` (issue 5,
//! spec/ap.md "chzdev -t ap / lszdev -t ap").
//!
//! Differences from chzdev, on purpose: conflicts are computed for both sides before anything
//! is written; `--dry-run` writes nothing (chzdev still writes the active mask); kernel write
//! errors such as EBUSY are reported and stop the operation before the persistent side is
//! touched (chzdev ignores them); reversed ranges like `5-3` are refused (chzdev clears the
//! mask); manual-start devices that a change would make unstartable are warned about.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::apmask::{Apqn, Mask};
use crate::chzdev::{self, MaskSpec};
use crate::inventory::{self, ActiveMdev, DefinedMdev};
use crate::root::Root;
use crate::sysfs;
use crate::udev_rule::{self, PersistentMasks};

#[derive(Debug, clap::Args)]
#[command(
    about = "AP bus masks (active and persistent) and crypto inventory",
    long_about = "Shows and changes which AP adapters (apmask) and usage domains (aqmask) the \
                  host's crypto drivers keep; what they give up is free for vfio_ap mediated \
                  devices. The persistent masks live in /etc/udev/rules.d/41-ap.rules in the \
                  format chzdev -t ap writes, so both tools read each other's settings."
)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Active and persistent masks as decimal ranges (like `lszdev -t ap`).
    Show {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Change the masks (like `chzdev -t ap apmask=… aqmask=…`).
    #[command(long_about = "Change the AP masks.\n\n\
        VALUE is a comma list. Absolute: `N` and `N-M` items form the whole mask \
        (`apmask=0-1,3-255`). Relative: when the first item starts with + or -, every item \
        must be `+N`, `+N-M`, `-N` or `-N-M`, applied in order to the current mask \
        (`apmask=-2 aqmask=-43` gives adapter 2 / domain 43 to vfio_ap). Numbers are decimal, \
        0x hex or 0 octal, at most 255. A set bit means the host keeps that adapter/domain.\n\n\
        Without --active or --persistent both sides change. Bits the host would take back \
        from an active mdev (active side) or from an auto-start mdev definition (persistent \
        side) are conflicts: nothing is written. The whole operation holds \
        /run/lock/s390apconfig.lock, the lock chzdev and ap-check use.")]
    Set(SetArgs),
    /// Every card and APQN with its owner (host, vfio_ap, which mdev) and problems.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Wait until the AP bus reports all queue bindings complete (for boot scripts).
    #[command(
        long_about = "Wait until the AP bus reports all queue bindings complete (for boot \
        scripts and hooks that need the crypto queues bound, e.g. before starting guests).\n\n\
        On the real host (--root /) it subscribes to udev events of subsystem ap first, then \
        reads /sys/bus/ap/bindings, then waits for the kernel's change event with \
        BINDINGS=complete (re-reading the file at least every second, so a missing udevd only \
        slows it down). Under another --root, or when no udev monitor can be opened, it reads \
        the file every 100 ms.\n\n\
        Exit status: 0 complete; 1 error (bindings file missing, unreadable or not \
        \"<bound>/<total>[ (complete)]\", bad --timeout); 2 wrong usage; 3 not complete \
        when --timeout ran out (the message names the file and its last content)."
    )]
    WaitBindings {
        /// Give up after this many seconds (exit 3); 0 checks once.
        #[arg(long, value_name = "S", default_value_t = 30.0)]
        timeout: f64,
    },
}

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// `apmask=VALUE` and/or `aqmask=VALUE`.
    #[arg(value_name = "MASK=VALUE")]
    assignments: Vec<String>,
    /// Change only the active (running kernel) masks.
    #[arg(long, short = 'a', conflicts_with = "persistent")]
    active: bool,
    /// Change only the persistent masks (the udev rule).
    #[arg(long, short = 'p')]
    persistent: bool,
    /// Remove a persistent mask setting (the kernel default applies at boot again).
    #[arg(long, value_name = "apmask|aqmask", value_parser = ["apmask", "aqmask"], conflicts_with = "active")]
    remove: Vec<String>,
    /// Compute and show the change, write nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,
}

pub fn run(root: &Root, args: &Args) -> anyhow::Result<i32> {
    match &args.command {
        Command::Show { json } => show(root, *json),
        Command::Set(a) => set_cmd(root, a),
        Command::List { json } => list(root, *json),
        Command::WaitBindings { timeout } => wait_bindings(root, *timeout),
    }
}

// ---------------------------------------------------------------------------------------
// show

/// The masks as lszdev shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskState {
    pub active: (Mask, Mask),
    pub persistent: PersistentMasks,
}

pub fn read_state(root: &Root) -> anyhow::Result<MaskState> {
    Ok(MaskState {
        active: (
            inventory::active_mask(root, "apmask")?,
            inventory::active_mask(root, "aqmask")?,
        ),
        persistent: udev_rule::read(root)?.unwrap_or_default(),
    })
}

fn quoted(m: Option<Mask>) -> String {
    match m {
        Some(m) => format!("\"{}\"", m.ranges()),
        None => "-".to_string(),
    }
}

/// lszdev's table: attribute, active, persistent (`-` = no persistent setting).
pub fn render_show(s: &MaskState, rule: &std::path::Path) -> String {
    let rows = [
        (
            "apmask",
            quoted(Some(s.active.0)),
            quoted(s.persistent.apmask),
        ),
        (
            "aqmask",
            quoted(Some(s.active.1)),
            quoted(s.persistent.aqmask),
        ),
    ];
    let w = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(11) + 4;
    let mut out = format!("{:<11}{:<w$}{}\n", "ATTRIBUTE", "ACTIVE", "PERSISTENT");
    for (name, a, p) in rows {
        let _ = writeln!(out, "{name:<11}{a:<w$}{p}");
    }
    let _ = writeln!(
        out,
        "persistent masks: {}{}",
        rule.display(),
        if s.persistent == PersistentMasks::default() {
            " (none set: the kernel defaults apply at boot)"
        } else {
            ""
        }
    );
    out
}

fn show(root: &Root, json: bool) -> anyhow::Result<i32> {
    let s = read_state(root)?;
    if json {
        let j = serde_json::json!({
            "active": {
                "apmask": s.active.0.ranges(), "aqmask": s.active.1.ranges(),
                "apmask_hex": s.active.0.to_string(), "aqmask_hex": s.active.1.to_string(),
            },
            "persistent": {
                "apmask": s.persistent.apmask.map(|m| m.ranges()),
                "aqmask": s.persistent.aqmask.map(|m| m.ranges()),
                "apmask_hex": s.persistent.apmask.map(|m| m.to_string()),
                "aqmask_hex": s.persistent.aqmask.map(|m| m.to_string()),
                "file": root.ap_udev_rule(),
            },
        });
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        print!("{}", render_show(&s, &root.ap_udev_rule()));
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------------
// set

/// A requested change, parsed and validated.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub apmask: Option<MaskSpec>,
    pub aqmask: Option<MaskSpec>,
    pub active: bool,
    pub persistent: bool,
    pub remove_apmask: bool,
    pub remove_aqmask: bool,
}

/// Parses `apmask=VALUE aqmask=VALUE`; errors name the assignment and the item.
pub fn parse_assignments(items: &[String]) -> anyhow::Result<(Option<MaskSpec>, Option<MaskSpec>)> {
    let (mut ap, mut aq) = (None, None);
    for item in items {
        let Some((name, value)) = item.split_once('=') else {
            bail!("'{item}' is not apmask=VALUE or aqmask=VALUE");
        };
        let slot = match name {
            "apmask" => &mut ap,
            "aqmask" => &mut aq,
            _ => bail!("unknown attribute '{name}' in '{item}' (expected apmask or aqmask)"),
        };
        if slot.is_some() {
            bail!("{name} is given twice");
        }
        *slot =
            Some(chzdev::parse(value).with_context(|| format!("invalid {name} value '{value}'"))?);
    }
    Ok((ap, aq))
}

/// One side's masks before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub before: (Mask, Mask),
    pub after: (Mask, Mask),
}

/// Everything `set` would do, computed before anything is written.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub active: Option<Change>,
    /// Rule contents before and after.
    pub persistent: Option<(PersistentMasks, PersistentMasks)>,
    /// chzdev's messages; any → nothing is written.
    pub conflicts: Vec<String>,
    pub warnings: Vec<String>,
}

/// The kernel's boot default (no `ap.apmask=`/`ap.aqmask=` parameters): the host keeps all.
const BOOT_DEFAULT: Mask = Mask::FULL;

/// APQNs of `apqns` the host takes back: owned by the host after, not before.
fn taken_back(apqns: &[Apqn], c: &Change) -> Vec<(Apqn, &'static str)> {
    apqns
        .iter()
        .filter(|q| q.host_owned(&c.after.0, &c.after.1) && !q.host_owned(&c.before.0, &c.before.1))
        .map(|q| {
            // name the mask whose added bit took it back (apmask first, as chzdev)
            let name = if c.after.0.test(q.adapter) && !c.before.0.test(q.adapter) {
                "apmask"
            } else {
                "aqmask"
            };
            (*q, name)
        })
        .collect()
}

/// Computes a plan from the current state; pure, so tests drive it without a host.
pub fn plan(
    req: &Request,
    state: &MaskState,
    active_mdevs: &[ActiveMdev],
    defined: &[DefinedMdev],
) -> Plan {
    let mut p = Plan::default();
    let apply = |spec: &Option<MaskSpec>, cur: Mask| spec.as_ref().map_or(cur, |s| s.apply(cur));
    if req.active {
        let before = state.active;
        let after = (apply(&req.apmask, before.0), apply(&req.aqmask, before.1));
        let c = Change { before, after };
        for m in active_mdevs {
            for (q, name) in taken_back(&m.apqns, &c) {
                p.conflicts
                    .push(format!("{name} conflicts with mdev {} APQN {q}", m.uuid));
            }
        }
        let active_uuids: Vec<&str> = active_mdevs.iter().map(|m| m.uuid.as_str()).collect();
        for d in defined
            .iter()
            .filter(|d| !active_uuids.contains(&d.uuid.as_str()))
        {
            for (q, name) in taken_back(&d.apqns(), &c) {
                p.warnings.push(format!(
                    "{name} takes APQN {q} of defined {} mdev {} back to the host: it cannot start until it is given back",
                    if d.autostart { "autostart" } else { "manual" },
                    d.uuid
                ));
            }
        }
        p.active = Some(c);
    }
    if req.persistent {
        let old = state.persistent;
        // A mask without a rule line is the active one for relative changes (what the
        // user sees), and the boot default for what happens at boot.
        let base = (
            old.apmask.unwrap_or(state.active.0),
            old.aqmask.unwrap_or(state.active.1),
        );
        let mut new = old;
        if let Some(s) = &req.apmask {
            new.apmask = Some(s.apply(base.0));
        }
        if let Some(s) = &req.aqmask {
            new.aqmask = Some(s.apply(base.1));
        }
        if req.remove_apmask {
            new.apmask = None;
        }
        if req.remove_aqmask {
            new.aqmask = None;
        }
        let at_boot = |m: &PersistentMasks, fallback: (Mask, Mask)| {
            (
                m.apmask.unwrap_or(fallback.0),
                m.aqmask.unwrap_or(fallback.1),
            )
        };
        let c = Change {
            before: at_boot(&old, state.active),
            after: at_boot(&new, (BOOT_DEFAULT, BOOT_DEFAULT)),
        };
        for d in defined {
            for (q, name) in taken_back(&d.apqns(), &c) {
                if d.autostart {
                    p.conflicts.push(format!(
                        "persistent {name} conflicts with defined autostart mdev {} APQN {q}",
                        d.uuid
                    ));
                } else {
                    p.warnings.push(format!(
                        "persistent {name} conflicts with defined manual mdev {} APQN {q}",
                        d.uuid
                    ));
                }
            }
        }
        p.persistent = Some((old, new));
    }
    p
}

/// Outcome of [`execute`].
#[derive(Debug)]
pub struct Applied {
    pub lines: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{source}{}", if rolled_back.is_empty() { String::new() } else { format!(" (rolled back: {})", rolled_back.join(", ")) })]
    Active {
        source: sysfs::FileError,
        rolled_back: Vec<String>,
    },
    #[error(transparent)]
    Persistent(#[from] udev_rule::RuleError),
}

impl ApplyError {
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            ApplyError::Active { source, .. } => source.raw_os_error(),
            ApplyError::Persistent(_) => None,
        }
    }
}

/// Writes the active masks (all removals first, then all additions, so that an APQN moving
/// between adapter and domain never passes through a state the kernel refuses), then the
/// persistent rule. A kernel error stops before the rule and undoes earlier mask writes.
pub fn execute(root: &Root, plan: &Plan) -> Result<Applied, ApplyError> {
    let mut lines = Vec::new();
    if let Some(c) = plan.active {
        let paths = [root.ap_bus().join("apmask"), root.ap_bus().join("aqmask")];
        let before = [c.before.0, c.before.1];
        let after = [c.after.0, c.after.1];
        let mut steps = Vec::new();
        for i in 0..2 {
            let removed = before[i].and(after[i]);
            if removed != before[i] {
                steps.push((i, removed));
            }
        }
        for i in 0..2 {
            let last = steps
                .iter()
                .rev()
                .find(|s| s.0 == i)
                .map_or(before[i], |s| s.1);
            if after[i] != last {
                steps.push((i, after[i]));
            }
        }
        let mut written: Vec<usize> = Vec::new();
        for (i, m) in &steps {
            if let Err(source) = sysfs::write_attr(&paths[*i], &m.to_string()) {
                let mut rolled_back = Vec::new();
                let mut undo: Vec<usize> = written.clone();
                undo.dedup();
                for j in undo {
                    if sysfs::write_attr(&paths[j], &before[j].to_string()).is_ok() {
                        rolled_back.push(paths[j].display().to_string());
                    }
                }
                return Err(ApplyError::Active {
                    source,
                    rolled_back,
                });
            }
            if !written.contains(i) {
                written.push(*i);
            }
        }
        for (i, name) in ["apmask", "aqmask"].iter().enumerate() {
            if before[i] != after[i] {
                lines.push(format!(
                    "{name} active: \"{}\" -> \"{}\"",
                    before[i].ranges(),
                    after[i].ranges()
                ));
            }
        }
    }
    if let Some((old, new)) = plan.persistent {
        if old != new {
            udev_rule::write(root, &new)?;
            for (name, o, n) in [
                ("apmask", old.apmask, new.apmask),
                ("aqmask", old.aqmask, new.aqmask),
            ] {
                if o != n {
                    lines.push(format!(
                        "{name} persistent: {} -> {} ({})",
                        quoted(o),
                        quoted(n),
                        root.ap_udev_rule().display()
                    ));
                }
            }
        }
    }
    Ok(Applied { lines })
}

fn describe_plan(plan: &Plan) -> Vec<String> {
    fn line(name: &str, side: &str, before: String, after: String) -> String {
        if before == after {
            format!("{name} {side}: {before} (unchanged)")
        } else {
            format!("{name} {side}: {before} -> {after}")
        }
    }
    let q = |m: Mask| quoted(Some(m));
    let mut v = Vec::new();
    if let Some(c) = plan.active {
        v.push(line("apmask", "active", q(c.before.0), q(c.after.0)));
        v.push(line("aqmask", "active", q(c.before.1), q(c.after.1)));
    }
    if let Some((o, n)) = plan.persistent {
        v.push(line(
            "apmask",
            "persistent",
            quoted(o.apmask),
            quoted(n.apmask),
        ));
        v.push(line(
            "aqmask",
            "persistent",
            quoted(o.aqmask),
            quoted(n.aqmask),
        ));
    }
    v
}

/// Holds chzdev's/ap-check's lock for the whole operation.
fn with_lock<T>(root: &Root, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let _guard = crate::lock::Guard::take(&root.ap_lock(), crate::lock::DEFAULT_WAIT)?;
    f()
}

fn set_cmd(root: &Root, a: &SetArgs) -> anyhow::Result<i32> {
    let (apmask, aqmask) = parse_assignments(&a.assignments)?;
    if apmask.is_none() && aqmask.is_none() && a.remove.is_empty() {
        bail!("nothing to do: give apmask=VALUE and/or aqmask=VALUE, or --remove");
    }
    let both = !a.active && !a.persistent;
    let req = Request {
        apmask,
        aqmask,
        active: (a.active || both) && (!a.assignments.is_empty()),
        persistent: a.persistent || both || !a.remove.is_empty(),
        remove_apmask: a.remove.iter().any(|r| r == "apmask"),
        remove_aqmask: a.remove.iter().any(|r| r == "aqmask"),
    };
    for r in &a.remove {
        let given = if r == "apmask" {
            req.apmask.is_some()
        } else {
            req.aqmask.is_some()
        };
        if given && req.persistent {
            bail!("{r} is both set and removed");
        }
    }
    let run = || -> anyhow::Result<i32> {
        let state = read_state(root)?;
        let active = inventory::active_mdevs(root)?;
        let (defined, bad) = inventory::defined_mdevs(root)?;
        for w in &bad {
            eprintln!("Warning: {w}");
        }
        let p = plan(&req, &state, &active, &defined);
        for w in &p.warnings {
            eprintln!("Warning: {w}");
        }
        if !p.conflicts.is_empty() {
            for c in &p.conflicts {
                eprintln!("{c}");
            }
            eprintln!("nodedev-helper: nothing changed");
            return Ok(1);
        }
        if a.dry_run {
            for l in describe_plan(&p) {
                println!("dry run: {l}");
            }
            println!("dry run: nothing written");
            return Ok(0);
        }
        match execute(root, &p) {
            Ok(done) => {
                if done.lines.is_empty() {
                    println!("no change");
                }
                for l in done.lines {
                    println!("{l}");
                }
                Ok(0)
            }
            Err(e) => {
                eprintln!("nodedev-helper: {e}");
                if matches!(e, ApplyError::Active { .. }) && p.persistent.is_some() {
                    eprintln!("nodedev-helper: persistent masks left unchanged");
                }
                Ok(1)
            }
        }
    };
    if a.dry_run {
        // A dry run only reads; it must not wait for or create the lock.
        run()
    } else {
        with_lock(root, run)
    }
}

// ---------------------------------------------------------------------------------------
// list

fn list(root: &Root, json: bool) -> anyhow::Result<i32> {
    let cards = inventory::cards(root)?;
    let state = read_state(root)?;
    let eff = udev_rule::effective(root)?;
    let active = inventory::active_mdevs(root)?;
    let (defined, bad) = inventory::defined_mdevs(root)?;
    for w in &bad {
        eprintln!("Warning: {w}");
    }
    let owners = inventory::owners(
        &cards,
        &state.active.0,
        &state.active.1,
        (&eff.apmask, &eff.aqmask),
        &active,
        &defined,
    );
    if json {
        let j = serde_json::json!({
            "cards": cards.iter().map(|c| serde_json::json!({
                "adapter": c.adapter, "hwtype": c.hwtype, "vfio_ap": c.vfio_ap_capable(),
                "queues": c.queues.len(),
            })).collect::<Vec<_>>(),
            "apqns": owners,
        });
        println!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(0);
    }
    print!("{}", render_list(&cards, &owners));
    Ok(0)
}

pub fn render_list(cards: &[inventory::Card], owners: &[inventory::ApqnOwner]) -> String {
    let mut out = String::from("CARD  HWTYPE  VFIO_AP            QUEUES\n");
    for c in cards {
        let _ = writeln!(
            out,
            "{:<6}{:<8}{:<19}{}",
            format!("{:02x}", c.adapter),
            c.hwtype,
            if c.vfio_ap_capable() {
                "yes"
            } else {
                "no (hwtype < 10)"
            },
            c.queues.len()
        );
    }
    out.push_str("\nAPQN     QUEUE    OWNER\n");
    for o in owners {
        let q = Apqn::new(o.adapter, o.domain);
        let mut owner = match (&o.active_mdev, o.owner) {
            (Some(u), _) => format!("assigned to active mdev {u}"),
            (None, "host") => "host driver".to_string(),
            (None, _) => "free for vfio_ap".to_string(),
        };
        for (u, how) in &o.defined_for {
            let _ = write!(owner, "; defined for mdev {u} ({how})");
        }
        let _ = writeln!(out, "{:<9}{:<9}{owner}", o.apqn, q.queue_name());
        for p in &o.problems {
            let _ = writeln!(out, "{:<18}problem: {p}", "");
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// wait-bindings

/// What `/sys/bus/ap/bindings` says: `"<bound>/<total>"`, with ` (complete)` appended once
/// every queue is bound (kernel `ap_bus.c`, `bindings_show`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bindings {
    pub bound: u32,
    pub total: u32,
    pub complete: bool,
}

/// Parses the `bindings` attribute; `None` when it is not in the kernel's format (a wrong
/// file, a truncated read), which the caller reports instead of waiting on it forever.
pub fn parse_bindings(text: &str) -> Option<Bindings> {
    let t = text.trim_end_matches('\n');
    let (counts, complete) = match t.strip_suffix(" (complete)") {
        Some(c) => (c, true),
        None => (t, false),
    };
    let (b, n) = counts.split_once('/')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(b) || !digits(n) {
        return None;
    }
    Some(Bindings {
        bound: b.parse().ok()?,
        total: n.parse().ok()?,
        complete,
    })
}

/// `bindings` reads `"<bound>/<total> (complete)"` once every queue is bound.
pub fn bindings_complete(text: &str) -> bool {
    parse_bindings(text).is_some_and(|b| b.complete)
}

/// Exit status of `wait-bindings` when `--timeout` ran out (1 is an error such as a missing or
/// malformed `bindings` file, 2 is wrong usage): boot scripts can tell "no AP bus" from "slow".
pub const EXIT_TIMED_OUT: i32 = 3;

/// How `wait_for_bindings` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Complete; the attribute's last content.
    Complete(String),
    /// Not complete when the deadline passed; the attribute's last content.
    TimedOut(String),
}

/// Errors while waiting: the file is unreadable or not in the kernel's format.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error(transparent)]
    File(#[from] sysfs::FileError),
    #[error("{}: not an AP bindings value: {:?} (expected \"<bound>/<total>[ (complete)]\")", path.display(), text)]
    Malformed {
        path: std::path::PathBuf,
        text: String,
    },
}

/// Reads `path` once into `last`: true when complete, false while still binding.
fn check_bindings(path: &std::path::Path, last: &mut String) -> Result<bool, WaitError> {
    let text = sysfs::read(path)?;
    let parsed = parse_bindings(&text).ok_or_else(|| WaitError::Malformed {
        path: path.to_path_buf(),
        text: text.clone(),
    })?;
    *last = text.trim_end().to_string();
    Ok(parsed.complete)
}

/// Without a uevent source the attribute is read every 100 ms until complete or `deadline`.
pub fn poll_bindings(path: &std::path::Path, deadline: Instant) -> Result<WaitOutcome, WaitError> {
    let mut last = String::new();
    loop {
        if check_bindings(path, &mut last)? {
            return Ok(WaitOutcome::Complete(last));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(WaitOutcome::TimedOut(last));
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(100)));
    }
}

/// True for the uevent the kernel sends when every AP queue is bound:
/// `change` on `/devices/ap`, subsystem `ap`, `BINDINGS=complete` (spec/ap.md).
pub fn is_bindings_complete_event(
    action: &str,
    subsystem: Option<&str>,
    bindings: Option<&str>,
) -> bool {
    action == "change" && subsystem == Some("ap") && bindings == Some("complete")
}

/// Waits on a udev monitor that is already subscribed to subsystem `ap` (subscribing before
/// the first read of `path` is what makes this race-free: a completion between the read and
/// the wait is still queued on the socket). The file stays the source of truth: an event only
/// wakes us to re-read it, and it is re-read every second anyway, so a missing udevd or an
/// overflowed socket costs at most a second, never the whole timeout.
pub fn wait_with_monitor(
    socket: &udev::MonitorSocket,
    path: &std::path::Path,
    deadline: Instant,
) -> Result<WaitOutcome, WaitError> {
    use std::os::fd::AsRawFd;
    let mut last = String::new();
    loop {
        if check_bindings(path, &mut last)? {
            return Ok(WaitOutcome::Complete(last));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(WaitOutcome::TimedOut(last));
        }
        let wait = (deadline - now).min(Duration::from_secs(1));
        let mut pfd = libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Round up so a sub-millisecond remainder does not spin with timeout 0.
        let ms = wait.as_millis().saturating_add(1).min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd for the duration of the call; the socket outlives it.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        let broken = if r < 0 {
            let e = std::io::Error::last_os_error();
            (e.kind() != std::io::ErrorKind::Interrupted).then(|| e.to_string())
        } else if pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            Some(format!("poll revents {:#x}", pfd.revents))
        } else {
            None
        };
        if let Some(why) = broken {
            // The monitor broke: poll the file for the rest of the time rather than spin.
            eprintln!(
                "nodedev-helper: udev monitor failed ({why}); polling {}",
                path.display()
            );
            return poll_bindings(path, deadline);
        }
        // Drain what arrived; the loop re-reads the file either way, the event only says
        // there is no point in sleeping.
        for ev in socket.iter() {
            let subsystem = ev.subsystem().and_then(|s| s.to_str());
            let bindings = ev.property_value("BINDINGS").and_then(|s| s.to_str());
            if is_bindings_complete_event(&ev.event_type().to_string(), subsystem, bindings) {
                break;
            }
        }
    }
}

/// Subscribes to udev events of subsystem `ap`; `None` (with the reason) when udev cannot
/// give us a monitor, e.g. no netlink in this sandbox.
fn ap_monitor() -> Result<udev::MonitorSocket, std::io::Error> {
    udev::MonitorBuilder::new()?.match_subsystem("ap")?.listen()
}

/// The whole wait: udev monitor on the real root, polling otherwise.
pub fn wait_for_bindings(root: &Root, timeout: Duration) -> Result<WaitOutcome, WaitError> {
    let path = root.ap_bus().join("bindings");
    let deadline = Instant::now() + timeout;
    // Under --root there is no kernel behind the tree, so no uevent can announce it.
    if root.base() != std::path::Path::new("/") {
        return poll_bindings(&path, deadline);
    }
    match ap_monitor() {
        Ok(socket) => wait_with_monitor(&socket, &path, deadline),
        Err(e) => {
            eprintln!(
                "nodedev-helper: no udev monitor ({e}); polling {} every 100 ms",
                path.display()
            );
            poll_bindings(&path, deadline)
        }
    }
}

fn wait_bindings(root: &Root, timeout: f64) -> anyhow::Result<i32> {
    if !timeout.is_finite() || !(0.0..=86_400.0).contains(&timeout) {
        bail!("--timeout {timeout}: must be a number of seconds from 0 to 86400");
    }
    match wait_for_bindings(root, Duration::from_secs_f64(timeout))? {
        WaitOutcome::Complete(text) => {
            println!("AP bus bindings complete: {text}");
            Ok(0)
        }
        WaitOutcome::TimedOut(text) => {
            eprintln!(
                "nodedev-helper: AP bus bindings not complete after {timeout} s: {} reads {text:?}",
                root.ap_bus().join("bindings").display()
            );
            Ok(EXIT_TIMED_OUT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn without(bit: u8) -> Mask {
        let mut m = Mask::FULL;
        m.clear(bit);
        m
    }

    fn req(ap: Option<&str>, aq: Option<&str>, active: bool, persistent: bool) -> Request {
        Request {
            apmask: ap.map(|v| chzdev::parse(v).unwrap()),
            aqmask: aq.map(|v| chzdev::parse(v).unwrap()),
            active,
            persistent,
            ..Request::default()
        }
    }

    fn defined(uuid: &str, auto: bool, a: u8, d: u8) -> DefinedMdev {
        DefinedMdev {
            uuid: uuid.into(),
            autostart: auto,
            adapters: Mask::EMPTY.with(a),
            domains: Mask::EMPTY.with(d),
            control_domains: Mask::EMPTY.with(d),
        }
    }

    const U1: &str = "11111111-2222-3333-4444-555555555555";
    const U2: &str = "aaaaaaaa-2222-3333-4444-555555555555";

    #[test]
    fn seed_example_both_sides() {
        let state = MaskState {
            active: (Mask::FULL, Mask::FULL),
            persistent: PersistentMasks::default(),
        };
        let p = plan(&req(Some("-2"), Some("-43"), true, true), &state, &[], &[]);
        assert!(p.conflicts.is_empty());
        let c = p.active.unwrap();
        assert_eq!(c.after.0.ranges(), "0-1,3-255");
        assert_eq!(c.after.1.ranges(), "0-42,44-255");
        let (_, n) = p.persistent.unwrap();
        assert_eq!(n.apmask, Some(without(2)));
        assert_eq!(n.aqmask, Some(without(43)));
    }

    #[test]
    fn refused_plus_2_with_active_and_autostart_mdev() {
        let state = MaskState {
            active: (without(2), without(43)),
            persistent: PersistentMasks {
                apmask: Some(without(2)),
                aqmask: Some(without(43)),
            },
        };
        let active = [ActiveMdev {
            uuid: U1.into(),
            apqns: vec![Apqn::new(2, 43)],
        }];
        // 2.43 is not host-owned even with apmask bit 2 set back (domain 43 stays clear):
        // only a change that gives the host both bits is a conflict.
        let p = plan(
            &req(Some("+2"), None, true, true),
            &state,
            &active,
            &[defined(U1, true, 2, 43)],
        );
        assert!(p.conflicts.is_empty(), "{:?}", p.conflicts);
        // the seed's case: after apmask=-2 alone the host keeps domain 43, so +2 takes 2.43
        let seed = MaskState {
            active: (without(2), Mask::FULL),
            persistent: PersistentMasks {
                apmask: Some(without(2)),
                aqmask: None,
            },
        };
        let p = plan(
            &req(Some("+2"), None, true, true),
            &seed,
            &active,
            &[defined(U1, true, 2, 43)],
        );
        assert_eq!(
            p.conflicts,
            vec![
                format!("apmask conflicts with mdev {U1} APQN 2.43"),
                format!("persistent apmask conflicts with defined autostart mdev {U1} APQN 2.43"),
            ]
        );
        let p = plan(
            &req(Some("+2"), Some("+43"), true, true),
            &state,
            &active,
            &[defined(U1, true, 2, 43), defined(U2, false, 2, 43)],
        );
        assert_eq!(
            p.conflicts,
            vec![
                format!("apmask conflicts with mdev {U1} APQN 2.43"),
                format!("persistent apmask conflicts with defined autostart mdev {U1} APQN 2.43"),
            ]
        );
        assert_eq!(
            p.warnings,
            vec![
                format!(
                    "apmask takes APQN 2.43 of defined manual mdev {U2} back to the host: it cannot start until it is given back"
                ),
                format!("persistent apmask conflicts with defined manual mdev {U2} APQN 2.43"),
            ]
        );
    }

    #[test]
    fn removing_the_persistent_mask_is_a_change_to_the_boot_default() {
        let state = MaskState {
            active: (without(2), Mask::FULL),
            persistent: PersistentMasks {
                apmask: Some(without(2)),
                aqmask: None,
            },
        };
        let mut r = req(None, None, false, true);
        r.remove_apmask = true;
        let p = plan(&r, &state, &[], &[defined(U1, true, 2, 43)]);
        assert_eq!(
            p.conflicts,
            vec![format!(
                "persistent apmask conflicts with defined autostart mdev {U1} APQN 2.43"
            )]
        );
    }

    #[test]
    fn execute_writes_removals_first_and_the_rule() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        std::fs::create_dir_all(root.ap_bus()).unwrap();
        for n in ["apmask", "aqmask"] {
            std::fs::write(root.ap_bus().join(n), format!("{}\n", Mask::FULL)).unwrap();
        }
        let state = read_state(&root).unwrap();
        let p = plan(&req(Some("-2"), Some("-43"), true, true), &state, &[], &[]);
        let done = execute(&root, &p).unwrap();
        assert_eq!(done.lines.len(), 4, "{:?}", done.lines);
        let s = read_state(&root).unwrap();
        assert_eq!(s.active, (without(2), without(43)));
        assert_eq!(s.persistent.apmask, Some(without(2)));
    }

    #[test]
    fn show_table() {
        let s = MaskState {
            active: (without(2), Mask::FULL),
            persistent: PersistentMasks {
                apmask: Some(without(2)),
                aqmask: None,
            },
        };
        let t = render_show(&s, std::path::Path::new("/etc/udev/rules.d/41-ap.rules"));
        assert_eq!(
            t,
            "ATTRIBUTE  ACTIVE         PERSISTENT\n\
             apmask     \"0-1,3-255\"    \"0-1,3-255\"\n\
             aqmask     \"0-255\"        -\n\
             persistent masks: /etc/udev/rules.d/41-ap.rules\n"
        );
    }

    #[test]
    fn assignments_errors() {
        let e = parse_assignments(&["apmask=5-3".into()]).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "invalid apmask value '5-3': item '5-3': range end is lower than its start"
        );
        let e = parse_assignments(&["apmask=1".into(), "apmask=2".into()]).unwrap_err();
        assert_eq!(e.to_string(), "apmask is given twice");
        let e = parse_assignments(&["admask=1".into()]).unwrap_err();
        assert!(e.to_string().starts_with("unknown attribute 'admask'"));
        let e = parse_assignments(&["apmask".into()]).unwrap_err();
        assert!(e.to_string().contains("is not apmask=VALUE"));
    }

    #[test]
    fn bindings_text() {
        assert!(bindings_complete("4/4 (complete)\n"));
        assert!(!bindings_complete("3/4\n"));
        assert_eq!(
            parse_bindings("3/4\n"),
            Some(Bindings {
                bound: 3,
                total: 4,
                complete: false
            })
        );
        assert_eq!(
            parse_bindings("96/96 (complete)\n"),
            Some(Bindings {
                bound: 96,
                total: 96,
                complete: true
            })
        );
        for bad in [
            "",
            "\n",
            "complete",
            "3/",
            "/4",
            "-1/4",
            "3/4 (done)",
            "3 / 4",
            "0x3/4",
        ] {
            assert_eq!(parse_bindings(bad), None, "{bad:?}");
            assert!(!bindings_complete(bad), "{bad:?}");
        }
    }

    #[test]
    fn bindings_event_filter() {
        assert!(is_bindings_complete_event(
            "change",
            Some("ap"),
            Some("complete")
        ));
        assert!(!is_bindings_complete_event(
            "add",
            Some("ap"),
            Some("complete")
        ));
        assert!(!is_bindings_complete_event("change", Some("ap"), None));
        assert!(!is_bindings_complete_event(
            "change",
            Some("net"),
            Some("complete")
        ));
    }

    /// A bindings file in a temp dir, replaced atomically (sysfs reads are atomic too; a
    /// truncate-then-write could be read empty and be reported as malformed, rightly).
    fn bindings_file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bindings");
        std::fs::write(&p, text).unwrap();
        (d, p)
    }

    fn flip_later(path: &std::path::Path, after: Duration) -> std::thread::JoinHandle<()> {
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            std::thread::sleep(after);
            let tmp = path.with_extension("new");
            std::fs::write(&tmp, "4/4 (complete)\n").unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        })
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    #[test]
    fn polling_returns_once_another_thread_completes_the_bindings() {
        let (_d, p) = bindings_file("1/4\n");
        let t = flip_later(&p, Duration::from_millis(300));
        let r = poll_bindings(&p, far()).unwrap();
        t.join().unwrap();
        assert_eq!(r, WaitOutcome::Complete("4/4 (complete)".into()));
    }

    #[test]
    fn polling_times_out_with_the_last_content() {
        let (_d, p) = bindings_file("3/4\n");
        let r = poll_bindings(&p, Instant::now() + Duration::from_millis(250)).unwrap();
        assert_eq!(r, WaitOutcome::TimedOut("3/4".into()));
    }

    #[test]
    fn malformed_or_missing_bindings_are_errors_naming_the_file() {
        let (d, p) = bindings_file("garbage\n");
        let e = poll_bindings(&p, far()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: not an AP bindings value: \"garbage\\n\" (expected \"<bound>/<total>[ (complete)]\")",
                p.display()
            )
        );
        let missing = d.path().join("nope");
        let e = poll_bindings(&missing, far()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("cannot read {}:", missing.display())),
            "{e}"
        );
    }

    #[test]
    fn wait_for_bindings_under_a_root_polls_the_trees_file() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        std::fs::create_dir_all(root.ap_bus()).unwrap();
        let p = root.ap_bus().join("bindings");
        std::fs::write(&p, "0/2\n").unwrap();
        let t = flip_later(&p, Duration::from_millis(200));
        let r = wait_for_bindings(&root, Duration::from_secs(30)).unwrap();
        t.join().unwrap();
        assert_eq!(r, WaitOutcome::Complete("4/4 (complete)".into()));
    }

    /// The monitor path with a real udev monitor socket (netlink, subsystem `ap`). No AP bus
    /// exists off s390x, so no `ap` uevent can arrive here: this proves the subscribe-then-read
    /// loop, its wait on the socket and its periodic re-read, not the event wake-up itself.
    fn real_monitor() -> udev::MonitorSocket {
        ap_monitor().unwrap_or_else(|e| panic!("cannot open a udev netlink monitor: {e}"))
    }

    #[test]
    fn monitor_path_returns_at_once_when_already_complete() {
        let (_d, p) = bindings_file("4/4 (complete)\n");
        let s = real_monitor();
        let r = wait_with_monitor(&s, &p, far()).unwrap();
        assert_eq!(r, WaitOutcome::Complete("4/4 (complete)".into()));
    }

    #[test]
    fn monitor_path_notices_completion_without_an_event() {
        let (_d, p) = bindings_file("2/4\n");
        let s = real_monitor();
        let t = flip_later(&p, Duration::from_millis(300));
        let r = wait_with_monitor(&s, &p, far()).unwrap();
        t.join().unwrap();
        assert_eq!(r, WaitOutcome::Complete("4/4 (complete)".into()));
    }

    #[test]
    fn monitor_path_times_out_with_the_last_content() {
        let (_d, p) = bindings_file("2/4\n");
        let s = real_monitor();
        let r = wait_with_monitor(&s, &p, Instant::now() + Duration::from_millis(300)).unwrap();
        assert_eq!(r, WaitOutcome::TimedOut("2/4".into()));
        std::fs::write(&p, "2/four\n").unwrap();
        let e = wait_with_monitor(&s, &p, far()).unwrap_err();
        assert!(e.to_string().contains("not an AP bindings value"), "{e}");
    }
}
