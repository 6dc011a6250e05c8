//! The PyO3 layer, and only that: it converts types, releases the GIL while the engine works,
//! and turns engine errors and panics into Python exceptions. No logic of its own.

use std::io::{self, Read};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use pyo3::IntoPyObjectExt;

use crate::capture::{CaptureError, CaptureReader};
use crate::communityid::community_id;
use crate::decode::Decoder;
use crate::engine::{self, FlowKey, Summary};
use crate::jsonline::{push_verdict, verdict_json};
use crate::kernel_note::Note;
use crate::records::{flag_string, Packet, RawFrame};
use crate::runner::{fed, panic_text, Fed, Feeder, Notes, Polled, Runner, Span, Step};
use crate::verdict::{addr_text, Verdict};

create_exception!(_core, EngineCaptureError, PyException);
create_exception!(_core, EngineError, PyException);

/// Frames the engine's thread reads between two batches of verdicts: a few milliseconds of
/// work, so that verdicts and progress come promptly and few are in flight.
const READ_BATCH: usize = 1 << 13;
/// The buffer asked for a pipe the capture comes through.
const PIPE_SIZE: usize = 1 << 20;
/// How long `read` waits for a batch before letting Python's signal handlers run.
const WAIT: std::time::Duration = std::time::Duration::from_millis(50);
/// How long `read` waits for a batch while it feeds the engine a Python stream.
const FEED_WAIT: std::time::Duration = std::time::Duration::from_micros(500);
/// How long `read` waits before it returns with no verdict: a big capture with few RSTs
/// still moves its progress bar.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

type Source = Box<dyn Read + Send + Sync>;

/// Where a capture comes from, as `start` reads it.
enum Input {
    /// a regular file: read as it is
    File(std::fs::File),
    /// a pipe, FIFO, terminal or socket (standard input too): polled
    Fd(std::os::fd::OwnedFd),
    /// a Python stream: read by the Python thread that calls `read` (`Feeder`)
    Stream(Source),
}
/// A Python exception raised while the engine read from Python (a signal handler's
/// KeyboardInterrupt, a stream's own error), re-raised once the engine hands back control.
type Pending = Arc<Mutex<Option<PyErr>>>;

/// Reads an open Python binary stream (a BytesIO, a socket file), taking the GIL per read.
struct PyStream {
    stream: Py<PyAny>,
    method: &'static str,
    pending: Pending,
}

impl PyStream {
    /// A second reader of the same stream (the header is read on one, the rest fed on the
    /// other: never both at once).
    fn twin(&self, py: Python<'_>) -> Self {
        PyStream {
            stream: self.stream.clone_ref(py),
            method: self.method,
            pending: self.pending.clone(),
        }
    }
}

impl Read for PyStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Python::attach(|py| {
            let got = self
                .stream
                .bind(py)
                .call_method1(self.method, (buf.len(),))
                .and_then(|data| {
                    if data.is_none() {
                        return Ok(0); // a non-blocking stream with nothing ready ends it
                    }
                    let bytes = data.cast_into::<PyBytes>().map_err(PyErr::from)?;
                    let bytes = bytes.as_bytes();
                    let n = bytes.len().min(buf.len());
                    if let (Some(to), Some(from)) = (buf.get_mut(..n), bytes.get(..n)) {
                        to.copy_from_slice(from);
                    }
                    Ok(n)
                });
            got.map_err(|err| stream_error(py, &self.pending, err))
        })
    }
}

/// A Python stream as the engine reads it: directly on the thread that opened it (the
/// capture's header, which `start` reads), through the channel its `Feeder` fills on any
/// other: the engine's threads never take the GIL.
struct StreamSource {
    opener: std::thread::ThreadId,
    direct: PyStream,
    fed: Fed,
}

impl Read for StreamSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if std::thread::current().id() == self.opener {
            self.direct.read(buf)
        } else {
            self.fed.read(buf)
        }
    }
}

/// A file or standard input, read with the GIL released; an interrupted system call gives
/// Python's signal handlers their turn (Ctrl-C while waiting on a pipe) on the thread that
/// opened it. The engine's own threads just read again: Python runs handlers on its main
/// thread only, and a thread taking the GIL while the interpreter shuts down is ended by
/// CPython with an unwinding that aborts the process.
struct SignalAware {
    inner: Source,
    pending: Pending,
    opener: std::thread::ThreadId,
}

impl Read for SignalAware {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {
                    if std::thread::current().id() == self.opener {
                        Python::attach(|py| py.check_signals())
                            .map_err(|e| stash(&self.pending, e))?;
                    }
                }
                other => return other,
            }
        }
    }
}

/// A stream's OSError is a read error like any other ("cannot read NAME: WHY"); anything else
/// (KeyboardInterrupt) is re-raised as it was once the engine hands back control.
fn stream_error(py: Python<'_>, pending: &Pending, err: PyErr) -> io::Error {
    if err.is_instance_of::<PyOSError>(py) {
        let value = err.value(py);
        let why = value
            .getattr("strerror")
            .ok()
            .filter(|s| !s.is_none())
            .unwrap_or_else(|| value.clone().into_any());
        return io::Error::other(why.to_string());
    }
    stash(pending, err)
}

fn stash(pending: &Pending, err: PyErr) -> io::Error {
    if let Ok(mut slot) = pending.lock() {
        *slot = Some(err);
    }
    io::Error::other("interrupted")
}

fn take_pending(pending: &Pending) -> Option<PyErr> {
    pending.lock().ok().and_then(|mut slot| slot.take())
}

fn capture_error(py: Python<'_>, err: CaptureError) -> PyErr {
    let exc = EngineCaptureError::new_err(err.message.clone());
    let value = exc.value(py);
    let _ = value.setattr("offset", err.offset);
    exc
}

/// Run engine code; a panic becomes EngineError (one line for the user) instead of
/// unwinding into Python.
fn guarded<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(work)).map_err(|payload| panic_text(payload.as_ref()))
}

/// A tuple of any length from values of mixed types (PyO3 converts tuples of up to 12).
macro_rules! py_tuple {
    ($py:expr; $($item:expr),+ $(,)?) => {
        PyTuple::new($py, [$($item.into_bound_py_any($py)?),+])
    };
}

/// A verdict as the tuple `rstdiag.analysis.verdict_of` reads; its last item is the
/// verdict's JSON line when the caller named the file for it (`read --format json`).
fn verdict_tuple<'py>(
    py: Python<'py>,
    v: &Verdict,
    json_file: Option<&str>,
) -> PyResult<Bound<'py, PyTuple>> {
    let flow_id = community_id(v.src, v.sport, v.dst, v.dport, 0);
    let json_line = json_file.map(|file| verdict_json(v, file, &flow_id));
    py_tuple!(py;
        v.frame,
        v.ts,
        addr_text(v.src),
        v.sport,
        addr_text(v.dst),
        v.dport,
        flag_string(v.flags),
        addr_text(v.client.addr),
        v.client.port,
        addr_text(v.server.addr),
        v.server.port,
        v.sender.as_str(),
        v.label.as_str(),
        v.confidence.as_str(),
        v.evidence.as_str(),
        v.duplicate_of,
        v.alternatives.iter().map(|l| l.as_str()).collect::<Vec<_>>(),
        v.effect.as_str(),
        v.story_hint,
        flow_id,
        json_line,
    )
}

fn verdict_list<'py>(
    py: Python<'py>,
    verdicts: &[Verdict],
    json_file: Option<&str>,
) -> PyResult<Bound<'py, PyList>> {
    let items = verdicts
        .iter()
        .map(|v| verdict_tuple(py, v, json_file))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// (label, distinct RSTs, identical copies)
type LabelCount = (&'static str, u64, u64);

/// The verdicts' JSON lines, "\n" between them, and their counts by label.
fn json_lines(verdicts: &[Verdict], json_file: &str) -> (String, Vec<LabelCount>) {
    let mut text = String::with_capacity(verdicts.len() * 700);
    let mut counts: Vec<LabelCount> = Vec::new();
    for (i, v) in verdicts.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        let flow_id = community_id(v.src, v.sport, v.dst, v.dport, 0);
        push_verdict(&mut text, v, json_file, &flow_id);
        let label = v.label.as_str();
        let copy = u64::from(v.duplicate_of.is_some());
        match counts.iter_mut().find(|(l, _, _)| *l == label) {
            Some(count) => {
                count.1 += 1 - copy;
                count.2 += copy;
            }
            None => counts.push((label, 1 - copy, copy)),
        }
    }
    (text, counts)
}

fn packed(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn packet_tuple<'py>(py: Python<'py>, p: &Packet) -> PyResult<Bound<'py, PyTuple>> {
    let version: u8 = if p.src.is_ipv4() { 4 } else { 6 };
    py_tuple!(py;
        p.frame,
        p.ts,
        version,
        PyBytes::new(py, &packed(p.src)),
        PyBytes::new(py, &packed(p.dst)),
        p.sport,
        p.dport,
        p.seq,
        p.ack,
        p.flags,
        p.window,
        p.length,
        p.ttl,
        p.ipid,
        PyBytes::new(py, &p.payload),
    )
}

fn summary_dict<'py>(py: Python<'py>, s: &Summary) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("format", s.format.map(|f| f.as_str()).unwrap_or(""))?;
    d.set_item("frames", s.frames)?;
    d.set_item("tcp_packets", s.tcp_packets)?;
    d.set_item("flows", s.flows)?;
    d.set_item("duplicates", s.duplicates)?;
    d.set_item("evicted_flows", s.evicted_flows)?;
    d.set_item("judged_early", s.judged_early)?;
    d.set_item("rsts", s.rsts)?;
    let skipped = PyDict::new(py);
    for (key, count) in &s.skipped {
        skipped.set_item(key, count)?;
    }
    d.set_item("skipped", skipped)?;
    d.set_item("warnings", s.warnings.clone())?;
    d.set_item("complete", s.complete)?;
    d.set_item("first_ts", s.first_ts)?;
    d.set_item("last_ts", s.last_ts)?;
    Ok(d)
}

/// A capture file opened for reading; the error as one line ("cannot open: ...", with the
/// system's words and without Rust's " (os error N)").
/// A pipe's buffer as large as an unprivileged process may make it (fs.pipe-max-size,
/// 1 MiB by default; not a pipe: nothing happens). With the default 64 KiB, `cat big.pcap |
/// rstdiag read -` wakes both processes every 64 KiB: 0.4 s more system time on the 2M
/// benchmark capture.
fn widen_pipe(fd: impl std::os::fd::AsFd) {
    let _ = rustix::pipe::fcntl_setpipe_size(fd, PIPE_SIZE);
}

fn open_file(py: Python<'_>, path: &str) -> PyResult<std::fs::File> {
    let cannot = |why: String| {
        capture_error(
            py,
            CaptureError {
                message: format!("cannot open: {why}"),
                offset: None,
            },
        )
    };
    let file = std::fs::File::open(path).map_err(|err| {
        let text = err.to_string();
        cannot(text.split(" (os error").next().unwrap_or(&text).to_string())
    })?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(cannot("Is a directory".to_string()));
    }
    Ok(file)
}

fn parse_addr(text: &str) -> PyResult<IpAddr> {
    text.parse()
        .map_err(|_| PyValueError::new_err(format!("not an IP address: {text}")))
}

/// Where a capture's reading stands.
enum Reading {
    /// no capture opened, or the engine has it back after the end
    Idle,
    /// opened and checked, not started
    Opened(CaptureReader<Source>),
    /// the engine reads it on its own thread
    Running(Runner<Source>),
}

/// Stops an Analysis from another thread (`Analysis.stopper`).
#[pyclass(module = "rstdiag._core", frozen)]
struct Stopper {
    cancel: Arc<AtomicBool>,
}

#[pymethods]
impl Stopper {
    fn stop(&self) {
        self.cancel
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// One capture's analysis (see rstdiag/_core.pyi).
#[pyclass(module = "rstdiag._core")]
struct Analysis {
    engine: engine::Analysis,
    reading: Reading,
    /// final verdicts handed over by the engine's thread, not yet taken
    ready: Vec<Verdict>,
    bytes_read: u64,
    /// the time span read so far, while the engine (with its counters) is on its thread
    span: Span,
    /// stops the engine's thread, and ends a polled or fed source
    cancel: Arc<AtomicBool>,
    pending: Pending,
    broken: Option<String>,
    /// the kernel's reasons saved in the capture's comments, by frame, whose verdicts are
    /// not taken yet (see kernel_note.rs), and where the engine's thread leaves new ones
    notes: std::collections::BTreeMap<u64, Note>,
    inbox: Option<Notes>,
    /// those of the verdicts `take` gave last: (frame, reason or "" for none matched)
    reasons: Vec<(u64, String)>,
    /// a Python stream's feeder, and the stream, which `read` reads for the engine
    feeder: Option<(Feeder, PyStream)>,
}

impl Analysis {
    /// Check the capture's header and keep it for `read`. A source that can block for ever
    /// is polled (a pipe, FIFO or terminal) or fed by the thread that calls `read` (a Python
    /// stream): either way a stopped run does not wait for its writer.
    fn start(&mut self, py: Python<'_>, source: Input, name: &str) -> PyResult<()> {
        let cancel = self.cancel.clone();
        let source: Source = match source {
            Input::File(file) => Box::new(file),
            Input::Fd(fd) => Box::new(Polled::new(fd, cancel)),
            Input::Stream(stream) => stream,
        };
        let source: Source = Box::new(SignalAware {
            inner: source,
            pending: self.pending.clone(),
            opener: std::thread::current().id(),
        });
        let name = name.to_string();
        let opened = py.detach(|| guarded(|| CaptureReader::new(source, &name)));
        let reader = match opened {
            Ok(Ok(reader)) => reader,
            Ok(Err(err)) => return Err(self.raise(py, err)),
            Err(panic) => return Err(self.panicked(panic)),
        };
        let started = self.engine.start(&reader);
        self.reading = Reading::Opened(reader);
        started.map_err(|err| capture_error(py, err))
    }

    /// Take the engine back from its thread (stopping it if it still runs), with the
    /// verdicts still in flight.
    fn join(&mut self) -> Option<CaptureReader<Source>> {
        let Reading::Running(runner) = std::mem::replace(&mut self.reading, Reading::Idle) else {
            return None;
        };
        let (engine, mut reader, mut leftover) = runner.stop()?;
        self.collect_notes();
        self.inbox = None;
        self.engine = engine;
        // any the thread read but had not handed over (a run stopped mid-way)
        self.notes.extend(self.engine.take_notes());
        self.notes.extend(reader.take_notes());
        self.bytes_read = reader.bytes_read();
        self.ready.append(&mut leftover);
        self.engine.absorb_reader(&reader);
        Some(reader)
    }

    /// The kernel's reasons the engine's thread has read so far.
    fn collect_notes(&mut self) {
        let Some(inbox) = &self.inbox else {
            return;
        };
        if let Ok(mut notes) = inbox.lock() {
            self.notes.extend(notes.drain(..));
        }
    }

    /// The reasons of `verdicts` (final, in frame order), noted for `kernel_reasons`; those
    /// of earlier frames without a verdict are dropped.
    fn match_notes(&mut self, verdicts: &[Verdict]) {
        self.reasons.clear();
        if self.notes.is_empty() {
            return;
        }
        for v in verdicts {
            if let Some(note) = self.notes.remove(&v.frame) {
                self.reasons.push((v.frame, note.text().to_string()));
            }
        }
        if let Some(last) = verdicts.last() {
            self.notes = self.notes.split_off(&last.frame.saturating_add(1));
        }
    }

    /// A Python stream read for the engine while it has room for more (on this thread, which
    /// holds the GIL); true while more is to come.
    fn feed(&mut self, until: std::time::Instant) -> bool {
        match &mut self.feeder {
            Some((feeder, stream)) => feeder.top_up(stream, until),
            None => false,
        }
    }

    /// Verdicts taken and turned into Python objects or JSON: freed on the engine's thread
    /// while it runs (`Runner::spend`).
    fn spend(&self, verdicts: Vec<Verdict>) {
        if let Reading::Running(runner) = &self.reading {
            runner.spend(verdicts);
        }
    }

    fn raise(&self, py: Python<'_>, err: CaptureError) -> PyErr {
        take_pending(&self.pending).unwrap_or_else(|| capture_error(py, err))
    }

    fn panicked(&mut self, message: String) -> PyErr {
        let offset = self.bytes_read;
        let text = format!(
            "internal error in the engine near byte offset {offset}: {message} \
             (please report it with the capture)"
        );
        self.broken = Some(text.clone());
        EngineError::new_err(text)
    }
}

#[pymethods]
impl Analysis {
    #[new]
    #[pyo3(signature = (max_flows=None))]
    fn new(max_flows: Option<usize>) -> Self {
        Analysis {
            engine: engine::Analysis::new(max_flows),
            reading: Reading::Idle,
            ready: Vec::new(),
            bytes_read: 0,
            span: Span::default(),
            cancel: Arc::default(),
            pending: Arc::new(Mutex::new(None)),
            broken: None,
            notes: std::collections::BTreeMap::new(),
            inbox: None,
            reasons: Vec::new(),
            feeder: None,
        }
    }

    /// Open a capture file ("-": standard input) and check its header; `name` is what
    /// messages call it (default: the path; `read -f` opens tcpdump's output as
    /// /proc/self/fd/N under the capture's name).
    #[pyo3(signature = (path, name=None))]
    fn open(&mut self, py: Python<'_>, path: &str, name: Option<&str>) -> PyResult<()> {
        if path == "-" {
            let stdin = io::stdin().as_fd().try_clone_to_owned().map_err(|err| {
                EngineError::new_err(format!("cannot read standard input: {err}"))
            })?;
            widen_pipe(&stdin);
            return self.start(py, Input::Fd(stdin), name.unwrap_or("<stdin>"));
        }
        let file = open_file(py, path)?;
        let name = name.unwrap_or(path);
        if file.metadata().is_ok_and(|m| m.is_file()) {
            return self.start(py, Input::File(file), name);
        }
        widen_pipe(&file);
        self.start(py, Input::Fd(file.into()), name)
    }

    /// Read an open Python binary stream (read1 or read) as a capture named `name`.
    fn open_stream(&mut self, py: Python<'_>, stream: Py<PyAny>, name: &str) -> PyResult<()> {
        let method = if stream.bind(py).hasattr("read1")? {
            "read1"
        } else {
            "read"
        };
        let feeding = PyStream {
            stream,
            method,
            pending: self.pending.clone(),
        };
        let direct = feeding.twin(py);
        let (fed, feeder) = fed(self.cancel.clone());
        self.feeder = Some((feeder, feeding));
        let source = StreamSource {
            opener: std::thread::current().id(),
            direct,
            fed,
        };
        self.start(py, Input::Stream(Box::new(source)), name)
    }

    /// Wait for the next batch of final verdicts from the engine's thread (started on the
    /// first call, reading `limit` frames a batch), the GIL released, or PROGRESS_EVERY
    /// without one; False at the end.
    #[pyo3(signature = (limit=READ_BATCH))]
    fn read(&mut self, py: Python<'_>, limit: usize) -> PyResult<bool> {
        let called = std::time::Instant::now();
        if let Reading::Opened(_) = self.reading {
            let Reading::Opened(reader) = std::mem::replace(&mut self.reading, Reading::Idle)
            else {
                return Ok(false);
            };
            let engine = std::mem::replace(&mut self.engine, engine::Analysis::new(None));
            let runner = Runner::spawn(engine, reader, limit, self.cancel.clone())
                .map_err(|err| EngineError::new_err(format!("cannot start the engine: {err}")))?;
            self.inbox = Some(runner.notes());
            self.reading = Reading::Running(runner);
        }
        loop {
            let wait = if self.feed(called + PROGRESS_EVERY) {
                FEED_WAIT
            } else {
                WAIT
            };
            let Reading::Running(runner) = &self.reading else {
                return Ok(false);
            };
            let step = py.detach(|| runner.next(wait));
            self.bytes_read = runner.bytes_read();
            match step {
                Step::Verdicts(mut verdicts, span) => {
                    self.collect_notes();
                    if self.ready.is_empty() {
                        // the engine's own Vec, which `spend` gives back whole
                        self.ready = verdicts;
                    } else {
                        self.ready.append(&mut verdicts);
                    }
                    self.span = span;
                    return Ok(true);
                }
                Step::Waiting => {
                    py.check_signals()?;
                    if called.elapsed() >= PROGRESS_EVERY {
                        return Ok(true);
                    }
                }
                Step::Done => {
                    self.join();
                    return Ok(false);
                }
                Step::Failed(err) => {
                    self.join();
                    return Err(self.raise(py, err));
                }
                Step::Panicked(message) => {
                    self.join();
                    return Err(self.panicked(message));
                }
            }
        }
    }

    /// Bytes taken from the capture so far.
    #[getter]
    fn bytes_read(&self) -> u64 {
        match &self.reading {
            Reading::Opened(reader) => reader.bytes_read(),
            Reading::Running(runner) => runner.bytes_read(),
            Reading::Idle => self.bytes_read,
        }
    }

    /// One frame of a live capture (frames numbered by the caller).
    fn frame(
        &mut self,
        py: Python<'_>,
        frame: u64,
        ts: f64,
        linktype: u32,
        data: &[u8],
        wirelen: u32,
    ) -> PyResult<()> {
        let raw = RawFrame {
            frame,
            ts,
            linktype,
            data,
            wirelen,
        };
        match guarded(|| self.engine.frame(&raw)) {
            Ok(done) => done.map_err(|err| capture_error(py, err)),
            Err(panic) => Err(self.panicked(panic)),
        }
    }

    /// The verdicts that are final, in frame order (each returned once); with `json_file`,
    /// each with its JSON line, that file named in it.
    #[pyo3(signature = (json_file=None))]
    fn take<'py>(
        &mut self,
        py: Python<'py>,
        json_file: Option<&str>,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut verdicts = std::mem::take(&mut self.ready);
        if !matches!(self.reading, Reading::Running(_)) {
            verdicts.append(&mut guarded(|| self.engine.take()).unwrap_or_default());
        }
        self.match_notes(&verdicts);
        let list = verdict_list(py, &verdicts, json_file);
        self.spend(verdicts);
        list
    }

    /// The verdicts that are final as JSON lines (json.dumps of each verdict's dict, `file`
    /// named in each, "\n" between them) with how many of each label are distinct RSTs and
    /// identical copies: what `read --format json|jsonl` writes, without a Python object per
    /// verdict. None, taking nothing, while the capture's saved kernel reasons wait for their
    /// verdicts: `take` gives those, for Python to apply.
    fn take_lines(&mut self, json_file: &str) -> Option<(String, Vec<LabelCount>)> {
        self.collect_notes();
        if !self.notes.is_empty() {
            return None;
        }
        let mut verdicts = std::mem::take(&mut self.ready);
        if !matches!(self.reading, Reading::Running(_)) {
            verdicts.append(&mut guarded(|| self.engine.take()).unwrap_or_default());
        }
        self.reasons.clear();
        let lines = json_lines(&verdicts, json_file);
        self.spend(verdicts);
        Some(lines)
    }

    /// The kernel's reasons that a capture saved by `rstdiag live -w --kernel-reasons`
    /// keeps for the verdicts the last `take` gave: (frame, "REASON in STATE"), or
    /// (frame, "") for a RST saved with none matched. Empty for any other capture.
    fn kernel_reasons(&self) -> Vec<(u64, String)> {
        self.reasons.clone()
    }

    /// The RSTs still waiting for the packets after them, judged as they stand (those of
    /// frame `from_frame` on).
    #[pyo3(signature = (from_frame=0))]
    fn provisional<'py>(&self, py: Python<'py>, from_frame: u64) -> PyResult<Bound<'py, PyList>> {
        let verdicts = guarded(|| self.engine.provisional_from(from_frame)).unwrap_or_default();
        verdict_list(py, &verdicts, None)
    }

    /// Let capture time reach `now` (a live capture's clock) without a packet.
    fn sweep_at(&mut self, now: f64) -> PyResult<()> {
        guarded(|| self.engine.sweep_at(now)).map_err(|panic| self.panicked(panic))
    }

    /// End of input (or an interruption: complete=False); every waiting RST is judged.
    #[pyo3(signature = (complete=true))]
    fn finish(&mut self, py: Python<'_>, complete: bool) -> PyResult<()> {
        // a thread blocked on a pipe returns at its next read
        py.detach(|| self.join());
        if let Reading::Opened(reader) = std::mem::replace(&mut self.reading, Reading::Idle) {
            self.engine.absorb_reader(&reader);
        }
        let complete = complete && self.broken.is_none();
        guarded(|| self.engine.finish(complete)).map_err(|panic| self.panicked(panic))
    }

    /// The capture's counters and warnings (final after `finish`).
    /// While the engine reads on its thread, only the time span read so far is known.
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        if let Reading::Running(_) = self.reading {
            let partial = Summary {
                first_ts: self.span.first_ts,
                last_ts: self.span.last_ts,
                ..Summary::default()
            };
            return summary_dict(py, &partial);
        }
        summary_dict(py, self.engine.summary())
    }

    /// Flows in the table now, flows seen, TCP packets decoded (a live view's status line).
    fn counters(&self) -> (usize, u64, u64) {
        (
            self.engine.open_flows(),
            self.engine.flows_seen(),
            self.engine.tcp_packets(),
        )
    }

    /// A handle that stops this analysis from any thread, even while another is inside
    /// `read` (which holds the Analysis): the engine ends after its current batch, and a
    /// pipe or stream it waits on ends at once.
    fn stopper(&self) -> Stopper {
        Stopper {
            cancel: self.cancel.clone(),
        }
    }

    /// Read no more than `frames` frames, as if the capture ended there (tcpdump's -c).
    fn limit_frames(&mut self, frames: u64) {
        self.engine.limit_frames(frames);
    }

    /// Keep the packets of the flow between two endpoints (either order) as they pass.
    fn watch(&mut self, a: (String, u16), b: (String, u16)) -> PyResult<()> {
        let key = FlowKey::new((parse_addr(&a.0)?, a.1), (parse_addr(&b.0)?, b.1));
        self.engine.watch(key);
        Ok(())
    }

    /// The watched flow's packets: (frame, ts, version, src, dst, sport, dport, seq, ack,
    /// flags, window, length, ttl, ipid, payload) with addresses packed.
    fn take_watched<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let packets = self.engine.take_watched();
        let items = packets
            .iter()
            .map(|p| packet_tuple(py, p))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }
}

/// A capture's frames, each with its decoded TCP packet (None when it is not one): the
/// engine's reader and decoder for scripts and tests (see rstdiag/_core.pyi).
#[pyclass(module = "rstdiag._core")]
struct Frames {
    reader: CaptureReader<Source>,
    decoder: Decoder,
    pending: Pending,
}

#[pymethods]
impl Frames {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let next = guarded(|| {
            let raw = self.reader.next_frame()?;
            Ok(raw.map(|raw| {
                let packet = self.decoder.decode(&raw);
                (
                    raw.frame,
                    raw.ts,
                    raw.linktype,
                    raw.data.to_vec(),
                    raw.wirelen,
                    packet,
                )
            }))
        });
        let frame = match next {
            Ok(Ok(frame)) => frame,
            Ok(Err(err)) => {
                return Err(take_pending(&self.pending).unwrap_or_else(|| capture_error(py, err)))
            }
            Err(panic) => return Err(EngineError::new_err(format!("internal error: {panic}"))),
        };
        let Some((frame, ts, linktype, data, wirelen, packet)) = frame else {
            return Ok(None);
        };
        let packet = packet.map(|p| packet_tuple(py, &p)).transpose()?;
        py_tuple!(py; frame, ts, linktype, PyBytes::new(py, &data), wirelen, packet).map(Some)
    }

    #[getter]
    fn format(&self) -> &'static str {
        self.reader.format().as_str()
    }

    /// A classic pcap's one link type; None for pcapng (per interface).
    #[getter]
    fn linktype(&self) -> Option<u32> {
        self.reader.linktype()
    }

    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.reader.warnings().to_vec()
    }

    #[getter]
    fn skipped_frames(&self) -> u64 {
        self.reader.skipped_frames()
    }
}

/// The frames of a capture: a path, or an open binary stream named `name`.
#[pyfunction]
#[pyo3(signature = (source, name="<stream>"))]
fn frames(py: Python<'_>, source: &Bound<'_, PyAny>, name: &str) -> PyResult<Frames> {
    let pending: Pending = Arc::new(Mutex::new(None));
    let (input, name): (Source, String) = match source.extract::<String>() {
        Ok(path) => (Box::new(open_file(py, &path)?), path),
        Err(_) => {
            let method = if source.hasattr("read1")? {
                "read1"
            } else {
                "read"
            };
            let stream = PyStream {
                stream: source.clone().unbind(),
                method,
                pending: pending.clone(),
            };
            (Box::new(stream), name.to_string())
        }
    };
    match guarded(|| CaptureReader::new(input, &name)) {
        Ok(Ok(reader)) => Ok(Frames {
            reader,
            decoder: Decoder::new(),
            pending,
        }),
        Ok(Err(err)) => Err(take_pending(&pending).unwrap_or_else(|| capture_error(py, err))),
        Err(panic) => Err(EngineError::new_err(format!("internal error: {panic}"))),
    }
}

/// Decode `path` up to frame `frame`: (its TCP packet or None, why not, frames read).
#[pyfunction]
fn probe_frame<'py>(
    py: Python<'py>,
    path: &str,
    frame: u64,
) -> PyResult<(Option<Bound<'py, PyTuple>>, String, u64)> {
    let file = open_file(py, path)?;
    let name = path.to_string();
    let probed = py.detach(|| {
        guarded(|| {
            let mut reader = CaptureReader::new(file, &name)?;
            engine::probe_frame(&mut reader, frame)
        })
    });
    let probe = match probed {
        Ok(Ok(probe)) => probe,
        Ok(Err(err)) => return Err(capture_error(py, err)),
        Err(panic) => return Err(EngineError::new_err(format!("internal error: {panic}"))),
    };
    let packet = probe.packet.map(|p| packet_tuple(py, &p)).transpose()?;
    Ok((packet, probe.why_not, probe.frames))
}

/// (is the sender of a flow's first packet the client?, how that was decided: syn, synack,
/// port, first): the tracker's rule, for `explain`'s connections.
#[pyfunction]
fn roles_of(flags: u8, sport: u16, dport: u16) -> (bool, &'static str) {
    let (sender_is_client, how) = crate::flows::roles(flags, sport, dport);
    (sender_is_client, how.as_str())
}

/// A live capture read by a thread of the engine's own (see rstdiag/_core.pyi).
#[cfg(target_os = "linux")]
#[pyclass(module = "rstdiag._core")]
struct LiveSession {
    session: crate::live::session::Session,
}

#[cfg(target_os = "linux")]
impl LiveSession {
    fn with_state<T>(
        &self,
        py: Python<'_>,
        work: impl FnOnce(&mut crate::live::session::State) -> T + Send,
    ) -> PyResult<T>
    where
        T: Send,
    {
        let session = &self.session;
        py.detach(|| guarded(|| work(&mut session.state())))
            .map_err(|panic| EngineError::new_err(format!("internal error: {panic}")))
    }
}

#[cfg(target_os = "linux")]
#[pymethods]
impl LiveSession {
    /// Map the ring of packet socket `fd` and start reading it.
    #[new]
    #[pyo3(signature = (fd, block_size, blocks, linktype, cooked, interface, *, max_flows=None,
                        count=None, write=None, write_snaplen=262144, keep_reasons=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        fd: i32,
        block_size: usize,
        blocks: usize,
        linktype: u32,
        cooked: bool,
        interface: String,
        max_flows: Option<usize>,
        count: Option<u64>,
        write: Option<String>,
        write_snaplen: u32,
        keep_reasons: bool,
    ) -> PyResult<Self> {
        use crate::live::pcapout::{io_text, PcapOut};
        let writer = match write {
            Some(path) => Some(
                if keep_reasons {
                    PcapOut::create_pcapng(&path, linktype, write_snaplen, &interface)
                } else {
                    PcapOut::create(&path, linktype, write_snaplen)
                }
                .map_err(|err| PyOSError::new_err(io_text(&err)))?,
            ),
            None => None,
        };
        let ring = crate::live::ring::Ring::map(fd, block_size, blocks)
            .map_err(|err| PyOSError::new_err(io_text(&err)))?;
        let settings = crate::live::session::Settings {
            linktype,
            cooked,
            interface,
            count,
        };
        let engine = engine::Analysis::new(max_flows);
        Ok(LiveSession {
            session: crate::live::session::Session::new(ring, settings, engine, writer),
        })
    }

    /// Start reading the ring (on the engine's capture thread).
    fn start(&mut self) {
        self.session.start();
    }

    /// Wait up to `timeout` seconds for the capture to stop; whether it has.
    fn wait(&self, py: Python<'_>, timeout: f64) -> bool {
        let timeout = std::time::Duration::from_secs_f64(timeout.clamp(0.0, 3600.0));
        let session = &self.session;
        py.detach(|| session.wait(timeout))
    }

    /// Stop the capture thread (the -w file flushed).
    fn stop(&mut self, py: Python<'_>) {
        let session = &mut self.session;
        py.detach(|| session.stop());
    }

    /// The kernel's reason `text` ("REASON in STATE") for the RST of frame `frame`, into
    /// its comment in the -w file (pcapng, `keep_reasons`); whether it went in.
    fn note_reason(&self, py: Python<'_>, frame: u64, text: &str) -> bool {
        let session = &self.session;
        py.detach(|| session.note(frame, text))
    }

    /// Write the -w file's waiting records (a failure stops the capture: see `status`).
    fn flush(&self, py: Python<'_>) {
        let session = &self.session;
        py.detach(|| session.flush());
    }

    /// (frames, first packet time or None, last packet time, ring idle, why it stopped:
    /// "" running, "asked", "count", "capture-error", "write-error", "panic"; its text).
    #[allow(clippy::type_complexity)]
    fn status(&self, py: Python<'_>) -> PyResult<(u64, Option<f64>, f64, bool, String, String)> {
        use crate::live::session::Stopped;
        self.with_state(py, |st| {
            let (kind, text) = match &st.stopped {
                Stopped::Running => ("", String::new()),
                Stopped::Asked => ("asked", String::new()),
                Stopped::Count => ("count", String::new()),
                Stopped::CaptureError(t) => ("capture-error", t.clone()),
                Stopped::WriteError(t) => ("write-error", t.clone()),
                Stopped::Panic(t) => ("panic", t.clone()),
            };
            (
                st.frames,
                st.first_ts,
                st.last_ts,
                st.idle,
                kind.to_string(),
                text,
            )
        })
    }

    /// The verdicts that are final, in frame order (each returned once).
    fn take<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let verdicts = self.with_state(py, |st| st.engine.take())?;
        verdict_list(py, &verdicts, None)
    }

    /// The RSTs still waiting for the packets after them, judged as they stand (those of
    /// frame `from_frame` on).
    #[pyo3(signature = (from_frame=0))]
    fn provisional<'py>(&self, py: Python<'py>, from_frame: u64) -> PyResult<Bound<'py, PyList>> {
        let verdicts = self.with_state(py, |st| st.engine.provisional_from(from_frame))?;
        verdict_list(py, &verdicts, None)
    }

    /// Let capture time reach `now` without a packet.
    fn sweep_at(&self, py: Python<'_>, now: f64) -> PyResult<()> {
        self.with_state(py, |st| st.engine.sweep_at(now))
    }

    /// End of capture (after `stop`): every waiting RST is judged.
    #[pyo3(signature = (complete=true))]
    fn finish(&self, py: Python<'_>, complete: bool) -> PyResult<()> {
        self.with_state(py, |st| st.engine.finish(complete))
    }

    /// Flows in the table now, flows seen, TCP packets decoded.
    fn counters(&self, py: Python<'_>) -> PyResult<(usize, u64, u64)> {
        self.with_state(py, |st| {
            (
                st.engine.open_flows(),
                st.engine.flows_seen(),
                st.engine.tcp_packets(),
            )
        })
    }
}

/// The engine's version, and the crates it was built with (for `rstdiag --version`).
#[pyfunction]
fn engine_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // A panic is caught and reported as one line (EngineError); Rust's default hook would
    // first print its own message and backtrace hint on stderr.
    std::panic::set_hook(Box::new(|_| {}));
    m.add("CaptureError", m.py().get_type::<EngineCaptureError>())?;
    m.add("EngineError", m.py().get_type::<EngineError>())?;
    m.add_class::<Analysis>()?;
    m.add_class::<Stopper>()?;
    m.add_function(wrap_pyfunction!(engine_version, m)?)?;
    m.add_function(wrap_pyfunction!(probe_frame, m)?)?;
    m.add_function(wrap_pyfunction!(roles_of, m)?)?;
    m.add_function(wrap_pyfunction!(frames, m)?)?;
    m.add_class::<Frames>()?;
    #[cfg(target_os = "linux")]
    m.add_class::<LiveSession>()?;
    Ok(())
}
