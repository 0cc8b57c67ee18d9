//! Device events as udev broadcasts them: what the kernel's `kobject_uevent` would report for
//! a device of the simulated tree, and the message libudev's monitors read from netlink
//! group 2 (`NETLINK_KOBJECT_UEVENT`, "udev" events, after udevd processed the kernel's).
//!
//! Programs such as libvirt's node device driver learn about new and removed mdevs only from
//! these events: without them `virsh nodedev-start` leaves the device inactive in libvirt.
//! The message layout is systemd's `monitor_netlink_header` (sd-device-monitor.c, stable
//! since libudev 1.0): the prefix `libudev\0`, magic 0xfeedcafe in network order, then the
//! header size, properties offset and length in host order, then the MurmurHash2 of the
//! subsystem and of the devtype in network order (the receivers' socket filters compare
//! them) and an empty tag bloom filter; then the properties `KEY=value\0...`.

/// `UDEV_MONITOR_MAGIC` of libudev.
pub const UDEV_MONITOR_MAGIC: u32 = 0xfeed_cafe;
/// Size of `monitor_netlink_header`.
pub const HEADER_SIZE: usize = 40;
/// The netlink multicast group of udev (processed) events; the kernel's own are group 1.
pub const UDEV_GROUP: u32 = 2;

/// One device event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    /// `add`, `remove`, `bind`, `unbind`, `change`...
    pub action: String,
    /// The device path below /sys, with a leading `/` (`/devices/vfio_ap/matrix/<uuid>`).
    pub devpath: String,
    /// The device's subsystem (`ap`, `matrix`, `mdev`).
    pub subsystem: String,
    /// The variables of the device's `uevent` file at the time of the event (`DEVTYPE`,
    /// `DRIVER`, `MDEV_TYPE`...), in the kernel's order.
    pub env: Vec<(String, String)>,
    /// The kernel's event sequence number (`SEQNUM`), counted per simulated host.
    pub seqnum: u64,
}

impl Uevent {
    /// A variable of [`Uevent::env`].
    pub fn get(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The properties in udev's order: ACTION, DEVPATH, SUBSYSTEM, the device's variables,
    /// SEQNUM; each `KEY=value` followed by a NUL.
    pub fn properties(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |k: &str, v: &str| {
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        };
        put("ACTION", &self.action);
        put("DEVPATH", &self.devpath);
        put("SUBSYSTEM", &self.subsystem);
        for (k, v) in &self.env {
            put(k, v);
        }
        put("SEQNUM", &self.seqnum.to_string());
        out
    }

    /// The whole datagram as udevd sends it to libudev monitors.
    pub fn libudev_message(&self) -> Vec<u8> {
        let props = self.properties();
        let mut m = Vec::with_capacity(HEADER_SIZE + props.len());
        m.extend_from_slice(b"libudev\0");
        m.extend_from_slice(&UDEV_MONITOR_MAGIC.to_be_bytes());
        m.extend_from_slice(&(HEADER_SIZE as u32).to_ne_bytes());
        m.extend_from_slice(&(HEADER_SIZE as u32).to_ne_bytes());
        m.extend_from_slice(&(props.len() as u32).to_ne_bytes());
        m.extend_from_slice(&murmur_hash2(self.subsystem.as_bytes()).to_be_bytes());
        let devtype = self
            .get("DEVTYPE")
            .map_or(0, |t| murmur_hash2(t.as_bytes()));
        m.extend_from_slice(&devtype.to_be_bytes());
        m.extend_from_slice(&0u32.to_be_bytes()); // tag bloom, high word: no tags
        m.extend_from_slice(&0u32.to_be_bytes()); // tag bloom, low word
        debug_assert_eq!(m.len(), HEADER_SIZE);
        m.extend_from_slice(&props);
        m
    }
}

/// MurmurHash2 with seed 0, as libudev's `string_hash32`. Words are read in host byte order,
/// like the C code, so sender and receiver on one host (s390x too) agree.
pub fn murmur_hash2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        if rest.len() >= 3 {
            h ^= u32::from(rest[2]) << 16;
        }
        if rest.len() >= 2 {
            h ^= u32::from(rest[1]) << 8;
        }
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// The actions the kernel's `uevent` attribute accepts (`kobject_synth_uevent`).
pub const SYNTH_ACTIONS: [&str; 8] = [
    "add", "remove", "change", "move", "online", "offline", "bind", "unbind",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> Uevent {
        Uevent {
            action: "add".into(),
            devpath: "/devices/vfio_ap/matrix/6b7a2b2e-8f3c-4e2a-9d51-1c0c7a3b2e10".into(),
            subsystem: "mdev".into(),
            env: vec![("MDEV_TYPE".into(), "vfio_ap-passthrough".into())],
            seqnum: 7,
        }
    }

    #[test]
    fn properties_are_nul_terminated_in_udev_order() {
        let p = ev().properties();
        let text = String::from_utf8(p).unwrap();
        let keys: Vec<&str> = text
            .split_terminator('\0')
            .map(|kv| kv.split('=').next().unwrap())
            .collect();
        assert_eq!(
            keys,
            ["ACTION", "DEVPATH", "SUBSYSTEM", "MDEV_TYPE", "SEQNUM"]
        );
        assert!(text.ends_with("SEQNUM=7\0"));
    }

    #[test]
    fn header_fields_and_byte_orders() {
        let e = ev();
        let m = e.libudev_message();
        assert_eq!(&m[..8], b"libudev\0");
        assert_eq!(&m[8..12], &[0xfe, 0xed, 0xca, 0xfe]);
        let ne = |i: usize| u32::from_ne_bytes(m[i..i + 4].try_into().unwrap());
        let be = |i: usize| u32::from_be_bytes(m[i..i + 4].try_into().unwrap());
        assert_eq!(ne(12), 40);
        assert_eq!(ne(16), 40);
        assert_eq!(ne(20) as usize, e.properties().len());
        assert_eq!(be(24), murmur_hash2(b"mdev"));
        assert_eq!(be(28), 0, "no DEVTYPE: no devtype hash");
        assert_eq!(&m[40..], &e.properties()[..]);
    }

    #[test]
    fn murmur_hash2_matches_the_reference_on_little_endian() {
        // reference values of MurmurHash2(key, strlen(key), 0) computed with the C code on
        // x86_64; on a big-endian host the 4-byte words are read the other way round, so
        // only the tails (< 4 bytes) are comparable
        assert_eq!(murmur_hash2(b""), 0);
        if cfg!(target_endian = "little") {
            assert_eq!(murmur_hash2(b"mdev"), reference(b"mdev"));
        }
        assert_eq!(murmur_hash2(b"ap"), reference(b"ap"));
    }

    /// A straight transcription of the C code, byte by byte, for the test.
    fn reference(key: &[u8]) -> u32 {
        let m: u32 = 0x5bd1e995;
        let mut h: u32 = key.len() as u32;
        let mut i = 0;
        while key.len() - i >= 4 {
            let mut k = u32::from(key[i])
                | u32::from(key[i + 1]) << 8
                | u32::from(key[i + 2]) << 16
                | u32::from(key[i + 3]) << 24;
            k = k.wrapping_mul(m);
            k ^= k >> 24;
            k = k.wrapping_mul(m);
            h = h.wrapping_mul(m);
            h ^= k;
            i += 4;
        }
        let rest = &key[i..];
        match rest.len() {
            3 => {
                h ^= u32::from(rest[2]) << 16;
                h ^= u32::from(rest[1]) << 8;
                h ^= u32::from(rest[0]);
                h = h.wrapping_mul(m);
            }
            2 => {
                h ^= u32::from(rest[1]) << 8;
                h ^= u32::from(rest[0]);
                h = h.wrapping_mul(m);
            }
            1 => {
                h ^= u32::from(rest[0]);
                h = h.wrapping_mul(m);
            }
            _ => {}
        }
        h ^= h >> 13;
        h = h.wrapping_mul(m);
        h ^= h >> 15;
        h
    }
}
