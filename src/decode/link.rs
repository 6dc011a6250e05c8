//! Link layers: where the IP header (or MPLS label stack) starts in a frame of each supported
//! link type.

use super::{
    be16, tail, Layer, LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2, LINKTYPE_LOOP, LINKTYPE_NULL, LINKTYPE_RAW,
};

pub(crate) const ETH_IPV4: u16 = 0x0800;
pub(crate) const ETH_IPV6: u16 = 0x86DD;
const ETH_PPPOE_SESSION: u16 = 0x8864;
const ETH_MPLS_UNICAST: u16 = 0x8847;
const ETH_MPLS_MULTICAST: u16 = 0x8848;
const VLAN_TYPES: [u16; 4] = [0x8100, 0x88A8, 0x9100, 0x9200];
/// QinQ stacks more than two tags only in odd labs; the loop is bounded anyway.
const MAX_VLAN_TAGS: usize = 4;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
/// BSD loopback address families for IPv6 differ by OS (NetBSD/OpenBSD 24, FreeBSD 28, macOS 30).
const NULL_INET6: [u32; 3] = [24, 28, 30];
const NULL_INET: u32 = 2;

/// The network layer of a frame, or None when the frame carries neither IP nor MPLS.
pub(crate) fn network_layer(linktype: u32, data: &[u8]) -> Option<Layer<'_>> {
    match linktype {
        LINKTYPE_ETHERNET => ethernet_payload(data),
        LINKTYPE_RAW | 12 | 14 | LINKTYPE_IPV4 | LINKTYPE_IPV6 => Some(Layer::Ip(data)),
        LINKTYPE_LINUX_SLL => ethernet_layer(data, 14, 16),
        LINKTYPE_LINUX_SLL2 => ethernet_layer(data, 0, 20),
        LINKTYPE_NULL | LINKTYPE_LOOP => {
            null_offset(data).map(|offset| Layer::Ip(tail(data, offset)))
        }
        _ => None,
    }
}

/// The payload of an Ethernet frame (outer, or carried by a tunnel).
pub(crate) fn ethernet_payload(data: &[u8]) -> Option<Layer<'_>> {
    ethernet_layer(data, 12, 14)
}

/// Walk an EtherType at `type_at` (and any 802.1Q/QinQ tags after `header_end`) to the IP
/// header or the MPLS label stack.
fn ethernet_layer(data: &[u8], type_at: usize, header_end: usize) -> Option<Layer<'_>> {
    if data.len() < header_end {
        return None;
    }
    let mut ethertype = be16(data, type_at)?;
    let mut end = header_end;
    for _ in 0..MAX_VLAN_TAGS {
        if !VLAN_TYPES.contains(&ethertype) {
            break;
        }
        // The tag is 2 bytes of TCI, then the next EtherType.
        ethertype = be16(data, end.checked_add(2)?)?;
        end = end.checked_add(4)?;
    }
    match ethertype {
        ETH_IPV4 | ETH_IPV6 => Some(Layer::Ip(tail(data, end))),
        ETH_MPLS_UNICAST | ETH_MPLS_MULTICAST => Some(Layer::Mpls(tail(data, end))),
        // PPPoE header (6 bytes), then the PPP protocol field.
        ETH_PPPOE_SESSION => {
            let ppp = be16(data, end.checked_add(6)?)?;
            let ip = ppp == PPP_IPV4 || ppp == PPP_IPV6;
            ip.then(|| Layer::Ip(tail(data, end.saturating_add(8))))
        }
        _ => None,
    }
}

fn null_offset(data: &[u8]) -> Option<usize> {
    // The family is in the writer's host byte order, which the file does not record.
    let (&bytes, _) = data.split_first_chunk::<4>()?;
    let mut family = u32::from_le_bytes(bytes);
    if family > 0xFFFF {
        family = u32::from_be_bytes(bytes);
    }
    (family == NULL_INET || NULL_INET6.contains(&family)).then_some(4)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::Decoder;

    #[test]
    fn ethernet_frame_decodes_to_tcp() {
        assert_standard(decode(1, &eth(0x0800, &segment_v4())).0, 4);
        assert_standard(decode(1, &eth(0x86DD, &segment_v6())).0, 6);
    }

    #[test]
    fn ethernet_frame_counts_one_tcp_segment() {
        let (_, decoder) = decode(1, &eth(0x0800, &segment_v4()));
        assert_eq!(decoder.stats.tcp, 1);
    }

    #[test]
    fn vlan_tagged_ethernet_frame_decodes_to_tcp() {
        let frame = eth(0x8100, &vlan(10, 0x0800, &segment_v4()));
        assert_standard(decode(1, &frame).0, 4);
    }

    #[test]
    fn qinq_tagged_ethernet_frame_decodes_to_tcp() {
        let frame = eth(0x88A8, &vlan(100, 0x8100, &vlan(10, 0x86DD, &segment_v6())));
        assert_standard(decode(1, &frame).0, 6);
    }

    #[test]
    fn four_vlan_tags_are_walked_but_a_fifth_is_not_ip() {
        let mut four = segment_v4();
        let mut inner_type = 0x0800;
        for tpid in [0x9200, 0x9100, 0x8100, 0x88A8] {
            four = vlan(1, inner_type, &four);
            inner_type = tpid;
        }
        assert_standard(decode(1, &eth(inner_type, &four)).0, 4);
        let five = eth(0x8100, &vlan(1, inner_type, &four));
        let (pkt, decoder) = decode(1, &five);
        assert!(pkt.is_none());
        assert_eq!(decoder.stats.non_ip, 1);
    }

    #[test]
    fn pppoe_session_frame_decodes_to_tcp() {
        assert_standard(decode(1, &pppoe(0x0021, &segment_v4())).0, 4);
        assert_standard(decode(1, &pppoe(0x0057, &segment_v6())).0, 6);
    }

    #[test]
    fn pppoe_session_frame_with_non_ip_ppp_protocol_is_counted_non_ip() {
        let (pkt, decoder) = decode(1, &pppoe(0xC021, &[1, 1, 0, 4]));
        assert!(pkt.is_none());
        assert_eq!(decoder.stats.non_ip, 1);
    }

    #[test]
    fn linux_sll_frame_decodes_to_tcp() {
        assert_standard(decode(113, &sll(0x0800, &segment_v4())).0, 4);
        assert_standard(decode(113, &sll(0x86DD, &segment_v6())).0, 6);
    }

    #[test]
    fn linux_sll_frame_with_vlan_tag_decodes_to_tcp() {
        let frame = sll(0x8100, &vlan(3, 0x0800, &segment_v4()));
        assert_standard(decode(113, &frame).0, 4);
    }

    #[test]
    fn linux_sll2_frame_decodes_to_tcp() {
        assert_standard(decode(276, &sll2(0x0800, &segment_v4())).0, 4);
        assert_standard(decode(276, &sll2(0x86DD, &segment_v6())).0, 6);
    }

    #[test]
    fn linux_sll2_frame_with_vlan_tag_decodes_to_tcp() {
        let frame = sll2(0x8100, &vlan(3, 0x86DD, &segment_v6()));
        assert_standard(decode(276, &frame).0, 6);
    }

    #[test]
    fn linux_sll2_header_shorter_than_20_bytes_is_not_ip() {
        let (pkt, decoder) = decode(276, &sll2(0x0800, &[])[..19]);
        assert!(pkt.is_none());
        assert_eq!(decoder.stats.non_ip, 1);
    }

    #[test]
    fn linktype_raw_decodes_ipv4_and_ipv6() {
        assert_standard(decode(101, &segment_v4()).0, 4);
        assert_standard(decode(101, &segment_v6()).0, 6);
    }

    #[test]
    fn bsd_dlt_raw_values_decode_as_raw_ip() {
        for linktype in [12, 14] {
            assert_standard(decode(linktype, &segment_v4()).0, 4);
            assert_standard(decode(linktype, &segment_v6()).0, 6);
        }
    }

    #[test]
    fn linktype_ipv4_decodes_to_tcp() {
        assert_standard(decode(228, &segment_v4()).0, 4);
    }

    #[test]
    fn linktype_ipv6_decodes_to_tcp() {
        assert_standard(decode(229, &segment_v6()).0, 6);
    }

    #[test]
    fn bsd_null_header_in_either_byte_order_decodes() {
        for (family, version) in [(2u32, 4), (24, 6), (28, 6), (30, 6)] {
            let inner = if version == 4 {
                segment_v4()
            } else {
                segment_v6()
            };
            for header in [family.to_le_bytes(), family.to_be_bytes()] {
                let frame = [&header[..], &inner].concat();
                assert_standard(decode(0, &frame).0, version);
            }
        }
    }

    #[test]
    fn loop_header_in_network_byte_order_decodes() {
        for (family, version) in [(2u32, 4), (24, 6)] {
            let inner = if version == 4 {
                segment_v4()
            } else {
                segment_v6()
            };
            let frame = [&family.to_be_bytes()[..], &inner].concat();
            assert_standard(decode(108, &frame).0, version);
        }
    }

    #[test]
    fn bsd_null_header_with_unknown_family_is_counted_non_ip() {
        let frame = [&7u32.to_le_bytes()[..], &segment_v4()].concat();
        let (pkt, decoder) = decode(0, &frame);
        assert!(pkt.is_none());
        assert_eq!(decoder.stats.non_ip, 1);
    }

    #[test]
    fn arp_is_counted_non_ip() {
        let (pkt, decoder) = decode(1, &eth(0x0806, &[0; 28]));
        assert!(pkt.is_none());
        assert_eq!((decoder.stats.non_ip, decoder.stats.non_tcp), (1, 0));
    }

    #[test]
    fn ethernet_header_without_any_ip_bytes_is_malformed() {
        assert_malformed(1, &eth(0x0800, &[]));
    }

    #[test]
    fn decoder_default_starts_from_zero() {
        assert_eq!(Decoder::default().stats.frames, 0);
    }
}
