//! Any bytes as a `<bridge>.status` lease file: the parser must not panic, hang or recurse
//! without bound, and what it returns must be consistent with the input; the cold path (only
//! the entries where a name occurs, found from the entry start before it) must find for a
//! name or MAC exactly the leases the full parse finds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nss_libvirt_guest::json;
use nss_libvirt_guest::leases::StatusFile;
use nss_libvirt_guest::lookup::{Content, Kind, contains_ci, parse_containing};

fuzz_target!(|data: &[u8]| {
    let arr = json::parse_array(data);
    for (off, _) in &arr.elements {
        assert!(*off < data.len());
    }
    for e in &arr.errors {
        assert!(e.offset <= data.len());
    }
    let f = StatusFile::parse(data);
    for l in &f.leases {
        assert!(l.offset < data.len());
        if let Some(h) = &l.hostname {
            // every parsed hostname is findable through its own index
            assert!(
                f.with_hostname(&h.to_ascii_lowercase())
                    .any(|x| x.offset == l.offset)
            );
            // the prefilter never hides a name written without escapes
            if !data.contains(&b'\\') {
                assert!(contains_ci(data, h.to_ascii_lowercase().as_bytes()));
            }
            // the cold path (only the entries holding the name) finds what the full parse
            // finds for that name
            let lc = h.to_ascii_lowercase();
            if let Some(cold) = parse_containing(data, Kind::Status, &[lc.clone()]) {
                let Some(Content::Status(cold)) = cold else {
                    panic!("cold path missed {h:?}");
                };
                assert!(
                    f.with_hostname(&lc)
                        .map(|l| l.offset)
                        .eq(cold.with_hostname(&lc).map(|l| l.offset))
                );
            }
        }
        // the same for a lease's MAC (what a libvirt_guest lookup searches for)
        if let Some(m) = &l.mac {
            if let Some(cold) = parse_containing(data, Kind::Status, &[m.clone()]) {
                let Some(Content::Status(cold)) = cold else {
                    panic!("cold path missed {m:?}");
                };
                assert!(
                    f.with_mac(m)
                        .map(|l| l.offset)
                        .eq(cold.with_mac(m).map(|l| l.offset))
                );
            }
        }
    }
    for p in &f.problems {
        assert!(p.offset <= data.len());
    }
});
