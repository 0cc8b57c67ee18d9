//! Untrusted text in messages: what a user's `--jsonfile`, a config file or stdin contained is
//! echoed in errors so that the user can find it, but never verbatim. Control characters
//! (terminal escape sequences, newlines that would forge extra message lines) are escaped as
//! `\n`, `\u{1b}`, and anything longer than [`ECHO_MAX`] characters is cut, saying how long it
//! was: a 100 MB attribute value gives a one-line message, not a 100 MB one.

use std::fmt::Write as _;

/// The most characters of one untrusted value a message shows.
pub const ECHO_MAX: usize = 64;

/// `s` made safe to print: control characters escaped, at most [`ECHO_MAX`] characters kept
/// (then `…` and the full length in bytes).
pub fn echo(s: &str) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == ECHO_MAX {
            let _ = write!(out, "…({} bytes)", s.len());
            break;
        }
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_values_cut() {
        assert_eq!(echo("43"), "43");
        assert_eq!(echo("a\nb\x1b[31m\0"), "a\\nb\\u{1b}[31m\\u{0}");
        let long = "x".repeat(100 << 20);
        let e = echo(&long);
        assert_eq!(e, format!("{}…({} bytes)", "x".repeat(ECHO_MAX), 100 << 20));
        assert_eq!(echo(&"é".repeat(ECHO_MAX)), "é".repeat(ECHO_MAX));
    }
}
