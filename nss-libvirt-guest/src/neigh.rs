//! The host's neighbour table (ARP for IPv4, NDP for IPv6), read-only: which address the
//! host has lately seen behind which MAC. It answers `libvirt_guest` for guests that never got
//! a lease from libvirt's dnsmasq (static addresses, a host bridge with an outside DHCP
//! server), as long as the guest has sent traffic the host saw.
//!
//! Read with one rtnetlink `RTM_GETNEIGH` dump (the socket calls are in [`crate::ffi`]); this
//! module builds the request and parses the reply. Only entries in state REACHABLE, STALE or
//! DELAY count: the host exchanged packets with that MAC at that address (STALE: some time
//! ago, not yet re-confirmed); INCOMPLETE and FAILED entries are addresses the host asked for
//! and nobody answered, PERMANENT/NOARP ones were configured by hand. Nothing is sent to the
//! network. The parse is bounded by the reply's length and never trusts a length field
//! beyond it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `struct nlmsghdr` is 16 bytes, `struct ndmsg` 12, `struct rtattr` 4; all native-endian.
const NLMSG_HDRLEN: usize = 16;
const NDMSG_LEN: usize = 12;
const RTA_HDRLEN: usize = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NUD_REACHABLE: u16 = 0x02;
const NUD_STALE: u16 = 0x04;
const NUD_DELAY: u16 = 0x08;
/// The states that mean "seen with this MAC".
pub const SEEN: u16 = NUD_REACHABLE | NUD_STALE | NUD_DELAY;

/// One neighbour entry the host has seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub ip: IpAddr,
    /// Lower-case `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    pub ifindex: u32,
    pub state: u16,
}

/// The dump request: `RTM_GETNEIGH`, `NLM_F_REQUEST | NLM_F_DUMP`, every family.
pub fn request(seq: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(NLMSG_HDRLEN + NDMSG_LEN);
    m.extend_from_slice(&((NLMSG_HDRLEN + NDMSG_LEN) as u32).to_ne_bytes());
    m.extend_from_slice(&RTM_GETNEIGH.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[0u8; NDMSG_LEN]);
    m
}

/// What one received datagram said.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// More messages follow.
    More,
    /// The dump is complete.
    Done,
    /// The kernel refused the request (a positive errno).
    Error(i32),
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Parse one datagram of the dump, appending the entries in a SEEN state to `out`.
pub fn parse(datagram: &[u8], out: &mut Vec<Neighbour>) -> Chunk {
    let mut at = 0;
    while at + NLMSG_HDRLEN <= datagram.len() {
        let Some(len) = u32_at(datagram, at).map(|l| l as usize) else {
            break;
        };
        let kind = u16_at(datagram, at + 4).unwrap_or(0);
        if len < NLMSG_HDRLEN || at + len > datagram.len() {
            break;
        }
        let msg = &datagram[at..at + len];
        match kind {
            NLMSG_DONE => return Chunk::Done,
            NLMSG_ERROR => {
                let e = u32_at(msg, NLMSG_HDRLEN).map(|e| e as i32).unwrap_or(-1);
                return if e == 0 {
                    Chunk::Done
                } else {
                    Chunk::Error(-e)
                };
            }
            RTM_NEWNEIGH => {
                if let Some(n) = neighbour(&msg[NLMSG_HDRLEN..]) {
                    out.push(n);
                }
            }
            _ => {}
        }
        at += align4(len);
    }
    Chunk::More
}

/// One `ndmsg` + attributes, if it is a SEEN entry with an IP and a 6-byte MAC.
fn neighbour(body: &[u8]) -> Option<Neighbour> {
    let family = *body.first()?;
    let ifindex = u32_at(body, 4)?;
    let state = u16_at(body, 8)?;
    if state & SEEN == 0 {
        return None;
    }
    let (mut ip, mut mac) = (None, None);
    let mut at = NDMSG_LEN;
    while at + RTA_HDRLEN <= body.len() {
        let len = u16_at(body, at)? as usize;
        let kind = u16_at(body, at + 2)?;
        if len < RTA_HDRLEN || at + len > body.len() {
            break;
        }
        let payload = &body[at + RTA_HDRLEN..at + len];
        match (kind, family as i32, payload.len()) {
            (NDA_DST, libc::AF_INET, 4) => {
                ip = Some(IpAddr::V4(Ipv4Addr::from(
                    <[u8; 4]>::try_from(payload).ok()?,
                )))
            }
            (NDA_DST, libc::AF_INET6, 16) => {
                ip = Some(IpAddr::V6(Ipv6Addr::from(
                    <[u8; 16]>::try_from(payload).ok()?,
                )))
            }
            (NDA_LLADDR, _, 6) => {
                mac = Some(
                    payload
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":"),
                )
            }
            _ => {}
        }
        at += align4(len);
    }
    Some(Neighbour {
        ip: ip?,
        mac: mac?,
        ifindex,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((RTA_HDRLEN + payload.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(payload);
        a.resize(align4(a.len()), 0);
        a
    }

    fn msg(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0x2u16.to_ne_bytes());
        m.extend_from_slice(&1u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        m.resize(align4(m.len()), 0);
        m
    }

    fn entry(family: u8, ifindex: u32, state: u16, ip: &[u8], mac: &[u8]) -> Vec<u8> {
        let mut b = vec![family, 0, 0, 0];
        b.extend_from_slice(&ifindex.to_ne_bytes());
        b.extend_from_slice(&state.to_ne_bytes());
        b.extend_from_slice(&[0, 1]);
        b.extend(attr(NDA_DST, ip));
        b.extend(attr(NDA_LLADDR, mac));
        b.extend(attr(9, &[1, 2, 3])); // NDA_PROBES etc.: ignored
        msg(RTM_NEWNEIGH, &b)
    }

    #[test]
    fn request_layout() {
        let r = request(7);
        assert_eq!(r.len(), 28);
        assert_eq!(u32_at(&r, 0), Some(28));
        assert_eq!(u16_at(&r, 4), Some(RTM_GETNEIGH));
        assert_eq!(u16_at(&r, 6), Some(0x301));
        assert_eq!(u32_at(&r, 8), Some(7));
    }

    #[test]
    fn seen_entries_only() {
        let mac = [0x52, 0x54, 0, 0xAB, 0, 1];
        let mut d = Vec::new();
        d.extend(entry(2, 3, NUD_REACHABLE, &[10, 0, 0, 5], &mac));
        d.extend(entry(2, 3, 0x01, &[10, 0, 0, 6], &mac)); // INCOMPLETE
        d.extend(entry(2, 3, 0x20, &[10, 0, 0, 7], &mac)); // FAILED
        d.extend(entry(2, 3, 0x80, &[10, 0, 0, 8], &mac)); // PERMANENT
        let v6: [u8; 16] = "fd00::5".parse::<Ipv6Addr>().unwrap().octets();
        d.extend(entry(10, 4, NUD_STALE, &v6, &mac));
        d.extend(entry(10, 4, NUD_DELAY, &v6[..4], &mac)); // short address: skipped
        d.extend(entry(2, 3, NUD_DELAY, &[10, 0, 0, 9], &mac[..4])); // no MAC: skipped
        let mut out = Vec::new();
        assert_eq!(parse(&d, &mut out), Chunk::More);
        assert_eq!(
            out,
            vec![
                Neighbour {
                    ip: "10.0.0.5".parse().unwrap(),
                    mac: "52:54:00:ab:00:01".into(),
                    ifindex: 3,
                    state: NUD_REACHABLE
                },
                Neighbour {
                    ip: "fd00::5".parse().unwrap(),
                    mac: "52:54:00:ab:00:01".into(),
                    ifindex: 4,
                    state: NUD_STALE
                },
            ]
        );
        let mut done = msg(NLMSG_DONE, &0u32.to_ne_bytes());
        assert_eq!(parse(&done, &mut out), Chunk::Done);
        done = msg(NLMSG_ERROR, &(-13i32).to_ne_bytes());
        assert_eq!(parse(&done, &mut out), Chunk::Error(13));
    }

    #[test]
    fn truncated_and_hostile_replies_end_the_parse() {
        let mac = [0x52, 0x54, 0, 0xAB, 0, 1];
        let good = entry(2, 3, NUD_REACHABLE, &[10, 0, 0, 5], &mac);
        for cut in 0..good.len() {
            let mut out = Vec::new();
            parse(&good[..cut], &mut out);
            assert!(out.len() <= 1);
        }
        let mut huge = good.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        let mut out = Vec::new();
        assert_eq!(parse(&huge, &mut out), Chunk::More);
        assert!(out.is_empty());
        let mut zero_attr = good.clone();
        zero_attr[NLMSG_HDRLEN + NDMSG_LEN..NLMSG_HDRLEN + NDMSG_LEN + 2]
            .copy_from_slice(&0u16.to_ne_bytes());
        parse(&zero_attr, &mut out);
        assert!(
            out.is_empty(),
            "an attribute of length 0 ends the attributes"
        );
    }
}
