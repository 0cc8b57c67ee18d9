//! Untrusted text in messages: what a user's `--jsonfile`, a config file or stdin contained is
//! echoed in errors so that the user can find it, but never verbatim. Control characters
//! (terminal escape sequences, newlines that would forge extra message lines) are escaped as
//! `\n`, `\u{1b}`, and what is shown is cut at [`ECHO_MAX`] bytes, saying how long the value
//! was: a 100 MB attribute value gives a one-line message, not a 100 MB one. The budget counts
//! the bytes printed (an escape's six, a multi-byte character's UTF-8 length), not the
//! characters read: a value of 64 control characters or 4-byte characters would otherwise
//! print six or four times as much, and a message quoting two values could grow past a line.

use std::fmt::Write as _;

/// The most bytes of one untrusted value a message shows, escapes included.
pub const ECHO_MAX: usize = 64;

/// `s` made safe to print: control characters escaped, at most [`ECHO_MAX`] bytes of it shown
/// (whole characters and whole escapes only; then `…` and the value's full length in bytes).
pub fn echo(s: &str) -> String {
    let mut out = String::new();
    let mut piece = String::new();
    for c in s.chars() {
        piece.clear();
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            piece.extend(c.escape_default());
        } else {
            piece.push(c);
        }
        if out.len() + piece.len() > ECHO_MAX {
            let _ = write!(out, "…({} bytes)", s.len());
            break;
        }
        out.push_str(&piece);
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
        // the budget is in bytes shown: two-byte characters, escapes
        assert_eq!(echo(&"é".repeat(ECHO_MAX / 2)), "é".repeat(ECHO_MAX / 2));
        let e = echo(&"é".repeat(ECHO_MAX));
        assert_eq!(
            e,
            format!("{}…({} bytes)", "é".repeat(ECHO_MAX / 2), 2 * ECHO_MAX)
        );
        let e = echo(&"\x7f".repeat(ECHO_MAX));
        assert_eq!(e, format!("{}…({} bytes)", "\\u{7f}".repeat(10), ECHO_MAX));
        // whatever the value, what is shown stays within the budget plus the length note
        for s in [
            "\u{1F600}".repeat(100),
            "\x1b".repeat(1000),
            "a\u{1F600}".repeat(50),
        ] {
            let e = echo(&s);
            let shown = e.split('…').next().unwrap();
            assert!(shown.len() <= ECHO_MAX, "{e:?}");
        }
    }
}
