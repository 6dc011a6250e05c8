//! Decode raw frames into TCP segments: link layer, tunnels, IPv4/IPv6, TCP.
//!
//! A port of `rstdiag/decode.py` that gives the same segments and the same counters. Payload
//! length comes from the IP length fields, never from the captured length, so frames padded to
//! the Ethernet minimum or cut by the snaplen give the right sequence arithmetic.
//!
//! Beyond the Python decoder, the encapsulations of cloud and datacenter captures are opened
//! (MPLS, GRE with ERSPAN, VXLAN, Geneve, IP-in-IP, 6in4): a RST inside a tunnel is a segment
//! of the inner flow, keyed on the inner addresses. Frames without such encapsulations decode
//! and count exactly as in Python; a tunneled frame without a TCP segment is counted by the
//! innermost reason (ARP inside VXLAN is `non_ip`, an inner fragment `ip_fragments`), where
//! Python counted every such frame `non_tcp`.
//!
//! Why no `etherparse`: its header slices check lengths before the fields the Python decoder
//! looks at first, so the counters would differ. `TcpHeaderSlice` refuses a TCP header cut after
//! the window (16 bytes captured, which rstdiag accepts), `Ipv4HeaderSlice` refuses a non-TCP
//! packet whose options are cut (rstdiag counts it `non_tcp`, not `malformed`), and
//! `LaxSlicedPacket` accepts an IPv4 total length shorter than the header (rstdiag counts it
//! `malformed`). The fields needed are few and fixed, so reading them by hand is as fast and
//! keeps every check in Python's order.

mod ip;
mod link;
mod tcp;
mod tunnel;

#[cfg(test)]
mod testutil;

use std::collections::BTreeMap;

use crate::records::{Packet, RawFrame};

pub const LINKTYPE_NULL: u32 = 0;
pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_LOOP: u32 = 108;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;
/// DLT_RAW has platform-specific values that show up in pcap files from BSDs.
pub const RAW_ALIASES: [u32; 3] = [LINKTYPE_RAW, 12, 14];

/// Whether `decode` knows the link layer (other link types are counted as `linktype_N`).
pub fn is_supported_linktype(linktype: u32) -> bool {
    matches!(
        linktype,
        LINKTYPE_NULL
            | LINKTYPE_ETHERNET
            | LINKTYPE_RAW
            | 12
            | 14
            | LINKTYPE_LOOP
            | LINKTYPE_LINUX_SLL
            | LINKTYPE_IPV4
            | LINKTYPE_IPV6
            | LINKTYPE_LINUX_SLL2
    )
}

/// What the decoder saw besides TCP: counted, never fatal.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct DecodeStats {
    pub frames: u64,
    pub tcp: u64,
    pub non_ip: u64,
    pub non_tcp: u64,
    pub fragments: u64,
    pub malformed: u64,
    pub unsupported_linktypes: BTreeMap<u32, u64>,
    /// TCP segments found inside an encapsulation (MPLS, GRE, VXLAN, Geneve, IP-in-IP), also
    /// counted in `tcp`; not a skip reason, so not in `skipped()`.
    pub tunneled: u64,
}

impl DecodeStats {
    /// The skipped frames by reason, in Python's key order, zeros left out.
    pub fn skipped(&self) -> Vec<(String, u64)> {
        let fixed = [
            ("non_ip", self.non_ip),
            ("non_tcp", self.non_tcp),
            ("ip_fragments", self.fragments),
            ("malformed", self.malformed),
        ];
        let fixed = fixed
            .into_iter()
            .map(|(key, count)| (key.to_string(), count));
        let linktypes = self
            .unsupported_linktypes
            .iter()
            .map(|(linktype, &count)| (format!("linktype_{linktype}"), count));
        fixed
            .chain(linktypes)
            .filter(|&(_, count)| count != 0)
            .collect()
    }

    fn count(&mut self, skip: Skip) {
        let counter = match skip {
            Skip::NonIp => &mut self.non_ip,
            Skip::NonTcp => &mut self.non_tcp,
            Skip::Fragment => &mut self.fragments,
            Skip::Malformed => &mut self.malformed,
        };
        *counter = counter.saturating_add(1);
    }
}

/// Why a frame gave no TCP segment; each reason is one counter of `DecodeStats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Skip {
    NonIp,
    NonTcp,
    Fragment,
    Malformed,
}

/// A layer still to decode; each borrows the frame from that layer's first byte on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layer<'a> {
    /// an Ethernet frame from its destination address (inside a tunnel)
    Ethernet(&'a [u8]),
    /// an MPLS label stack from its first label
    Mpls(&'a [u8]),
    /// an IPv4 or IPv6 packet
    Ip(&'a [u8]),
}

/// What decoding one layer gave: the TCP segment, or the layer it encapsulates.
#[derive(Debug)]
pub(crate) enum Step<'a> {
    Tcp(Packet),
    Inner(Layer<'a>),
}

/// How many encapsulations one frame may nest before it is counted malformed: a hostile
/// capture must not make the decoder loop for long.
pub const MAX_ENCAPSULATIONS: usize = 8;

/// Turns RawFrames into Packets; counts everything it skips in `stats`.
#[derive(Default, Debug)]
pub struct Decoder {
    pub stats: DecodeStats,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn decode(&mut self, raw: &RawFrame<'_>) -> Option<Packet> {
        let stats = &mut self.stats;
        stats.frames = stats.frames.saturating_add(1);
        let Some(outer) = link::network_layer(raw.linktype, raw.data) else {
            if is_supported_linktype(raw.linktype) {
                stats.count(Skip::NonIp);
            } else {
                let count = stats.unsupported_linktypes.entry(raw.linktype).or_insert(0);
                *count = count.saturating_add(1);
            }
            return None;
        };
        match innermost_segment(raw, outer) {
            Ok((pkt, encapsulations)) => {
                stats.tcp = stats.tcp.saturating_add(1);
                if encapsulations > 0 {
                    stats.tunneled = stats.tunneled.saturating_add(1);
                }
                Some(pkt)
            }
            Err(skip) => {
                stats.count(skip);
                None
            }
        }
    }
}

/// Decode layer after layer down to the TCP segment; also says how many encapsulations it
/// went through.
fn innermost_segment(raw: &RawFrame<'_>, outer: Layer<'_>) -> Result<(Packet, usize), Skip> {
    let mut layer = outer;
    let mut encapsulations = 0;
    loop {
        let step = match layer {
            // An Ethernet layer leads to IP or MPLS without a new encapsulation.
            Layer::Ethernet(data) => {
                layer = link::ethernet_payload(data).ok_or(Skip::NonIp)?;
                continue;
            }
            Layer::Mpls(data) => Step::Inner(tunnel::mpls(data)?),
            Layer::Ip(data) => ip::packet(raw, data)?,
        };
        match step {
            Step::Tcp(pkt) => return Ok((pkt, encapsulations)),
            Step::Inner(inner) => {
                encapsulations += 1;
                if encapsulations > MAX_ENCAPSULATIONS {
                    return Err(Skip::Malformed);
                }
                layer = inner;
            }
        }
    }
}

// Bounds-checked readers: captures are hostile, a short frame gives None, never a panic.

pub(crate) fn be16(data: &[u8], at: usize) -> Option<u16> {
    let bytes = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes(bytes.try_into().ok()?))
}

pub(crate) fn be32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

pub(crate) fn byte(data: &[u8], at: usize) -> Option<u8> {
    data.get(at).copied()
}

/// `data[from:]` as Python slices it: empty past the end.
pub(crate) fn tail(data: &[u8], from: usize) -> &[u8] {
    data.get(from..).unwrap_or_default()
}

/// `data[from:to]` as Python slices it: clipped to the data, empty when nothing is left.
pub(crate) fn clip(data: &[u8], from: usize, to: usize) -> &[u8] {
    data.get(from..to.min(data.len())).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn skipped_lists_reasons_in_python_order_then_linktypes_sorted_without_zeros() {
        let mut stats = DecodeStats {
            non_tcp: 3,
            malformed: 1,
            non_ip: 2,
            ..DecodeStats::default()
        };
        stats.unsupported_linktypes.insert(147, 2);
        stats.unsupported_linktypes.insert(9, 1);
        let keys: Vec<(String, u64)> = stats.skipped();
        let expected = [
            ("non_ip", 2),
            ("non_tcp", 3),
            ("malformed", 1),
            ("linktype_9", 1),
            ("linktype_147", 2),
        ];
        let expected: Vec<(String, u64)> =
            expected.iter().map(|&(k, v)| (k.to_string(), v)).collect();
        assert_eq!(keys, expected);
    }

    #[test]
    fn unsupported_linktype_is_counted_by_linktype() {
        let mut decoder = Decoder::new();
        let data = ipv4(6, &tcp_std());
        for _ in 0..2 {
            assert!(decoder.decode(&raw(147, &data)).is_none());
        }
        assert_eq!(decoder.stats.unsupported_linktypes.get(&147), Some(&2));
        assert_eq!(decoder.stats.non_ip, 0);
        assert_eq!(
            decoder.stats.skipped(),
            vec![("linktype_147".to_string(), 2)]
        );
    }

    #[test]
    fn supported_linktypes_are_pythons_set() {
        let supported: Vec<u32> = (0..300).filter(|&lt| is_supported_linktype(lt)).collect();
        assert_eq!(supported, vec![0, 1, 12, 14, 101, 108, 113, 228, 229, 276]);
    }

    #[test]
    fn every_frame_is_counted_once() {
        let mut decoder = Decoder::new();
        decoder.decode(&raw(1, &eth(0x0800, &ipv4(6, &tcp_std()))));
        decoder.decode(&raw(1, &eth(0x0806, &[0; 28])));
        decoder.decode(&raw(101, &ipv4(17, &[0; 9])));
        assert_eq!(
            (
                decoder.stats.frames,
                decoder.stats.tcp,
                decoder.stats.non_ip,
                decoder.stats.non_tcp
            ),
            (3, 1, 1, 1)
        );
    }

    /// Every prefix of a few valid frames, under every link type, decodes or is counted.
    #[test]
    fn every_prefix_cut_of_valid_frames_never_panics() {
        let frames = [
            eth(0x0800, &ipv4(6, &tcp_std())),
            eth(0x86DD, &ipv6(0, &ext(6, 0, &tcp_std()))),
            eth(0x8100, &vlan(10, 0x0800, &ipv4(6, &tcp_rst_mptcp()))),
            pppoe(0x0057, &ipv6(6, &tcp_std())),
            ipv4(6, &tcp_rst_mptcp()),
        ];
        for frame in &frames {
            for cut in 0..=frame.len() {
                for linktype in [0, 1, 12, 101, 108, 113, 228, 229, 276, 147] {
                    let mut decoder = Decoder::new();
                    let result = decoder.decode(&raw(linktype, &frame[..cut]));
                    let stats = &decoder.stats;
                    let counted = stats.tcp
                        + stats.non_ip
                        + stats.non_tcp
                        + stats.fragments
                        + stats.malformed
                        + stats.unsupported_linktypes.values().sum::<u64>();
                    assert_eq!((stats.frames, counted), (1, 1));
                    assert_eq!(result.is_some(), stats.tcp == 1);
                }
            }
        }
    }

    /// Corrupted valid frames (bytes overwritten, then cut) never panic.
    #[test]
    fn corrupted_valid_frames_never_panic() {
        let bases = [
            eth(0x0800, &ipv4(6, &tcp_std())),
            eth(0x86DD, &ipv6(0, &ext(6, 0, &tcp_std()))),
            eth(0x0800, &ipv4(6, &tcp_rst_mptcp())),
        ];
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut data = bases[(next() % 3) as usize].clone();
            for _ in 0..next() % 7 {
                let pos = (next() % 100) as usize;
                if let Some(b) = data.get_mut(pos) {
                    *b = next() as u8;
                }
            }
            data.truncate((next() % 120) as usize);
            let mut decoder = Decoder::new();
            let _ = decoder.decode(&raw(1, &data));
            assert_eq!(decoder.stats.frames, 1);
        }
    }
}
