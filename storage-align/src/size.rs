//! Sizes as virsh reads them (`virScaleInteger`): plain bytes, or a number with a unit.
//!
//! Decimal units are the two-letter ones (`KB` = 1000, `MB` = 1000², ...); one-letter units
//! and the IEC ones are binary (`K` = `KiB` = 1024, `M` = `MiB` = 1024², ...), exactly as
//! `virsh vol-create-as` treats its capacity argument. Units are case-insensitive; `B` and
//! `bytes` mean bytes.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SizeError {
    #[error(
        "invalid size {0:?}: expected a number of bytes, optionally followed by a unit (K, KiB, KB, M, MiB, MB, G, ...)"
    )]
    Syntax(String),
    #[error(
        "invalid size {value:?}: unknown unit {unit:?} (use B, K/KiB, KB, M/MiB, MB, G/GiB, GB, T/TiB, TB, P/PiB, PB, E/EiB, EB)"
    )]
    Unit { value: String, unit: String },
    #[error("invalid size {0:?}: does not fit in 64 bits")]
    Overflow(String),
}

/// Parses `"10G"`, `"512"`, `"1.5"` is rejected (virsh accepts integers only).
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits == 0 {
        return Err(SizeError::Syntax(s.to_string()));
    }
    let n: u64 = t[..digits]
        .parse()
        .map_err(|_| SizeError::Overflow(s.to_string()))?;
    let unit = t[digits..].trim();
    let lower = unit.to_ascii_lowercase();
    let (base, power): (u64, u32) = match lower.as_str() {
        "" | "b" | "byte" | "bytes" => (1, 0),
        _ => {
            let mut chars = lower.chars();
            let p = match chars.next() {
                Some('k') => 1,
                Some('m') => 2,
                Some('g') => 3,
                Some('t') => 4,
                Some('p') => 5,
                Some('e') => 6,
                _ => {
                    return Err(SizeError::Unit {
                        value: s.to_string(),
                        unit: unit.to_string(),
                    });
                }
            };
            match chars.as_str() {
                "" | "ib" => (1024, p),
                "b" => (1000, p),
                _ => {
                    return Err(SizeError::Unit {
                        value: s.to_string(),
                        unit: unit.to_string(),
                    });
                }
            }
        }
    };
    base.checked_pow(power)
        .and_then(|m| n.checked_mul(m))
        .ok_or_else(|| SizeError::Overflow(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("1K"), Ok(1024));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("1KB"), Ok(1000));
        assert_eq!(parse_size("3M"), Ok(3 << 20));
        assert_eq!(parse_size("3MB"), Ok(3_000_000));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("15E"), Ok(15 << 60));
    }

    #[test]
    fn bad_sizes() {
        assert!(matches!(parse_size(""), Err(SizeError::Syntax(_))));
        assert!(matches!(parse_size("G"), Err(SizeError::Syntax(_))));
        assert!(matches!(parse_size("-1"), Err(SizeError::Syntax(_))));
        assert!(matches!(parse_size("1.5G"), Err(SizeError::Unit { .. })));
        assert!(matches!(parse_size("1X"), Err(SizeError::Unit { .. })));
        assert!(matches!(parse_size("16E"), Err(SizeError::Overflow(_))));
        assert!(matches!(
            parse_size("99999999999999999999"),
            Err(SizeError::Overflow(_))
        ));
    }
}
