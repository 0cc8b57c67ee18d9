//! An mdevctl config (or the callout's stdin) of any bytes, as `DeviceConfig::parse_bounded`
//! reads it: never a panic, more than `CONFIG_MAX` bytes refused without parsing, and every
//! message about it bounded in length and free of control characters, whatever the input
//! (the callout prints them to mdevctl's, libvirt's and the user's terminal).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodedev_helper::mdev::{CONFIG_MAX, DeviceConfig, Matrix};

/// One message line: generous for the longest sentence plus a cut value.
const MESSAGE_MAX: usize = 600;

fn check_message(m: &str) {
    assert!(m.len() <= MESSAGE_MAX, "{} bytes: {m:?}", m.len());
    assert!(!m.chars().any(char::is_control), "control character in {m:?}");
}

fuzz_target!(|data: &[u8]| {
    // the fuzzer's inputs are small: grow some of them past the cap to check the bound
    let big;
    let data = if data.first() == Some(&b'#') {
        big = data.repeat(CONFIG_MAX / data.len().max(1) + 1);
        &big[..]
    } else {
        data
    };
    match DeviceConfig::parse_bounded(data) {
        Err(e) => {
            assert!(data.len() <= CONFIG_MAX || e.to_string().contains("more than"));
            check_message(&e.to_string());
        }
        Ok(config) => {
            assert!(data.len() <= CONFIG_MAX);
            let (_, errors) = Matrix::from_attrs(&config.attrs);
            for e in errors {
                check_message(&e.to_string());
            }
        }
    }
});
