//! The `-w` file of a live capture: classic pcap, host byte order, nanosecond timestamps.
//!
//! Records are collected in memory and written whole by `flush` (a few times a second, and
//! whenever a megabyte waits), so the file is a valid capture at every moment: a kill loses
//! at most the last flush's records, never leaves half a record. When a write fails (disk
//! full), the records that still fit are written one by one, the file is cut back to its
//! last whole record, and the writer stops: the error is kept for the caller, which stops
//! the capture with its summary.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};

const NANO_MAGIC: u32 = 0xA1B2_3C4D;
const FLUSH_BYTES: usize = 1 << 20;

pub struct PcapOut {
    file: File,
    buf: Vec<u8>,
    /// bytes of whole records (and the header) written to the file
    committed: u64,
    pub records: u64,
    failed: Option<String>,
}

/// An I/O error as one line, in the system's words (without Rust's " (os error N)").
pub fn io_text(err: &io::Error) -> String {
    let text = err.to_string();
    text.split(" (os error").next().unwrap_or(&text).to_string()
}

impl PcapOut {
    /// Create (or truncate) `path` and write the file header.
    pub fn create(path: &str, linktype: u32, snaplen: u32) -> io::Result<PcapOut> {
        let mut file = File::create(path)?;
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&NANO_MAGIC.to_ne_bytes());
        header.extend_from_slice(&2u16.to_ne_bytes());
        header.extend_from_slice(&4u16.to_ne_bytes());
        header.extend_from_slice(&0i32.to_ne_bytes());
        header.extend_from_slice(&0u32.to_ne_bytes());
        header.extend_from_slice(&snaplen.to_ne_bytes());
        header.extend_from_slice(&linktype.to_ne_bytes());
        file.write_all(&header)?;
        Ok(PcapOut {
            file,
            buf: Vec::with_capacity(FLUSH_BYTES + 65536),
            committed: 24,
            records: 0,
            failed: None,
        })
    }

    /// One record: `prefix` (a built link header, or nothing) followed by `data`.
    pub fn write(&mut self, sec: u32, nsec: u32, prefix: &[u8], data: &[u8], wirelen: u32) {
        if self.failed.is_some() {
            return;
        }
        let caplen = (prefix.len() + data.len()) as u32;
        let b = &mut self.buf;
        b.extend_from_slice(&sec.to_ne_bytes());
        b.extend_from_slice(&nsec.to_ne_bytes());
        b.extend_from_slice(&caplen.to_ne_bytes());
        b.extend_from_slice(&wirelen.to_ne_bytes());
        b.extend_from_slice(prefix);
        b.extend_from_slice(data);
        self.records += 1;
        if self.buf.len() >= FLUSH_BYTES {
            self.flush();
        }
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

    /// After a failed write: as many of the waiting records as still fit, one at a time,
    /// the file cut back after the last whole one.
    fn salvage(&mut self) {
        let _ = self.file.seek(SeekFrom::Start(self.committed));
        let mut at = 0usize;
        while let Some(caplen) = self.buf.get(at + 8..at + 12) {
            let caplen = u32::from_ne_bytes([caplen[0], caplen[1], caplen[2], caplen[3]]);
            let end = at + 16 + caplen as usize;
            let Some(record) = self.buf.get(at..end) else {
                break;
            };
            if self.file.write_all(record).is_err() {
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
        let mut out = PcapOut {
            file,
            buf: Vec::new(),
            committed: 24,
            records: 0,
            failed: None,
        };
        out.write(1, 0, &[], &[0u8; 60], 60);
        out.flush();
        assert_eq!(out.error(), Some("No space left on device"));
        out.write(2, 0, &[], &[0u8; 60], 60);
        assert!(out.buf.is_empty(), "nothing more is collected");
        assert_eq!(out.records, 1);
    }
}
