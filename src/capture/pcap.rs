//! Classic pcap: the file header and the records after it, through pcap-parser.

use pcap_parser::pcap::{parse_pcap_frame, parse_pcap_frame_be, parse_pcap_header};

use super::{Parsed, Tally};

pub(super) const HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;
/// tcpdump's and Wireshark's largest snaplen; beyond it is corruption
pub(super) const MAX_CAPLEN: u32 = 262_144;

/// pcap magic as it appears in the file (both byte orders, micro- and nanoseconds)
const MAGICS: [[u8; 4]; 4] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
];

/// What the file header says about every record of a classic pcap file.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pcap {
    big_endian: bool,
    /// seconds per unit of the record's fraction field: 1e-6 or 1e-9
    scale: f64,
    pub(super) linktype: u32,
}

pub(super) fn is_magic(magic: &[u8]) -> bool {
    MAGICS.iter().any(|known| known.as_slice() == magic)
}

impl Pcap {
    /// The layout a pcap file header (24 bytes, one of MAGICS) announces.
    pub(super) fn from_header(header: &[u8]) -> Option<Pcap> {
        // pcap-parser also takes Kuznetzov's modified magic, which rstdiag rejects.
        if !is_magic(header.get(..4)?) {
            return None;
        }
        let (_, parsed) = parse_pcap_header(header).ok()?;
        Some(Pcap {
            big_endian: parsed.is_bigendian(),
            scale: if parsed.is_nanosecond_precision() {
                1e-9
            } else {
                1e-6
            },
            // The upper bits of the field carry FCS information, not the link type.
            linktype: (parsed.network.0 & 0xFFFF) as u32,
        })
    }

    /// The record at the start of `avail`, whose first byte is at file offset `offset`.
    pub(super) fn step(&self, avail: &[u8], offset: u64, tally: &mut Tally) -> Parsed {
        let parsed = if self.big_endian {
            parse_pcap_frame_be(avail)
        } else {
            parse_pcap_frame(avail)
        };
        match parsed {
            Ok((_, record)) if record.caplen <= MAX_CAPLEN => {
                tally.frame += 1;
                let stop = RECORD_HEADER_LEN + record.data.len();
                Parsed::Frame {
                    consumed: stop,
                    data: RECORD_HEADER_LEN..stop,
                    // Python: sec + frac * scale, the ints converted exactly
                    ts: f64::from(record.ts_sec) + f64::from(record.ts_usec) * self.scale,
                    linktype: self.linktype,
                    wirelen: record.origlen,
                }
            }
            _ => self.unfinished(avail, offset, tally),
        }
    }

    /// A record not wholly buffered, or one whose caplen is corrupt.
    fn unfinished(&self, avail: &[u8], offset: u64, tally: &mut Tally) -> Parsed {
        // Python reads the caplen only from a whole record header.
        let Some(header) = avail.first_chunk::<RECORD_HEADER_LEN>() else {
            return Parsed::Need(RECORD_HEADER_LEN);
        };
        let Some(caplen) = header.get(8..).and_then(|rest| rest.first_chunk::<4>()) else {
            return Parsed::Need(RECORD_HEADER_LEN);
        };
        let caplen = if self.big_endian {
            u32::from_be_bytes(*caplen)
        } else {
            u32::from_le_bytes(*caplen)
        };
        if caplen > MAX_CAPLEN {
            tally.warnings.push(format!(
                "corrupt record header at byte offset {offset} (frame {}): caplen {caplen} \
                 exceeds {MAX_CAPLEN}; stopped reading",
                tally.frame + 1
            ));
            return Parsed::Stop;
        }
        Parsed::Need(RECORD_HEADER_LEN + caplen as usize)
    }
}

/// The warning for a pcap whose last record (after `frames` whole ones) is cut off.
pub(super) fn truncated_record_warning(
    frames: u64,
    offset: u64,
    have: usize,
    need: usize,
) -> String {
    format!(
        "truncated capture: record of frame {} at byte offset {offset} is cut off (file ends \
         after {have} of {need} bytes); kept the {} before it",
        frames + 1,
        super::frames(frames)
    )
}
