//! One capture's analysis on threads of its own, handing verdicts over in batches.
//!
//! One thread reads and decodes (`front`), a second tracks and judges (`engine`): on the 2M
//! benchmark capture each half costs about 0.4 CPU-s, so a single capture's wall time halves.
//! The caller (Python: rendering, JSON, the table) consumes one batch of verdicts while the
//! engine judges the next. Bounded channels keep at most a few batches in flight: memory stays
//! flat however many packets or verdicts a capture holds.

use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::capture::{CaptureError, CaptureReader};
use crate::engine::Analysis;
use crate::front::{Batch, Front};
use crate::kernel_note::Note;
use crate::records::Packet;
use crate::verdict::Verdict;

/// Batches in flight between the engine's thread and its consumer.
const IN_FLIGHT: usize = 4;
/// Verdicts a batch holds at most: a capture of nothing but RSTs makes one per frame, and
/// batches of a frame batch's worth (65,536) held 100 MB in flight.
const VERDICTS_PER_BATCH: usize = 1024;

/// What the engine's thread says next.
pub enum Step {
    /// final verdicts, in frame order, and the capture's time span read so far
    Verdicts(Vec<Verdict>, Span),
    /// nothing within the wait: the caller may look at its own signals and wait again
    Waiting,
    /// the capture ended (or the run was stopped); the engine can be taken back
    Done,
    /// reading failed (an I/O error); the verdicts before it were sent
    Failed(CaptureError),
    /// a bug: a panic caught on the engine's thread, with its message
    Panicked(String),
}

/// The earliest and latest frame time read so far: what a consumer filtering by time needs
/// while the engine, with its counters, is on its own thread.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Span {
    pub first_ts: Option<f64>,
    pub last_ts: Option<f64>,
}

enum Message {
    Verdicts(Vec<Verdict>, Span),
    End(Result<(), CaptureError>),
    Panic(String),
}

type Outcome<R> = (Analysis, CaptureReader<R>);

/// The kernel's reasons saved in a capture's comments (src/kernel_note.rs), by frame, as the
/// engine's thread reads them: each batch's are in before its verdicts are sent, so a
/// consumer that takes them after a batch of verdicts has those of every verdict so far.
pub type Notes = Arc<Mutex<Vec<(u64, Note)>>>;

/// The engine running a capture on its own thread.
pub struct Runner<R: Read + Send + 'static> {
    // behind a lock only so that a Runner may be shared (a Python object must be Sync);
    // its one consumer never contends for it
    rx: Mutex<Receiver<Message>>,
    handle: Option<JoinHandle<Outcome<R>>>,
    cancel: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
    notes: Notes,
    spent: SyncSender<Vec<Verdict>>,
}

impl<R: Read + Send + 'static> Runner<R> {
    /// Start reading `reader` into `analysis`, `batch` frames at a time.
    /// `cancel` stops it after the current batch (and ends a Fed source given the same).
    pub fn spawn(
        analysis: Analysis,
        reader: CaptureReader<R>,
        batch: usize,
        cancel: Arc<AtomicBool>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let (spent, to_free) = sync_channel(IN_FLIGHT + 2);
        let bytes = Arc::new(AtomicU64::new(reader.bytes_read()));
        let notes = Notes::default();
        let (stop, progress, inbox) = (cancel.clone(), bytes.clone(), notes.clone());
        let handle = thread::Builder::new()
            .name("rstdiag-engine".to_string())
            .spawn(move || {
                let out = Out {
                    tx: &tx,
                    notes: &inbox,
                    spent: &to_free,
                };
                run(analysis, reader, batch, &out, &stop, &progress)
            })?;
        Ok(Runner {
            rx: Mutex::new(rx),
            handle: Some(handle),
            cancel,
            bytes,
            notes,
            spent,
        })
    }

    /// Give back verdicts the caller is done with, to be freed on the engine's thread, which
    /// made them: freed here, each would take the lock of the engine's malloc arena while the
    /// engine allocates from it (a third of the snaplen-96 benchmark's time went to that
    /// wait). Freed here after all when the engine's thread is gone or behind.
    pub fn spend(&self, verdicts: Vec<Verdict>) {
        if !verdicts.is_empty() {
            let _ = self.spent.try_send(verdicts);
        }
    }

    /// The next batch, or what happened, waiting at most `wait`.
    pub fn next(&self, wait: Duration) -> Step {
        let Ok(rx) = self.rx.lock() else {
            return Step::Done;
        };
        match rx.recv_timeout(wait) {
            Ok(Message::Verdicts(verdicts, span)) => Step::Verdicts(verdicts, span),
            Ok(Message::End(Ok(()))) | Err(RecvTimeoutError::Disconnected) => Step::Done,
            Ok(Message::End(Err(err))) => Step::Failed(err),
            Ok(Message::Panic(message)) => Step::Panicked(message),
            Err(RecvTimeoutError::Timeout) => Step::Waiting,
        }
    }

    /// Bytes the engine has taken from the capture so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Where the engine's thread leaves the kernel's reasons it reads (see `Notes`); after
    /// `stop`, any it had not handed over yet are still in the analysis (`take_notes`).
    pub fn notes(&self) -> Notes {
        self.notes.clone()
    }

    /// Stop after the current batch (or take back a finished engine): the analysis, its
    /// reader, and the verdicts still in flight, in frame order. None if the thread died.
    pub fn stop(mut self) -> Option<(Analysis, CaptureReader<R>, Vec<Verdict>)> {
        self.cancel.store(true, Ordering::Relaxed);
        let mut leftover = Vec::new();
        let handle = self.handle.take()?;
        let rx = self.rx.into_inner().ok()?;
        // Drain while waiting: a thread blocked on a full channel must be able to finish.
        while !handle.is_finished() {
            if let Ok(Message::Verdicts(mut verdicts, _)) =
                rx.recv_timeout(Duration::from_millis(20))
            {
                leftover.append(&mut verdicts);
            }
        }
        while let Ok(message) = rx.try_recv() {
            if let Message::Verdicts(mut verdicts, _) = message {
                leftover.append(&mut verdicts);
            }
        }
        let (analysis, reader) = handle.join().ok()?;
        Some((analysis, reader, leftover))
    }
}

/// Where the engine's thread hands over what it makes (verdicts, kernel reasons), and gets
/// back the verdicts its consumer is done with (`Runner::spend`).
struct Out<'a> {
    tx: &'a SyncSender<Message>,
    notes: &'a Notes,
    spent: &'a Receiver<Vec<Verdict>>,
}

fn run<R: Read + Send>(
    mut analysis: Analysis,
    mut reader: CaptureReader<R>,
    batch: usize,
    out: &Out<'_>,
    cancel: &AtomicBool,
    bytes: &AtomicU64,
) -> Outcome<R> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        drive(&mut analysis, &mut reader, batch, out, cancel, bytes)
    }));
    let last = match outcome {
        Ok(result) => Message::End(result),
        Err(payload) => Message::Panic(panic_text(payload.as_ref())),
    };
    let _ = out.tx.send(last); // the consumer may have gone: nothing left to tell
    (analysis, reader)
}

/// Reading and decoding on a thread of their own, tracking and judging on this one: the two
/// halves take about as long each. Falls back to one thread if a second cannot be started.
fn drive<R: Read + Send>(
    analysis: &mut Analysis,
    reader: &mut CaptureReader<R>,
    batch: usize,
    out: &Out<'_>,
    cancel: &AtomicBool,
    bytes: &AtomicU64,
) -> Result<(), CaptureError> {
    let mut front = analysis.take_front();
    let result = thread::scope(|scope| {
        let (batches, decoded) = sync_channel::<Decoded>(IN_FLIGHT);
        // the emptied Vecs of applied batches go back to the front for its next ones
        let (give_back, spares) = sync_channel::<Vec<Packet>>(IN_FLIGHT + 2);
        let front = &mut front;
        let reading = &mut *reader;
        let decoding = thread::Builder::new()
            .name("rstdiag-decode".to_string())
            .spawn_scoped(scope, move || {
                decode_all(front, reading, batch, (&batches, &spares), cancel, bytes)
            });
        match decoding {
            Ok(handle) => {
                let result = judge_all(analysis, &decoded, &give_back, out);
                drop(decoded); // a front blocked on a full channel sees the engine gone
                let _ = handle.join(); // its panics come over the channel as Decoded::Panic
                Some(result)
            }
            Err(_) => None,
        }
    });
    analysis.put_front(front);
    match result {
        Some(result) => result,
        None => sequential(analysis, reader, batch, out, cancel, bytes),
    }
}

/// What the front's thread sends the engine's.
enum Decoded {
    Batch(Batch),
    Panic(String),
}

fn decode_all<R: Read>(
    front: &mut Front,
    reader: &mut CaptureReader<R>,
    batch: usize,
    (out, spares): (&SyncSender<Decoded>, &Receiver<Vec<Packet>>),
    cancel: &AtomicBool,
    bytes: &AtomicU64,
) {
    let outcome = catch_unwind(AssertUnwindSafe(|| loop {
        let decoded = match spares.try_recv() {
            Ok(packets) => front.batch_into(reader, batch, packets),
            Err(_) => front.batch(reader, batch),
        };
        bytes.store(reader.bytes_read(), Ordering::Relaxed);
        let more = decoded.more;
        if out.send(Decoded::Batch(decoded)).is_err() || !more {
            return;
        }
        if cancel.load(Ordering::Relaxed) {
            return;
        }
    }));
    if let Err(payload) = outcome {
        let _ = out.send(Decoded::Panic(panic_text(payload.as_ref())));
    }
}

/// Every batch the front sends, through tracking and judging, verdicts out as they are
/// final. A run stopped early applies the batches already decoded (a few), so that the
/// counters cover the same frames as the verdicts.
fn judge_all(
    analysis: &mut Analysis,
    decoded: &Receiver<Decoded>,
    give_back: &SyncSender<Vec<Packet>>,
    out: &Out<'_>,
) -> Result<(), CaptureError> {
    while let Ok(message) = decoded.recv() {
        let mut batch = match message {
            Decoded::Batch(batch) => batch,
            // raised again here, where the engine's panics are caught and reported
            Decoded::Panic(message) => std::panic::resume_unwind(Box::new(message)),
        };
        let more = analysis.apply(&mut batch)?;
        let _ = give_back.try_send(std::mem::take(&mut batch.packets)); // or freed, if full
        if !send_verdicts(analysis, out) {
            return Ok(()); // the consumer is gone
        }
        if !more {
            return Ok(());
        }
    }
    Ok(())
}

/// Both halves on this thread, a batch at a time.
fn sequential<R: Read>(
    analysis: &mut Analysis,
    reader: &mut CaptureReader<R>,
    batch: usize,
    out: &Out<'_>,
    cancel: &AtomicBool,
    bytes: &AtomicU64,
) -> Result<(), CaptureError> {
    loop {
        let more = analysis.read(reader, batch)?;
        bytes.store(reader.bytes_read(), Ordering::Relaxed);
        if !send_verdicts(analysis, out) {
            return Ok(());
        }
        if !more || cancel.load(Ordering::Relaxed) {
            return Ok(());
        }
    }
}

/// The verdicts that are final, in batches of at most VERDICTS_PER_BATCH, after the kernel's
/// reasons read with them; false if the consumer is gone.
fn send_verdicts(analysis: &mut Analysis, out: &Out<'_>) -> bool {
    while let Ok(spent) = out.spent.try_recv() {
        drop(spent);
    }
    let mut notes = analysis.take_notes();
    if !notes.is_empty() {
        if let Ok(mut inbox) = out.notes.lock() {
            inbox.append(&mut notes);
        }
    }
    let tx = out.tx;
    let mut verdicts = analysis.take();
    let summary = analysis.summary();
    let span = Span {
        first_ts: summary.first_ts,
        last_ts: summary.last_ts,
    };
    while !verdicts.is_empty() {
        let rest = verdicts.split_off(verdicts.len().min(VERDICTS_PER_BATCH));
        if tx.send(Message::Verdicts(verdicts, span)).is_err() {
            return false;
        }
        verdicts = rest;
    }
    true
}

/// Bytes a Feeder reads from its stream at a time.
const FEED_CHUNK: usize = 256 << 10;
/// Chunks a Feeder may read ahead of the engine: 4 MiB, so that the engine does not wait
/// while its feeder's thread writes a batch of verdicts out.
const FEED_AHEAD: usize = 16;

/// A source read through a channel that its `Feeder` fills from another thread: a Python
/// stream, which only a Python thread may read (a thread of the engine that took the GIL
/// while the interpreter shut down would be ended by CPython, with an unwinding that aborts
/// the process). The engine's thread waits for chunks with a timeout and sees the end of
/// input when the run is stopped, so that stopping never waits on its feeder.
pub struct Fed {
    // locked only so that the source may sit in a Python object (Sync); never contended
    rx: Mutex<Receiver<std::io::Result<Vec<u8>>>>,
    spare: SyncSender<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
    ended: bool,
    cancel: Arc<AtomicBool>,
}

/// The filling end of a `Fed` source (see `fed`).
pub struct Feeder {
    tx: SyncSender<std::io::Result<Vec<u8>>>,
    // locked only so that a Feeder may sit in a Python object (Sync); never contended
    spares: Mutex<Receiver<Vec<u8>>>,
    /// a chunk read while the channel was full, sent first next time
    held: Option<std::io::Result<Vec<u8>>>,
    done: bool,
}

/// A source and its feeder; `cancel` ends the source early.
pub fn fed(cancel: Arc<AtomicBool>) -> (Fed, Feeder) {
    let (tx, rx) = sync_channel(FEED_AHEAD);
    let (spare, spares) = sync_channel::<Vec<u8>>(FEED_AHEAD + 1);
    let source = Fed {
        rx: Mutex::new(rx),
        spare,
        chunk: Vec::new(),
        pos: 0,
        ended: false,
        cancel,
    };
    let feeder = Feeder {
        tx,
        spares: Mutex::new(spares),
        held: None,
        done: false,
    };
    (source, feeder)
}

impl Feeder {
    /// Read `inner` into the source while it has room, until `until` (a slow stream must not
    /// hold its reader: progress, the verdicts ready); true while more is to come. An error
    /// goes to the engine in its place in the stream, as the end of it.
    pub fn top_up(&mut self, inner: &mut impl Read, until: Instant) -> bool {
        while !self.done && Instant::now() < until {
            let item = match self.held.take() {
                Some(item) => item,
                None => self.read_chunk(inner),
            };
            let last = !matches!(&item, Ok(chunk) if !chunk.is_empty());
            match self.tx.try_send(item) {
                Ok(()) => self.done = last,
                Err(TrySendError::Full(item)) => {
                    self.held = Some(item);
                    break;
                }
                Err(TrySendError::Disconnected(_)) => self.done = true, // the engine is gone
            }
        }
        !self.done
    }

    fn read_chunk(&mut self, inner: &mut impl Read) -> std::io::Result<Vec<u8>> {
        let spare = self
            .spares
            .lock()
            .ok()
            .and_then(|spares| spares.try_recv().ok());
        let mut chunk = spare.unwrap_or_else(|| vec![0; FEED_CHUNK]);
        chunk.resize(FEED_CHUNK, 0);
        loop {
            match inner.read(&mut chunk) {
                Ok(n) => {
                    chunk.truncate(n);
                    return Ok(chunk);
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }
}

impl Read for Fed {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(rest) = self.chunk.get(self.pos..).filter(|rest| !rest.is_empty()) {
                let n = rest.len().min(out.len());
                if let (Some(to), Some(from)) = (out.get_mut(..n), rest.get(..n)) {
                    to.copy_from_slice(from);
                }
                self.pos += n;
                return Ok(n);
            }
            if self.ended {
                return Ok(0);
            }
            let next = match self.rx.lock() {
                Ok(rx) => rx.recv_timeout(Duration::from_millis(50)),
                Err(_) => Err(RecvTimeoutError::Disconnected),
            };
            match next {
                Ok(Ok(chunk)) => {
                    let used = std::mem::replace(&mut self.chunk, chunk);
                    let _ = self.spare.try_send(used); // recycled, or dropped if none is wanted
                    self.pos = 0;
                    self.ended = self.chunk.is_empty();
                }
                Ok(Err(err)) => {
                    self.ended = true;
                    return Err(err);
                }
                Err(RecvTimeoutError::Timeout) if !self.cancel.load(Ordering::Relaxed) => {}
                Err(_) => self.ended = true, // stopped, or the feeder is gone
            }
        }
    }
}

/// How long a polled source waits for data before it looks at the stop flag again.
const POLL_WAIT: rustix::event::Timespec = rustix::event::Timespec {
    tv_sec: 0,
    tv_nsec: 50_000_000,
};

/// A pipe, FIFO or terminal read directly, waiting for data at most POLL_WAIT at a time: a
/// stopped run sees the end of input even while a writer keeps the pipe open, without the
/// feeder and the extra copy of `Fed` (which a Python stream still needs).
pub struct Polled {
    file: std::fs::File,
    cancel: Arc<AtomicBool>,
}

impl Polled {
    pub fn new(fd: std::os::fd::OwnedFd, cancel: Arc<AtomicBool>) -> Self {
        Polled {
            file: std::fs::File::from(fd),
            cancel,
        }
    }
}

impl Read for Polled {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        use rustix::event::{poll, PollFd, PollFlags};
        loop {
            if self.cancel.load(Ordering::Relaxed) {
                return Ok(0);
            }
            let mut fds = [PollFd::new(&self.file, PollFlags::IN)];
            // EINTR comes back as ErrorKind::Interrupted: the caller's signal handling
            if poll(&mut fds, Some(&POLL_WAIT))? > 0 {
                return self.file.read(out);
            }
        }
    }
}

/// A panic's message, for the one error line the user sees.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(records: usize) -> Vec<u8> {
        // a classic pcap of raw IPv4 TCP RSTs, each on a flow of its own
        let mut out = vec![
            0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 101, 0, 0, 0,
        ];
        for i in 0..records {
            let port = u16::try_from(1000 + i).unwrap_or(u16::MAX).to_be_bytes();
            let mut ip = vec![
                0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
            ];
            ip.extend_from_slice(&port);
            ip.extend_from_slice(&[0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x04, 0, 0, 0, 0, 0, 0]);
            let ts = u32::try_from(i).unwrap_or(0).to_le_bytes();
            out.extend_from_slice(&ts);
            out.extend_from_slice(&[0, 0, 0, 0, 40, 0, 0, 0, 40, 0, 0, 0]);
            out.extend_from_slice(&ip);
        }
        out
    }

    fn run_all(data: Vec<u8>, batch: usize) -> (Vec<Verdict>, Analysis) {
        let reader = CaptureReader::new(std::io::Cursor::new(data), "t").expect("capture");
        let runner =
            Runner::spawn(Analysis::new(None), reader, batch, Arc::default()).expect("thread");
        let mut verdicts = Vec::new();
        loop {
            match runner.next(Duration::from_secs(5)) {
                Step::Verdicts(mut v, _) => verdicts.append(&mut v),
                Step::Done => break,
                Step::Waiting => continue,
                Step::Failed(err) => panic!("failed: {err}"),
                Step::Panicked(message) => panic!("panicked: {message}"),
            }
        }
        let (mut analysis, _, mut leftover) = runner.stop().expect("joined");
        verdicts.append(&mut leftover);
        analysis.finish(true);
        verdicts.append(&mut analysis.take());
        (verdicts, analysis)
    }

    /// Copies up to `step` bytes of `data` from `*pos` into `out`: a test source's read.
    fn give(data: &[u8], pos: &mut usize, out: &mut [u8], step: usize) -> usize {
        let rest = data.get(*pos..).unwrap_or_default();
        let n = rest.len().min(out.len()).min(step);
        if let (Some(to), Some(from)) = (out.get_mut(..n), rest.get(..n)) {
            to.copy_from_slice(from);
        }
        *pos += n;
        n
    }

    #[test]
    fn every_verdict_arrives_once_in_frame_order_whatever_the_batch() {
        for batch in [1, 7, 1 << 16] {
            let (verdicts, analysis) = run_all(capture(50), batch);
            let frames: Vec<u64> = verdicts.iter().map(|v| v.frame).collect();
            assert_eq!(frames, (1..=50).collect::<Vec<u64>>(), "batch {batch}");
            assert_eq!(analysis.summary().rsts, 50);
        }
    }

    #[test]
    fn the_counters_cover_the_same_frames_as_reading_on_one_thread() {
        let (_, threaded) = run_all(capture(300), 7);
        let mut reader = CaptureReader::new(std::io::Cursor::new(capture(300)), "t").expect("pcap");
        let mut alone = Analysis::new(None);
        while alone.read(&mut reader, 7).expect("read") {}
        alone.finish(true);
        assert_eq!(threaded.summary(), alone.summary());
    }

    /// A disk that fails after `good` bytes.
    struct FailingDisk {
        data: Vec<u8>,
        pos: usize,
        good: usize,
    }

    impl Read for FailingDisk {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let good = self.data.get(..self.good).unwrap_or(&self.data);
            match give(good, &mut self.pos, out, 64) {
                0 => Err(std::io::Error::other("input/output error")),
                n => Ok(n),
            }
        }
    }

    #[test]
    fn a_read_error_arrives_after_the_verdicts_of_the_frames_before_it() {
        let data = capture(40);
        let good = 24 + 20 * (16 + 40); // the header and 20 whole records
        let reader = CaptureReader::new(FailingDisk { data, pos: 0, good }, "t").expect("pcap");
        let runner = Runner::spawn(Analysis::new(None), reader, 8, Arc::default()).expect("run");
        let mut seen = 0;
        let failed = loop {
            match runner.next(Duration::from_secs(5)) {
                Step::Verdicts(v, _) => seen += v.len(),
                Step::Waiting => continue,
                Step::Failed(err) => break err,
                Step::Done | Step::Panicked(_) => panic!("expected the read error"),
            }
        };
        assert!(failed.message.contains("input/output error"), "{failed}");
        let (mut analysis, _, leftover) = runner.stop().expect("joined");
        analysis.finish(false);
        assert_eq!(seen + leftover.len() + analysis.take().len(), 20);
    }

    /// A pipe whose writer never closes it: data, then a read that blocks for ever.
    struct OpenPipe {
        data: Vec<u8>,
        pos: usize,
    }

    impl Read for OpenPipe {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            match give(&self.data, &mut self.pos, out, 100) {
                0 => {
                    thread::park(); // the writer keeps the pipe open
                    Ok(0)
                }
                n => Ok(n),
            }
        }
    }

    #[test]
    fn a_stop_does_not_wait_for_a_writer_that_keeps_the_pipe_open() {
        let cancel = Arc::new(AtomicBool::new(false));
        let data = capture(20);
        let size = u64::try_from(data.len()).unwrap_or(u64::MAX);
        let (source, mut feeder) = fed(cancel.clone());
        // the feeder's thread, as a Python thread would feed a stream: blocked for ever once
        // the pipe is empty
        thread::spawn(move || {
            let mut pipe = OpenPipe { data, pos: 0 };
            while feeder.top_up(&mut pipe, Instant::now() + Duration::from_millis(100)) {
                thread::sleep(Duration::from_millis(1));
            }
        });
        let reader = CaptureReader::new(source, "pipe").expect("capture");
        let runner = Runner::spawn(Analysis::new(None), reader, 1, cancel).expect("thread");
        let (reported, _) = stop_once_read(runner, size);
        assert_eq!(reported, 20);
    }

    /// Wait until the run has read `size` bytes, then stop it (the source still open): the
    /// RSTs reported in all, and the frames the engine counted.
    fn stop_once_read<R: Read + Send + 'static>(runner: Runner<R>, size: u64) -> (usize, u64) {
        let mut seen = 0;
        while runner.bytes_read() < size {
            if let Step::Verdicts(v, _) = runner.next(Duration::from_millis(10)) {
                seen += v.len();
            }
        }
        let (mut analysis, _, leftover) = runner.stop().expect("joined");
        analysis.finish(false);
        let reported = seen + leftover.len() + analysis.take().len();
        (reported, analysis.summary().frames)
    }

    #[test]
    fn a_stopped_run_does_not_wait_for_a_polled_pipe_kept_open() {
        let (read_end, write_end) = rustix::pipe::pipe().expect("pipe");
        let data = capture(20);
        let size = u64::try_from(data.len()).unwrap_or(u64::MAX);
        let mut writer = std::fs::File::from(write_end);
        std::io::Write::write_all(&mut writer, &data).expect("write");
        let cancel = Arc::new(AtomicBool::new(false));
        let reader =
            CaptureReader::new(Polled::new(read_end, cancel.clone()), "pipe").expect("pcap");
        let runner = Runner::spawn(Analysis::new(None), reader, 1, cancel).expect("thread");
        // the writer still holds the pipe open: the stop must not wait for it
        let (reported, frames) = stop_once_read(runner, size);
        assert!(frames >= 1);
        assert_eq!(reported as u64, frames, "every RST read is reported");
        drop(writer);
    }

    /// A source with a bug: it panics once the header is read.
    struct Buggy {
        header: Vec<u8>,
    }

    impl Read for Buggy {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.header.is_empty() {
                panic!("a bug in a source");
            }
            let n = self.header.len().min(out.len());
            out.get_mut(..n)
                .unwrap_or_default()
                .copy_from_slice(self.header.drain(..n).as_slice());
            Ok(n)
        }
    }

    #[test]
    fn a_panic_on_the_engines_thread_is_reported_and_the_engine_given_back() {
        let header = capture(0);
        let reader = CaptureReader::new(Buggy { header }, "bug").expect("header");
        let runner =
            Runner::spawn(Analysis::new(None), reader, 16, Arc::default()).expect("thread");
        let step = runner.next(Duration::from_secs(5));
        assert!(matches!(step, Step::Panicked(ref m) if m == "a bug in a source"));
        assert!(runner.stop().is_some());
    }

    #[test]
    fn stopping_early_gives_back_the_engine_with_what_it_read() {
        let reader = CaptureReader::new(std::io::Cursor::new(capture(500)), "t").expect("pcap");
        let runner = Runner::spawn(Analysis::new(None), reader, 1, Arc::default()).expect("thread");
        let (mut analysis, _, leftover) = runner.stop().expect("joined");
        analysis.finish(false);
        let rest = analysis.take();
        assert!(leftover.len() + rest.len() <= 500);
        assert!(!analysis.summary().complete);
    }
}
