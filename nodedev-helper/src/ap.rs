//! `nodedev-helper ap show|set|list|wait-bindings`: the command line over the AP bus masks,
//! active and persistent, and the crypto inventory — a replacement for `chzdev -t ap` /
//! `lszdev -t ap`. The engine is [`crate::masks`], the wait is [`crate::bindings`]; this module
//! parses arguments and prints.
//!
//! Differences from chzdev, on purpose: `--dry-run` writes nothing (chzdev still writes the
//! active mask); reversed ranges like `5-3` are refused (chzdev clears the mask); see
//! [`crate::masks`] for the engine's.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::bail;

use crate::apmask::{Apqn, Mask};
use crate::bindings::{self, WaitOutcome};
use crate::chzdev::{self, MaskSpec};
use crate::inventory;
use crate::journal;
use crate::masks::{self, ApplyError, MaskState, Plan, Request, quoted};
use crate::mdev;
use crate::root::Root;
use crate::udev_rule::PersistentMasks;
use crate::vfio_ap;

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
    #[command(
        long_about = "Active and persistent masks as decimal ranges (like `lszdev -t ap`).\n\n\
        --format table (default) is our table with the rule file's path; json is for scripts \
        (ranges and the kernel's hex form); lszdev prints `lszdev -t ap`'s DEVICE TYPE block \
        and columns byte for byte, pairs prints `lszdev -t ap --pairs` (KEY=\"VALUE\"), so \
        scripts written for lszdev read ours unchanged."
    )]
    Show {
        /// Output layout.
        #[arg(long, value_enum, default_value_t = ShowFormat::Table)]
        format: ShowFormat,
        /// Same as --format json.
        #[arg(long, conflicts_with = "format")]
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
        /run/lock/s390apconfig.lock, the lock chzdev and ap-check use.\n\n\
        Exit status, as chzdev's: 0 done (or nothing to do, or a dry run); 1 usage or host \
        error; 4 unknown attribute; 6 invalid value or an attribute given twice; 9 conflict \
        (nothing written). Unlike chzdev, a reversed range (5-3) is refused rather than \
        clearing the mask, and --dry-run writes nothing at all.")]
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
    /// Finish or undo a mask change that was interrupted (killed, power loss, full disk).
    #[command(long_about = "Finish or undo a mask change that was interrupted.

        Every change of `ap set` (and of `passthrough`) is recorded in         /run/nodedev-helper/ap-change.journal before its first write and the record is removed         after its last one. A record left by a process that no longer runs means the host may         be anywhere between the old and the new masks; `ap show`, `ap list` and `ap set` say         so, and `ap set` refuses to change anything until this command finishes the change         (--finish: the recorded new masks) or undoes it (--undo: the recorded old masks).         Conflicts with mdevs are checked as for `ap set`. Without a record it does nothing.")]
    Recover(RecoverArgs),
}

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct RecoverArgs {
    /// Apply the recorded new masks (what the interrupted command was doing).
    #[arg(long)]
    finish: bool,
    /// Restore the recorded old masks (as if the interrupted command had not run).
    #[arg(long)]
    undo: bool,
    /// Show what would be written, write nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,
}

/// `ap show --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShowFormat {
    Table,
    Json,
    Lszdev,
    Pairs,
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
        Command::Show { format, json } => {
            show(root, if *json { ShowFormat::Json } else { *format })
        }
        Command::Set(a) => set_cmd(root, a),
        Command::List { json } => list(root, *json),
        Command::WaitBindings { timeout } => wait_bindings(root, *timeout),
        Command::Recover(a) => recover(root, a),
    }
}

/// Says on stderr when an interrupted change is recorded (`show`, `list`).
fn report_interrupted(root: &Root) -> anyhow::Result<()> {
    if let Some(i) = journal::interrupted(root)? {
        eprintln!("{}", vfio_ap::warning(&i));
    }
    Ok(())
}

/// `ap recover --finish|--undo`.
fn recover(root: &Root, a: &RecoverArgs) -> anyhow::Result<i32> {
    let run = || -> anyhow::Result<i32> {
        let Some(i) = journal::interrupted(root)? else {
            println!("no interrupted AP mask change is recorded: nothing to do");
            return Ok(0);
        };
        eprintln!("nodedev-helper: {i}");
        let j = i.journal;
        fn pick<T>(finish: bool, (before, after): (T, T)) -> T {
            if finish { after } else { before }
        }
        let target_active: Option<vfio_ap::Masks> = j.active.map(|c| pick(a.finish, c));
        let target_persistent: Option<PersistentMasks> = j.persistent.map(|c| pick(a.finish, c));
        let absolute = |m: Option<Mask>| m.map(MaskSpec::Absolute);
        let req = Request {
            apmask: absolute(target_active.map(|m| m.apmask)),
            aqmask: absolute(target_active.map(|m| m.aqmask)),
            active: target_active.is_some(),
            persistent: false,
            ..Request::default()
        };
        let state = masks::read_state(root)?;
        let active = mdev::active(root)?;
        let (defined, bad) = mdev::defined(root)?;
        for w in &bad {
            eprintln!("{}", vfio_ap::warning(w));
        }
        let mut p = masks::plan(&req, &state, &active, &defined);
        if let Some(t) = target_persistent {
            // the persistent side as recorded, with its conflicts (an absolute mask, or the
            // removal of a rule line)
            let preq = Request {
                apmask: absolute(t.apmask),
                aqmask: absolute(t.aqmask),
                persistent: true,
                remove_apmask: t.apmask.is_none(),
                remove_aqmask: t.aqmask.is_none(),
                ..Request::default()
            };
            let pp = masks::plan(&preq, &state, &active, &defined);
            p.persistent = pp.persistent;
            p.conflicts.extend(pp.conflicts);
            p.warnings.extend(pp.warnings);
        }
        for w in &p.warnings {
            eprintln!("{}", vfio_ap::warning(w));
        }
        if !p.conflicts.is_empty() {
            for c in &p.conflicts {
                eprintln!("{c}");
            }
            eprintln!("nodedev-helper: nothing changed; the record stays");
            return Ok(1);
        }
        if a.dry_run {
            for l in describe_plan(&p) {
                println!("dry run: {l}");
            }
            println!("dry run: nothing written");
            return Ok(0);
        }
        let done = masks::execute_recorded(root, &p)?;
        for l in done.lines {
            println!("{l}");
        }
        println!(
            "interrupted change {}",
            if a.finish { "finished" } else { "undone" }
        );
        Ok(0)
    };
    if a.dry_run {
        run()
    } else {
        with_lock(root, run)
    }
}

// ---------------------------------------------------------------------------------------
// show

/// Each mask's row as lszdev quotes it: name, active, persistent (`-` = no setting).
fn quoted_rows(s: &MaskState) -> [(&'static str, String, String); 2] {
    [
        (
            "apmask",
            quoted(Some(s.active.apmask)),
            quoted(s.persistent.apmask),
        ),
        (
            "aqmask",
            quoted(Some(s.active.aqmask)),
            quoted(s.persistent.aqmask),
        ),
    ]
}

/// lszdev's table: attribute, active, persistent (`-` = no persistent setting).
pub fn render_show(s: &MaskState, rule: &std::path::Path) -> String {
    let rows = quoted_rows(s);
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

/// The `DEVICE TYPE ap` block of `lszdev -t ap`: Active says whether the AP bus exists.
const LSZDEV_DESCRIPTION: &str = "Cryptographic Adjunct Processor (AP) device";

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// `lszdev -t ap`, byte for byte: the device type block, then the attribute table, whose
/// columns are as wide as their widest cell plus two spaces (the last is not padded).
pub fn render_lszdev(s: &MaskState, bus_present: bool) -> String {
    let mut out = String::from("DEVICE TYPE ap\n");
    for (k, v) in [
        ("Description", LSZDEV_DESCRIPTION),
        ("Modules", "ap"),
        ("Active", yes_no(bus_present)),
        ("Persistent", "yes"),
    ] {
        let _ = writeln!(out, "  {k:<19}: {v}");
    }
    out.push('\n');
    let [ap, aq] = quoted_rows(s);
    let rows = [
        ("ATTRIBUTE", "ACTIVE".to_string(), "PERSISTENT".to_string()),
        ap,
        aq,
    ];
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0) + 2;
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0) + 2;
    for (name, a, p) in rows {
        let _ = writeln!(out, "  {name:<w0$}{a:<w1$}{p}");
    }
    out
}

/// `lszdev -t ap --pairs`: KEY="VALUE" lines, ranges unquoted, "" for no persistent setting.
pub fn render_pairs(s: &MaskState, bus_present: bool) -> String {
    let mut out = format!(
        "TYPE=\"ap\"\nDESCRIPTION=\"{LSZDEV_DESCRIPTION}\"\nMODULES=\"ap\"\nACTV=\"{}\"\nPERS=\"yes\"\n",
        yes_no(bus_present)
    );
    for (name, a, p) in [
        ("apmask", s.active.apmask, s.persistent.apmask),
        ("aqmask", s.active.aqmask, s.persistent.aqmask),
    ] {
        let p = p.map(|m| m.ranges()).unwrap_or_default();
        let _ = writeln!(
            out,
            "ATTRIBUTE=\"{name}\" ACTIVE=\"{}\" PERSISTENT=\"{p}\"",
            a.ranges()
        );
    }
    out
}

fn show(root: &Root, format: ShowFormat) -> anyhow::Result<i32> {
    report_interrupted(root)?;
    let s = masks::read_state(root)?;
    let bus_present = root.ap_bus().is_dir();
    if format == ShowFormat::Lszdev {
        print!("{}", render_lszdev(&s, bus_present));
    } else if format == ShowFormat::Pairs {
        print!("{}", render_pairs(&s, bus_present));
    } else if format == ShowFormat::Json {
        let j = serde_json::json!({
            "active": {
                "apmask": s.active.apmask.ranges(), "aqmask": s.active.aqmask.ranges(),
                "apmask_hex": s.active.apmask.to_string(), "aqmask_hex": s.active.aqmask.to_string(),
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

/// Exit status of `ap set`: chzdev's codes, which scripts written for `chzdev -t ap` test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum SetExit {
    /// Changed, or nothing to change, or a dry run.
    Ok = 0,
    /// Usage error, or the host could not be read or written.
    Failed = 1,
    /// An attribute other than apmask/aqmask (chzdev: "Unknown device type attribute").
    UnknownAttribute = 4,
    /// A value that is not a mask, or an attribute given twice (chzdev: "Invalid attribute
    /// value", "Cannot specify multiple values").
    InvalidValue = 6,
    /// The change would take an APQN back from an mdev; nothing was written (chzdev:
    /// "Invalid configuration").
    Conflict = 9,
}

/// Why `apmask=… aqmask=…` arguments were refused, with the exit code chzdev uses.
#[derive(Debug, thiserror::Error)]
pub enum AssignError {
    #[error("'{0}' is not apmask=VALUE or aqmask=VALUE")]
    NotAssignment(String),
    #[error("unknown attribute '{name}' in '{item}' (expected apmask or aqmask)")]
    UnknownAttribute { name: String, item: String },
    #[error("{0} is given twice")]
    Twice(String),
    #[error("invalid {name} value '{value}': {source}")]
    InvalidValue {
        name: String,
        value: String,
        source: chzdev::SyntaxError,
    },
}

impl AssignError {
    pub fn exit(&self) -> SetExit {
        match self {
            AssignError::NotAssignment(_) => SetExit::Failed,
            AssignError::UnknownAttribute { .. } => SetExit::UnknownAttribute,
            AssignError::Twice(_) | AssignError::InvalidValue { .. } => SetExit::InvalidValue,
        }
    }
}

/// Parses `apmask=VALUE aqmask=VALUE`; errors name the assignment and the item.
pub fn parse_assignments(
    items: &[String],
) -> Result<(Option<MaskSpec>, Option<MaskSpec>), AssignError> {
    let (mut ap, mut aq) = (None, None);
    for item in items {
        let Some((name, value)) = item.split_once('=') else {
            return Err(AssignError::NotAssignment(item.clone()));
        };
        let slot = match name {
            "apmask" => &mut ap,
            "aqmask" => &mut aq,
            _ => {
                return Err(AssignError::UnknownAttribute {
                    name: name.into(),
                    item: item.clone(),
                });
            }
        };
        if slot.is_some() {
            return Err(AssignError::Twice(name.into()));
        }
        *slot = Some(
            chzdev::parse(value).map_err(|source| AssignError::InvalidValue {
                name: name.into(),
                value: value.into(),
                source,
            })?,
        );
    }
    Ok((ap, aq))
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
        v.push(line(
            "apmask",
            "active",
            q(c.before.apmask),
            q(c.after.apmask),
        ));
        v.push(line(
            "aqmask",
            "active",
            q(c.before.aqmask),
            q(c.after.aqmask),
        ));
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
    let (apmask, aqmask) = match parse_assignments(&a.assignments) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("nodedev-helper: {e}");
            return Ok(e.exit() as i32);
        }
    };
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
        if let Some(i) = journal::interrupted(root)? {
            eprintln!("nodedev-helper: {i}");
            eprintln!("nodedev-helper: nothing changed");
            return Ok(SetExit::Failed as i32);
        }
        let state = masks::read_state(root)?;
        let active = mdev::active(root)?;
        let (defined, bad) = mdev::defined(root)?;
        for w in &bad {
            eprintln!("{}", vfio_ap::warning(w));
        }
        let p = masks::plan(&req, &state, &active, &defined);
        for w in &p.warnings {
            eprintln!("{}", vfio_ap::warning(w));
        }
        if !p.conflicts.is_empty() {
            for c in &p.conflicts {
                eprintln!("{c}");
            }
            eprintln!("nodedev-helper: nothing changed");
            return Ok(SetExit::Conflict as i32);
        }
        if a.dry_run {
            for l in describe_plan(&p) {
                println!("dry run: {l}");
            }
            println!("dry run: nothing written");
            return Ok(0);
        }
        match masks::execute(root, &p) {
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
    report_interrupted(root)?;
    let cards = inventory::cards(root)?;
    let state = masks::read_state(root)?;
    let eff = vfio_ap::persistent_masks(root)?;
    let active = mdev::active(root)?;
    let (defined, bad) = mdev::defined(root)?;
    for w in &bad {
        eprintln!("{}", vfio_ap::warning(w));
    }
    let owners = inventory::owners(&cards, &state.active, &eff.masks, &active, &defined);
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
                "yes".to_string()
            } else {
                format!("no (hwtype < {})", vfio_ap::MIN_HWTYPE)
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

fn wait_bindings(root: &Root, timeout: f64) -> anyhow::Result<i32> {
    if !timeout.is_finite() || !(0.0..=86_400.0).contains(&timeout) {
        bail!("--timeout {timeout}: must be a number of seconds from 0 to 86400");
    }
    match bindings::wait_for_bindings(root, Duration::from_secs_f64(timeout))? {
        WaitOutcome::Complete(text) => {
            println!("AP bus bindings complete: {text}");
            Ok(0)
        }
        WaitOutcome::TimedOut(text) => {
            eprintln!(
                "nodedev-helper: AP bus bindings not complete after {timeout} s: {} reads {text:?}",
                root.ap_bus().join("bindings").display()
            );
            Ok(bindings::EXIT_TIMED_OUT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_table() {
        let s = MaskState {
            active: vfio_ap::Masks {
                apmask: Mask::FULL.without(2),
                aqmask: Mask::FULL,
            },
            persistent: PersistentMasks {
                apmask: Some(Mask::FULL.without(2)),
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

    /// What `lszdev -t ap` (s390-tools 2.40) prints for this state, byte for byte; the
    /// side-by-side test compares against the real tool on every run.
    #[test]
    fn lszdev_layouts() {
        let s = MaskState {
            active: vfio_ap::Masks {
                apmask: Mask::FULL.without(2),
                aqmask: Mask::FULL,
            },
            persistent: PersistentMasks::default(),
        };
        assert_eq!(
            render_lszdev(&s, true),
            "DEVICE TYPE ap\n  Description        : Cryptographic Adjunct Processor (AP) device\n  Modules            : ap\n  Active             : yes\n  Persistent         : yes\n\n  ATTRIBUTE  ACTIVE       PERSISTENT\n  apmask     \"0-1,3-255\"  -\n  aqmask     \"0-255\"      -\n"
        );
        assert_eq!(
            render_pairs(&s, true),
            "TYPE=\"ap\"\nDESCRIPTION=\"Cryptographic Adjunct Processor (AP) device\"\nMODULES=\"ap\"\nACTV=\"yes\"\nPERS=\"yes\"\nATTRIBUTE=\"apmask\" ACTIVE=\"0-1,3-255\" PERSISTENT=\"\"\nATTRIBUTE=\"aqmask\" ACTIVE=\"0-255\" PERSISTENT=\"\"\n"
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
        assert_eq!(e.exit(), SetExit::InvalidValue);
        let e = parse_assignments(&["admask=1".into()]).unwrap_err();
        assert!(e.to_string().starts_with("unknown attribute 'admask'"));
        assert_eq!(e.exit(), SetExit::UnknownAttribute);
        let e = parse_assignments(&["apmask".into()]).unwrap_err();
        assert!(e.to_string().contains("is not apmask=VALUE"));
    }
}
