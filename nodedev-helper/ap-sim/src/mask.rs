//! 256-bit AP masks as the kernel keeps them, and the number and mask parsers of the kernel's
//! sysfs stores (drivers/s390/crypto/ap_bus.c `modify_bitmap`, `hex2bitmap`,
//! `ap_parse_bitmap_str`; lib/kstrtox.c `kstrtoul`, lib/vsprintf.c `simple_strtoul`).
//!
//! The kernel numbers AP bits "inverted": bit 0 is the most significant bit of the first word,
//! which makes the printed hex string read left to right as bit 0, 1, 2, ... The mask here is
//! stored as 32 bytes with bit `n` in byte `n / 8` at weight `0x80 >> (n % 8)`: the same
//! left-to-right reading, independent of the host's byte order.

use std::fmt;

/// Number of bits in apmask, aqmask and the mdev masks (`AP_DEVICES` = `AP_DOMAINS` = 256).
pub const BITS: usize = 256;

/// A mask string the kernel refuses with EINVAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid AP mask (EINVAL)")]
pub struct Einval;

/// A 256-bit AP bitmap (adapters or domains).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mask([u8; BITS / 8]);

impl Mask {
    /// All bits clear.
    pub const fn empty() -> Mask {
        Mask([0; BITS / 8])
    }

    /// All 256 bits set (a freshly booted host).
    pub const fn full() -> Mask {
        Mask([0xff; BITS / 8])
    }

    /// A mask with exactly the given bits set (values >= 256 are ignored).
    pub fn from_bits<I: IntoIterator<Item = usize>>(bits: I) -> Mask {
        let mut m = Mask::empty();
        for b in bits {
            if b < BITS {
                m.set(b, true);
            }
        }
        m
    }

    /// Whether bit `n` is set; false for `n >= 256`.
    pub fn get(&self, n: usize) -> bool {
        n < BITS && self.0[n / 8] & (0x80 >> (n % 8)) != 0
    }

    /// Set or clear bit `n` (`n < 256`).
    pub fn set(&mut self, n: usize, on: bool) {
        assert!(n < BITS, "AP mask bit {n} out of range");
        if on {
            self.0[n / 8] |= 0x80 >> (n % 8);
        } else {
            self.0[n / 8] &= !(0x80 >> (n % 8));
        }
    }

    /// The set bits, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..BITS).filter(move |&n| self.get(n))
    }

    /// No bit set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }

    /// Bits set in both.
    pub fn and(&self, other: &Mask) -> Mask {
        let mut r = *self;
        for (a, b) in r.0.iter_mut().zip(other.0.iter()) {
            *a &= *b;
        }
        r
    }

    /// Bits set in `self` but not in `other` (`bitmap_andnot`).
    pub fn and_not(&self, other: &Mask) -> Mask {
        let mut r = *self;
        for (a, b) in r.0.iter_mut().zip(other.0.iter()) {
            *a &= !*b;
        }
        r
    }

    /// Whether any bit is set in both (`bitmap_intersects`).
    pub fn intersects(&self, other: &Mask) -> bool {
        !self.and(other).is_empty()
    }

    /// The 64 lower-case hex digits, bit 0 first (no `0x`, no newline).
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// Parse a mask exactly as a write to `/sys/bus/ap/apmask` or `aqmask` does
    /// (`ap_parse_bitmap_str`): a string starting with `+` or `-` is a list of relative terms
    /// applied to `current`; anything else is an absolute hex mask. `Err(Einval)` is EINVAL.
    pub fn parse_store(input: &[u8], current: &Mask) -> Result<Mask, Einval> {
        let s = c_str(input);
        match s.first() {
            Some(b'+') | Some(b'-') => {
                let mut m = *current;
                modify_bitmap(s, &mut m)?;
                Ok(m)
            }
            _ => hex2bitmap(s),
        }
    }

    /// Parse an absolute hex mask (`hex2bitmap`): optional `0x` (or a bare `x`), up to 64 hex
    /// digits read as bits 0, 1, 2, ... (so shorter strings are zero-padded on the right), an
    /// optional single trailing newline, nothing else.
    pub fn parse_hex(input: &[u8]) -> Result<Mask, Einval> {
        hex2bitmap(c_str(input))
    }
}

impl fmt::Debug for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits: Vec<usize> = self.iter().collect();
        write!(f, "Mask({bits:?})")
    }
}

/// The part of a sysfs write the kernel's C parsers see: up to the first NUL.
pub(crate) fn c_str(input: &[u8]) -> &[u8] {
    match input.iter().position(|&b| b == 0) {
        Some(n) => &input[..n],
        None => input,
    }
}

/// `modify_bitmap`: terms `+N`, `-N`, `+N-M`, `-N-M`; after each term any run of `,` and `\n`
/// is skipped, and the next character must be a sign (so `+1+2` is accepted, `+1 ,+2` is not).
fn modify_bitmap(mut s: &[u8], m: &mut Mask) -> Result<(), Einval> {
    while let Some((&sign, rest)) = s.split_first() {
        if sign != b'+' && sign != b'-' {
            return Err(Einval);
        }
        s = rest;
        let (a, used) = simple_strtoul(s);
        if used == 0 || a >= BITS as u64 {
            return Err(Einval);
        }
        s = &s[used..];
        let mut z = a;
        if s.first() == Some(&b'-') {
            s = &s[1..];
            let (zz, used) = simple_strtoul(s);
            if used == 0 || a > zz || zz >= BITS as u64 {
                return Err(Einval);
            }
            z = zz;
            s = &s[used..];
        }
        for i in a..=z {
            m.set(i as usize, sign == b'+');
        }
        while matches!(s.first(), Some(b',') | Some(b'\n')) {
            s = &s[1..];
        }
    }
    Ok(())
}

/// `hex2bitmap`.
fn hex2bitmap(mut s: &[u8]) -> Result<Mask, Einval> {
    if s.starts_with(b"0x") {
        s = &s[1..];
    }
    if s.first() == Some(&b'x') {
        s = &s[1..];
    }
    let mut m = Mask::empty();
    let mut i = 0;
    while i < BITS {
        let d = match s.first().and_then(|&c| (c as char).to_digit(16)) {
            Some(d) => d,
            None => break,
        };
        for n in 0..4 {
            if d & (0x08 >> n) != 0 {
                m.set(i + n, true);
            }
        }
        i += 4;
        s = &s[1..];
    }
    if s.first() == Some(&b'\n') {
        s = &s[1..];
    }
    if s.is_empty() { Ok(m) } else { Err(Einval) }
}

/// Radix detection of the kernel's base-0 parsers (`_parse_integer_fixup_radix`): `0x`/`0X`
/// followed by a hex digit is hex, a leading `0` is octal, else decimal. Returns the radix and
/// the number of prefix bytes consumed.
fn radix(s: &[u8]) -> (u32, usize) {
    if s.first() == Some(&b'0') {
        if matches!(s.get(1), Some(b'x') | Some(b'X'))
            && s.get(2).is_some_and(|c| c.is_ascii_hexdigit())
        {
            (16, 2)
        } else {
            (8, 0)
        }
    } else {
        (10, 0)
    }
}

/// Digits of `s` in `radix` accumulated with wrap-around (the kernel's simple_strtoul ignores
/// overflow); returns (value, digits consumed, overflowed).
fn digits(s: &[u8], radix: u32) -> (u64, usize, bool) {
    let mut v: u64 = 0;
    let mut n = 0;
    let mut overflow = false;
    for &c in s {
        let d = match (c as char).to_digit(16) {
            Some(d) if d < radix => d,
            _ => break,
        };
        let (m, o1) = v.overflowing_mul(u64::from(radix));
        let (a, o2) = m.overflowing_add(u64::from(d));
        overflow |= o1 || o2;
        v = a;
        n += 1;
    }
    (v, n, overflow)
}

/// `simple_strtoul(s, &end, 0)`: value and bytes consumed (0 when no digit was found).
pub(crate) fn simple_strtoul(s: &[u8]) -> (u64, usize) {
    let (r, skip) = radix(s);
    let (v, n, _) = digits(&s[skip..], r);
    if n == 0 { (0, 0) } else { (v, skip + n) }
}

/// Why `kstrtoul` refused a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumError {
    /// Not a number (EINVAL).
    Invalid,
    /// Too large for an unsigned long (ERANGE).
    Range,
}

impl NumError {
    /// The errno the kernel returns.
    pub fn errno(self) -> i32 {
        match self {
            NumError::Invalid => libc::EINVAL,
            NumError::Range => libc::ERANGE,
        }
    }
}

/// `kstrtoul(buf, 0, &val)` as the vfio_ap and mdev stores call it: optional leading `+`,
/// base-0 digits, at most one trailing newline, nothing else.
pub fn kstrtoul(input: &[u8]) -> Result<u64, NumError> {
    let mut s = c_str(input);
    if s.first() == Some(&b'+') {
        s = &s[1..];
    }
    let (r, skip) = radix(s);
    let (v, n, overflow) = digits(&s[skip..], r);
    if n == 0 {
        return Err(NumError::Invalid);
    }
    if overflow {
        return Err(NumError::Range);
    }
    let mut rest = &s[skip + n..];
    if rest.first() == Some(&b'\n') {
        rest = &rest[1..];
    }
    if rest.is_empty() {
        Ok(v)
    } else {
        Err(NumError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(s: &str, cur: &Mask) -> Result<Mask, Einval> {
        Mask::parse_store(s.as_bytes(), cur)
    }

    #[test]
    fn hex_reads_bit0_first_and_pads_right() {
        let m = Mask::parse_hex(b"0x41").unwrap();
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![1, 7]);
        assert_eq!(
            m.hex(),
            "4100000000000000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(Mask::parse_hex(b"41\n").unwrap(), m);
        assert_eq!(
            Mask::parse_hex(b"x41").unwrap(),
            m,
            "hex2bitmap skips a bare x"
        );
        assert_eq!(Mask::parse_hex(b"").unwrap(), Mask::empty());
        assert_eq!(Mask::full().hex(), "f".repeat(64));
    }

    #[test]
    fn hex_rejects_garbage_and_overlong() {
        for bad in ["0x4g", "0X41", "41\n\n", " 41", &"f".repeat(65), "0x41,"] {
            assert_eq!(Mask::parse_hex(bad.as_bytes()), Err(Einval), "{bad:?}");
        }
        assert!(Mask::parse_hex("f".repeat(64).as_bytes()).is_ok());
    }

    #[test]
    fn relative_terms() {
        let full = Mask::full();
        let m = rel("-2", &full).unwrap();
        assert!(!m.get(2) && m.get(1) && m.get(3));
        let m = rel("-0-255,+1-16,+0x80", &full).unwrap();
        assert_eq!(m.iter().collect::<Vec<_>>(), {
            let mut v: Vec<usize> = (1..=16).collect();
            v.push(128);
            v
        });
        // last operation wins, separators are any run of ',' and '\n', and a sign may follow
        // a term directly
        let m = rel("+0-255,-128", &Mask::empty()).unwrap();
        assert!(!m.get(128) && m.get(127) && m.get(129));
        let m = rel("+1+2,,\n+010\n", &Mask::empty()).unwrap();
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![1, 2, 8]);
    }

    #[test]
    fn relative_rejects() {
        let full = Mask::full();
        for bad in [
            "+256", "-5-3", "+1,2", "+1 ,+2", "+", "+-1", "+1-", "+1-256", "+0xg", "-1,x",
        ] {
            assert_eq!(rel(bad, &full), Err(Einval), "{bad:?}");
        }
    }

    #[test]
    fn kstrtoul_like_the_kernel() {
        assert_eq!(kstrtoul(b"43"), Ok(43));
        assert_eq!(kstrtoul(b"0x2b\n"), Ok(43));
        assert_eq!(kstrtoul(b"053"), Ok(43));
        assert_eq!(kstrtoul(b"+7"), Ok(7));
        assert_eq!(kstrtoul(b"0"), Ok(0));
        for bad in ["", "-1", " 1", "1 ", "1\n\n", "0x", "08", "1,2", "abc"] {
            assert_eq!(kstrtoul(bad.as_bytes()), Err(NumError::Invalid), "{bad:?}");
        }
        assert_eq!(kstrtoul(b"99999999999999999999999"), Err(NumError::Range));
    }
}
