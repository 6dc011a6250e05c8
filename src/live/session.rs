//! One live capture: the capture thread and the state it shares with its caller.
//!
//! One thread reads the ring and feeds one engine. One engine, not one per core: the frame
//! numbers of the verdicts are those of the single `-w` file, and the accept-overflow bursts
//! that confirm each other span the flows of a listener, which a hash of flows over threads
//! would split. The caller's thread (Python: rendering, metrics, the trace pipe) runs on the
//! other core.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::pcapout::{io_text, PcapOut};
use super::ring::{packets, sll_header, Ring, SLL_HEADER};
use crate::engine::Analysis;
use crate::records::RawFrame;

/// How long the thread waits for a block before it looks at its stop flag again.
const POLL_MS: i32 = 50;

/// How the capture is to be read.
pub struct Settings {
    /// LINKTYPE of the frames (Ethernet, or LINUX_SLL for cooked sockets)
    pub linktype: u32,
    /// a cooked socket: build a LINUX_SLL header in front of each packet
    pub cooked: bool,
    /// the interface's name, for error messages
    pub interface: String,
    /// stop after this many frames (tcpdump's -c)
    pub count: Option<u64>,
}

/// Why the capture thread stopped.
#[derive(Clone, Debug, PartialEq)]
pub enum Stopped {
    Running,
    Asked,
    Count,
    /// the capture failed (interface down or gone): one line
    CaptureError(String),
    /// the -w file could not be written (disk full): one line
    WriteError(String),
    /// an internal error in the engine
    Panic(String),
}

/// What the caller reads and drives under the lock.
pub struct State {
    pub engine: Analysis,
    pub writer: Option<PcapOut>,
    pub frames: u64,
    pub first_ts: Option<f64>,
    pub last_ts: f64,
    /// the last wait found the ring empty: the analysis keeps up with the capture
    pub idle: bool,
    pub stopped: Stopped,
}

pub struct Session {
    shared: Arc<Shared>,
    /// the ring and settings until `start` hands them to the thread
    waiting: Mutex<Option<(Ring, Settings)>>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // a panic under the lock is caught and reported (Stopped::Panic); the state stays usable
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Session {
    /// A session on `ring`, not reading yet (`start`): the caller drops its privileges in
    /// between, so that no thread of the process runs privileged.
    pub fn new(ring: Ring, settings: Settings, engine: Analysis, writer: Option<PcapOut>) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                engine,
                writer,
                frames: 0,
                first_ts: None,
                last_ts: 0.0,
                idle: true,
                stopped: Stopped::Running,
            }),
            stop: AtomicBool::new(false),
        });
        Session {
            shared,
            waiting: Mutex::new(Some((ring, settings))),
            thread: None,
        }
    }

    /// Start reading the ring on a thread of its own (once).
    pub fn start(&mut self) {
        let waiting = self.waiting.lock().map(|mut w| w.take()).unwrap_or(None);
        let Some((ring, settings)) = waiting else {
            return;
        };
        let worker = self.shared.clone();
        self.thread = std::thread::Builder::new()
            .name("rstdiag-capture".to_string())
            .spawn(move || capture_thread(ring, settings, &worker))
            .ok();
        if self.thread.is_none() {
            self.state().stopped =
                Stopped::CaptureError("cannot start the capture thread".to_string());
        }
    }

    /// The shared state, locked.
    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }

    /// Whether the thread has stopped (on its own or asked to).
    pub fn stopped(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Ask the thread to stop and wait for it.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Ok(mut waiting) = self.waiting.lock() {
            *waiting = None;
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let mut state = self.state();
        if state.stopped == Stopped::Running {
            state.stopped = Stopped::Asked;
        }
        if let Some(writer) = state.writer.as_mut() {
            writer.flush();
        }
    }

    /// Write the -w file's waiting records. A write that fails (disk full) stops the
    /// capture: its error is the session's outcome.
    pub fn flush(&self) {
        let mut state = self.state();
        let st = &mut *state;
        let Some(writer) = st.writer.as_mut() else {
            return;
        };
        writer.flush();
        if let Some(err) = writer.error() {
            if st.stopped == Stopped::Running {
                st.stopped = Stopped::WriteError(err.to_string());
            }
            self.shared.stop.store(true, Ordering::Relaxed);
        }
    }

    /// The kernel's reason `text` for the RST of frame `frame`, into the -w file's comment
    /// of it (a pcapng file); whether it went in.
    pub fn note(&self, frame: u64, text: &str) -> bool {
        let mut state = self.state();
        state
            .writer
            .as_mut()
            .is_some_and(|writer| writer.note(frame, text))
    }

    /// Wait up to `timeout` for the thread to stop; whether it has.
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while !self.stopped() {
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(5)));
        }
        true
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop();
    }
}

fn capture_thread(mut ring: Ring, settings: Settings, shared: &Shared) {
    let outcome = catch_unwind(AssertUnwindSafe(|| read_ring(&mut ring, &settings, shared)));
    let stopped = match outcome {
        Ok(stopped) => stopped,
        Err(payload) => Stopped::Panic(
            payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string()),
        ),
    };
    let mut state = lock(shared);
    if state.stopped == Stopped::Running {
        state.stopped = stopped;
    }
}

fn read_ring(ring: &mut Ring, settings: &Settings, shared: &Shared) -> Stopped {
    let mut frame_buf: Vec<u8> = Vec::with_capacity(1 << 16);
    while !shared.stop.load(Ordering::Relaxed) {
        match ring.wait(POLL_MS) {
            Err(err) => return capture_error(settings, &err),
            Ok(false) => {
                lock(shared).idle = true;
                continue;
            }
            Ok(true) => {}
        }
        let mut state = lock(shared);
        state.idle = false;
        let mut done = None;
        for pkt in packets(ring.block(), settings.cooked) {
            let (prefix, wirelen) = match pkt.sll {
                Some(sll) => (
                    sll_header(sll),
                    pkt.wirelen.saturating_add(SLL_HEADER as u32),
                ),
                None => ([0u8; SLL_HEADER], pkt.wirelen),
            };
            let prefix: &[u8] = if pkt.sll.is_some() { &prefix } else { &[] };
            let ts = f64::from(pkt.sec) + f64::from(pkt.nsec) * 1e-9;
            let st = &mut *state;
            st.frames += 1;
            if st.first_ts.is_none() {
                st.first_ts = Some(ts);
            }
            if ts > st.last_ts {
                st.last_ts = ts;
            }
            let data = if prefix.is_empty() {
                pkt.data
            } else {
                frame_buf.clear();
                frame_buf.extend_from_slice(prefix);
                frame_buf.extend_from_slice(pkt.data);
                &frame_buf
            };
            let raw = RawFrame {
                frame: st.frames,
                ts,
                linktype: settings.linktype,
                data,
                wirelen,
            };
            // a live link type is always one the engine reads: no error to report
            let _ = st.engine.frame(&raw);
            // written after the engine saw it: a RST's block gets the comment that its
            // kernel reason fills later (`Session::note`)
            if let Some(writer) = st.writer.as_mut() {
                if st.engine.last_frame_rst() {
                    writer.write_rst(pkt.sec, pkt.nsec, prefix, pkt.data, wirelen);
                } else {
                    writer.write(pkt.sec, pkt.nsec, prefix, pkt.data, wirelen);
                }
                if let Some(err) = writer.error() {
                    done = Some(Stopped::WriteError(err.to_string()));
                }
            }
            if settings.count.is_some_and(|count| st.frames >= count) {
                done = Some(Stopped::Count);
            }
            if done.is_some() {
                break;
            }
        }
        drop(state);
        ring.release();
        if let Some(stopped) = done {
            return stopped;
        }
    }
    Stopped::Asked
}

fn capture_error(settings: &Settings, err: &std::io::Error) -> Stopped {
    let name = &settings.interface;
    Stopped::CaptureError(match err.raw_os_error() {
        Some(libc::ENETDOWN) => format!("interface {name} went down"),
        Some(libc::ENXIO) | Some(libc::ENODEV) => format!("interface {name} went away"),
        _ => format!("capture on {name}: {}", io_text(err)),
    })
}
