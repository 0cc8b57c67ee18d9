//! Any bytes as a `<bridge>.macs` file (domain -> MACs): no panic, consistent indexes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nss_libvirt_guest::leases::MacsFile;

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
    }
});
