//! The AP mask engine behind `ap set` and `passthrough`: the current masks (active and
//! persistent), a requested change turned into a [`Plan`] with its conflicts before anything
//! is written, and its execution (active masks in a kernel-safe order, then the udev rule).
//!
//! Differences from chzdev, on purpose: conflicts are computed for both sides before anything
//! is written; kernel write errors such as EBUSY are reported and stop the operation before
//! the persistent side is touched (chzdev ignores them); manual-start devices that a change
//! would make unstartable are warned about.

use std::path::PathBuf;

use crate::apmask::{Apqn, Mask};
use crate::chzdev::MaskSpec;
use crate::journal;
use crate::mdev::{ActiveMdev, DefinedMdev};
use crate::root::Root;
use crate::sysfs;
use crate::udev_rule::{self, PersistentMasks};
use crate::vfio_ap::{self, Conflict, MaskName, Masks};

/// The masks as lszdev shows them: active (the running kernel's) and persistent (the rule's
/// lines; `None` = no line, the kernel default applies at boot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskState {
    pub active: Masks,
    pub persistent: PersistentMasks,
}

pub fn read_state(root: &Root) -> anyhow::Result<MaskState> {
    Ok(MaskState {
        active: vfio_ap::active_masks(root)?,
        persistent: udev_rule::read(root)?.unwrap_or_default(),
    })
}

/// A mask as lszdev prints it: `"0-1,3-255"`, or `-` for no setting.
pub fn quoted(m: Option<Mask>) -> String {
    match m {
        Some(m) => format!("\"{}\"", m.ranges()),
        None => "-".to_string(),
    }
}

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

/// One side's masks before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub before: Masks,
    pub after: Masks,
}

/// Everything `set` would do, computed before anything is written.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub active: Option<Change>,
    /// Rule contents before and after.
    pub persistent: Option<(PersistentMasks, PersistentMasks)>,
    /// chzdev's refusals; any → nothing is written.
    pub conflicts: Vec<Conflict>,
    pub warnings: Vec<String>,
}

/// The masks whose added bits give the host `q` back: for each mask, `q` is host-owned after
/// the change and that mask's bit for `q` was added. chzdev judges each mask on its own this
/// way, so a change adding both the adapter and the domain of an APQN names both masks.
fn taken_back(q: Apqn, c: &Change) -> Vec<MaskName> {
    if !c.after.keep(q) || c.before.keep(q) {
        return Vec::new();
    }
    let added =
        |name: MaskName, bit: u8| c.after.get(name).test(bit) && !c.before.get(name).test(bit);
    let mut v = Vec::new();
    if added(MaskName::Apmask, q.adapter) {
        v.push(MaskName::Apmask);
    }
    if added(MaskName::Aqmask, q.domain) {
        v.push(MaskName::Aqmask);
    }
    v
}

/// `(mask, apqn)` for every APQN of `apqns` the change takes back, mask-major (all apmask
/// lines, then all aqmask lines, as chzdev prints them).
fn taken_back_all(apqns: &[Apqn], c: &Change) -> Vec<(MaskName, Apqn)> {
    let mut v: Vec<(MaskName, Apqn)> = apqns
        .iter()
        .flat_map(|q| taken_back(*q, c).into_iter().map(move |m| (m, *q)))
        .collect();
    v.sort_by_key(|(m, _)| *m);
    v
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
        let after = Masks {
            apmask: apply(&req.apmask, before.apmask),
            aqmask: apply(&req.aqmask, before.aqmask),
        };
        let c = Change { before, after };
        let mut found = Vec::new();
        for m in active_mdevs {
            for (mask, apqn) in taken_back_all(&m.apqns(), &c) {
                found.push(Conflict::ActiveMaskTakesBack {
                    mask,
                    mdev: m.uuid.clone(),
                    apqn,
                });
            }
        }
        found.sort_by_key(|c| match c {
            Conflict::ActiveMaskTakesBack { mask, .. } => *mask,
            _ => MaskName::Apmask,
        });
        p.conflicts.extend(found);
        let active_uuids: Vec<&str> = active_mdevs.iter().map(|m| m.uuid.as_str()).collect();
        for d in defined
            .iter()
            .filter(|d| !active_uuids.contains(&d.uuid.as_str()))
        {
            for (name, q) in taken_back_all(&d.apqns(), &c) {
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
        let mut new = old;
        if let Some(s) = &req.apmask {
            new.apmask = Some(s.apply(old.apmask.unwrap_or(state.active.apmask)));
        }
        if let Some(s) = &req.aqmask {
            new.aqmask = Some(s.apply(old.aqmask.unwrap_or(state.active.aqmask)));
        }
        if req.remove_apmask {
            new.apmask = None;
        }
        if req.remove_aqmask {
            new.aqmask = None;
        }
        let at_boot = |m: &PersistentMasks, fallback: Masks| Masks {
            apmask: m.apmask.unwrap_or(fallback.apmask),
            aqmask: m.aqmask.unwrap_or(fallback.aqmask),
        };
        let c = Change {
            before: at_boot(&old, state.active),
            after: at_boot(&new, Masks::FULL),
        };
        let mut found = Vec::new();
        for d in defined {
            for (mask, q) in taken_back_all(&d.apqns(), &c) {
                if d.autostart {
                    found.push(Conflict::PersistentMaskTakesBack {
                        mask,
                        mdev: d.uuid.clone(),
                        apqn: q,
                    });
                } else {
                    p.warnings.push(format!(
                        "persistent {mask} conflicts with defined manual mdev {} APQN {q}",
                        d.uuid
                    ));
                }
            }
        }
        found.sort_by_key(|c| match c {
            Conflict::PersistentMaskTakesBack { mask, .. } => *mask,
            _ => MaskName::Apmask,
        });
        p.conflicts.extend(found);
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
    /// The rule could not be written; `state` says what the active side is now.
    #[error("{source}; {state}")]
    Persistent {
        source: udev_rule::RuleError,
        state: String,
    },
    #[error("cannot record the change before making it, nothing changed: {0}")]
    Journal(sysfs::FileError),
    #[error("{0}")]
    Interrupted(Box<journal::Interrupted>),
    #[error(transparent)]
    State(#[from] sysfs::HostError),
}

impl ApplyError {
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            ApplyError::Active { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// The writes that take one active side from `before` to `after`: all removals first, then
/// all additions, so that an APQN moving between adapter and domain never passes through a
/// state the kernel refuses. `(0, m)` writes apmask, `(1, m)` aqmask.
fn steps(before: [Mask; 2], after: [Mask; 2]) -> Vec<(usize, Mask)> {
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
    steps
}

/// Writes `steps`; on the first error stops and returns it with the index of the failed step.
fn write_steps(paths: &[PathBuf; 2], steps: &[(usize, Mask)]) -> Result<(), sysfs::FileError> {
    for (i, m) in steps {
        sysfs::write_attr(&paths[*i], &m.to_string())?;
    }
    Ok(())
}

/// Executes `plan` (the caller holds the AP configuration lock). Refuses while an interrupted
/// change is recorded ([`journal`]): it must be finished or undone first.
pub fn execute(root: &Root, plan: &Plan) -> Result<Applied, ApplyError> {
    if let Some(i) = journal::interrupted(root)? {
        return Err(ApplyError::Interrupted(Box::new(i)));
    }
    execute_recorded(root, plan)
}

/// Records the change ([`journal::begin`]), writes the active masks (in [`steps`] order),
/// then the persistent rule, and removes the record. A kernel error stops before the rule and
/// undoes earlier mask writes; a rule that cannot be written (a full /etc) rolls the active
/// side back, so that the host is either changed on both sides or on neither. Only when a
/// rollback itself fails does the record stay, and the error says what the host has now.
/// Used directly by `ap recover`, which replaces the interrupted record.
pub fn execute_recorded(root: &Root, plan: &Plan) -> Result<Applied, ApplyError> {
    let mut lines = Vec::new();
    let active = plan.active.filter(|c| c.before != c.after);
    let persistent = plan.persistent.filter(|(o, n)| o != n);
    if active.is_none() && persistent.is_none() {
        // nothing to write; for `ap recover` of a change killed after its last write this
        // is where its record goes
        journal::end(root).map_err(|e| ApplyError::State(e.into()))?;
        return Ok(Applied { lines });
    }
    let record = journal::Journal::now(active.map(|c| (c.before, c.after)), persistent);
    journal::begin(root, &record).map_err(ApplyError::Journal)?;
    let paths = [root.ap_bus().join("apmask"), root.ap_bus().join("aqmask")];
    let names = ["apmask", "aqmask"];
    if let Some(c) = active {
        let before = [c.before.apmask, c.before.aqmask];
        let after = [c.after.apmask, c.after.aqmask];
        let mut written: Vec<usize> = Vec::new();
        for (i, m) in steps(before, after) {
            if let Err(source) = sysfs::write_attr(&paths[i], &m.to_string()) {
                let mut rolled_back = Vec::new();
                let mut all_back = true;
                for j in written {
                    if sysfs::write_attr(&paths[j], &before[j].to_string()).is_ok() {
                        rolled_back.push(paths[j].display().to_string());
                    } else {
                        all_back = false;
                    }
                }
                if all_back {
                    let _ = journal::end(root);
                }
                return Err(ApplyError::Active {
                    source,
                    rolled_back,
                });
            }
            if !written.contains(&i) {
                written.push(i);
            }
        }
        for i in 0..2 {
            if before[i] != after[i] {
                lines.push(format!(
                    "{} active: \"{}\" -> \"{}\"",
                    names[i],
                    before[i].ranges(),
                    after[i].ranges()
                ));
            }
        }
    }
    if let Some((old, new)) = persistent {
        if let Err(source) = udev_rule::write(root, &new) {
            let state = match active {
                None => {
                    let _ = journal::end(root);
                    "nothing changed".to_string()
                }
                Some(c) => {
                    let before = [c.before.apmask, c.before.aqmask];
                    let after = [c.after.apmask, c.after.aqmask];
                    match write_steps(&paths, &steps(after, before)) {
                        Ok(()) => {
                            let _ = journal::end(root);
                            "the active masks were rolled back: nothing changed".to_string()
                        }
                        Err(e) => format!(
                            "the active masks could not be rolled back ({e}) and may be the new \
                             ones (apmask \"{}\", aqmask \"{}\") while the persistent ones are \
                             the old; the change stays recorded in {}: run `nodedev-helper ap \
                             recover --finish` or `--undo` once the cause is fixed",
                            after[0].ranges(),
                            after[1].ranges(),
                            journal::path(root).display()
                        ),
                    }
                }
            };
            return Err(ApplyError::Persistent { source, state });
        }
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
    journal::end(root).map_err(|e| ApplyError::State(e.into()))?;
    Ok(Applied { lines })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chzdev;

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

    fn matrix(a: u8, d: u8) -> crate::mdev::Matrix {
        crate::mdev::Matrix {
            adapters: Mask::EMPTY.with(a),
            domains: Mask::EMPTY.with(d),
            control_domains: Mask::EMPTY.with(d),
        }
    }

    fn defined(uuid: &str, auto: bool, a: u8, d: u8) -> DefinedMdev {
        DefinedMdev {
            uuid: uuid.into(),
            path: uuid.into(),
            autostart: auto,
            matrix: matrix(a, d),
        }
    }

    fn m(apmask: Mask, aqmask: Mask) -> Masks {
        Masks { apmask, aqmask }
    }

    fn lines(c: &[Conflict]) -> Vec<String> {
        c.iter().map(ToString::to_string).collect()
    }

    const U1: &str = "11111111-2222-3333-4444-555555555555";
    const U2: &str = "aaaaaaaa-2222-3333-4444-555555555555";

    #[test]
    fn documented_example_both_sides() {
        let state = MaskState {
            active: m(Mask::FULL, Mask::FULL),
            persistent: PersistentMasks::default(),
        };
        let p = plan(&req(Some("-2"), Some("-43"), true, true), &state, &[], &[]);
        assert!(p.conflicts.is_empty());
        let c = p.active.unwrap();
        assert_eq!(c.after.apmask.ranges(), "0-1,3-255");
        assert_eq!(c.after.aqmask.ranges(), "0-42,44-255");
        let (_, n) = p.persistent.unwrap();
        assert_eq!(n.apmask, Some(without(2)));
        assert_eq!(n.aqmask, Some(without(43)));
    }

    #[test]
    fn refused_plus_2_with_active_and_autostart_mdev() {
        let state = MaskState {
            active: m(without(2), without(43)),
            persistent: PersistentMasks {
                apmask: Some(without(2)),
                aqmask: Some(without(43)),
            },
        };
        let active = [ActiveMdev {
            uuid: U1.into(),
            matrix: matrix(2, 43),
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
        // the documented example (doc/ap-bus.md, "Mask examples"): after apmask=-2 alone the
        // host keeps domain 43, so +2 takes 2.43
        let example = MaskState {
            active: m(without(2), Mask::FULL),
            persistent: PersistentMasks {
                apmask: Some(without(2)),
                aqmask: None,
            },
        };
        let p = plan(
            &req(Some("+2"), None, true, true),
            &example,
            &active,
            &[defined(U1, true, 2, 43)],
        );
        assert_eq!(
            lines(&p.conflicts),
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
        // both bits added: chzdev names each mask, active and persistent
        assert_eq!(
            lines(&p.conflicts),
            vec![
                format!("apmask conflicts with mdev {U1} APQN 2.43"),
                format!("aqmask conflicts with mdev {U1} APQN 2.43"),
                format!("persistent apmask conflicts with defined autostart mdev {U1} APQN 2.43"),
                format!("persistent aqmask conflicts with defined autostart mdev {U1} APQN 2.43"),
            ]
        );
        assert_eq!(
            p.warnings,
            vec![
                format!(
                    "apmask takes APQN 2.43 of defined manual mdev {U2} back to the host: it cannot start until it is given back"
                ),
                format!(
                    "aqmask takes APQN 2.43 of defined manual mdev {U2} back to the host: it cannot start until it is given back"
                ),
                format!("persistent apmask conflicts with defined manual mdev {U2} APQN 2.43"),
                format!("persistent aqmask conflicts with defined manual mdev {U2} APQN 2.43"),
            ]
        );
    }

    #[test]
    fn removing_the_persistent_mask_is_a_change_to_the_boot_default() {
        let state = MaskState {
            active: m(without(2), Mask::FULL),
            persistent: PersistentMasks {
                apmask: Some(without(2)),
                aqmask: None,
            },
        };
        let mut r = req(None, None, false, true);
        r.remove_apmask = true;
        let p = plan(&r, &state, &[], &[defined(U1, true, 2, 43)]);
        assert_eq!(
            lines(&p.conflicts),
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
        assert_eq!(s.active, m(without(2), without(43)));
        assert_eq!(s.persistent.apmask, Some(without(2)));
    }
}
