//! The persistent masks rule (`/etc/udev/rules.d/41-ap.rules`, chzdev's format) of any text:
//! never a panic; masks it accepts are written back byte-exact as chzdev would and read again
//! as the same masks; errors name a line and echo at most a bounded, escaped piece of it.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nodedev_helper::udev_rule::{parse, render};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("/etc/udev/rules.d/41-ap.rules");
    match parse(&text, path) {
        Ok(masks) => {
            let again = parse(&render(&masks), path).expect("our own rule parses");
            assert_eq!(again, masks);
        }
        Err(e) => {
            let m = e.to_string();
            assert!(m.len() <= 600, "{} bytes: {m:?}", m.len());
            assert!(!m.chars().any(char::is_control), "control character in {m:?}");
        }
    }
});
