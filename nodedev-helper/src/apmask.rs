//! AP masks (apmask, aqmask, control-domain masks) and APQNs.
//!
//! A mask is 256 bits as the kernel prints it: `0x` + 64 hex digits, bit 0 being the most
//! significant bit of the first digit (doc/ap-bus.md, "Masks"). It is stored as 32
//! bytes in that same order, so no integer byte order is involved and the code behaves
//! identically on big-endian s390x and little-endian x86_64.

use std::fmt;

/// Number of ids in an AP mask (adapters, domains and control domains alike).
pub const MASK_BITS: usize = 256;

/// A 256-bit AP mask; bit `i` = adapter or domain `i`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mask([u8; 32]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    #[error("'{0}' is not a mask of the form 0x followed by 64 hex digits")]
    BadSysfsFormat(String),
}

impl Default for Mask {
    fn default() -> Self {
        Mask::EMPTY
    }
}

impl Mask {
    pub const EMPTY: Mask = Mask([0; 32]);
    pub const FULL: Mask = Mask([0xff; 32]);

    /// Bytes in kernel order (bit 0 = MSB of byte 0).
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Mask(b)
    }
    pub fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    pub fn test(&self, bit: u8) -> bool {
        self.0[usize::from(bit / 8)] & (0x80 >> (bit % 8)) != 0
    }
    pub fn set(&mut self, bit: u8) {
        self.0[usize::from(bit / 8)] |= 0x80 >> (bit % 8);
    }
    pub fn clear(&mut self, bit: u8) {
        self.0[usize::from(bit / 8)] &= !(0x80 >> (bit % 8));
    }
    pub fn with(mut self, bit: u8) -> Self {
        self.set(bit);
        self
    }
    pub fn without(mut self, bit: u8) -> Self {
        self.clear(bit);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }

    /// Set bits in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=255u8).filter(move |&b| self.test(b))
    }

    pub fn count(&self) -> usize {
        self.0.iter().map(|b| b.count_ones() as usize).sum()
    }

    pub fn and(self, o: Mask) -> Mask {
        Mask(std::array::from_fn(|i| self.0[i] & o.0[i]))
    }
    pub fn or(self, o: Mask) -> Mask {
        Mask(std::array::from_fn(|i| self.0[i] | o.0[i]))
    }
    /// Bits set in `self` and not in `o`.
    pub fn and_not(self, o: Mask) -> Mask {
        Mask(std::array::from_fn(|i| self.0[i] & !o.0[i]))
    }

    /// Parses what the kernel prints in `apmask`/`aqmask`: `0x` + 64 hex digits, optional
    /// trailing newline. Anything else is an error (a short mask is not silently padded:
    /// ap-check aborts on one, we report it).
    pub fn parse_sysfs(s: &str) -> Result<Mask, MaskError> {
        let t = s.strip_suffix('\n').unwrap_or(s);
        let bad = || MaskError::BadSysfsFormat(s.trim_end().to_string());
        let hex = t
            .strip_prefix("0x")
            .or_else(|| t.strip_prefix("0X"))
            .ok_or_else(bad)?;
        if hex.len() != 64 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Mask(out))
    }

    /// Decimal ranges as lszdev prints them: `0-1,3-255`; empty string for an empty mask.
    pub fn ranges(&self) -> String {
        let mut out = String::new();
        let mut bit = 0usize;
        while bit < MASK_BITS {
            if !self.test(bit as u8) {
                bit += 1;
                continue;
            }
            let start = bit;
            while bit + 1 < MASK_BITS && self.test((bit + 1) as u8) {
                bit += 1;
            }
            if !out.is_empty() {
                out.push(',');
            }
            if start == bit {
                out.push_str(&start.to_string());
            } else {
                out.push_str(&format!("{start}-{bit}"));
            }
            bit += 1;
        }
        out
    }
}

/// `0x` + 64 lower-case hex digits, no newline: exactly what the kernel prints and what
/// chzdev writes into the udev rule and into sysfs.
impl fmt::Display for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mask({})", self.ranges())
    }
}

impl FromIterator<u8> for Mask {
    fn from_iter<I: IntoIterator<Item = u8>>(it: I) -> Self {
        let mut m = Mask::EMPTY;
        for b in it {
            m.set(b);
        }
        m
    }
}

/// An AP queue number: adapter (card) and usage domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Apqn {
    pub adapter: u8,
    pub domain: u8,
}

impl Apqn {
    pub fn new(adapter: u8, domain: u8) -> Self {
        Apqn { adapter, domain }
    }

    /// Owned by the host's crypto drivers iff its adapter bit is set in apmask AND its
    /// domain bit in aqmask.
    pub fn host_owned(&self, apmask: &Mask, aqmask: &Mask) -> bool {
        apmask.test(self.adapter) && aqmask.test(self.domain)
    }

    /// Every APQN of the cross product adapters × domains, adapter-major.
    pub fn product(adapters: &Mask, domains: &Mask) -> Vec<Apqn> {
        adapters
            .iter()
            .flat_map(|a| domains.iter().map(move |d| Apqn::new(a, d)))
            .collect()
    }

    /// The queue device name under /sys/bus/ap/devices: `%02x.%04x`.
    pub fn queue_name(&self) -> String {
        format!("{:02x}.{:04x}", self.adapter, self.domain)
    }
}

/// Decimal `adapter.domain`, as ap-check and chzdev print APQNs in messages.
impl fmt::Display for Apqn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.adapter, self.domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bit_zero_is_the_msb_of_the_first_digit() {
        let m = Mask::EMPTY.with(0);
        assert_eq!(m.to_string(), format!("0x80{}", "0".repeat(62)));
        let m = Mask::EMPTY.with(255);
        assert_eq!(m.to_string(), format!("0x{}01", "0".repeat(62)));
        // 0x41 right-padded = bits 1 and 7
        let m = Mask::parse_sysfs(&format!("0x41{}\n", "0".repeat(62))).unwrap();
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![1, 7]);
    }

    #[test]
    fn sysfs_format_is_strict() {
        assert!(Mask::parse_sysfs("0x41").is_err());
        assert!(Mask::parse_sysfs(&"f".repeat(64)).is_err());
        assert!(Mask::parse_sysfs(&format!("0x{}g", "0".repeat(63))).is_err());
        assert_eq!(
            Mask::parse_sysfs(&format!("0x{}", "f".repeat(64))).unwrap(),
            Mask::FULL
        );
    }

    #[test]
    fn ranges_as_lszdev_prints_them() {
        let mut m = Mask::FULL;
        m.clear(2);
        assert_eq!(m.ranges(), "0-1,3-255");
        let mut q = Mask::FULL;
        q.clear(43);
        assert_eq!(q.ranges(), "0-42,44-255");
        assert_eq!(Mask::EMPTY.ranges(), "");
        assert_eq!(Mask::EMPTY.with(5).with(7).ranges(), "5,7");
    }

    #[test]
    fn apqn_display_and_queue_name() {
        let a = Apqn::new(2, 43);
        assert_eq!(a.to_string(), "2.43");
        assert_eq!(a.queue_name(), "02.002b");
    }

    proptest! {
        #[test]
        fn sysfs_roundtrip(bytes in proptest::array::uniform32(any::<u8>())) {
            let m = Mask::from_bytes(bytes);
            prop_assert_eq!(Mask::parse_sysfs(&format!("{m}\n")).unwrap(), m);
        }

        #[test]
        fn bits_match_a_plain_bool_reference(bits in proptest::collection::btree_set(any::<u8>(), 0..64)) {
            let m: Mask = bits.iter().copied().collect();
            let reference: Vec<u8> = bits.iter().copied().collect();
            prop_assert_eq!(m.iter().collect::<Vec<_>>(), reference);
            prop_assert_eq!(m.count(), bits.len());
            // the hex text agrees with a per-bit reference rendering
            let s = m.to_string();
            for b in 0..=255u8 {
                let digit = u8::from_str_radix(&s[2 + usize::from(b / 4)..3 + usize::from(b / 4)], 16).unwrap();
                prop_assert_eq!(digit & (8 >> (b % 4)) != 0, bits.contains(&b));
            }
        }
    }
}
