//! IPv4 (with options) and IPv6 (with extension headers) down to the TCP header, or to the
//! tunnel they carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::tcp::{self, IpFields};
use super::{be16, byte, clip, tail, tunnel, Skip, Step};
use crate::records::RawFrame;

const PROTO_TCP: u8 = 6;
/// IPv4 "more fragments" flag and fragment offset; the don't-fragment bit is left out.
const IPV4_FRAGMENT_MASK: u16 = 0x3FFF;
const IPV4_OFFSET_MASK: u16 = 0x1FFF;
const MAX_EXT_HEADERS: usize = 16;

/// One IP packet (`data` starts at its first byte) down to its TCP segment or the layer it
/// encapsulates.
pub(crate) fn packet<'a>(raw: &RawFrame<'_>, data: &'a [u8]) -> Result<Step<'a>, Skip> {
    let first = data.first().ok_or(Skip::Malformed)?;
    match first >> 4 {
        4 => ipv4(raw, data),
        6 => ipv6(raw, data),
        _ => Err(Skip::NonIp),
    }
}

fn ipv4<'a>(raw: &RawFrame<'_>, data: &'a [u8]) -> Result<Step<'a>, Skip> {
    let (&header, _) = data.split_first_chunk::<20>().ok_or(Skip::Malformed)?;
    let [vihl, _tos, t0, t1, id0, id1, f0, f1, ttl, proto, _, _, s0, s1, s2, s3, d0, d1, d2, d3] =
        header;
    let ihl = usize::from(vihl & 0x0F) * 4;
    if ihl < 20 {
        return Err(Skip::Malformed);
    }
    let fragment = u16::from_be_bytes([f0, f1]) & IPV4_FRAGMENT_MASK;
    // Python checks the protocol before the fragment bits: a UDP fragment counts as non_tcp.
    // Only a tunnel is looked into (a UDP port is seen in the first fragment only).
    let ports_visible = fragment & IPV4_OFFSET_MASK == 0;
    if proto != PROTO_TCP && !tunnel::opens(proto, tail(data, ihl), ports_visible) {
        return Err(Skip::NonTcp);
    }
    if fragment != 0 {
        return Err(Skip::Fragment);
    }
    let mut total = usize::from(u16::from_be_bytes([t0, t1]));
    if total == 0 {
        // Segmentation offload on the capturing host leaves the length field zero.
        total = data.len();
    }
    let seg_len = total.checked_sub(ihl).ok_or(Skip::Malformed)?;
    if proto != PROTO_TCP {
        return tunnel::ip_payload(proto, clip(data, ihl, total)).map(Step::Inner);
    }
    let ip = IpFields {
        src: IpAddr::V4(Ipv4Addr::new(s0, s1, s2, s3)),
        dst: IpAddr::V4(Ipv4Addr::new(d0, d1, d2, d3)),
        ttl,
        ipid: Some(u16::from_be_bytes([id0, id1])),
    };
    tcp::segment(raw, tail(data, ihl), seg_len, ip).map(Step::Tcp)
}

fn ipv6<'a>(raw: &RawFrame<'_>, data: &'a [u8]) -> Result<Step<'a>, Skip> {
    let (&[_, _, _, _, l0, l1, next, hop_limit], rest) =
        data.split_first_chunk::<8>().ok_or(Skip::Malformed)?;
    let (&src, rest) = rest.split_first_chunk::<16>().ok_or(Skip::Malformed)?;
    let (&dst, _) = rest.split_first_chunk::<16>().ok_or(Skip::Malformed)?;
    let ip = IpFields {
        src: IpAddr::V6(Ipv6Addr::from(src)),
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
        ttl: hop_limit,
        ipid: None,
    };
    let mut pos = 40;
    let mut payload_len = usize::from(u16::from_be_bytes([l0, l1]));
    if payload_len == 0 {
        payload_len = data.len().saturating_sub(pos); // jumbogram or offload: trust what was captured
    }
    let end = pos + payload_len;
    let mut next_header = next;
    // The extension headers, then TCP: one more round than the limit, as in Python.
    for _ in 0..=MAX_EXT_HEADERS {
        if next_header == PROTO_TCP {
            return tcp::segment(raw, tail(data, pos), end - pos, ip).map(Step::Tcp);
        }
        if tunnel::opens(next_header, tail(data, pos), true) {
            return tunnel::ip_payload(next_header, clip(data, pos, end)).map(Step::Inner);
        }
        let size = ext_header_size(data, pos, next_header)?;
        if size == 0 || pos + size > end {
            return Err(Skip::Malformed);
        }
        next_header = byte(data, pos).ok_or(Skip::Malformed)?;
        pos += size;
    }
    Err(Skip::Malformed)
}

/// Size of the extension header `next_header` at `pos`; 0 when it is cut short.
fn ext_header_size(data: &[u8], pos: usize, next_header: u8) -> Result<usize, Skip> {
    let len_byte = byte(data, pos + 1).map(usize::from);
    match next_header {
        // Hop-by-hop, routing, destination options, mobility, HIP, shim6: 8-byte units.
        0 | 43 | 60 | 135 | 139 | 140 => Ok(len_byte.map_or(0, |len| (len + 1) * 8)),
        // The authentication header counts 4-byte units, less two.
        51 => Ok(len_byte.map_or(0, |len| (len + 2) * 4)),
        44 => fragment_header_size(data, pos),
        _ => Err(Skip::NonTcp),
    }
}

fn fragment_header_size(data: &[u8], pos: usize) -> Result<usize, Skip> {
    if data.len() < pos + 8 {
        return Ok(0);
    }
    // Offset or more-fragments set (Python tests the whole 16 bits, reserved ones included).
    match be16(data, pos + 2) {
        Some(0) => Ok(8),
        _ => Err(Skip::Fragment),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::MAX_EXT_HEADERS;

    #[test]
    fn ipv4_options_do_not_shift_the_tcp_fields() {
        // Record route (7 bytes, room for one address) and a NOP: 8 bytes of options.
        let options = [7, 7, 4, 0, 0, 0, 0, 1];
        let frame = eth(0x0800, &ipv4_opts(&options, 6, &tcp_std()));
        assert_eq!(frame[14] & 0x0F, 7);
        assert_standard(decode(1, &frame).0, 4);
    }

    #[test]
    fn ethernet_padding_of_a_bare_ack_is_not_payload() {
        let mut frame = eth(0x0800, &ipv4(6, &tcp(0x10, &[], &[])));
        assert_eq!(frame.len(), 54);
        frame.resize(60, 0);
        let pkt = decode(1, &frame).0.expect("decodes");
        assert_eq!(pkt.length, 0);
    }

    #[test]
    fn ethernet_padding_is_not_part_of_a_rst_payload() {
        let mut frame = eth(0x0800, &ipv4(6, &tcp(0x04, &[], b"ok")));
        frame.resize(60, 0);
        let pkt = decode(1, &frame).0.expect("decodes");
        assert_eq!((pkt.length, pkt.payload.as_slice()), (2, &b"ok"[..]));
    }

    #[test]
    fn snaplen_cut_ipv4_frame_keeps_the_payload_length_of_the_ip_header() {
        let frame = eth(0x0800, &ipv4(6, &tcp(0x18, &[], &[b'x'; 1000])));
        for snaplen in [54, 64] {
            let pkt = decode(1, &frame[..snaplen]).0.expect("decodes");
            assert_eq!((pkt.seq, pkt.ack, pkt.length), (1000, 2000, 1000));
        }
    }

    #[test]
    fn snaplen_cut_ipv6_frame_keeps_the_payload_length_of_the_ip_header() {
        let frame = eth(0x86DD, &ipv6(6, &tcp(0x18, &[], &[b'x'; 1000])));
        let pkt = decode(1, &frame[..74]).0.expect("decodes");
        assert_eq!(pkt.length, 1000);
    }

    #[test]
    fn ipv4_total_length_zero_from_segmentation_offload_uses_the_captured_length() {
        let mut data = segment_v4();
        data[2..4].copy_from_slice(&[0, 0]);
        let pkt = decode(101, &data).0.expect("decodes");
        assert_eq!(pkt.length as usize, PAYLOAD.len());
    }

    #[test]
    fn ipv4_fragment_is_skipped_and_counted() {
        // More fragments; offset 10; both.
        for frag in [0x2000u16, 10, 0x2000 | 10] {
            let mut data = segment_v4();
            data[6..8].copy_from_slice(&frag.to_be_bytes());
            let (pkt, decoder) = decode(1, &eth(0x0800, &data));
            assert!(pkt.is_none());
            assert_eq!((decoder.stats.fragments, decoder.stats.tcp), (1, 0));
        }
    }

    #[test]
    fn ipv4_dont_fragment_bit_is_not_a_fragment() {
        let mut data = segment_v4();
        data[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
        let (pkt, decoder) = decode(1, &eth(0x0800, &data));
        assert!(pkt.is_some());
        assert_eq!(decoder.stats.fragments, 0);
    }

    #[test]
    fn ipv4_udp_fragment_is_counted_non_tcp_as_in_python() {
        let mut data = ipv4(17, &[0; 16]);
        data[6..8].copy_from_slice(&10u16.to_be_bytes());
        let (_, decoder) = decode(101, &data);
        assert_eq!((decoder.stats.non_tcp, decoder.stats.fragments), (1, 0));
    }

    #[test]
    fn ipv6_extension_header_is_walked_to_tcp() {
        for kind in [0u8, 43, 60] {
            let frame = eth(0x86DD, &ipv6(kind, &ext(6, 0, &tcp_std())));
            assert_standard(decode(1, &frame).0, 6);
        }
        let atomic = eth(0x86DD, &ipv6(44, &fragment_ext(6, 0, &tcp_std())));
        assert_standard(decode(1, &atomic).0, 6);
    }

    #[test]
    fn ipv6_authentication_header_counts_four_byte_units() {
        // Payload length 4 means (4 + 2) * 4 = 24 bytes of AH.
        let ah = [&[6u8, 4][..], &[0; 22]].concat();
        let frame = ipv6(51, &[&ah[..], &tcp_std()].concat());
        assert_standard(decode(101, &frame).0, 6);
    }

    #[test]
    fn ipv6_chain_of_extension_headers_is_walked_to_tcp() {
        // hop-by-hop -> destination options -> routing -> fragment -> destination options (16B)
        let last = ext(6, 1, &tcp_std());
        let chain = ext(60, 0, &ext(43, 0, &ext(44, 0, &fragment_ext(60, 0, &last))));
        assert_standard(decode(1, &eth(0x86DD, &ipv6(0, &chain))).0, 6);
    }

    #[test]
    fn ipv6_real_fragment_is_skipped_and_counted() {
        // First fragment (M), last fragment (offset 185), middle fragment (both).
        for field in [1u16, 185 << 3, (185 << 3) | 1] {
            let frame = eth(0x86DD, &ipv6(44, &fragment_ext(6, field, &tcp_std())));
            let (pkt, decoder) = decode(1, &frame);
            assert!(pkt.is_none());
            assert_eq!(decoder.stats.fragments, 1);
        }
    }

    fn dest_opts(count: usize) -> Vec<u8> {
        let mut chain = tcp_std();
        for i in 0..count {
            let next = if i == 0 { 6 } else { 60 };
            chain = ext(next, 0, &chain);
        }
        ipv6(60, &chain)
    }

    #[test]
    fn ipv6_extension_chain_as_long_as_the_limit_decodes() {
        let frame = eth(0x86DD, &dest_opts(MAX_EXT_HEADERS));
        assert_standard(decode(1, &frame).0, 6);
    }

    #[test]
    fn ipv6_extension_chain_longer_than_the_limit_is_malformed() {
        let frame = eth(0x86DD, &dest_opts(MAX_EXT_HEADERS + 1));
        let (pkt, decoder) = decode(1, &frame);
        assert!(pkt.is_none());
        assert_eq!(decoder.stats.malformed, 1);
    }

    #[test]
    fn ipv6_extension_header_running_past_the_payload_is_malformed() {
        let mut data = ipv6(60, &ext(6, 0, &tcp_std()));
        data[41] = 200; // 201 * 8 bytes, far beyond the payload
        assert_malformed(101, &data);
    }

    #[test]
    fn ipv6_payload_length_zero_trusts_the_capture() {
        let mut data = segment_v6();
        data[4..6].copy_from_slice(&[0, 0]);
        assert_standard(decode(101, &data).0, 6);
    }

    #[test]
    fn ip_without_tcp_is_counted_non_tcp() {
        let udp = [0, 53, 0, 53, 0, 9, 0, 0, b'q'];
        let icmp = [8, 0, 0, 0, 0, 0, 0, 0];
        let frames = [
            eth(0x0800, &ipv4(17, &udp)),
            eth(0x0800, &ipv4(1, &icmp)),
            eth(0x86DD, &ipv6(17, &udp)),
            eth(0x86DD, &ipv6(0, &ext(17, 0, &udp))),
        ];
        for frame in &frames {
            let (pkt, decoder) = decode(1, frame);
            assert!(pkt.is_none());
            let stats = &decoder.stats;
            assert_eq!((stats.non_tcp, stats.tcp, stats.frames), (1, 0, 1));
        }
    }

    #[test]
    fn raw_frame_with_ip_version_neither_4_nor_6_is_counted_non_ip() {
        let mut data = segment_v4();
        data[0] = 0x50;
        let (pkt, decoder) = decode(101, &data);
        assert!(pkt.is_none());
        assert_eq!(decoder.stats.non_ip, 1);
    }

    #[test]
    fn ipv4_ihl_below_five_words_is_malformed() {
        let mut data = ipv4(6, &tcp(0x18, &[], &[]));
        data[0] = 0x44;
        assert_malformed(101, &data);
    }

    #[test]
    fn ipv4_total_length_shorter_than_the_ip_header_is_malformed() {
        let mut data = ipv4(6, &tcp(0x18, &[], &[]));
        data[2..4].copy_from_slice(&12u16.to_be_bytes());
        assert_malformed(101, &data);
    }

    #[test]
    fn truncated_ip_or_tcp_header_is_malformed() {
        for cut in [1, 19, 20, 35] {
            assert_malformed(101, &segment_v4()[..cut]);
        }
        for cut in [1, 39, 40, 55] {
            assert_malformed(101, &segment_v6()[..cut]);
        }
    }
}
