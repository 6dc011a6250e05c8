//! The front half of the pipeline: a capture's frames read and decoded a batch at a time.
//!
//! Reading (a copy out of the page cache) and decoding take about as long as tracking and
//! judging, so the runner gives each half a thread of its own: a `Batch` is everything the
//! back half (`engine::Analysis::apply`) needs of the frames it covers, owned, so that it can
//! cross between them.

use std::collections::HashSet;
use std::io::Read;

use crate::capture::{CaptureError, CaptureReader};
use crate::decode::{is_supported_linktype, Decoder};
use crate::kernel_note::Note;
use crate::records::Packet;

/// A batch of frames, decoded.
#[derive(Debug, Default)]
pub struct Batch {
    /// the TCP packets among the frames, in frame order
    pub packets: Vec<Packet>,
    /// earliest and latest time of any frame of the batch, decoded or not
    pub first_ts: Option<f64>,
    pub last_ts: Option<f64>,
    /// link types rstdiag cannot decode, each the first time the front met it
    pub unsupported: Vec<u32>,
    /// false once the capture ended (or the frame limit was reached) within the batch
    pub more: bool,
    /// reading failed after the frames of this batch
    pub error: Option<CaptureError>,
    /// the kernel's reasons the capture saved in the comments of these frames
    pub notes: Vec<(u64, Note)>,
}

/// Reads and decodes; owns the decoder's counters and the `-c` frame limit.
#[derive(Debug, Default)]
pub struct Front {
    pub decoder: Decoder,
    frames_left: Option<u64>,
    unsupported_seen: HashSet<u32>,
}

impl Front {
    pub fn new() -> Self {
        Front::default()
    }

    /// Read no more than `frames` frames of the capture, as if it ended there (`-c`).
    pub fn limit_frames(&mut self, frames: u64) {
        self.frames_left = Some(frames);
    }

    /// Up to `limit` frames of `reader`, decoded.
    pub fn batch<R: Read>(&mut self, reader: &mut CaptureReader<R>, limit: usize) -> Batch {
        self.batch_into(reader, limit, Vec::with_capacity(limit.min(1 << 16)))
    }

    /// `batch`, its packets in `packets` (emptied first): a Vec a previous batch gave back,
    /// so that a run allocates (and the kernel zeroes) a batch's megabyte a few times, not
    /// once per batch.
    pub fn batch_into<R: Read>(
        &mut self,
        reader: &mut CaptureReader<R>,
        limit: usize,
        mut packets: Vec<Packet>,
    ) -> Batch {
        packets.clear();
        let mut batch = Batch {
            packets,
            more: true,
            ..Batch::default()
        };
        for _ in 0..limit {
            if self.frames_left == Some(0) {
                batch.more = false;
                break;
            }
            let raw = match reader.next_frame() {
                Ok(Some(raw)) => raw,
                Ok(None) => {
                    batch.more = false;
                    break;
                }
                Err(err) => {
                    batch.more = false;
                    batch.error = Some(err);
                    break;
                }
            };
            self.frames_left = self.frames_left.map(|n| n.saturating_sub(1));
            let ts = raw.ts;
            if batch.first_ts.is_none_or(|first| ts < first) {
                batch.first_ts = Some(ts);
            }
            if batch.last_ts.is_none_or(|last| ts > last) {
                batch.last_ts = Some(ts);
            }
            match self.decoder.decode(&raw) {
                Some(pkt) => batch.packets.push(pkt),
                None => {
                    let linktype = raw.linktype;
                    if !is_supported_linktype(linktype) && self.unsupported_seen.insert(linktype) {
                        batch.unsupported.push(linktype);
                    }
                }
            }
        }
        batch.notes = reader.take_notes();
        batch
    }
}
