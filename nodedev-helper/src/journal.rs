//! The record of an AP mask change in progress: `/run/nodedev-helper/ap-change.journal`.
//!
//! A mask change is up to four writes (removals from apmask and aqmask, additions, then the
//! udev rule). A process killed between them leaves the host in a state nobody chose: one mask
//! at an intermediate step, or active and persistent masks out of step. So before the first
//! write, [`begin`] stores what the change goes from and to (written atomically, in /run:
//! it is about this boot's kernel state), and after the last write (or a complete rollback)
//! [`end`] removes it. A journal whose process is gone, or that no longer holds the AP
//! configuration lock, is an interrupted change: `ap show`, `ap list` and `ap set` report it
//! ([`interrupted`]), `ap set` refuses to start another change on top of it, and
//! `ap recover --finish|--undo` completes or reverts it.
//!
//! Format (text, one field per line; masks as the kernel prints them, `-` for no rule line):
//! ```text
//! nodedev-helper ap change 1
//! pid 1234
//! started 1764860000
//! active APMASK AQMASK -> APMASK AQMASK
//! persistent APMASK|- AQMASK|- -> APMASK|- AQMASK|-
//! ```
//! (`active` and `persistent` each only when that side changes.)

use std::fmt;
use std::path::PathBuf;

use crate::apmask::Mask;
use crate::lock;
use crate::root::Root;
use crate::sysfs::{self, FileError, HostError};
use crate::udev_rule::PersistentMasks;
use crate::vfio_ap::Masks;

const HEADER: &str = "nodedev-helper ap change 1";

/// A journal is a few hundred bytes.
const JOURNAL_MAX: usize = 4096;

/// One recorded change: each side from `.0` to `.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Journal {
    pub pid: i32,
    /// Seconds since the epoch.
    pub started: u64,
    pub active: Option<(Masks, Masks)>,
    pub persistent: Option<(PersistentMasks, PersistentMasks)>,
}

/// `/run/nodedev-helper/ap-change.journal` below `root`.
pub fn path(root: &Root) -> PathBuf {
    root.path("run/nodedev-helper/ap-change.journal")
}

fn opt(m: Option<Mask>) -> String {
    m.map_or_else(|| "-".to_string(), |m| m.to_string())
}

impl Journal {
    pub fn render(&self) -> String {
        let mut s = format!("{HEADER}\npid {}\nstarted {}\n", self.pid, self.started);
        if let Some((b, a)) = self.active {
            s.push_str(&format!(
                "active {} {} -> {} {}\n",
                b.apmask, b.aqmask, a.apmask, a.aqmask
            ));
        }
        if let Some((b, a)) = self.persistent {
            s.push_str(&format!(
                "persistent {} {} -> {} {}\n",
                opt(b.apmask),
                opt(b.aqmask),
                opt(a.apmask),
                opt(a.aqmask)
            ));
        }
        s
    }

    /// `None` for anything [`render`](Journal::render) does not produce.
    pub fn parse(text: &str) -> Option<Journal> {
        let mut lines = text.strip_suffix('\n')?.split('\n');
        if lines.next()? != HEADER {
            return None;
        }
        let pid = lines.next()?.strip_prefix("pid ")?.parse().ok()?;
        let started = lines.next()?.strip_prefix("started ")?.parse().ok()?;
        let mask = |s: &str| Mask::parse_sysfs(s).ok();
        let opt_mask = |s: &str| match s {
            "-" => Some(None),
            s => mask(s).map(Some),
        };
        let (mut active, mut persistent) = (None, None);
        for line in lines {
            let (side, rest) = line.split_once(' ')?;
            let f: Vec<&str> = rest.split(' ').collect();
            if f.len() != 5 || f[2] != "->" {
                return None;
            }
            match side {
                "active" if active.is_none() && persistent.is_none() => {
                    let m = |a: &str, q: &str| {
                        Some(Masks {
                            apmask: mask(a)?,
                            aqmask: mask(q)?,
                        })
                    };
                    active = Some((m(f[0], f[1])?, m(f[3], f[4])?));
                }
                "persistent" if persistent.is_none() => {
                    let m = |a: &str, q: &str| {
                        Some(PersistentMasks {
                            apmask: opt_mask(a)?,
                            aqmask: opt_mask(q)?,
                        })
                    };
                    persistent = Some((m(f[0], f[1])?, m(f[3], f[4])?));
                }
                _ => return None,
            }
        }
        Some(Journal {
            pid,
            started,
            active,
            persistent,
        })
    }

    /// The journal for a change starting now in this process.
    pub fn now(
        active: Option<(Masks, Masks)>,
        persistent: Option<(PersistentMasks, PersistentMasks)>,
    ) -> Journal {
        Journal {
            pid: std::process::id() as i32,
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            active,
            persistent,
        }
    }
}

/// Records the change before its first write (atomically, mode 0644).
pub fn begin(root: &Root, j: &Journal) -> Result<(), FileError> {
    sysfs::write_atomic(&path(root), j.render().as_bytes(), 0o644)
}

/// Removes the record after the last write or a complete rollback, and the temporary files
/// of records whose writer was killed.
pub fn end(root: &Root) -> Result<(), FileError> {
    let p = path(root);
    if let (Some(dir), Some(name)) = (p.parent(), p.file_name().and_then(|n| n.to_str())) {
        sysfs::clean_stale_temps(dir, name);
    }
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(cause) => Err(FileError::Write { path: p, cause }),
    }
}

/// The recorded change, if any (in progress or interrupted).
pub fn read(root: &Root) -> Result<Option<Journal>, HostError> {
    let p = path(root);
    let Some(bytes) = sysfs::read_optional_bytes(&p, JOURNAL_MAX)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    Journal::parse(&text).map(Some).ok_or_else(|| {
        HostError::bad(
            &p,
            "not a change journal nodedev-helper wrote; if no `ap set` is running, \
             check the masks with `nodedev-helper ap show` and remove the file",
        )
    })
}

/// A change whose process died (or let go of the AP lock) before it finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupted {
    pub path: PathBuf,
    pub journal: Journal,
}

fn pair(m: &Masks) -> String {
    format!(
        "apmask \"{}\" aqmask \"{}\"",
        m.apmask.ranges(),
        m.aqmask.ranges()
    )
}

fn ppair(m: &PersistentMasks) -> String {
    let r = |m: Option<Mask>| m.map_or_else(|| "-".to_string(), |m| format!("\"{}\"", m.ranges()));
    format!("apmask {} aqmask {}", r(m.apmask), r(m.aqmask))
}

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let j = &self.journal;
        write!(
            f,
            "an AP mask change by process {} (started at {} s since the epoch) was interrupted; \
             the host may be anywhere between its start and its end:",
            j.pid, j.started
        )?;
        if let Some((b, a)) = &j.active {
            write!(f, " active {} -> {};", pair(b), pair(a))?;
        }
        if let Some((b, a)) = &j.persistent {
            write!(f, " persistent {} -> {};", ppair(b), ppair(a))?;
        }
        write!(
            f,
            " run `nodedev-helper ap recover --finish` to complete it or \
             `nodedev-helper ap recover --undo` to restore the state before it (recorded in {})",
            self.path.display()
        )
    }
}

/// The interrupted change, if there is one: a journal whose process is gone, or does not
/// hold the AP configuration lock (every change is made under it). Also for `doctor`.
pub fn interrupted(root: &Root) -> Result<Option<Interrupted>, HostError> {
    let Some(journal) = read(root)? else {
        return Ok(None);
    };
    let holds_lock = matches!(
        lock::holder(&root.ap_lock()),
        Ok(lock::Holder::Pid(p)) if p == journal.pid
    );
    if journal.pid != std::process::id() as i32 && lock::pid_alive(journal.pid) && holds_lock {
        return Ok(None);
    }
    Ok(Some(Interrupted {
        path: path(root),
        journal,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_roundtrips_and_truncations_are_refused() {
        let j = Journal {
            pid: 42,
            started: 1_764_860_000,
            active: Some((
                Masks::FULL,
                Masks {
                    apmask: Mask::FULL.without(2),
                    aqmask: Mask::FULL.without(43),
                },
            )),
            persistent: Some((
                PersistentMasks::default(),
                PersistentMasks {
                    apmask: Some(Mask::FULL.without(2)),
                    aqmask: None,
                },
            )),
        };
        let text = j.render();
        assert_eq!(Journal::parse(&text), Some(j));
        for cut in 1..text.len() {
            if text.as_bytes()[cut - 1] != b'\n' {
                assert_eq!(Journal::parse(&text[..cut]), None, "cut at {cut}");
            }
        }
        let only_persistent = Journal { active: None, ..j };
        assert_eq!(
            Journal::parse(&only_persistent.render()),
            Some(only_persistent)
        );
    }

    #[test]
    fn a_journal_of_a_dead_process_is_interrupted_and_ours_in_progress_is_not_foreign() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        assert_eq!(interrupted(&root).unwrap(), None);
        let dead = {
            let mut c = std::process::Command::new("true").spawn().unwrap();
            let pid = c.id() as i32;
            c.wait().unwrap();
            pid
        };
        let j = Journal {
            pid: dead,
            ..Journal::now(Some((Masks::FULL, Masks::FULL)), None)
        };
        begin(&root, &j).unwrap();
        let i = interrupted(&root).unwrap().unwrap();
        assert_eq!(i.journal, j);
        let msg = i.to_string();
        assert!(msg.contains("ap recover --finish"), "{msg}");
        assert!(msg.contains(&format!("process {dead}")), "{msg}");
        end(&root).unwrap();
        assert_eq!(interrupted(&root).unwrap(), None);
        end(&root).unwrap();
    }
}
