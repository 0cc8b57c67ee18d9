//! chzdev's AP mask syntax: `apmask=VALUE` / `aqmask=VALUE` (doc/s390-tools.md, "chzdev -t ap").
//!
//! VALUE is a comma list. If its first item starts with `+` or `-`, every item must be a
//! signed term `+N`, `+N-M`, `-N`, `-N-M`, applied in order to the current mask (relative).
//! Otherwise every item is `N` or `N-M` and together they form an absolute mask starting from
//! all-zero. Numbers are base 0 as `strtoul(…, 0)` reads them (`43`, `0x2b`, `053`) and at
//! most 255.
//!
//! Unlike chzdev we refuse reversed ranges (`5-3`: chzdev silently clears the mask), an empty
//! value (a typo that would give every adapter away), whitespace, and mixing signed with
//! unsigned items; every error names the offending item.

use std::fmt;

use crate::apmask::Mask;

/// One parsed item: a range of ids, with its sign in a relative list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    /// `Some(true)` for `+`, `Some(false)` for `-`, `None` in an absolute list.
    pub sign: Option<bool>,
    pub first: u8,
    pub last: u8,
}

/// A parsed `apmask=`/`aqmask=` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaskSpec {
    /// The exact mask (items of an unsigned list, from all-zero).
    Absolute(Mask),
    /// Signed terms, applied in order to the current mask.
    Relative(Vec<Term>),
}

/// Why an item was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    #[error("empty value (to clear every bit write -0-255)")]
    Empty,
    #[error("item '{item}': {reason}")]
    Item { item: String, reason: &'static str },
}

fn bad(item: &str, reason: &'static str) -> SyntaxError {
    SyntaxError::Item {
        item: item.to_string(),
        reason,
    }
}

/// Parses a base-0 unsigned number (`strtoul(s, &end, 0)` with `*end == 0` required) ≤ 255.
fn number(item: &str, s: &str) -> Result<u8, SyntaxError> {
    if s.is_empty() {
        return Err(bad(item, "missing number"));
    }
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(bad(item, "not a number (decimal, 0x hex or 0 octal)"));
    }
    // Strip leading zeros so that very long zero-padded numbers do not overflow.
    let significant = digits.trim_start_matches('0');
    if significant.len() > 3 {
        return Err(bad(item, "number greater than 255"));
    }
    let v = if significant.is_empty() {
        0
    } else {
        u32::from_str_radix(significant, radix).map_err(|_| bad(item, "not a number"))?
    };
    u8::try_from(v).map_err(|_| bad(item, "number greater than 255"))
}

fn term(item: &str) -> Result<Term, SyntaxError> {
    let (sign, body) = match item.as_bytes().first() {
        Some(b'+') => (Some(true), &item[1..]),
        Some(b'-') => (Some(false), &item[1..]),
        _ => (None, item),
    };
    if body.is_empty() {
        return Err(bad(item, "missing number"));
    }
    let (first, last) = match body.split_once('-') {
        None => {
            let n = number(item, body)?;
            (n, n)
        }
        Some((a, b)) => {
            if b.is_empty() {
                return Err(bad(item, "missing end of range"));
            }
            (number(item, a)?, number(item, b)?)
        }
    };
    if first > last {
        return Err(bad(item, "range end is lower than its start"));
    }
    Ok(Term { sign, first, last })
}

/// Parses VALUE of `apmask=VALUE` or `aqmask=VALUE`.
pub fn parse(value: &str) -> Result<MaskSpec, SyntaxError> {
    if value.is_empty() {
        return Err(SyntaxError::Empty);
    }
    let mut terms = Vec::new();
    for item in value.split(',') {
        if item.is_empty() {
            return Err(bad(item, "empty item (doubled or trailing comma)"));
        }
        terms.push(term(item)?);
    }
    let relative = terms[0].sign.is_some();
    for (t, item) in terms.iter().zip(value.split(',')) {
        if t.sign.is_some() != relative {
            return Err(bad(
                item,
                if relative {
                    "unsigned item in a relative (+/-) list"
                } else {
                    "signed item in an absolute list"
                },
            ));
        }
    }
    if relative {
        return Ok(MaskSpec::Relative(terms));
    }
    let mut m = Mask::EMPTY;
    for t in terms {
        for b in t.first..=t.last {
            m.set(b);
        }
    }
    Ok(MaskSpec::Absolute(m))
}

impl MaskSpec {
    /// The mask that results from applying this value to `current`.
    pub fn apply(&self, current: Mask) -> Mask {
        match self {
            MaskSpec::Absolute(m) => *m,
            MaskSpec::Relative(terms) => {
                let mut m = current;
                for t in terms {
                    for b in t.first..=t.last {
                        if t.sign == Some(true) {
                            m.set(b);
                        } else {
                            m.clear(b);
                        }
                    }
                }
                m
            }
        }
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sign {
            Some(true) => f.write_str("+")?,
            Some(false) => f.write_str("-")?,
            None => {}
        }
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn full_without(bits: &[u8]) -> Mask {
        let mut m = Mask::FULL;
        for &b in bits {
            m.clear(b);
        }
        m
    }

    #[test]
    fn seed_examples() {
        // apmask=-2 aqmask=-43 from the default all-ones masks
        let ap = parse("-2").unwrap().apply(Mask::FULL);
        let aq = parse("-43").unwrap().apply(Mask::FULL);
        assert_eq!(ap.ranges(), "0-1,3-255");
        assert_eq!(aq.ranges(), "0-42,44-255");
        // apmask=+2,-4-8 aqmask=+43,-0-42 applied to the result
        let ap = parse("+2,-4-8").unwrap().apply(ap);
        let aq = parse("+43,-0-42").unwrap().apply(aq);
        assert_eq!(ap.ranges(), "0-3,9-255");
        assert_eq!(aq.ranges(), "43-255");
    }

    #[test]
    fn absolute_lists_start_from_zero() {
        let m = parse("0-1,3,0x10,010").unwrap().apply(Mask::FULL);
        assert_eq!(m.ranges(), "0-1,3,8,16");
        assert_eq!(parse("255").unwrap().apply(Mask::EMPTY).ranges(), "255");
        assert_eq!(parse("0-255").unwrap().apply(Mask::EMPTY), Mask::FULL);
    }

    #[test]
    fn relative_terms_apply_in_order() {
        assert_eq!(parse("+5,-5").unwrap().apply(Mask::EMPTY), Mask::EMPTY);
        assert_eq!(parse("-5").unwrap().apply(Mask::FULL), full_without(&[5]));
        assert_eq!(parse("-5,+5").unwrap().apply(Mask::EMPTY).ranges(), "5");
        assert_eq!(parse("-0-255").unwrap().apply(Mask::FULL), Mask::EMPTY);
    }

    #[test]
    fn invalid_values_name_the_item() {
        let cases = [
            ("5-3", "item '5-3': range end is lower than its start"),
            ("256", "item '256': number greater than 255"),
            ("0x100", "item '0x100': number greater than 255"),
            ("+1-", "item '+1-': missing end of range"),
            ("+1,2", "item '2': unsigned item in a relative (+/-) list"),
            ("1,-2", "item '-2': signed item in an absolute list"),
            (
                "abc",
                "item 'abc': not a number (decimal, 0x hex or 0 octal)",
            ),
            ("1,,2", "item '': empty item (doubled or trailing comma)"),
            ("1,", "item '': empty item (doubled or trailing comma)"),
            ("+", "item '+': missing number"),
            ("08", "item '08': not a number (decimal, 0x hex or 0 octal)"),
            (" 1", "item ' 1': not a number (decimal, 0x hex or 0 octal)"),
            (
                "1-2-3",
                "item '1-2-3': not a number (decimal, 0x hex or 0 octal)",
            ),
            ("--1", "item '--1': missing number"),
            ("0x", "item '0x': not a number (decimal, 0x hex or 0 octal)"),
            ("", "empty value (to clear every bit write -0-255)"),
        ];
        for (value, msg) in cases {
            assert_eq!(
                parse(value).unwrap_err().to_string(),
                msg,
                "value {value:?}"
            );
        }
    }

    #[test]
    fn leading_zeros_do_not_overflow() {
        assert_eq!(
            parse("00000000000000000000000000255").unwrap(),
            parse("0255").unwrap()
        );
        assert_eq!(parse("0255").unwrap().apply(Mask::EMPTY).ranges(), "173");
    }

    /// A plain reference: a bool per id, numbers printed in a random base.
    fn render(n: u16, base: u8) -> String {
        match base {
            0 => n.to_string(),
            1 => format!("0x{n:x}"),
            _ => format!("0{n:o}"),
        }
    }

    proptest! {
        #[test]
        fn matches_a_plain_reference(
            relative in any::<bool>(),
            start in proptest::collection::vec(any::<bool>(), 256),
            items in proptest::collection::vec((any::<bool>(), 0u16..256, 0u16..40, 0u8..3, any::<bool>()), 1..8),
        ) {
            let mut reference: Vec<bool> = if relative { start.clone() } else { vec![false; 256] };
            let mut text = Vec::new();
            for &(plus, a, len, base, single) in &items {
                let b = (a + len).min(255);
                let sign = if relative { if plus { "+" } else { "-" } } else { "" };
                let body = if single { render(a, base) } else { format!("{}-{}", render(a, base), render(b, base)) };
                text.push(format!("{sign}{body}"));
                let last = if single { a } else { b };
                for i in a..=last {
                    reference[usize::from(i)] = !relative || plus;
                }
            }
            let current: Mask = (0..=255u8).filter(|&i| start[usize::from(i)]).collect();
            let got = parse(&text.join(",")).unwrap().apply(current);
            for i in 0..=255u8 {
                prop_assert_eq!(got.test(i), reference[usize::from(i)], "id {} of {}", i, text.join(","));
            }
        }

        #[test]
        fn out_of_range_and_reversed_are_refused(a in 0u32..1000, b in 0u32..1000) {
            let r = parse(&format!("{a}-{b}"));
            prop_assert_eq!(r.is_ok(), a <= b && b <= 255);
        }

        #[test]
        fn garbage_never_panics(s in "[-+0-9a-fx, ]{0,20}") {
            let _ = parse(&s);
        }
    }
}
