//! The device JSON mdevctl hands the callout on stdin (and stores in /etc/mdevctl.d): any
//! bytes must give a config or an error, never a panic; a parsed config's attributes must
//! evaluate without panicking and an accepted value must round-trip through the kernel's
//! attribute format.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodedev_helper::mdev::{DeviceConfig, Matrix, attrs_json, parse_value};

fuzz_target!(|data: &[u8]| {
    let Ok(config) = DeviceConfig::parse(data) else {
        return;
    };
    let (matrix, errors) = Matrix::from_attrs(&config.attrs);
    for e in &errors {
        let _ = e.to_string();
    }
    // what `get attributes` would print for this matrix parses back to the same matrix
    let attrs = matrix.to_attrs();
    let json = format!(
        "{{\"mdev_type\":\"vfio_ap-passthrough\",\"attrs\":{}}}",
        attrs_json(&attrs)
    );
    let back = DeviceConfig::parse(json.as_bytes()).expect("our own output parses");
    let (again, errs) = Matrix::from_attrs(&back.attrs);
    assert!(errs.is_empty());
    assert_eq!(again, matrix);
    for (_, v) in &config.attrs {
        if let Some(n) = parse_value(v) {
            assert!(!v.is_empty() && !v.starts_with('-') && !v.contains(','), "{v:?} -> {n}");
        }
    }
});
