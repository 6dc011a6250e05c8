//! Records that flow between the pipeline's stages: raw frames, decoded segments.

use std::net::IpAddr;

// TCP flag bits as they sit in the header's flags byte.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;

/// One packet record of a capture, before any decoding. `data` borrows the reader's buffer.
#[derive(Clone, Copy, Debug)]
pub struct RawFrame<'a> {
    /// 1-based position among the capture's packet records, as tshark numbers frames
    pub frame: u64,
    /// seconds since the epoch
    pub ts: f64,
    /// LINKTYPE_* of the interface the packet was captured on
    pub linktype: u32,
    /// the captured bytes (may be cut by the snaplen)
    pub data: &'a [u8],
    /// the packet's length on the wire
    pub wirelen: u32,
}

/// A decoded TCP segment: the fields the tracker and classifier need, nothing more.
#[derive(Clone, Debug, PartialEq)]
pub struct Packet {
    pub frame: u64,
    pub ts: f64,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// TCP payload length from the IP length fields (not the captured length)
    pub length: u32,
    /// TTL or hop limit
    pub ttl: u8,
    /// IPv4 identification; None for IPv6
    pub ipid: Option<u16>,
    /// captured payload bytes, kept only for RSTs (their diagnostic text)
    pub payload: Vec<u8>,
    /// carries an MPTCP MP_FASTCLOSE option
    pub mptcp_fastclose: bool,
    /// MPTCP MP_TCPRST reason code, if present
    pub mptcp_reset_reason: Option<u8>,
}

/// Flags as tcpdump letters: S, F, R, P, U, then . for ACK; "none" without any.
pub fn flag_string(flags: u8) -> String {
    let mut out = String::new();
    push_flags(&mut out, flags);
    out
}

/// `flag_string` at the end of `out`.
pub fn push_flags(out: &mut String, flags: u8) {
    let start = out.len();
    for (bit, letter) in [(SYN, 'S'), (FIN, 'F'), (RST, 'R'), (PSH, 'P'), (URG, 'U')] {
        if flags & bit != 0 {
            out.push(letter);
        }
    }
    if flags & ACK != 0 {
        out.push('.');
    }
    if out.len() == start {
        out.push_str("none");
    }
}

/// Flags from the letters tests write them in (`"SA"`, `"RA"`, `"-"` for none): S, A, F, R,
/// P, U.
#[cfg(test)]
pub fn flag_bits(letters: &str) -> u8 {
    letters.chars().fold(0, |bits, letter| {
        bits | match letter {
            'S' => SYN,
            'A' => ACK,
            'F' => FIN,
            'R' => RST,
            'P' => PSH,
            'U' => URG,
            '-' => 0,
            _ => panic!("flag {letter}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_as_tcpdump_writes_them() {
        assert_eq!(flag_string(SYN | ACK), "S.");
        assert_eq!(flag_string(RST), "R");
        assert_eq!(flag_string(FIN | PSH | ACK), "FP.");
        assert_eq!(flag_string(0), "none");
    }
}
