//! Capture files in, RawFrame records out: pcap and pcapng, from a file or a live pipe alike,
//! without trusting them (the port of rstdiag/pcapfile.py, its messages character for
//! character).
//!
//! Every length field is checked against the bytes present and a sane maximum before use: a
//! damaged file ends iteration with one line in `warnings()`, never with a panic, a hang or an
//! outsized allocation. Bytes are read into one buffer and parsed in place; frames borrow it.
//!
//! Classic pcap headers and records are parsed by pcap-parser (as fast as a hand-written loop
//! on a 500,000-packet capture). Its pcapng block parsers are not used: a whole block whose
//! inner lengths are inconsistent (a caplen or an interface option running past the block)
//! comes back as "Incomplete", which on a stream cannot be told from a block still arriving,
//! and rstdiag must name that damage at its byte offset; they also collect every block's
//! options into a Vec (an allocation per packet), and their timestamp helpers take a u64
//! resolution where if_tsresol allows 10^127.

mod clock;
mod pcap;
mod pcapng;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod note_tests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io::{ErrorKind, Read};
use std::ops::Range;

use crate::kernel_note::Note;
use crate::records::RawFrame;
use pcap::Pcap;
use pcapng::Section;

/// Bytes asked of the source per read, at least.
const READ_SIZE: usize = 1 << 20;

/// A capture that cannot be read (or whose source failed while being read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureError {
    pub message: String,
    /// byte offset of the fault in the file, where known
    pub offset: Option<u64>,
}

impl CaptureError {
    fn new(message: String, offset: Option<u64>) -> CaptureError {
        CaptureError { message, offset }
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CaptureError {}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Pcap,
    Pcapng,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Pcap => "pcap",
            Format::Pcapng => "pcapng",
        }
    }
}

/// What a format's parser makes of the bytes at the parse position.
#[derive(Debug, PartialEq)]
enum Parsed {
    /// a packet record, `consumed` bytes long; the frame number is `Tally::frame`
    Frame {
        consumed: usize,
        /// where the packet's bytes lie in the record
        data: Range<usize>,
        ts: f64,
        linktype: u32,
        wirelen: u32,
    },
    /// a record or block that yields no frame, this many bytes long
    Skip(usize),
    /// the record or block is this many bytes long: more must be buffered first
    Need(usize),
    /// damage: a warning has been given, reading ends
    Stop,
}

/// What the parsers count and report on the way.
#[derive(Debug, Default)]
struct Tally {
    /// packet records numbered so far (including those skipped)
    frame: u64,
    skipped_frames: u64,
    warnings: Vec<String>,
    // kinds of warning given once per file
    warned_interface: bool,
    warned_option: bool,
    /// the kernel's reasons rstdiag saved in packet comments (pcapng), by frame, not
    /// taken yet
    notes: Vec<(u64, Note)>,
}

#[derive(Debug)]
enum Walker {
    Pcap(Pcap),
    Pcapng(Section),
}

/// The source and the buffer its bytes are parsed in.
struct Input<R> {
    source: R,
    name: String,
    buf: Vec<u8>,
    /// first byte not parsed yet
    pos: usize,
    /// end of the bytes read into `buf`
    filled: usize,
    /// file offset of buf[0]
    base: u64,
    eof: bool,
    bytes_read: u64,
}

impl<R: Read> Input<R> {
    fn avail(&self) -> &[u8] {
        self.buf.get(self.pos..self.filled).unwrap_or_default()
    }

    /// File offset of the parse position.
    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Reads until `need` bytes lie after the parse position or the source ends; returns
    /// how many do. Moves the unparsed tail to the front first, so the buffer stays small.
    fn fill(&mut self, need: usize) -> Result<usize, CaptureError> {
        if self.filled - self.pos >= need {
            return Ok(self.filled - self.pos);
        }
        if self.pos > 0 && self.pos <= self.filled {
            self.buf.copy_within(self.pos..self.filled, 0);
            self.base += self.pos as u64;
            self.filled -= self.pos;
            self.pos = 0;
        }
        let size = need.max(self.filled + READ_SIZE);
        if self.buf.is_empty() {
            self.buf = vec![0; size]; // zeroed pages from the allocator: no memset
        } else if self.buf.len() < size {
            self.buf.resize(size, 0);
        }
        // A pipe's read returns what it holds now: read again only while the record is cut.
        while self.filled - self.pos < need && !self.eof {
            let room = self.buf.get_mut(self.filled..).unwrap_or_default();
            let got = read_some(&mut self.source, room, &self.name, self.bytes_read)?;
            if got == 0 {
                self.eof = true;
            }
            self.filled += got;
            self.bytes_read += got as u64;
        }
        Ok(self.filled - self.pos)
    }
}

/// One read, retried when a signal interrupts it; Ok(0) at the end.
fn read_some(
    source: &mut impl Read,
    room: &mut [u8],
    name: &str,
    offset: u64,
) -> Result<usize, CaptureError> {
    loop {
        match source.read(room) {
            Ok(got) => return Ok(got.min(room.len())),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            // Python's read1 gives None when a non-blocking stream has nothing: the end too.
            Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(0),
            Err(error) => {
                let message = format!("cannot read {name}: {}", strerror(&error));
                return Err(CaptureError::new(message, Some(offset)));
            }
        }
    }
}

/// The error's text as Python's OSError.strerror gives it: without " (os error N)".
fn strerror(error: &std::io::Error) -> String {
    let text = error.to_string();
    match error.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .unwrap_or(&text)
            .to_string(),
        None => text,
    }
}

/// Iterates the packet records of one capture (call `next_frame` until it gives Ok(None)).
pub struct CaptureReader<R: Read> {
    input: Input<R>,
    walker: Walker,
    tally: Tally,
    done: bool,
}

impl<R: Read> CaptureReader<R> {
    /// Reads and checks the file header; errors as pcapfile.py's constructor raises them.
    pub fn new(source: R, name: &str) -> Result<Self, CaptureError> {
        let mut input = Input {
            source,
            name: name.to_string(),
            buf: Vec::new(),
            pos: 0,
            filled: 0,
            base: 0,
            eof: false,
            bytes_read: 0,
        };
        input.fill(4)?;
        let magic = input.avail().get(..4).unwrap_or(input.avail());
        let walker = if magic.is_empty() {
            return Err(CaptureError::new("empty file".to_string(), Some(0)));
        } else if pcap::is_magic(magic) {
            Walker::Pcap(pcap_header(&mut input)?)
        } else if magic == pcapng::SHB_BYTES {
            check_first_section_header(&mut input)?;
            Walker::Pcapng(Section::new())
        } else {
            let message = format!("not a pcap or pcapng file ({})", describe_magic(magic));
            return Err(CaptureError::new(message, Some(0)));
        };
        Ok(CaptureReader {
            input,
            walker,
            tally: Tally::default(),
            done: false,
        })
    }

    /// The next packet record, borrowing the reader's buffer; Ok(None) at the end or after
    /// damage (then a line is in warnings()). Err only for an I/O error while reading.
    pub fn next_frame(&mut self) -> Result<Option<RawFrame<'_>>, CaptureError> {
        while !self.done {
            let avail = self.input.avail();
            let buffered = avail.len();
            let offset = self.input.offset();
            let parsed = match &mut self.walker {
                Walker::Pcap(pcap) => pcap.step(avail, offset, &mut self.tally),
                Walker::Pcapng(section) => section.step(avail, offset, &mut self.tally),
            };
            match parsed {
                Parsed::Frame {
                    consumed,
                    data,
                    ts,
                    linktype,
                    wirelen,
                } => {
                    let start = self.input.pos;
                    self.input.pos += consumed;
                    let range = start + data.start..start + data.end;
                    return Ok(Some(RawFrame {
                        frame: self.tally.frame,
                        ts,
                        linktype,
                        // the parser took `data` from the record it checked was buffered
                        data: self.input.buf.get(range).unwrap_or_default(),
                        wirelen,
                    }));
                }
                Parsed::Skip(consumed) => self.input.pos += consumed,
                // A parser asking for bytes it has would loop: it cannot, but must not hang.
                Parsed::Need(need) if need <= buffered => self.done = true,
                Parsed::Need(need) => {
                    let have = self.input.fill(need)?;
                    if have < need {
                        self.truncated(have, need);
                        self.done = true;
                    }
                }
                Parsed::Stop => self.done = true,
            }
        }
        Ok(None)
    }

    /// The stream ended `have` bytes into a record or block of `need`.
    fn truncated(&mut self, have: usize, need: usize) {
        if have == 0 {
            return;
        }
        let (frames, offset) = (self.tally.frame, self.input.offset());
        self.tally.warnings.push(match self.walker {
            Walker::Pcap(_) => pcap::truncated_record_warning(frames, offset, have, need),
            Walker::Pcapng(_) => pcapng::truncated_block_warning(frames, offset, have, need),
        });
    }

    pub fn format(&self) -> Format {
        match self.walker {
            Walker::Pcap(_) => Format::Pcap,
            Walker::Pcapng(_) => Format::Pcapng,
        }
    }

    /// A classic pcap's one link type (pcapng: per interface, on each frame).
    pub fn linktype(&self) -> Option<u32> {
        match &self.walker {
            Walker::Pcap(pcap) => Some(pcap.linktype),
            Walker::Pcapng(_) => None,
        }
    }

    /// Non-fatal problems, one line each, filled while iterating.
    pub fn warnings(&self) -> &[String] {
        &self.tally.warnings
    }

    /// Bytes taken from the source so far.
    pub fn bytes_read(&self) -> u64 {
        self.input.bytes_read
    }

    /// The kernel's reasons saved by `rstdiag live -w --kernel-reasons` in the comments of
    /// the frames read since the last call, by frame number (src/kernel_note.rs).
    pub fn take_notes(&mut self) -> Vec<(u64, Note)> {
        std::mem::take(&mut self.tally.notes)
    }

    /// Packet records numbered but not yielded (on an undeclared pcapng interface).
    pub fn skipped_frames(&self) -> u64 {
        self.tally.skipped_frames
    }
}

/// The classic pcap file header, consumed from `input`.
fn pcap_header<R: Read>(input: &mut Input<R>) -> Result<Pcap, CaptureError> {
    let have = input.fill(pcap::HEADER_LEN)?;
    let header = match input.avail().get(..pcap::HEADER_LEN) {
        Some(header) => Pcap::from_header(header),
        None => {
            return Err(CaptureError::new(
                format!(
                    "truncated pcap file header: the file ends after {have} of {} bytes",
                    pcap::HEADER_LEN
                ),
                Some(0),
            ))
        }
    };
    input.pos += pcap::HEADER_LEN;
    // from_header fails only on a magic the caller has already checked
    header.ok_or_else(|| CaptureError::new("not a pcap or pcapng file".to_string(), Some(0)))
}

/// A damaged first Section Header Block means the file cannot be read at all. It is left in
/// the buffer: the block walker reads it again as the start of the first section.
fn check_first_section_header<R: Read>(input: &mut Input<R>) -> Result<(), CaptureError> {
    let have = input.fill(pcapng::HEAD_LEN)?;
    if have < pcapng::HEAD_LEN {
        return Err(CaptureError::new(
            format!(
                "truncated pcapng section header: the file ends after {have} of {} bytes",
                pcapng::SHB_MIN_LEN
            ),
            Some(0),
        ));
    }
    loop {
        match pcapng::first_section_header_problem(input.avail()) {
            Ok(None) => return Ok(()),
            Err(message) => return Err(CaptureError::new(message, Some(0))),
            Ok(Some(need)) => {
                let have = input.fill(need)?;
                if have < need {
                    return Err(CaptureError::new(
                        format!(
                            "truncated pcapng section header: the file ends after {have} of \
                             {need} bytes"
                        ),
                        Some(0),
                    ));
                }
            }
        }
    }
}

/// First bytes of files people mistake for captures -> a hint for the error message
const MAGIC_HINTS: [(&[u8], &str); 8] = [
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zX", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"PK\x03\x04", "zip"),
    (b"snoo", "snoop capture, unsupported"),
    (
        b"\xa1\xb2\xcd\x34",
        "modified pcap (Kuznetzov), unsupported",
    ),
    (
        b"\x34\xcd\xb2\xa1",
        "modified pcap (Kuznetzov), unsupported",
    ),
];

/// 'starts with 0x1f8b0800: gzip?': what the first (up to 4) bytes suggest the file is.
fn describe_magic(magic: &[u8]) -> String {
    let text = format!("starts with 0x{}", pcapng::hex(magic));
    if let Some((_, kind)) = MAGIC_HINTS
        .iter()
        .find(|(prefix, _)| magic.starts_with(prefix))
    {
        return format!("{text}: {kind}?");
    }
    if magic
        .iter()
        .all(|byte| (32..127).contains(byte) || b"\t\r\n".contains(byte))
    {
        return format!("{text}: text?");
    }
    if let Some(bytes) = magic.first_chunk::<4>() {
        let packet_block = |btype: u32| matches!(btype, 1 | 2 | 3 | 6);
        if packet_block(u32::from_le_bytes(*bytes)) || packet_block(u32::from_be_bytes(*bytes)) {
            return format!("{text}: pcapng blocks without a section header?");
        }
    }
    text
}

/// "1 frame", "2 frames"
fn frames(count: u64) -> String {
    if count == 1 {
        "1 frame".to_string()
    } else {
        format!("{count} frames")
    }
}
