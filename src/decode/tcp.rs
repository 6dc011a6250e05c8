//! The TCP header: the fields the tracker needs, the RST payload, the MPTCP reset options.

use std::net::IpAddr;

use super::{clip, Skip};
use crate::records::{Packet, RawFrame, RST};

const MIN_HEADER: usize = 20;
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MPTCP: u8 = 30;
const MP_FASTCLOSE: u8 = 7;
const MP_TCPRST: u8 = 8;

/// What the IP layer hands to TCP: the addresses and the fields kept in the Packet.
pub(crate) struct IpFields {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    pub ipid: Option<u16>,
}

/// The TCP segment at the start of `data`, `seg_len` bytes long by the IP length fields.
pub(crate) fn segment(
    raw: &RawFrame<'_>,
    data: &[u8],
    seg_len: usize,
    ip: IpFields,
) -> Result<Packet, Skip> {
    // Ports, seq, ack, offset, flags and window fit in 16 bytes: enough for snaplen-cut frames
    // (Python pads such a header to 20 bytes with zeros; checksum and urgent are never read).
    let (&header, _) = data.split_first_chunk::<16>().ok_or(Skip::Malformed)?;
    let [p0, p1, p2, p3, s0, s1, s2, s3, a0, a1, a2, a3, doff, flags, w0, w1] = header;
    let hdr = usize::from(doff >> 4) * 4;
    if hdr < MIN_HEADER || hdr > seg_len {
        return Err(Skip::Malformed);
    }
    let length = seg_len - hdr;
    let mut pkt = Packet {
        frame: raw.frame,
        ts: raw.ts,
        src: ip.src,
        dst: ip.dst,
        sport: u16::from_be_bytes([p0, p1]),
        dport: u16::from_be_bytes([p2, p3]),
        seq: u32::from_be_bytes([s0, s1, s2, s3]),
        ack: u32::from_be_bytes([a0, a1, a2, a3]),
        flags,
        window: u16::from_be_bytes([w0, w1]),
        length: u32::try_from(length).unwrap_or(u32::MAX),
        ttl: ip.ttl,
        ipid: ip.ipid,
        payload: Vec::new(),
        mptcp_fastclose: false,
        mptcp_reset_reason: None,
    };
    if hdr > MIN_HEADER {
        read_mptcp(&mut pkt, clip(data, MIN_HEADER, hdr));
    }
    if flags & RST != 0 && length > 0 {
        // As much of the payload as was captured: the snaplen may have cut it.
        pkt.payload = clip(data, hdr, seg_len).to_vec();
    }
    Ok(pkt)
}

/// Note the MPTCP options that explain a reset (RFC 8684 MP_FASTCLOSE, MP_TCPRST).
fn read_mptcp(pkt: &mut Packet, options: &[u8]) {
    if !options.contains(&OPT_MPTCP) {
        return;
    }
    let mut i = 0;
    while let Some(&kind) = options.get(i) {
        match kind {
            OPT_END => return,
            OPT_NOP => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let size = match options.get(i + 1) {
            Some(&size) if size >= 2 => usize::from(size),
            _ => return,
        };
        if kind == OPT_MPTCP {
            if let Some(&subtype_byte) = options.get(i + 2) {
                match subtype_byte >> 4 {
                    MP_FASTCLOSE => pkt.mptcp_fastclose = true,
                    MP_TCPRST => {
                        if let Some(&reason) = options.get(i + 3) {
                            pkt.mptcp_reset_reason = Some(reason);
                        }
                    }
                    _ => {}
                }
            }
        }
        i += size;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::records::{ACK, RST};

    #[test]
    fn tcp_data_offset_beyond_the_segment_is_malformed() {
        let mut segment = tcp(0x18, &[], &[]);
        segment[12] = 15 << 4;
        assert_malformed(1, &eth(0x0800, &ipv4(6, &segment)));
    }

    #[test]
    fn tcp_data_offset_below_five_words_is_malformed() {
        let mut segment = tcp_std();
        segment[12] = 4 << 4;
        assert_malformed(1, &eth(0x0800, &ipv4(6, &segment)));
    }

    #[test]
    fn tcp_header_cut_after_the_window_still_decodes() {
        let frame = eth(0x0800, &segment_v4());
        assert_standard(decode(1, &frame[..14 + 20 + 16]).0, 4);
    }

    #[test]
    fn tcp_header_cut_before_the_window_end_is_malformed() {
        let frame = eth(0x0800, &segment_v4());
        assert_malformed(1, &frame[..14 + 20 + 15]);
    }

    #[test]
    fn rst_payload_is_kept_as_bytes() {
        let frame = eth(
            0x0800,
            &ipv4(6, &tcp(RST | ACK, &[], b"connection refused")),
        );
        let pkt = decode(1, &frame).0.expect("decodes");
        assert_eq!(pkt.flags, RST | ACK);
        assert_eq!(pkt.payload, b"connection refused");
    }

    #[test]
    fn payload_of_a_segment_without_rst_is_not_kept() {
        let frame = eth(0x0800, &ipv4(6, &tcp(0x18, &[], b"hello")));
        let pkt = decode(1, &frame).0.expect("decodes");
        assert_eq!((pkt.length, pkt.payload.len()), (5, 0));
    }

    #[test]
    fn snaplen_cut_rst_keeps_only_the_captured_payload() {
        let frame = eth(0x0800, &ipv4(6, &tcp(RST, &[], &[b'x'; 100])));
        let pkt = decode(1, &frame[..64]).0.expect("decodes");
        assert_eq!((pkt.length, pkt.payload), (100, vec![b'x'; 10]));
    }

    #[test]
    fn rst_cut_inside_its_options_keeps_no_payload_and_reads_what_options_remain() {
        let options = [1, 1, 30, 4, 0x81, 5, 1, 1];
        let frame = eth(0x0800, &ipv4(6, &tcp(RST, &options, b"bye")));
        let pkt = decode(1, &frame[..14 + 20 + 20 + 4]).0.expect("decodes");
        assert_eq!((pkt.length, pkt.payload.len()), (3, 0));
        assert_eq!(pkt.mptcp_reset_reason, None);
    }

    #[test]
    fn mptcp_fastclose_option_is_noted() {
        // NOP, NOP, MPTCP (length 12) subtype 7 with the receiver's key
        let options = [&[1u8, 1, 30, 12, 0x70, 0][..], &[0x11; 8], &[0, 0]].concat();
        let frame = eth(0x0800, &ipv4(6, &tcp(RST | ACK, &options, &[])));
        let pkt = decode(1, &frame).0.expect("decodes");
        assert!(pkt.mptcp_fastclose);
        assert_eq!(pkt.mptcp_reset_reason, None);
    }

    #[test]
    fn mptcp_tcprst_reason_code_is_read() {
        // NOP, MPTCP (length 4) subtype 8 with the T flag, reason 5, then end of options
        let options = [1, 30, 4, 0x81, 5, 0, 0, 0];
        let frame = eth(0x0800, &ipv4(6, &tcp(RST, &options, &[])));
        let pkt = decode(1, &frame).0.expect("decodes");
        assert_eq!(pkt.mptcp_reset_reason, Some(5));
        assert!(!pkt.mptcp_fastclose);
    }

    #[test]
    fn option_bytes_that_merely_contain_30_are_not_mptcp() {
        // MSS 0x1E1E, NOP, NOP, timestamps (0x1E1E1E1E, 30)
        let options = [
            2, 4, 0x1E, 0x1E, 1, 1, 8, 10, 0x1E, 0x1E, 0x1E, 0x1E, 0, 0, 0, 30,
        ];
        let frame = eth(0x0800, &ipv4(6, &tcp(0x18, &options, &[])));
        let pkt = decode(1, &frame).0.expect("decodes");
        assert_eq!((pkt.mptcp_fastclose, pkt.mptcp_reset_reason), (false, None));
    }

    #[test]
    fn option_with_length_below_two_stops_the_option_walk() {
        let options = [3, 1, 30, 4, 0x81, 5, 0, 0];
        let frame = eth(0x0800, &ipv4(6, &tcp(RST, &options, &[])));
        let pkt = decode(1, &frame).0.expect("decodes");
        assert_eq!(pkt.mptcp_reset_reason, None);
    }
}
