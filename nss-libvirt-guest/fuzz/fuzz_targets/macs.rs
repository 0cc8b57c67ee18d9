//! Any bytes as a `<bridge>.macs` file (domain -> MACs): no panic, consistent indexes, and
//! the cold path (only the entries where a name occurs) finds for a domain or a MAC exactly
//! the entries the full parse finds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nss_libvirt_guest::leases::MacsFile;
use nss_libvirt_guest::lookup::{Content, Kind, parse_containing};

fuzz_target!(|data: &[u8]| {
    let f = MacsFile::parse(data);
    for e in &f.entries {
        assert!(e.offset < data.len());
        assert!(!e.domain.is_empty());
        assert!(
            f.for_domain(&e.domain.to_ascii_lowercase())
                .any(|x| x.offset == e.offset)
        );
        for m in &e.macs {
            assert!(f.owning(m).any(|x| x.offset == e.offset));
        }
        let lc = e.domain.to_ascii_lowercase();
        let first_mac = e.macs.first().cloned();
        for needle in std::iter::once(lc.clone()).chain(first_mac) {
            if let Some(cold) = parse_containing(data, Kind::Macs, &[needle.clone()]) {
                let Some(Content::Macs(cold)) = cold else {
                    panic!("cold path missed {needle:?}");
                };
                if needle == lc {
                    assert!(
                        f.for_domain(&lc)
                            .map(|x| x.offset)
                            .eq(cold.for_domain(&lc).map(|x| x.offset))
                    );
                } else {
                    assert!(
                        f.owning(&needle)
                            .map(|x| x.offset)
                            .eq(cold.owning(&needle).map(|x| x.offset))
                    );
                }
            }
        }
    }
});
