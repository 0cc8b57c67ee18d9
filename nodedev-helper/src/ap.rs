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
    WaitBindings {
        /// Give up after this many seconds (exit 1).
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

/// `bindings` reads `"<bound>/<total> (complete)"` once every queue is bound.
pub fn bindings_complete(text: &str) -> bool {
    text.trim_end().ends_with("(complete)")
}

/// Polls `sys/bus/ap/bindings` every 100 ms. (A udev monitor would wake up on the kernel's
/// `BINDINGS=complete` uevent; polling the attribute is equally correct, works over a
/// simulator or a container without uevents, and costs nothing measurable at boot.)
fn wait_bindings(root: &Root, timeout: f64) -> anyhow::Result<i32> {
    if !timeout.is_finite() || timeout < 0.0 {
        bail!("--timeout {timeout}: must be a number of seconds ≥ 0");
    }
    let path = root.ap_bus().join("bindings");
    let deadline = Instant::now() + Duration::from_secs_f64(timeout);
    loop {
        let text = sysfs::read(&path)?;
        if bindings_complete(&text) {
            println!("AP bus bindings complete: {}", text.trim_end());
            return Ok(0);
        }
        if Instant::now() >= deadline {
            eprintln!(
                "nodedev-helper: AP bus bindings not complete after {timeout} s: {}",
                text.trim_end()
            );
            return Ok(1);
        }
        std::thread::sleep(Duration::from_millis(100));
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
    }
}
