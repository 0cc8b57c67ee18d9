//! Counts of the work lookups did, process-wide: how many searches ran (a lease directory
//! read and matched), how many byte scans the cold path's prefilter made over files, and how
//! many leases and MACs the matching rules examined. Tests and the bench read them to check
//! that a lookup's work is bounded by its input (linear) without timing anything; they cost
//! one relaxed atomic add per counter per lookup.

use std::sync::atomic::{AtomicU64, Ordering};

static SEARCHES: AtomicU64 = AtomicU64::new(0);
static SCANS: AtomicU64 = AtomicU64::new(0);
static EXAMINED: AtomicU64 = AtomicU64::new(0);

/// What the lookups of this process have done so far (see [`work`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// Lookups that read the lease directory and ran the matching rules (an answer kept
    /// for glibc's retry with a larger buffer is not a search).
    pub searches: u64,
    /// Passes of the prefilter's byte search over a file (one per file and needle).
    pub scans: u64,
    /// Leases, MACs and addresses the matching rules looked at.
    pub examined: u64,
}

impl Work {
    /// The work done since `earlier`.
    pub fn since(self, earlier: Work) -> Work {
        Work {
            searches: self.searches - earlier.searches,
            scans: self.scans - earlier.scans,
            examined: self.examined - earlier.examined,
        }
    }
}

/// The counts so far.
pub fn work() -> Work {
    Work {
        searches: SEARCHES.load(Ordering::Relaxed),
        scans: SCANS.load(Ordering::Relaxed),
        examined: EXAMINED.load(Ordering::Relaxed),
    }
}

pub(crate) fn searched() {
    SEARCHES.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn scanned(n: u64) {
    SCANS.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn examined(n: u64) {
    EXAMINED.fetch_add(n, Ordering::Relaxed);
}
