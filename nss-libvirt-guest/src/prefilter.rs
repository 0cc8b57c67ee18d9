//! The cold path's prefilter: search a lease file for the name (or a domain's MACs) and
//! JSON-parse only the entries where it occurs, found by looking back from each occurrence
//! to the entry start before it ([`crate::json`]'s module doc: the full parse returns the
//! same entries, whatever the rest of the file holds). A lookup in a one-shot process (ssh,
//! getent) reads each file once, in chunks into one small buffer (no page faults for a
//! buffer the size of the file), searches it at memchr's speed, and reads again and parses
//! only a small window around each occurrence.

use std::sync::Arc;

use crate::json::{self, Lexer};
use crate::leases::{MacsFile, StatusFile};
use crate::lookup::{Content, Kind};
use crate::work;

/// A forward lookup searching for more needles than this (a domain's MACs) parses each
/// `.status` file and looks the MACs up in its index, instead of one byte search per MAC.
pub const MAX_NEEDLES: usize = 16;
/// More hits than this in one file and a lookup parses it in full (a short name that
/// occurs everywhere): the hit list stays small.
pub(crate) const MAX_HITS: usize = 1024;
/// The first window read around a hit: this much before it, [`FORWARD`] from it; each is
/// doubled while the entry start or the entry's end lies beyond it.
const BACK: usize = 512;
const FORWARD: usize = 1024;
/// Most window bytes read in one file (long entries, many hits); past it the file is
/// parsed in full, so that a lookup's work stays linear in the file.
const WINDOW_BUDGET: usize = 4 << 20;

/// The bytes of a file from any offset: the windows around hits.
pub trait Source {
    /// Replaces `out` with the bytes from `from` to `to`, fewer at the end of the file;
    /// false if they cannot be read.
    fn fetch(&mut self, from: usize, to: usize, out: &mut Vec<u8>) -> bool;
}

impl Source for &[u8] {
    fn fetch(&mut self, from: usize, to: usize, out: &mut Vec<u8>) -> bool {
        out.clear();
        if let Some(b) = self.get(from.min(self.len())..to.min(self.len())) {
            out.extend_from_slice(b);
        }
        true
    }
}

/// The cold path on a file's bytes: only the entries where one of `needles` (ASCII
/// lower-case) occurs, parsed as [`crate::cache::parse`] parses them (the same entries at
/// the same offsets), so that a lookup of one of the needles answers exactly as from the
/// full parse. `Some(None)`: no needle occurs, nothing can match. `None`: use the full
/// parse: more than [`MAX_NEEDLES`] needles, the file holds a backslash (an escape such as
/// `\u0066` can spell a name without its bytes), a needle is empty, too many hits, or the
/// windows around them grew past [`WINDOW_BUDGET`].
pub fn parse_containing(bytes: &[u8], kind: Kind, needles: &[String]) -> Option<Option<Content>> {
    // memchr picks its SIMD code by CPUID on first use, once per process: ~2 µs per CPUID
    // in a VM, about 15 µs in all (an interleaved CPU-time series at 10 leases had ours
    // ~3% above libvirt's module with it). Small files are scanned without it.
    let mut hits = Hits::new(needles, bytes.len() >= SIMD_MIN_BYTES)?;
    if !hits.search(bytes, 0) {
        return None;
    }
    entries(kind, hits.into_sorted(), &mut &*bytes)
}

/// The occurrences of the needles in a file searched chunk by chunk (see [`Hits::search`]).
pub struct Hits<'n> {
    needles: &'n [String],
    simd: bool,
    found: Vec<usize>,
}

impl<'n> Hits<'n> {
    /// None when the cold path does not apply (see [`parse_containing`]). `simd`: the file
    /// is large enough for memchr.
    pub fn new(needles: &'n [String], simd: bool) -> Option<Hits<'n>> {
        if needles.len() > MAX_NEEDLES || needles.iter().any(|n| n.is_empty()) {
            return None;
        }
        // one scan of the file per needle, however many chunks it is read in
        work::scanned(needles.len() as u64);
        Some(Hits {
            needles,
            simd,
            found: Vec::new(),
        })
    }

    /// How many bytes of the previous chunk the next one must repeat at its start, so that
    /// an occurrence across the boundary is found.
    pub fn overlap(&self) -> usize {
        self.needles.iter().map(|n| n.len()).max().unwrap_or(1) - 1
    }

    /// Searches `chunk`, the file's bytes from `base`; false when the cold path does not
    /// apply (a backslash, too many hits): parse the file in full.
    pub fn search(&mut self, chunk: &[u8], base: usize) -> bool {
        if has_backslash(chunk, self.simd) {
            return false;
        }
        let Some(hits) = hits_of(chunk, self.needles, self.simd) else {
            return false;
        };
        self.found.extend(hits.into_iter().map(|h| base + h));
        // (an occurrence in a repeated overlap may be found twice: counted twice here)
        self.found.len() <= 2 * MAX_HITS
    }

    /// The hits, ascending, each once.
    pub fn into_sorted(mut self) -> Vec<usize> {
        self.found.sort_unstable();
        self.found.dedup();
        self.found
    }
}

/// The entries holding `hits` (file offsets, ascending), parsed from windows of `src`
/// around each: see [`parse_containing`].
pub fn entries(kind: Kind, hits: Vec<usize>, src: &mut impl Source) -> Option<Option<Content>> {
    if hits.is_empty() {
        return Some(None);
    }
    if hits.len() > MAX_HITS {
        return None;
    }
    let mut elements = Vec::new();
    let mut window = Vec::new();
    let mut budget = WINDOW_BUDGET;
    // Hits below `covered` are in the entry parsed last; `last` is its start.
    let mut covered = 0;
    let mut last = None;
    for &hit in &hits {
        if hit < covered {
            continue;
        }
        let (mut back, mut forward) = (BACK, FORWARD);
        loop {
            let from = hit.saturating_sub(back);
            let to = hit + forward;
            budget = budget.checked_sub(to - from)?;
            if !src.fetch(from, to, &mut window) || window.len() <= hit - from {
                // unreadable, or shorter than when it was searched
                return None;
            }
            let at_end = window.len() < to - from;
            let start = match entry_start(&window, hit - from, from == 0) {
                Start::NeedMore => {
                    back *= 2;
                    continue;
                }
                Start::None => break,
                Start::At(s) => s,
            };
            if last == Some(from + start) {
                break;
            }
            let parsed = json::entry_at(&window, start);
            let reached = match &parsed {
                Ok((_, end)) => *end,
                Err(e) => e.offset,
            };
            // The parse may have stopped for want of bytes past the window (a literal is
            // at most 5 bytes): read more.
            if !at_end && reached + 8 > window.len() {
                forward *= 2;
                continue;
            }
            last = Some(from + start);
            if let Ok((v, end)) = parsed {
                covered = from + end;
                if from + end > hit {
                    elements.push((from + start, v));
                }
            }
            break;
        }
    }
    let arr = json::Array {
        elements,
        errors: Vec::new(),
    };
    Some(Some(match kind {
        Kind::Status => Content::Status(Arc::new(StatusFile::from_array(arr))),
        Kind::Macs => Content::Macs(Arc::new(MacsFile::from_array(arr))),
    }))
}

/// Where [`entry_start`] found the entry start.
#[derive(Debug, PartialEq, Eq)]
enum Start {
    At(usize),
    /// There is none before the hit.
    None,
    /// The window does not reach back far enough to tell.
    NeedMore,
}

/// The entry start nearest at or before `hit` in `window` (offsets in it; `at_file_start`:
/// it starts at the file's start), looking back line by line: a line starts outside strings
/// (see [`crate::json`]), so each line is lexed once, from its start. A `{` that is the
/// first non-blank byte of its line is an entry start if the last non-blank byte of the
/// nearest earlier line that has one is a `,` or `[` outside strings.
fn entry_start(window: &[u8], hit: usize, at_file_start: bool) -> Start {
    // A `{` first on a later line, waiting for the last non-blank byte before it.
    let mut pending: Option<usize> = None;
    // The line's bytes end here (exclusive): at the hit (inclusive) for the first line.
    let mut end = hit + 1;
    let mut first = true;
    loop {
        let before = if first { hit } else { end };
        let start = match window[..before].iter().rposition(|&c| c == b'\n') {
            Some(nl) => nl + 1,
            None if at_file_start => 0,
            None => return Start::NeedMore,
        };
        let mut lexer = Lexer::at_line_start(start);
        let mut candidate = None;
        let mut first_brace = None;
        for (i, &c) in window[start..end].iter().enumerate() {
            match lexer.starts_entry(c) {
                Some(true) => candidate = Some(start + i),
                None if first_brace.is_none() => first_brace = Some(start + i),
                _ => {}
            }
            lexer.step(c);
        }
        if let Some(p) = pending {
            match lexer.last() {
                Some((c, outside)) if outside && (c == b',' || c == b'[') => return Start::At(p),
                Some(_) => pending = None,
                None => {}
            }
        }
        if let Some(c) = candidate {
            return Start::At(c);
        }
        if pending.is_none() {
            pending = first_brace;
        }
        if start == 0 {
            // the file's start (at_file_start): nothing before a pending `{`
            return Start::None;
        }
        end = start - 1;
        first = false;
    }
}

/// Every offset where one of `needles` (lower-case) occurs in `bytes`, ASCII
/// case-insensitively, in the order found; None past [`MAX_HITS`]. `simd`: the file is large
/// enough for memchr.
fn hits_of(bytes: &[u8], needles: &[String], simd: bool) -> Option<Vec<usize>> {
    let mut hits = Vec::new();
    let mut push = |at| {
        hits.push(at);
        hits.len() <= MAX_HITS
    };
    // Three ways to find a needle (callgrind decided): its longest run without ASCII
    // letters, when that is most of it ([`caseless_key`]: many MACs, names like vm-05000;
    // case cannot change those bytes, so no pass over the file looks for upper case), with
    // memchr's SIMD memmem, each occurrence then compared in full
    // ignoring case; else, when the file has no upper-case letter, the lower-case needle
    // itself with memmem (it then finds exactly the case-insensitive occurrences); else
    // the folding search.
    let mut upper = None;
    for n in needles {
        let needle = n.as_bytes();
        let complete = if !simd {
            for_each_ci(bytes, needle, &mut push)
        } else if let Some((k, key)) = caseless_key(needle) {
            each_match(bytes, key, |at| {
                let start = at.wrapping_sub(k);
                at < k
                    || !bytes
                        .get(start..start + needle.len())
                        .is_some_and(|w| w.eq_ignore_ascii_case(needle))
                    || push(start)
            })
        } else if !*upper.get_or_insert_with(|| has_ascii_uppercase(bytes)) {
            each_match(bytes, needle, &mut push)
        } else {
            for_each_ci(bytes, needle, &mut push)
        };
        if !complete {
            return None;
        }
    }
    Some(hits)
}

/// The shortest letter-free run of a needle searched for by itself (see [`caseless_key`]).
const KEY_MIN: usize = 4;

/// The longest run of `needle` without ASCII letters and its offset in `needle`, if it has
/// [`KEY_MIN`] bytes or more and two thirds of the needle (so that it is about as rare in a
/// file as the needle: all MACs of a host start with the same "52:54:00:"). An occurrence
/// of the needle in any case holds it unchanged.
fn caseless_key(needle: &[u8]) -> Option<(usize, &[u8])> {
    let mut best = (0, 0);
    let mut start = 0;
    for (i, c) in needle.iter().enumerate() {
        if c.is_ascii_alphabetic() {
            start = i + 1;
        } else if i + 1 - start > best.1 {
            best = (start, i + 1 - start);
        }
    }
    (best.1 >= KEY_MIN && best.1 * 3 >= needle.len() * 2)
        .then(|| (best.0, &needle[best.0..best.0 + best.1]))
}

/// Calls `f` with every offset of `key` in `hay` (memchr's memmem), overlapping ones
/// included, in ascending order, until `f` returns false; returns false if it did.
fn each_match(hay: &[u8], key: &[u8], mut f: impl FnMut(usize) -> bool) -> bool {
    let finder = memchr::memmem::Finder::new(key);
    let mut from = 0;
    loop {
        match finder.find(&hay[from..]) {
            Some(at) if f(from + at) => from += at + 1,
            Some(_) => return false,
            None => return true,
        }
    }
}

/// Files smaller than this are searched without memchr (see [`parse_containing`]).
pub(crate) const SIMD_MIN_BYTES: usize = 32 << 10;

/// Whether `b` holds a `\\`: memchr (SIMD) or a chunked loop the compiler vectorizes.
fn has_backslash(b: &[u8], simd: bool) -> bool {
    if simd {
        return memchr::memchr(b'\\', b).is_some();
    }
    b.chunks(256)
        .any(|c| c.iter().fold(0u8, |any, &x| any | u8::from(x == b'\\')) != 0)
}

/// Whether `b` holds an ASCII upper-case letter: a chunked loop the compiler vectorizes.
fn has_ascii_uppercase(b: &[u8]) -> bool {
    b.chunks(256).any(|c| {
        c.iter()
            .fold(0u8, |any, &x| any | u8::from(x.wrapping_sub(b'A') < 26))
            != 0
    })
}

/// Calls `f` with every offset where `needle` occurs in `hay`, ASCII case-insensitively
/// (`needle` already lower-case), overlapping occurrences included, in ascending order,
/// until `f` returns false; returns false if it did. A chunk of 32 candidate positions is
/// tested at once on the needle's first and last byte with `| 0x20` (folds ASCII case;
/// other bytes may give false candidates, which the full comparison rejects), a loop
/// without early exit that the compiler vectorizes; only a chunk with a candidate is
/// looked at position by position. (callgrind, the bench's 10,000 leases: about 2
/// instructions a byte, against 7 for a first-byte `position` loop; memmem, used when the
/// file has no upper case, about 0.5.)
pub fn for_each_ci(hay: &[u8], needle: &[u8], mut f: impl FnMut(usize) -> bool) -> bool {
    const W: usize = 32;
    let (Some(&first), Some(&last)) = (needle.first(), needle.last()) else {
        return (0..=hay.len()).all(f);
    };
    if needle.len() > hay.len() {
        return true;
    }
    let (a, z) = (first | 0x20, last | 0x20);
    let ends = hay.len() - needle.len(); // the last candidate position
    let tail = needle.len() - 1;
    let mut check = |at: usize| !hay[at..at + needle.len()].eq_ignore_ascii_case(needle) || f(at);
    let mut i = 0;
    while i + W <= ends + 1 {
        let (Some(heads), Some(tails)) = (
            hay[i..].first_chunk::<W>(),
            hay[i + tail..].first_chunk::<W>(),
        ) else {
            break;
        };
        let mut any = false;
        for j in 0..W {
            any |= ((heads[j] | 0x20) == a) & ((tails[j] | 0x20) == z);
        }
        if any {
            for j in 0..W {
                if (heads[j] | 0x20) == a && (tails[j] | 0x20) == z && !check(i + j) {
                    return false;
                }
            }
        }
        i += W;
    }
    (i..=ends).all(|at| (hay[at] | 0x20) != a || check(at))
}

/// ASCII case-insensitive substring search (`needle` already lower-case).
pub fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    !for_each_ci(hay, needle, |_| false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_search() {
        for (hay, needle, want) in [
            (&b"xx\"Fedora\"yy"[..], &b"fedora"[..], true),
            (b"FEDOR", b"fedora", false),
            (b"52:54:00:AA:bb:01", b"52:54:00:aa:bb:01", true),
            (b"", b"a", false),
            (b"abc", b"", true),
            (b"\x8dfedora", b"-fedora", false),
        ] {
            assert_eq!(contains_ci(hay, needle), want, "{:?} in {:?}", needle, hay);
        }
    }

    #[test]
    fn folding_search_finds_every_occurrence() {
        // Against a naive reference: overlapping occurrences, both ends of 32-byte chunks,
        // the scalar tail, upper case, bytes that `| 0x20` folds onto others.
        let naive = |hay: &[u8], needle: &[u8]| -> Vec<usize> {
            (0..=hay.len().saturating_sub(needle.len()))
                .filter(|&i| {
                    hay.len() >= needle.len()
                        && hay[i..i + needle.len()].eq_ignore_ascii_case(needle)
                })
                .collect()
        };
        let mut seed = 7u32;
        let alphabet = b"aAbB:-\r\x0d\x8d@`[{";
        for len in [0, 1, 5, 31, 32, 33, 63, 64, 65, 100, 257] {
            for _ in 0..20 {
                let hay: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        alphabet[(seed >> 16) as usize % alphabet.len()]
                    })
                    .collect();
                for needle in [&b"a"[..], b"ab", b"aa", b"a:b", b"-", b"aaaa", b"@"] {
                    let mut got = Vec::new();
                    assert!(for_each_ci(&hay, needle, |at| {
                        got.push(at);
                        true
                    }));
                    assert_eq!(got, naive(&hay, needle), "{needle:?} in {hay:?}");
                }
            }
        }
        // Stopping early.
        let mut n = 0;
        assert!(!for_each_ci(&b"ab".repeat(40), b"b", |_| {
            n += 1;
            n < 3
        }));
        assert_eq!(n, 3);
    }

    #[test]
    fn every_search_finds_what_the_folding_search_finds() {
        let mut seed = 11u32;
        let alphabet = b"aAbBfF0123:-. \"";
        let hay: Vec<u8> = (0..SIMD_MIN_BYTES + 777)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                alphabet[(seed >> 16) as usize % alphabet.len()]
            })
            .collect();
        let mut lower = hay.to_ascii_lowercase();
        lower.truncate(SIMD_MIN_BYTES + 5);
        for needle in [
            "ab", "0:1", "a0:12", "b-0.1a", "01", "f3:2", "3:2.1-0", "aa:0",
        ] {
            for h in [&hay, &lower] {
                let mut want = Vec::new();
                for_each_ci(h, needle.as_bytes(), |at| {
                    want.push(at);
                    true
                });
                let got = hits_of(h, &[needle.to_owned()], true);
                if want.len() > MAX_HITS {
                    assert_eq!(got, None, "{needle}");
                } else {
                    assert_eq!(got, Some(want), "{needle}");
                }
            }
        }
        // A run shorter than two thirds of the needle is not selective enough (all MACs of a
        // host share "52:54:00:").
        assert_eq!(caseless_key(b"52:54:00:aa:bb:01"), None);
        assert_eq!(
            caseless_key(b"52:54:00:13:88:01"),
            Some((0, &b"52:54:00:13:88:01"[..]))
        );
        assert_eq!(caseless_key(b"host-05000"), None);
        assert_eq!(caseless_key(b"vm-05000"), Some((2, &b"-05000"[..])));
        assert_eq!(caseless_key(b"web1"), None);
    }
}
