//! The `-w` file of a live capture: classic pcap (host byte order, nanosecond timestamps),
//! or pcapng with `--kernel-reasons`, whose RSTs carry the kernel's reason in a packet
//! comment (src/kernel_note.rs).
//!
//! Records are collected in memory and written whole by `flush` (a few times a second, and
//! whenever a megabyte waits), so the file is a valid capture at every moment: a kill loses
//! at most the last flush's records, never leaves half a record. When a write fails (disk
//! full), the records that still fit are written one by one, the file is cut back to its
//! last whole record, and the writer stops: the error is kept for the caller, which stops
//! the capture with its summary.
//!
//! In pcapng, each RST's block reserves a comment of fixed size saying no reason is known;
//! the kernel's reason, matched a second or two later by the caller, overwrites those bytes
//! where they are (in the buffer, or in the file if it was flushed already). Nothing moves,
//! so packets stay in capture order and nothing waits for a reason.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use crate::kernel_note;

const NANO_MAGIC: u32 = 0xA1B2_3C4D;
const FLUSH_BYTES: usize = 1 << 20;
const PCAP_HEADER: usize = 24;
const PCAP_RECORD: usize = 16;
// pcapng
const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const OPT_ENDOFOPT: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
const EPB_HEAD: usize = 28;
/// A RST's comment waits this long (capture time) for its reason, at most
const SLOT_SECONDS: u32 = 30;
/// and no more than this many RSTs wait at once (24 bytes each): memory stays bounded
/// whatever the rate of RSTs.
const MAX_SLOTS: usize = 1 << 20;

/// A RST whose comment may still get the kernel's reason.
#[derive(Clone, Copy, Debug)]
struct Slot {
    frame: u64,
    /// file offset of the comment's value
    at: u64,
    sec: u32,
}

pub struct PcapOut {
    file: File,
    buf: Vec<u8>,
    /// bytes of whole records (and the header) written to the file
    committed: u64,
    pub records: u64,
    failed: Option<String>,
    pcapng: bool,
    /// the RSTs waiting for their reason, in frame order
    slots: VecDeque<Slot>,
}

/// An I/O error as one line, in the system's words (without Rust's " (os error N)").
pub fn io_text(err: &io::Error) -> String {
    let text = err.to_string();
    text.split(" (os error").next().unwrap_or(&text).to_string()
}

fn pad4(n: usize) -> usize {
    n.next_multiple_of(4)
}

/// One option: code, length, value (at most 65535 bytes) padded to 32 bits.
fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    let value = value.get(..value.len().min(0xFFFF)).unwrap_or_default();
    out.extend_from_slice(&code.to_ne_bytes());
    out.extend_from_slice(&(value.len() as u16).to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(out.len() + pad4(value.len()) - value.len(), 0);
}

/// A whole block: type, total length, `body` (a multiple of 4 bytes), total length.
fn block(out: &mut Vec<u8>, btype: u32, body: &[u8]) {
    let length = (body.len() + 12) as u32;
    out.extend_from_slice(&btype.to_ne_bytes());
    out.extend_from_slice(&length.to_ne_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&length.to_ne_bytes());
}

fn pcap_header(linktype: u32, snaplen: u32) -> Vec<u8> {
    let mut header = Vec::with_capacity(PCAP_HEADER);
    header.extend_from_slice(&NANO_MAGIC.to_ne_bytes());
    header.extend_from_slice(&2u16.to_ne_bytes());
    header.extend_from_slice(&4u16.to_ne_bytes());
    header.extend_from_slice(&0i32.to_ne_bytes());
    header.extend_from_slice(&0u32.to_ne_bytes());
    header.extend_from_slice(&snaplen.to_ne_bytes());
    header.extend_from_slice(&linktype.to_ne_bytes());
    header
}

/// A Section Header Block (version 1.0, length unknown, naming rstdiag) and the one
/// interface's Description Block (its name, nanosecond timestamps).
fn pcapng_header(linktype: u32, snaplen: u32, interface: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = Vec::new();
    body.extend_from_slice(&BYTE_ORDER_MAGIC.to_ne_bytes());
    body.extend_from_slice(&1u16.to_ne_bytes());
    body.extend_from_slice(&0u16.to_ne_bytes());
    body.extend_from_slice(&(-1i64).to_ne_bytes());
    let app = format!("rstdiag {} live", env!("CARGO_PKG_VERSION"));
    option(&mut body, SHB_USERAPPL, app.as_bytes());
    option(&mut body, OPT_ENDOFOPT, b"");
    block(&mut out, SHB, &body);
    body.clear();
    body.extend_from_slice(&(linktype as u16).to_ne_bytes());
    body.extend_from_slice(&0u16.to_ne_bytes());
    body.extend_from_slice(&snaplen.to_ne_bytes());
    if !interface.is_empty() {
        option(&mut body, IF_NAME, interface.as_bytes());
    }
    option(&mut body, IF_TSRESOL, &[9]);
    option(&mut body, OPT_ENDOFOPT, b"");
    block(&mut out, IDB, &body);
    out
}

impl PcapOut {
    /// Create (or truncate) `path` as a classic pcap and write the file header.
    pub fn create(path: &str, linktype: u32, snaplen: u32) -> io::Result<PcapOut> {
        PcapOut::open(path, &pcap_header(linktype, snaplen), false)
    }

    /// Create (or truncate) `path` as pcapng (one section, one interface named
    /// `interface`), whose RSTs get a comment for the kernel's reason (`write_rst`, `note`).
    pub fn create_pcapng(
        path: &str,
        linktype: u32,
        snaplen: u32,
        interface: &str,
    ) -> io::Result<PcapOut> {
        PcapOut::open(path, &pcapng_header(linktype, snaplen, interface), true)
    }

    fn open(path: &str, header: &[u8], pcapng: bool) -> io::Result<PcapOut> {
        let mut file = File::create(path)?;
        file.write_all(header)?;
        Ok(PcapOut::on(file, header.len() as u64, pcapng))
    }

    fn on(file: File, committed: u64, pcapng: bool) -> PcapOut {
        PcapOut {
            file,
            buf: Vec::with_capacity(FLUSH_BYTES + 65536),
            committed,
            records: 0,
            failed: None,
            pcapng,
            slots: VecDeque::new(),
        }
    }

    /// Whether the file is pcapng, whose RSTs keep the kernel's reason.
    pub fn keeps_reasons(&self) -> bool {
        self.pcapng
    }

    /// One record: `prefix` (a built link header, or nothing) followed by `data`.
    pub fn write(&mut self, sec: u32, nsec: u32, prefix: &[u8], data: &[u8], wirelen: u32) {
        self.record(sec, nsec, prefix, data, wirelen, false);
    }

    /// `write` for a RST: in pcapng, with the comment its kernel reason will fill (`note`).
    pub fn write_rst(&mut self, sec: u32, nsec: u32, prefix: &[u8], data: &[u8], wirelen: u32) {
        self.record(sec, nsec, prefix, data, wirelen, true);
    }

    fn record(&mut self, sec: u32, nsec: u32, prefix: &[u8], data: &[u8], wirelen: u32, rst: bool) {
        if self.failed.is_some() {
            return;
        }
        let caplen = prefix.len() + data.len();
        self.records += 1;
        if self.pcapng {
            self.epb(sec, nsec, prefix, data, wirelen, rst);
        } else {
            let b = &mut self.buf;
            b.extend_from_slice(&sec.to_ne_bytes());
            b.extend_from_slice(&nsec.to_ne_bytes());
            b.extend_from_slice(&(caplen as u32).to_ne_bytes());
            b.extend_from_slice(&wirelen.to_ne_bytes());
            b.extend_from_slice(prefix);
            b.extend_from_slice(data);
        }
        if self.buf.len() >= FLUSH_BYTES {
            self.flush();
        }
    }

    /// An Enhanced Packet Block on interface 0; a RST's with its reserved comment.
    fn epb(&mut self, sec: u32, nsec: u32, prefix: &[u8], data: &[u8], wirelen: u32, rst: bool) {
        let caplen = prefix.len() + data.len();
        let options = if rst {
            4 + kernel_note::RESERVED + 4
        } else {
            0
        };
        let length = (EPB_HEAD + pad4(caplen) + options + 4) as u32;
        let ticks = u64::from(sec) * 1_000_000_000 + u64::from(nsec);
        let b = &mut self.buf;
        b.extend_from_slice(&EPB.to_ne_bytes());
        b.extend_from_slice(&length.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&((ticks >> 32) as u32).to_ne_bytes());
        b.extend_from_slice(&(ticks as u32).to_ne_bytes());
        b.extend_from_slice(&(caplen as u32).to_ne_bytes());
        b.extend_from_slice(&wirelen.to_ne_bytes());
        b.extend_from_slice(prefix);
        b.extend_from_slice(data);
        b.resize(b.len() + pad4(caplen) - caplen, 0);
        if rst {
            b.extend_from_slice(&OPT_COMMENT.to_ne_bytes());
            b.extend_from_slice(&(kernel_note::RESERVED as u16).to_ne_bytes());
            let at = self.committed + b.len() as u64;
            b.extend_from_slice(&kernel_note::placeholder());
            b.extend_from_slice(&OPT_ENDOFOPT.to_ne_bytes());
            b.extend_from_slice(&0u16.to_ne_bytes());
            self.keep_slot(Slot {
                frame: self.records,
                at,
                sec,
            });
        }
        self.buf.extend_from_slice(&length.to_ne_bytes());
    }

    fn keep_slot(&mut self, slot: Slot) {
        while self.slots.front().is_some_and(|old| {
            self.slots.len() >= MAX_SLOTS || old.sec.saturating_add(SLOT_SECONDS) < slot.sec
        }) {
            self.slots.pop_front();
        }
        self.slots.push_back(slot);
    }

    /// The kernel's reason `text` ("REASON in STATE") into the comment of the RST of frame
    /// `frame`, in place; whether it went in (not a RST of this file, or forgotten, or a
    /// text the reader would not take back: no).
    pub fn note(&mut self, frame: u64, text: &str) -> bool {
        let Some(value) = kernel_note::reason_value(text) else {
            return false;
        };
        let Ok(index) = self.slots.binary_search_by_key(&frame, |s| s.frame) else {
            return false;
        };
        let Some(slot) = self.slots.remove(index) else {
            return false;
        };
        let end = slot.at + value.len() as u64;
        if slot.at >= self.committed {
            let start = (slot.at - self.committed) as usize;
            return match self.buf.get_mut(start..start + value.len()) {
                Some(room) => {
                    room.copy_from_slice(&value);
                    true
                }
                None => false,
            };
        }
        // in the file already: overwritten where it is (never past its last whole record)
        end <= self.committed && self.file.write_all_at(&value, slot.at).is_ok()
    }

    /// Write what waits. On failure the file is cut back to its last whole record, and
    /// every later write is ignored: `error` says why.
    pub fn flush(&mut self) {
        if self.buf.is_empty() || self.failed.is_some() {
            return;
        }
        match self.file.write_all(&self.buf) {
            Ok(()) => self.committed += self.buf.len() as u64,
            Err(err) => {
                let _ = self.file.set_len(self.committed);
                self.salvage();
                self.failed = Some(io_text(&err));
            }
        }
        self.buf.clear();
    }

    /// The length of the record at the start of `rest`, if its header is there.
    fn record_len(&self, rest: &[u8]) -> Option<usize> {
        let at = if self.pcapng { 4 } else { 8 };
        let field = rest.get(at..at + 4)?;
        let n = u32::from_ne_bytes([field[0], field[1], field[2], field[3]]) as usize;
        Some(if self.pcapng { n } else { PCAP_RECORD + n })
    }

    /// After a failed write: as many of the waiting records as still fit, one at a time,
    /// the file cut back after the last whole one.
    fn salvage(&mut self) {
        let _ = self.file.seek(SeekFrom::Start(self.committed));
        let mut at = 0usize;
        while let Some(len) = self.buf.get(at..).and_then(|rest| self.record_len(rest)) {
            let end = at + len;
            let Some(record) = self.buf.get(at..end) else {
                break;
            };
            if len == 0 || self.file.write_all(record).is_err() {
                let _ = self.file.set_len(self.committed);
                break;
            }
            self.committed += record.len() as u64;
            at = end;
        }
    }

    pub fn error(&self) -> Option<&str> {
        self.failed.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_reach_the_file_whole_at_each_flush() {
        let dir = std::env::temp_dir().join(format!("rstdiag-pcapout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("w.pcap");
        let name = path.to_str().expect("utf-8 path");
        let mut out = PcapOut::create(name, 1, 262144).expect("create");
        out.write(7, 9, b"", b"abc", 60);
        assert_eq!(std::fs::metadata(&path).expect("file").len(), 24);
        out.flush();
        let bytes = std::fs::read(&path).expect("read back");
        assert_eq!(bytes.len(), 24 + 16 + 3);
        assert_eq!(&bytes[0..4], &NANO_MAGIC.to_ne_bytes());
        assert_eq!(&bytes[24 + 8..24 + 12], &3u32.to_ne_bytes());
        assert_eq!(&bytes[40..], b"abc");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_flushed_at_any_point_reads_back_to_its_last_record() {
        let dir = std::env::temp_dir().join(format!("rstdiag-pcapread-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("w.pcap");
        let name = path.to_str().expect("utf-8 path");
        let mut out = PcapOut::create(name, 1, 262144).expect("create");
        let frames = |path: &std::path::Path| {
            let file = std::fs::File::open(path).expect("open");
            let mut reader = crate::capture::CaptureReader::new(file, "w.pcap").expect("pcap");
            let mut n = 0;
            while let Some(raw) = reader.next_frame().expect("whole records") {
                assert_eq!(raw.data.len(), 60);
                n += 1;
            }
            n
        };
        for i in 0..5u32 {
            out.write(i, 0, &[0u8; 14], &[1u8; 46], 60);
        }
        out.flush(); // as the live loop does a few times a second: a kill now loses nothing
        assert_eq!(frames(&path), 5);
        for i in 0..3u32 {
            out.write(i, 0, &[], &[2u8; 60], 60);
        }
        assert_eq!(frames(&path), 5, "records wait for the next flush");
        out.flush();
        assert_eq!((frames(&path), out.records), (8, 8));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_device_is_one_error_and_every_later_write_is_ignored() {
        let created = PcapOut::create("/dev/full", 1, 262144);
        assert_eq!(
            created.err().map(|e| io_text(&e)).as_deref(),
            Some("No space left on device")
        );
        // a file whose header went in, on a disk that is full by the first flush
        let file = File::options()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let mut out = PcapOut::on(file, 24, false);
        out.write(1, 0, &[], &[0u8; 60], 60);
        out.flush();
        assert_eq!(out.error(), Some("No space left on device"));
        out.write(2, 0, &[], &[0u8; 60], 60);
        assert!(out.buf.is_empty(), "nothing more is collected");
        assert_eq!(out.records, 1);
    }

    fn temp(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("rstdiag-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("w.pcapng");
        (dir, path)
    }

    /// (frame, time, captured length) of each frame of a written file.
    type Frames = Vec<(u64, f64, usize)>;

    /// Frames and kernel-reason notes of a written file, as `read` takes them.
    fn read_back(path: &std::path::Path) -> (Frames, Vec<(u64, String)>) {
        let file = File::open(path).expect("open");
        let mut reader = crate::capture::CaptureReader::new(file, "w").expect("a capture");
        let mut frames = Vec::new();
        while let Some(raw) = reader.next_frame().expect("whole blocks") {
            frames.push((raw.frame, raw.ts, raw.data.len()));
        }
        assert!(reader.warnings().is_empty(), "{:?}", reader.warnings());
        let notes = reader.take_notes();
        let notes = notes
            .iter()
            .map(|(f, n)| (*f, n.text().to_string()))
            .collect();
        (frames, notes)
    }

    #[test]
    fn pcapng_rsts_carry_a_comment_that_their_kernel_reason_fills_in_place() {
        let (dir, path) = temp("pcapng");
        let name = path.to_str().expect("utf-8 path");
        let mut out = PcapOut::create_pcapng(name, 1, 262144, "eth0").expect("create");
        assert!(out.keeps_reasons());
        out.write(100, 5, b"", &[1u8; 61], 61);
        out.write_rst(100, 7, &[0u8; 14], &[2u8; 40], 54);
        out.write_rst(101, 0, b"", &[3u8; 54], 54);
        out.flush();
        let (frames, notes) = read_back(&path);
        assert_eq!(
            frames,
            vec![
                (1, 100.000000005, 61),
                (2, 100.000000007, 54),
                (3, 101.0, 54)
            ]
        );
        assert_eq!(notes, vec![(2, String::new()), (3, String::new())]);
        // one reason into the file as flushed, one into a block still in the buffer
        assert!(out.note(3, "TCP_ABORT_ON_CLOSE in TCP_CLOSE"));
        out.write_rst(102, 0, b"", &[4u8; 54], 54);
        assert!(out.note(4, "NO_SOCKET"));
        let size = std::fs::metadata(&path).expect("file").len();
        out.flush();
        assert_eq!(
            read_back(&path).1,
            vec![
                (2, String::new()),
                (3, "TCP_ABORT_ON_CLOSE in TCP_CLOSE".to_string()),
                (4, "NO_SOCKET".to_string())
            ]
        );
        assert!(std::fs::metadata(&path).expect("file").len() > size);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_reason_for_no_waiting_rst_changes_nothing() {
        let (dir, path) = temp("pcapng-none");
        let name = path.to_str().expect("utf-8 path");
        let mut out = PcapOut::create_pcapng(name, 1, 262144, "").expect("create");
        out.write(1, 0, b"", &[0u8; 60], 60);
        out.write_rst(2, 0, b"", &[0u8; 60], 60);
        assert!(!out.note(1, "NO_SOCKET"), "not a RST");
        assert!(!out.note(9, "NO_SOCKET"), "no such frame");
        assert!(
            !out.note(2, "not a reason\n"),
            "not a reason as the tracepoint gives it"
        );
        assert!(out.note(2, "TCP_STATE in TCP_CLOSE"));
        assert!(!out.note(2, "NO_SOCKET"), "a RST gets one reason");
        out.flush();
        assert_eq!(
            read_back(&path).1,
            vec![(2, "TCP_STATE in TCP_CLOSE".to_string())]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rsts_waiting_for_a_reason_are_forgotten_after_a_while() {
        let (dir, path) = temp("pcapng-forget");
        let name = path.to_str().expect("utf-8 path");
        let mut out = PcapOut::create_pcapng(name, 1, 262144, "").expect("create");
        out.write_rst(1000, 0, b"", &[0u8; 60], 60);
        out.write_rst(1000 + SLOT_SECONDS + 1, 0, b"", &[0u8; 60], 60);
        assert_eq!(out.slots.len(), 1);
        assert!(!out.note(1, "NO_SOCKET"));
        assert!(out.note(2, "NO_SOCKET"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_device_cuts_a_pcapng_back_to_its_last_whole_block() {
        let file = File::options()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let mut out = PcapOut::on(file, 64, true);
        out.write_rst(1, 0, &[], &[0u8; 60], 60);
        out.flush();
        assert_eq!(out.error(), Some("No space left on device"));
        assert_eq!(out.committed, 64, "no block went in");
        assert!(
            !out.note(1, "NO_SOCKET"),
            "never written past the file's end"
        );
    }
}
