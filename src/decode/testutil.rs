//! Crafted frames for the decoder's tests: the same segments tests/test_decode.py builds.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Decoder;
use crate::records::{Packet, RawFrame, ACK, PSH};

pub const PAYLOAD: &[u8] = b"0123456789";
pub const V4_SRC: [u8; 4] = [192, 0, 2, 1];
pub const V4_DST: [u8; 4] = [198, 51, 100, 7];

pub fn v6_addr(last: u8) -> [u8; 16] {
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    addr[15] = last;
    addr
}

/// A TCP header (options padded by the caller to 4-byte words) and its payload.
pub fn tcp(flags: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let doff = ((20 + options.len()) / 4) as u8;
    let mut out = Vec::new();
    out.extend_from_slice(&40000u16.to_be_bytes());
    out.extend_from_slice(&443u16.to_be_bytes());
    out.extend_from_slice(&1000u32.to_be_bytes());
    out.extend_from_slice(&2000u32.to_be_bytes());
    out.extend_from_slice(&[doff << 4, flags]);
    out.extend_from_slice(&512u16.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(options);
    out.extend_from_slice(payload);
    out
}

pub fn tcp_std() -> Vec<u8> {
    tcp(PSH | ACK, &[], PAYLOAD)
}

pub fn tcp_rst_mptcp() -> Vec<u8> {
    tcp(0x04, &[30, 4, 0x81, 5], b"bye")
}

pub fn ipv4_opts(options: &[u8], proto: u8, body: &[u8]) -> Vec<u8> {
    ipv4_from(V4_SRC, V4_DST, options, proto, body)
}

pub fn ipv4_from(src: [u8; 4], dst: [u8; 4], options: &[u8], proto: u8, body: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let ihl = 20 + options.len();
    let total = (ihl + body.len()) as u16;
    let mut out = vec![0x40 | (ihl / 4) as u8, 0];
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&4242u16.to_be_bytes());
    out.extend_from_slice(&[0, 0, 57, proto, 0, 0]);
    out.extend_from_slice(&src);
    out.extend_from_slice(&dst);
    out.extend_from_slice(options);
    out.extend_from_slice(body);
    out
}

pub fn ipv4(proto: u8, body: &[u8]) -> Vec<u8> {
    ipv4_opts(&[], proto, body)
}

pub fn ipv6_from(src: [u8; 16], dst: [u8; 16], next: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0x60, 0, 0, 0];
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&[next, 51]);
    out.extend_from_slice(&src);
    out.extend_from_slice(&dst);
    out.extend_from_slice(body);
    out
}

pub fn ipv6(next: u8, body: &[u8]) -> Vec<u8> {
    ipv6_from(v6_addr(1), v6_addr(2), next, body)
}

/// A generic extension header of (units + 1) * 8 bytes.
pub fn ext(next: u8, units: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![next, units];
    out.resize(8 * (usize::from(units) + 1), 0);
    out.extend_from_slice(body);
    out
}

/// A fragment header; `field` is the 16 bits of offset, reserved bits and M flag.
pub fn fragment_ext(next: u8, field: u16, body: &[u8]) -> Vec<u8> {
    let mut out = vec![next, 0];
    out.extend_from_slice(&field.to_be_bytes());
    out.extend_from_slice(&99u32.to_be_bytes());
    out.extend_from_slice(body);
    out
}

pub fn segment_v4() -> Vec<u8> {
    ipv4(6, &tcp_std())
}

pub fn segment_v6() -> Vec<u8> {
    ipv6(6, &tcp_std())
}

pub fn eth(ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut out = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    out.extend_from_slice(&ethertype.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// One 802.1Q tag's TCI and the EtherType after it (the tag's own TPID is the caller's).
pub fn vlan(id: u16, ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&ethertype.to_be_bytes());
    out.extend_from_slice(body);
    out
}

pub fn pppoe(ppp_proto: u16, body: &[u8]) -> Vec<u8> {
    let mut inner = vec![0x11, 0x00, 0x00, 0x07];
    inner.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
    inner.extend_from_slice(&ppp_proto.to_be_bytes());
    inner.extend_from_slice(body);
    eth(0x8864, &inner)
}

pub fn sll(proto: u16, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    out.extend_from_slice(&proto.to_be_bytes());
    out.extend_from_slice(body);
    out
}

pub fn sll2(proto: u16, body: &[u8]) -> Vec<u8> {
    let mut out = proto.to_be_bytes().to_vec();
    out.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
    out.extend_from_slice(body);
    out
}

pub fn raw(linktype: u32, data: &[u8]) -> RawFrame<'_> {
    RawFrame {
        frame: 7,
        ts: 1234.5,
        linktype,
        data,
        wirelen: data.len() as u32,
    }
}

pub fn decode(linktype: u32, data: &[u8]) -> (Option<Packet>, Decoder) {
    let mut decoder = Decoder::new();
    let pkt = decoder.decode(&raw(linktype, data));
    (pkt, decoder)
}

/// The segment built by segment_v4()/segment_v6(), decoded field by field.
pub fn assert_standard(pkt: Option<Packet>, version: u8) {
    let pkt = pkt.expect("a TCP segment");
    if version == 4 {
        assert_eq!(pkt.src, IpAddr::V4(Ipv4Addr::from(V4_SRC)));
        assert_eq!(pkt.dst, IpAddr::V4(Ipv4Addr::from(V4_DST)));
        assert_eq!((pkt.ttl, pkt.ipid), (57, Some(4242)));
    } else {
        assert_eq!(pkt.src, IpAddr::V6(Ipv6Addr::from(v6_addr(1))));
        assert_eq!(pkt.dst, IpAddr::V6(Ipv6Addr::from(v6_addr(2))));
        assert_eq!((pkt.ttl, pkt.ipid), (51, None));
    }
    assert_eq!((pkt.frame, pkt.ts), (7, 1234.5));
    assert_eq!(
        (pkt.sport, pkt.dport, pkt.seq, pkt.ack),
        (40000, 443, 1000, 2000)
    );
    assert_eq!((pkt.flags, pkt.window, pkt.length), (PSH | ACK, 512, 10));
}

pub fn assert_malformed(linktype: u32, data: &[u8]) {
    let (pkt, decoder) = decode(linktype, data);
    assert!(pkt.is_none());
    assert_eq!((decoder.stats.malformed, decoder.stats.tcp), (1, 0));
}
