//! Encapsulations of cloud and datacenter captures, opened to the layer they carry: MPLS label
//! stacks, GRE (with ERSPAN mirroring), VXLAN, Geneve, IP-in-IP and 6in4.
//!
//! Each function reads one encapsulation header and names the inner layer; `decode` walks the
//! layers and bounds their nesting. A header cut short is malformed; a header of a kind not
//! opened here (PPTP GRE, a Geneve payload other than Ethernet or IP) leaves the frame non_tcp.

use super::link::{ETH_IPV4, ETH_IPV6};
use super::{be16, be32, byte, tail, Layer, Skip};

pub(crate) const PROTO_IPIP: u8 = 4;
pub(crate) const PROTO_IPV6: u8 = 41;
pub(crate) const PROTO_GRE: u8 = 47;
pub(crate) const PROTO_UDP: u8 = 17;
pub(crate) const VXLAN_PORT: u16 = 4789;
pub(crate) const GENEVE_PORT: u16 = 6081;

const ETH_BRIDGING: u16 = 0x6558;
const ETH_MPLS_UNICAST: u16 = 0x8847;
const ETH_MPLS_MULTICAST: u16 = 0x8848;
const ETH_ERSPAN_2: u16 = 0x88BE;
const ETH_ERSPAN_3: u16 = 0x22EB;

const GRE_CHECKSUM: u16 = 0x8000;
const GRE_ROUTING: u16 = 0x4000;
const GRE_KEY: u16 = 0x2000;
const GRE_SEQUENCE: u16 = 0x1000;
const GRE_VERSION: u16 = 0x0007;

const UDP_HEADER: usize = 8;
const VXLAN_HEADER: usize = 8;
const VXLAN_VNI_VALID: u8 = 0x08;
const GENEVE_HEADER: usize = 8;
const ERSPAN_2_HEADER: usize = 8;
const ERSPAN_3_HEADER: usize = 12;
const ERSPAN_3_PLATFORM_SUBHEADER: usize = 8;

const MPLS_BOTTOM_OF_STACK: u32 = 0x100;
/// Label stacks deeper than a handful are not seen in real networks; bound the walk anyway.
const MAX_MPLS_LABELS: usize = 16;
const MPLS_CONTROL_WORD: usize = 4;

/// Whether an IP payload of protocol `proto` is a tunnel this decoder opens. A UDP datagram is
/// one only by its destination port, which a non-first fragment does not show.
pub(crate) fn opens(proto: u8, payload: &[u8], ports_visible: bool) -> bool {
    match proto {
        PROTO_IPIP | PROTO_IPV6 | PROTO_GRE => true,
        PROTO_UDP => ports_visible && tunnel_port(payload).is_some(),
        _ => false,
    }
}

/// The layer inside an IP payload of protocol `proto` (one that `opens` accepted).
pub(crate) fn ip_payload(proto: u8, payload: &[u8]) -> Result<Layer<'_>, Skip> {
    match proto {
        PROTO_IPIP | PROTO_IPV6 => Ok(Layer::Ip(payload)),
        PROTO_GRE => gre(payload),
        PROTO_UDP => udp(payload),
        _ => Err(Skip::NonTcp),
    }
}

fn tunnel_port(udp: &[u8]) -> Option<u16> {
    be16(udp, 2).filter(|&port| port == VXLAN_PORT || port == GENEVE_PORT)
}

fn udp(payload: &[u8]) -> Result<Layer<'_>, Skip> {
    let inner = tail(payload, UDP_HEADER);
    match tunnel_port(payload) {
        Some(VXLAN_PORT) => vxlan(inner),
        Some(_) => geneve(inner),
        None => Err(Skip::NonTcp),
    }
}

/// VXLAN (RFC 7348): 8 bytes whose I flag says the VNI is valid, then Ethernet.
fn vxlan(data: &[u8]) -> Result<Layer<'_>, Skip> {
    if data.len() < VXLAN_HEADER {
        return Err(Skip::Malformed);
    }
    if byte(data, 0).unwrap_or_default() & VXLAN_VNI_VALID == 0 {
        return Err(Skip::NonTcp);
    }
    Ok(Layer::Ethernet(tail(data, VXLAN_HEADER)))
}

/// Geneve (RFC 8926): 8 bytes plus options, then the protocol its EtherType names.
fn geneve(data: &[u8]) -> Result<Layer<'_>, Skip> {
    let first = byte(data, 0).ok_or(Skip::Malformed)?;
    let protocol = be16(data, 2).ok_or(Skip::Malformed)?;
    if first >> 6 != 0 {
        return Err(Skip::NonTcp); // a version this decoder does not know
    }
    let header = GENEVE_HEADER + usize::from(first & 0x3F) * 4;
    if data.len() < header {
        return Err(Skip::Malformed);
    }
    ethertype_layer(protocol, tail(data, header))
}

/// The layers a tunnel may name by EtherType.
fn ethertype_layer(protocol: u16, inner: &[u8]) -> Result<Layer<'_>, Skip> {
    match protocol {
        ETH_IPV4 | ETH_IPV6 => Ok(Layer::Ip(inner)),
        ETH_BRIDGING => Ok(Layer::Ethernet(inner)),
        ETH_MPLS_UNICAST | ETH_MPLS_MULTICAST => Ok(Layer::Mpls(inner)),
        _ => Err(Skip::NonTcp),
    }
}

/// GRE (RFC 2784, 2890): optional checksum, key and sequence words, then the protocol named.
fn gre(data: &[u8]) -> Result<Layer<'_>, Skip> {
    let flags = be16(data, 0).ok_or(Skip::Malformed)?;
    let protocol = be16(data, 2).ok_or(Skip::Malformed)?;
    // Version 1 is PPTP's enhanced GRE (PPP inside); RFC 1701 source routing is obsolete.
    if flags & GRE_VERSION != 0 || flags & GRE_ROUTING != 0 {
        return Err(Skip::NonTcp);
    }
    let optional = [GRE_CHECKSUM, GRE_KEY, GRE_SEQUENCE];
    let words = optional.iter().filter(|&&bit| flags & bit != 0).count();
    let header = 4 + 4 * words;
    if data.len() < header {
        return Err(Skip::Malformed);
    }
    let inner = tail(data, header);
    match protocol {
        // ERSPAN type I has no header of its own, and no GRE sequence number either.
        ETH_ERSPAN_2 if flags & GRE_SEQUENCE == 0 => Ok(Layer::Ethernet(inner)),
        ETH_ERSPAN_2 => erspan_2(inner),
        ETH_ERSPAN_3 => erspan_3(inner),
        _ => ethertype_layer(protocol, inner),
    }
}

fn erspan_2(data: &[u8]) -> Result<Layer<'_>, Skip> {
    if data.len() < ERSPAN_2_HEADER {
        return Err(Skip::Malformed);
    }
    Ok(Layer::Ethernet(tail(data, ERSPAN_2_HEADER)))
}

/// ERSPAN type III: 12 bytes, 8 more with the O flag; its frame type says Ethernet or IP.
fn erspan_3(data: &[u8]) -> Result<Layer<'_>, Skip> {
    let word = be16(data, 10).ok_or(Skip::Malformed)?;
    let frame_type = (word >> 10) & 0x1F;
    let platform_specific = word & 0x0001 != 0;
    let header = ERSPAN_3_HEADER + usize::from(platform_specific) * ERSPAN_3_PLATFORM_SUBHEADER;
    if data.len() < header {
        return Err(Skip::Malformed);
    }
    let inner = tail(data, header);
    match frame_type {
        0 => Ok(Layer::Ethernet(inner)),
        2 => Ok(Layer::Ip(inner)),
        _ => Err(Skip::NonTcp),
    }
}

/// An MPLS label stack (RFC 3032) down to what its bottom label carries: IP by its version
/// nibble, or an Ethernet pseudowire behind a control word (RFC 4448) whose first nibble is 0.
pub(crate) fn mpls(data: &[u8]) -> Result<Layer<'_>, Skip> {
    let mut pos = 0;
    for _ in 0..MAX_MPLS_LABELS {
        let entry = be32(data, pos).ok_or(Skip::Malformed)?;
        pos += 4;
        if entry & MPLS_BOTTOM_OF_STACK != 0 {
            return mpls_payload(tail(data, pos));
        }
    }
    Err(Skip::Malformed)
}

fn mpls_payload(data: &[u8]) -> Result<Layer<'_>, Skip> {
    let first = byte(data, 0).ok_or(Skip::Malformed)?;
    match first >> 4 {
        4 | 6 => Ok(Layer::Ip(data)),
        0 if data.len() >= MPLS_CONTROL_WORD => Ok(Layer::Ethernet(tail(data, MPLS_CONTROL_WORD))),
        0 => Err(Skip::Malformed),
        // An associated channel (first nibble 1) or a pseudowire without control word.
        _ => Err(Skip::NonIp),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{Decoder, MAX_ENCAPSULATIONS};

    const OUTER_SRC: [u8; 4] = [10, 0, 0, 1];
    const OUTER_DST: [u8; 4] = [10, 0, 0, 2];

    /// An outer IPv4 header that differs from the inner one in addresses, TTL and ID.
    fn outer_v4(proto: u8, body: &[u8]) -> Vec<u8> {
        let mut out = ipv4_from(OUTER_SRC, OUTER_DST, &[], proto, body);
        out[4..6].copy_from_slice(&7u16.to_be_bytes());
        out[8] = 64;
        out
    }

    fn outer_v6(next: u8, body: &[u8]) -> Vec<u8> {
        let mut src = v6_addr(0xaa);
        src[0] = 0xfd;
        let mut out = ipv6_from(src, v6_addr(0xbb), next, body);
        out[7] = 64;
        out
    }

    fn udp(dport: u16, body: &[u8]) -> Vec<u8> {
        let mut out = 50000u16.to_be_bytes().to_vec();
        out.extend_from_slice(&dport.to_be_bytes());
        out.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(body);
        out
    }

    fn vxlan(body: &[u8]) -> Vec<u8> {
        [&[0x08, 0, 0, 0, 0, 0, 42, 0][..], body].concat()
    }

    fn geneve(option_words: u8, protocol: u16, body: &[u8]) -> Vec<u8> {
        let mut out = vec![option_words, 0];
        out.extend_from_slice(&protocol.to_be_bytes());
        out.extend_from_slice(&[0, 0, 42, 0]);
        out.resize(8 + 4 * usize::from(option_words), 0xEE);
        out.extend_from_slice(body);
        out
    }

    fn gre(flags: u16, protocol: u16, body: &[u8]) -> Vec<u8> {
        let mut out = flags.to_be_bytes().to_vec();
        out.extend_from_slice(&protocol.to_be_bytes());
        let words = [0x8000u16, 0x2000, 0x1000]
            .iter()
            .filter(|&&b| flags & b != 0)
            .count();
        out.resize(4 + 4 * words, 0xAB);
        out.extend_from_slice(body);
        out
    }

    /// A label stack with the bottom-of-stack bit on the last label.
    fn mpls(labels: &[u32], body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, label) in labels.iter().enumerate() {
            let bottom = u32::from(i + 1 == labels.len());
            out.extend_from_slice(&((label << 12) | (bottom << 8) | 64).to_be_bytes());
        }
        out.extend_from_slice(body);
        out
    }

    fn inner_eth_v4() -> Vec<u8> {
        eth(0x0800, &segment_v4())
    }

    fn assert_tunneled(linktype: u32, frame: &[u8], version: u8) -> Decoder {
        let (pkt, decoder) = decode(linktype, frame);
        assert_standard(pkt, version);
        assert_eq!((decoder.stats.tcp, decoder.stats.tunneled), (1, 1));
        decoder
    }

    fn assert_counted(frame: &[u8], expected: (u64, u64, u64, u64)) {
        let (pkt, decoder) = decode(1, frame);
        assert!(pkt.is_none());
        let s = &decoder.stats;
        assert_eq!((s.non_ip, s.non_tcp, s.fragments, s.malformed), expected);
    }

    #[test]
    fn mpls_label_stack_over_ethernet_carries_ipv4_and_ipv6() {
        assert_tunneled(1, &eth(0x8847, &mpls(&[16, 17], &segment_v4())), 4);
        assert_tunneled(1, &eth(0x8848, &mpls(&[3], &segment_v6())), 6);
    }

    #[test]
    fn mpls_pseudowire_control_word_then_ethernet_is_walked() {
        let body = [&[0u8, 0, 0, 1][..], &inner_eth_v4()].concat();
        assert_tunneled(1, &eth(0x8847, &mpls(&[100], &body)), 4);
    }

    #[test]
    fn mpls_stack_without_bottom_of_stack_label_is_malformed() {
        assert_counted(&eth(0x8847, &[0; 4 * 20]), (0, 0, 0, 1));
        assert_counted(&eth(0x8847, &[0; 4 * 3]), (0, 0, 0, 1));
    }

    #[test]
    fn mpls_payload_of_an_unknown_kind_is_non_ip() {
        assert_counted(
            &eth(0x8847, &mpls(&[16], &[0x10, 0, 0, 0, 1, 2])),
            (1, 0, 0, 0),
        );
    }

    #[test]
    fn gre_carries_ipv4_ipv6_and_ethernet() {
        assert_tunneled(
            1,
            &eth(0x0800, &outer_v4(47, &gre(0, 0x0800, &segment_v4()))),
            4,
        );
        assert_tunneled(
            1,
            &eth(0x0800, &outer_v4(47, &gre(0, 0x86DD, &segment_v6()))),
            6,
        );
        let bridged = gre(0x2000, 0x6558, &inner_eth_v4());
        assert_tunneled(1, &eth(0x86DD, &outer_v6(47, &bridged)), 4);
    }

    #[test]
    fn gre_checksum_key_and_sequence_words_are_skipped() {
        for flags in [0x8000u16, 0x2000, 0x1000, 0xB000] {
            let frame = outer_v4(47, &gre(flags, 0x0800, &segment_v4()));
            assert_tunneled(101, &frame, 4);
        }
    }

    #[test]
    fn gre_carries_mpls() {
        let frame = outer_v4(47, &gre(0, 0x8847, &mpls(&[16, 17], &segment_v6())));
        let decoder = assert_tunneled(101, &frame, 6);
        assert_eq!(decoder.stats.skipped(), vec![]);
    }

    #[test]
    fn pptp_enhanced_gre_is_non_tcp() {
        let frame = outer_v4(47, &gre(0x3001, 0x880B, &[0xff, 0x03, 0, 0x21]));
        assert_counted(&eth(0x0800, &frame), (0, 1, 0, 0));
    }

    #[test]
    fn gre_header_cut_short_is_malformed() {
        let frame = outer_v4(47, &gre(0xB000, 0x0800, &[])[..8]);
        assert_counted(&eth(0x0800, &frame), (0, 0, 0, 1));
    }

    #[test]
    fn erspan_type_2_header_is_skipped_to_the_mirrored_frame() {
        let erspan = [&[0x10u8, 0, 0, 5, 0, 0, 0, 0][..], &inner_eth_v4()].concat();
        let frame = outer_v4(47, &gre(0x1000, 0x88BE, &erspan));
        assert_tunneled(101, &frame, 4);
    }

    #[test]
    fn erspan_type_1_without_sequence_number_has_no_header() {
        assert_tunneled(101, &outer_v4(47, &gre(0, 0x88BE, &inner_eth_v4())), 4);
    }

    #[test]
    fn erspan_type_3_header_and_its_platform_subheader_are_skipped() {
        let plain = [
            &[0x20u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
            &inner_eth_v4(),
        ]
        .concat();
        assert_tunneled(101, &outer_v4(47, &gre(0x1000, 0x22EB, &plain)), 4);
        let mut with_o = [&[0x20u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1][..], &[0x77; 8]].concat();
        with_o.extend_from_slice(&inner_eth_v4());
        assert_tunneled(101, &outer_v4(47, &gre(0x1000, 0x22EB, &with_o)), 4);
    }

    #[test]
    fn vxlan_over_udp_4789_carries_ethernet() {
        let frame = eth(0x0800, &outer_v4(17, &udp(4789, &vxlan(&inner_eth_v4()))));
        assert_tunneled(1, &frame, 4);
        let inner_v6 = eth(0x8100, &vlan(5, 0x86DD, &segment_v6()));
        let frame = eth(0x86DD, &outer_v6(17, &udp(4789, &vxlan(&inner_v6))));
        assert_tunneled(1, &frame, 6);
    }

    #[test]
    fn vxlan_without_the_vni_flag_is_non_tcp() {
        let mut header = vxlan(&inner_eth_v4());
        header[0] = 0;
        assert_counted(
            &eth(0x0800, &outer_v4(17, &udp(4789, &header))),
            (0, 1, 0, 0),
        );
    }

    #[test]
    fn vxlan_carrying_arp_is_non_ip() {
        let frame = outer_v4(17, &udp(4789, &vxlan(&eth(0x0806, &[0; 28]))));
        assert_counted(&eth(0x0800, &frame), (1, 0, 0, 0));
    }

    #[test]
    fn udp_on_another_port_stays_non_tcp() {
        let frame = outer_v4(17, &udp(4790, &vxlan(&inner_eth_v4())));
        assert_counted(&eth(0x0800, &frame), (0, 1, 0, 0));
    }

    #[test]
    fn geneve_carries_ethernet_and_ip_past_its_options() {
        let frame = outer_v4(17, &udp(6081, &geneve(2, 0x6558, &inner_eth_v4())));
        assert_tunneled(101, &frame, 4);
        let frame = outer_v6(17, &udp(6081, &geneve(0, 0x86DD, &segment_v6())));
        assert_tunneled(101, &frame, 6);
    }

    #[test]
    fn geneve_options_running_past_the_capture_are_malformed() {
        let mut header = geneve(0, 0x6558, &[]);
        header[0] = 0x3F;
        assert_counted(
            &eth(0x0800, &outer_v4(17, &udp(6081, &header))),
            (0, 0, 0, 1),
        );
    }

    #[test]
    fn ip_in_ip_and_6in4_are_keyed_on_the_inner_addresses() {
        assert_tunneled(101, &outer_v4(4, &segment_v4()), 4);
        assert_tunneled(101, &outer_v4(41, &segment_v6()), 6);
        assert_tunneled(101, &outer_v6(4, &segment_v4()), 4);
        assert_tunneled(101, &outer_v6(41, &segment_v6()), 6);
    }

    #[test]
    fn tunnel_after_ipv6_extension_headers_is_opened() {
        let frame = outer_v6(0, &ext(17, 0, &udp(4789, &vxlan(&inner_eth_v4()))));
        assert_tunneled(101, &frame, 4);
    }

    #[test]
    fn outer_ipv4_fragment_stays_a_fragment() {
        for proto_body in [
            (47, gre(0, 0x0800, &segment_v4())),
            (17, udp(4789, &[0; 40])),
        ] {
            let mut frame = outer_v4(proto_body.0, &proto_body.1);
            frame[6] = 0x20; // more fragments, first fragment
            assert_counted(&eth(0x0800, &frame), (0, 0, 1, 0));
        }
    }

    #[test]
    fn non_first_udp_fragment_stays_non_tcp_as_in_python() {
        let mut frame = outer_v4(17, &udp(4789, &vxlan(&inner_eth_v4())));
        frame[7] = 10; // offset 80 bytes: no UDP header to read
        assert_counted(&eth(0x0800, &frame), (0, 1, 0, 0));
    }

    #[test]
    fn outer_ipv6_fragment_stays_a_fragment() {
        let frame = outer_v6(44, &fragment_ext(47, 1, &gre(0, 0x0800, &segment_v4())));
        assert_counted(&eth(0x86DD, &frame), (0, 0, 1, 0));
    }

    #[test]
    fn inner_fragment_is_counted_a_fragment() {
        let mut inner = segment_v4();
        inner[6] = 0x20;
        assert_counted(&eth(0x0800, &outer_v4(4, &inner)), (0, 0, 1, 0));
    }

    #[test]
    fn inner_offload_length_is_bounded_by_the_outer_ip_length() {
        // Ethernet padding after a tunneled bare ACK whose inner total length is zero is not
        // inner payload.
        let inner = ipv4(6, &tcp(0x10, &[], &[]));
        let mut frame = eth(0x0800, &outer_v4(4, &inner));
        frame.resize(100, 0);
        let mut inner_total_zero = frame;
        inner_total_zero[14 + 20 + 2..14 + 20 + 4].copy_from_slice(&[0, 0]);
        let pkt = decode(1, &inner_total_zero).0.expect("decodes");
        assert_eq!(pkt.length, 0);
    }

    fn nested_ip_in_ip(levels: usize) -> Vec<u8> {
        let mut frame = segment_v4();
        for _ in 0..levels {
            frame = outer_v4(4, &frame);
        }
        frame
    }

    #[test]
    fn nesting_up_to_the_limit_decodes() {
        let (pkt, _) = decode(101, &nested_ip_in_ip(MAX_ENCAPSULATIONS));
        assert_standard(pkt, 4);
    }

    #[test]
    fn nesting_beyond_the_limit_is_malformed() {
        let (pkt, decoder) = decode(101, &nested_ip_in_ip(MAX_ENCAPSULATIONS + 1));
        assert!(pkt.is_none());
        assert_eq!(decoder.stats.malformed, 1);
    }

    #[test]
    fn pseudowire_loop_of_mpls_and_ethernet_is_bounded() {
        let mut frame = segment_v4();
        for _ in 0..50 {
            frame = eth(
                0x8847,
                &mpls(&[16], &[&[0u8, 0, 0, 0][..], &frame].concat()),
            );
        }
        let (pkt, decoder) = decode(1, &frame);
        assert!(pkt.is_none());
        assert_eq!(decoder.stats.malformed, 1);
    }

    #[test]
    fn segment_outside_any_tunnel_is_not_counted_tunneled() {
        let (_, decoder) = decode(1, &eth(0x0800, &segment_v4()));
        assert_eq!((decoder.stats.tcp, decoder.stats.tunneled), (1, 0));
    }

    /// Every prefix of each encapsulation decodes or is counted, never panics.
    #[test]
    fn every_prefix_cut_of_tunneled_frames_never_panics() {
        let frames = [
            eth(0x0800, &outer_v4(17, &udp(4789, &vxlan(&inner_eth_v4())))),
            eth(
                0x0800,
                &outer_v4(17, &udp(6081, &geneve(1, 0x6558, &inner_eth_v4()))),
            ),
            eth(
                0x86DD,
                &outer_v6(47, &gre(0xB000, 0x8847, &mpls(&[1, 2], &segment_v6()))),
            ),
            eth(0x0800, &outer_v4(47, &gre(0x1000, 0x22EB, &[0; 12]))),
            eth(
                0x8847,
                &mpls(&[7], &[&[0u8, 0, 0, 0][..], &inner_eth_v4()].concat()),
            ),
        ];
        for frame in &frames {
            for cut in 0..=frame.len() {
                let (pkt, decoder) = decode(1, &frame[..cut]);
                let s = &decoder.stats;
                let counted = s.tcp + s.non_ip + s.non_tcp + s.fragments + s.malformed;
                assert_eq!((s.frames, counted), (1, 1));
                assert_eq!(pkt.is_some(), s.tcp == 1);
            }
        }
    }
}
