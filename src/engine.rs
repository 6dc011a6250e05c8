//! One capture's run through the pipeline: frames in, final verdicts out in frame order.
//!
//! The engine owns what `read`, `check`, `explain` and the library share: link-type checks,
//! the file's counters and warnings, the judging of each case (identical copies named after
//! the first), and the order verdicts leave in. A verdict leaves as soon as every RST before
//! it has been judged, so memory holds the verdicts of the RSTs still waiting for their
//! after-window, never the whole capture's. Accept-queue overflows wait a little longer: their
//! confidence depends on their listener's other overflows within ACCEPT_BURST_SECONDS on
//! either side; a server's reset of a connection it never served waits LISTENER_SECONDS for
//! the SYNs after it (a closing listener's story, rules::listeners).

use std::collections::{BTreeMap, HashSet, VecDeque};

use rustc_hash::{FxHashMap, FxHashSet};
use std::io::Read;
use std::net::IpAddr;

use crate::capture::{CaptureError, CaptureReader, Format};
use crate::decode::{is_supported_linktype, Decoder};
use crate::flows::{FlowTracker, RstCase, MAX_FLOWS, MAX_WAITING};
use crate::front::{Batch, Front};
use crate::kernel_note::Note;
use crate::records::{Packet, RawFrame, RST};
use crate::rules::listeners::{Listeners, LISTENER_SECONDS};
use crate::rules::{as_duplicate, classify, ACCEPT_BURST_SECONDS};
use crate::verdict::{Confidence, Endpoint, Label, Verdict};

/// Distinct unsupported link types warned about one by one; a pcapng may declare 65536.
const MAX_LINKTYPE_WARNINGS: usize = 8;
/// Verdicts kept after they leave, so that a late identical copy can still name its original.
const RECENT_VERDICTS: usize = 1 << 13;

/// What a capture held besides its verdicts: counters, warnings, time span.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub format: Option<Format>,
    pub frames: u64,
    pub tcp_packets: u64,
    pub flows: u64,
    pub duplicates: u64,
    pub evicted_flows: u64,
    /// RSTs judged before the packets after them were all in: too many waited at once
    pub judged_early: u64,
    pub rsts: u64,
    pub skipped: Vec<(String, u64)>,
    pub warnings: Vec<String>,
    pub complete: bool,
    pub first_ts: Option<f64>,
    pub last_ts: Option<f64>,
}

/// The link types people meet, named in the messages about unsupported ones.
pub fn linktype_name(linktype: u32) -> &'static str {
    match linktype {
        9 => "PPP",
        50 => "PPP in HDLC framing",
        105 => "IEEE 802.11",
        119 => "802.11 Prism",
        127 => "802.11 radiotap",
        192 => "PPI",
        195 => "IEEE 802.15.4",
        197 => "ERF",
        220 => "USB Linux mmapped",
        249 => "netlink",
        253 => "Linux netlink",
        _ => "unknown",
    }
}

/// A float ordered totally, for the ordered maps of times below.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Time(f64);

impl Eq for Time {}

impl PartialOrd for Time {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Time {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The order verdicts leave in, and the accept-overflow bursts they are refined by.
#[derive(Default)]
struct Outbox {
    /// RSTs fed to the tracker whose case is not judged yet: frame -> time
    unjudged: BTreeMap<u64, f64>,
    unjudged_times: BTreeMap<(Time, u64), ()>,
    /// judged, waiting for an earlier RST or for their burst
    judged: BTreeMap<u64, Verdict>,
    /// recent verdicts as first judged (before burst refinement), for identical copies
    recent: FxHashMap<u64, Verdict>,
    recent_order: VecDeque<u64>,
    /// times of each listener's accept-overflow verdicts (not copies), sorted
    overflows: FxHashMap<Endpoint, Vec<f64>>,
    /// listeners closing across flows, and the verdicts waiting for the SYNs after them
    listeners: Listeners,
    held: FxHashSet<u64>,
}

impl Outbox {
    fn expect(&mut self, frame: u64, ts: f64) {
        self.unjudged.insert(frame, ts);
        self.unjudged_times.insert((Time(ts), frame), ());
    }

    fn judge(&mut self, case: &RstCase) {
        let verdict = match case.duplicate_of.and_then(|frame| self.original(frame)) {
            Some(original) => as_duplicate(&original, case),
            None => classify(case),
        };
        let frame = verdict.frame;
        if self.listeners.note(case, &verdict) {
            self.held.insert(frame);
        }
        if let Some(ts) = self.unjudged.remove(&frame) {
            self.unjudged_times.remove(&(Time(ts), frame));
        }
        if is_burst_member(&verdict) {
            let times = self.overflows.entry(verdict.server).or_default();
            let at = times.partition_point(|t| t.total_cmp(&verdict.ts).is_le());
            times.insert(at, verdict.ts);
        }
        self.remember(verdict.clone());
        self.judged.insert(frame, verdict);
    }

    /// The verdict a copy repeats: the first of a chain of copies (the tracker may have lost
    /// the chain when a sweep judged a copy before the next arrived).
    fn original(&self, frame: u64) -> Option<Verdict> {
        let original = self.recent.get(&frame)?;
        match original.duplicate_of {
            Some(first) => Some(self.recent.get(&first).unwrap_or(original).clone()),
            None => Some(original.clone()),
        }
    }

    fn remember(&mut self, verdict: Verdict) {
        if self.recent_order.len() >= RECENT_VERDICTS {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
        self.recent_order.push_back(verdict.frame);
        self.recent.insert(verdict.frame, verdict);
    }

    /// Move the verdicts that can leave to `out`, in frame order. `now`: the latest packet
    /// time; None at the end of the capture, when everything leaves.
    fn drain(&mut self, now: Option<f64>, out: &mut Vec<Verdict>) {
        while let Some((&frame, head)) = self.judged.first_key_value() {
            if self
                .unjudged
                .first_key_value()
                .is_some_and(|(&f, _)| f < frame)
            {
                return;
            }
            if let Some(now) = now {
                if is_burst_member(head) && !self.window_complete(head, now, ACCEPT_BURST_SECONDS) {
                    return;
                }
                if self.held.contains(&frame) && !self.window_complete(head, now, LISTENER_SECONDS)
                {
                    return;
                }
            }
            let Some(mut verdict) = self.judged.remove(&frame) else {
                return;
            };
            if is_burst_member(&verdict) {
                self.refine(&mut verdict);
            }
            self.held.remove(&frame);
            self.listeners.settle(&mut verdict);
            out.push(verdict);
        }
        if let Some(now) = now {
            self.listeners.prune(now);
        }
    }

    /// Every RST within `window` around `v` is judged: the capture has moved past the window
    /// and no RST inside it still waits.
    fn window_complete(&self, v: &Verdict, now: f64, window: f64) -> bool {
        if now - v.ts <= window {
            return false;
        }
        let low = (Time(v.ts - window), 0);
        !self
            .unjudged_times
            .range(low..)
            .next()
            .is_some_and(|((t, _), _)| (t.0 - v.ts).abs() <= window)
    }

    /// Several overflows to one listener at once confirm each other (as `refine_bursts`).
    fn refine(&mut self, v: &mut Verdict) {
        let Some(times) = self.overflows.get(&v.server) else {
            return;
        };
        let ts = v.ts;
        let lo = times.partition_point(|&t| t < ts && (ts - t) > ACCEPT_BURST_SECONDS);
        let hi = times.partition_point(|&t| t <= ts || (t - ts) <= ACCEPT_BURST_SECONDS);
        let near = hi.saturating_sub(lo);
        if near >= 2 {
            v.confidence = Confidence::High;
            v.evidence = format!(
                "{}; {near} such RSTs from this listener within {ACCEPT_BURST_SECONDS:.0} s",
                v.evidence
            );
        }
    }
}

fn is_burst_member(v: &Verdict) -> bool {
    v.label == Label::AcceptOverflow && v.duplicate_of.is_none()
}

/// One capture's analysis. Feed it frames (`frame`) or let it read a capture (`read`);
/// take the verdicts that are final (`take`); `finish` at the end.
pub struct Analysis {
    front: Front,
    tracker: FlowTracker,
    outbox: Outbox,
    cases: Vec<RstCase>,
    summary: Summary,
    warned_linktypes: Vec<u32>,
    seen_linktypes: HashSet<u32>,
    verdicts: Vec<Verdict>,
    finished: bool,
    reader_absorbed: bool,
    watch: Option<FlowKey>,
    watched: Vec<Packet>,
    /// the last frame was a TCP RST (a live -w file reserves its comment)
    last_rst: bool,
    /// the kernel's reasons the capture saved, carried from the reader (`take_notes`)
    notes: Vec<(u64, Note)>,
}

/// Both directions of a 4-tuple under one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    low: (IpAddr, u16),
    high: (IpAddr, u16),
}

impl FlowKey {
    pub fn new(a: (IpAddr, u16), b: (IpAddr, u16)) -> Self {
        if a <= b {
            FlowKey { low: a, high: b }
        } else {
            FlowKey { low: b, high: a }
        }
    }

    pub fn of(pkt: &Packet) -> Self {
        FlowKey::new((pkt.src, pkt.sport), (pkt.dst, pkt.dport))
    }
}

impl Analysis {
    pub fn new(max_flows: Option<usize>) -> Self {
        Analysis {
            front: Front::new(),
            tracker: FlowTracker::new(max_flows.unwrap_or(MAX_FLOWS)),
            outbox: Outbox::default(),
            cases: Vec::new(),
            summary: Summary {
                complete: true,
                ..Summary::default()
            },
            warned_linktypes: Vec::new(),
            seen_linktypes: HashSet::new(),
            verdicts: Vec::new(),
            finished: false,
            reader_absorbed: false,
            watch: None,
            watched: Vec::new(),
            last_rst: false,
            notes: Vec::new(),
        }
    }

    /// Start on a capture: its format, and a classic pcap's one link type, which must be
    /// one rstdiag reads (even when the file holds no packet).
    pub fn start<R: Read>(&mut self, reader: &CaptureReader<R>) -> Result<(), CaptureError> {
        self.summary.format = Some(reader.format());
        match reader.linktype() {
            Some(linktype) => self.check_linktype(linktype),
            None => Ok(()),
        }
    }

    /// Up to `limit` frames of `reader` through the pipeline; false once the capture ended.
    pub fn read<R: Read>(
        &mut self,
        reader: &mut CaptureReader<R>,
        limit: usize,
    ) -> Result<bool, CaptureError> {
        let mut batch = self.front.batch(reader, limit);
        let more = batch.more;
        let applied = self.apply(&mut batch);
        if applied.is_ok() && !more {
            self.absorb_reader(reader);
        }
        applied
    }

    /// Read no more than `frames` frames of the capture, as if it ended there (`-c`).
    pub fn limit_frames(&mut self, frames: u64) {
        self.front.limit_frames(frames);
    }

    /// The reading and decoding half, to run on a thread of its own (`put_front` gives it
    /// back before `finish`, which needs its counters).
    pub fn take_front(&mut self) -> Front {
        std::mem::take(&mut self.front)
    }

    pub fn put_front(&mut self, front: Front) {
        self.front = front;
    }

    /// A batch from the front through tracking and judging; false once the capture ended,
    /// Err when reading failed after the batch's frames (which are tracked all the same).
    /// The batch's packets are taken out; its emptied Vec can serve the next batch.
    pub fn apply(&mut self, batch: &mut Batch) -> Result<bool, CaptureError> {
        if let Some(first) = batch.first_ts {
            self.note_time(first);
        }
        if let Some(last) = batch.last_ts {
            self.note_time(last);
        }
        for pkt in batch.packets.drain(..) {
            self.accept(pkt);
        }
        self.notes.append(&mut batch.notes);
        for linktype in std::mem::take(&mut batch.unsupported) {
            self.check_linktype(linktype)?;
        }
        if let Some(err) = batch.error.take() {
            return Err(err);
        }
        if batch.more {
            self.drain();
        }
        Ok(batch.more)
    }

    /// One frame through decode, tracking and judging.
    pub fn frame(&mut self, raw: &RawFrame<'_>) -> Result<(), CaptureError> {
        self.note_time(raw.ts);
        self.last_rst = false;
        match self.front.decoder.decode(raw) {
            Some(pkt) => {
                self.last_rst = pkt.flags & RST != 0;
                self.accept(pkt);
                Ok(())
            }
            None => self.check_linktype(raw.linktype),
        }
    }

    fn note_time(&mut self, ts: f64) {
        let s = &mut self.summary;
        if s.first_ts.is_none_or(|first| ts < first) {
            s.first_ts = Some(ts);
        }
        if s.last_ts.is_none_or(|last| ts > last) {
            s.last_ts = Some(ts);
        }
    }

    /// A decoded packet: kept if it is of the watched flow, then tracked.
    fn accept(&mut self, pkt: Packet) {
        if self.watch.is_some_and(|key| key == FlowKey::of(&pkt)) {
            self.watched.push(pkt.clone());
        }
        self.track(pkt);
    }

    /// The kernel's reasons read with the frames since the last call, by frame: those a
    /// capture saved by `live -w --kernel-reasons` keeps (src/kernel_note.rs).
    pub fn take_notes(&mut self) -> Vec<(u64, Note)> {
        std::mem::take(&mut self.notes)
    }

    /// Whether the last frame through `frame` was a TCP RST.
    pub fn last_frame_rst(&self) -> bool {
        self.last_rst
    }

    /// Keep every packet of the flow `key` (both directions) as it passes: `explain`'s ladder.
    pub fn watch(&mut self, key: FlowKey) {
        self.watch = Some(key);
    }

    /// The watched flow's packets so far, taken out of the engine.
    pub fn take_watched(&mut self) -> Vec<Packet> {
        std::mem::take(&mut self.watched)
    }

    /// One decoded packet through tracking and judging (the rules' tests feed conversations).
    pub fn packet(&mut self, pkt: Packet) {
        if pkt.ts > self.summary.last_ts.unwrap_or(f64::NEG_INFINITY) {
            self.summary.last_ts = Some(pkt.ts);
        }
        self.track(pkt);
    }

    fn track(&mut self, pkt: Packet) {
        if pkt.flags & RST != 0 {
            self.outbox.expect(pkt.frame, pkt.ts);
        }
        self.tracker.feed(pkt, &mut self.cases);
        self.judge_ready();
    }

    fn judge_ready(&mut self) {
        for case in self.cases.drain(..) {
            self.outbox.judge(&case);
        }
    }

    fn check_linktype(&mut self, linktype: u32) -> Result<(), CaptureError> {
        if is_supported_linktype(linktype) || !self.seen_linktypes.insert(linktype) {
            return Ok(());
        }
        let name = linktype_name(linktype);
        if self.summary.format == Some(Format::Pcap) {
            return Err(CaptureError {
                message: format!(
                    "unsupported link type {linktype} ({name}): rstdiag reads Ethernet, \
                     802.1Q, Linux cooked (SLL, SLL2), raw IP and BSD loopback captures"
                ),
                offset: Some(20),
            });
        }
        self.warned_linktypes.push(linktype);
        let warnings = &mut self.summary.warnings;
        match self.warned_linktypes.len() {
            n if n <= MAX_LINKTYPE_WARNINGS => warnings.push(format!(
                "packets on an interface with unsupported link type {linktype} ({name}) skipped"
            )),
            n if n == MAX_LINKTYPE_WARNINGS + 1 => warnings.push(
                "packets on interfaces with further unsupported link types skipped \
                 (counted in skipped)"
                    .to_string(),
            ),
            _ => {}
        }
        Ok(())
    }

    /// The reader's counters and warnings, once it is done (or interrupted).
    pub fn absorb_reader<R: Read>(&mut self, reader: &CaptureReader<R>) {
        if std::mem::replace(&mut self.reader_absorbed, true) {
            return;
        }
        for warning in reader.warnings() {
            if !self.summary.warnings.contains(warning) {
                self.summary.warnings.push(warning.clone());
            }
        }
        let skipped = reader.skipped_frames();
        if skipped > 0 {
            self.summary.frames_skipped_by_reader(skipped);
        }
    }

    fn drain(&mut self) {
        let now = if self.finished {
            None
        } else {
            Some(self.summary.last_ts.unwrap_or(0.0))
        };
        let before = self.verdicts.len();
        self.outbox.drain(now, &mut self.verdicts);
        self.summary.rsts += (self.verdicts.len() - before) as u64;
    }

    /// The verdicts that are final, in frame order, taken out of the engine.
    pub fn take(&mut self) -> Vec<Verdict> {
        self.drain();
        std::mem::take(&mut self.verdicts)
    }

    /// The RSTs not out yet, judged as they stand (a live view's provisional verdicts): the
    /// cases still collecting packets after their RST, and the verdicts waiting for an
    /// earlier RST or for their burst, before its refinement.
    pub fn provisional(&self) -> Vec<Verdict> {
        self.provisional_from(0)
    }

    /// `provisional` for the RSTs of frame `from` on only: a live view asks for the RSTs it
    /// has not shown yet, not for every RST still in its after-window.
    pub fn provisional_from(&self, from: u64) -> Vec<Verdict> {
        let waiting = self
            .tracker
            .pending()
            .filter(|case| case.rst.frame >= from)
            .map(
                |case| match case.duplicate_of.and_then(|f| self.outbox.original(f)) {
                    Some(original) => as_duplicate(&original, case),
                    None => classify(case),
                },
            );
        let held = self.outbox.judged.range(from..).map(|(_, v)| v.clone());
        let mut out: Vec<Verdict> = waiting.chain(held).collect();
        out.sort_by_key(|v| v.frame);
        out
    }

    /// Let capture time reach `now` without a packet (a live capture's clock).
    pub fn sweep_at(&mut self, now: f64) {
        self.tracker.sweep_at(now, &mut self.cases);
        self.judge_ready();
        let s = &mut self.summary;
        if s.last_ts.is_none_or(|last| now > last) {
            s.last_ts = Some(now);
        }
    }

    /// End of input: every waiting case is judged; the counters are final.
    pub fn finish(&mut self, complete: bool) {
        if self.finished {
            return;
        }
        self.tracker.finish(&mut self.cases);
        self.judge_ready();
        self.finished = true;
        self.drain();
        let s = &mut self.summary;
        s.complete = complete;
        let stats = &self.front.decoder.stats;
        s.frames += stats.frames;
        s.tcp_packets = stats.tcp;
        let mut skipped = stats.skipped();
        skipped.append(&mut s.skipped);
        s.skipped = skipped;
        let tracker = self.tracker.stats();
        s.flows = tracker.flows;
        s.duplicates = tracker.duplicates;
        s.evicted_flows = tracker.evicted;
        if s.evicted_flows > 0 {
            s.warnings.push(format!(
                "flow table full: {} oldest flows evicted (cap {}); RSTs on them may lack context",
                s.evicted_flows,
                self.tracker.max_flows()
            ));
        }
        s.judged_early = tracker.early;
        if s.judged_early > 0 {
            s.warnings.push(format!(
                "{} RSTs judged early: more than {MAX_WAITING} waited at once for the packets \
                 after them; their verdicts may lack that evidence",
                s.judged_early
            ));
        }
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    pub fn open_flows(&self) -> usize {
        self.tracker.open_flows()
    }

    pub fn flows_seen(&self) -> u64 {
        self.tracker.stats().flows
    }

    pub fn tcp_packets(&self) -> u64 {
        self.front.decoder.stats.tcp
    }
}

impl Summary {
    /// Packet records numbered but not decoded (a pcapng interface nobody declared): counted
    /// as frames so that every verdict's frame is at most `frames`.
    fn frames_skipped_by_reader(&mut self, count: u64) {
        self.frames += count;
        self.skipped
            .push(("undeclared_interface".to_string(), count));
    }
}

/// What a capture holds at one frame: its TCP packet, or which counter the decoder put it
/// under ("non_ip", "non_tcp", "ip_fragments", "malformed", a link type's), or "absent" with
/// the number of frames when the capture ends first.
#[derive(Debug, PartialEq)]
pub struct Probe {
    pub packet: Option<Packet>,
    pub why_not: String,
    pub frames: u64,
}

/// Decode frames up to `frame` only: `explain --frame` learns which flow to draw.
pub fn probe_frame<R: Read>(
    reader: &mut CaptureReader<R>,
    frame: u64,
) -> Result<Probe, CaptureError> {
    let mut decoder = Decoder::new();
    let mut frames = 0;
    while let Some(raw) = reader.next_frame()? {
        frames += 1;
        if raw.frame != frame {
            continue;
        }
        let before = decoder.stats.skipped();
        let packet = decoder.decode(&raw);
        let why_not = match packet {
            Some(_) => String::new(),
            None => decoder
                .stats
                .skipped()
                .into_iter()
                .find(|(key, count)| !before.iter().any(|(k, c)| k == key && c == count))
                .map(|(key, _)| key)
                .unwrap_or_default(),
        };
        return Ok(Probe {
            packet,
            why_not,
            frames,
        });
    }
    // numbered like any other frame (a pcapng interface nobody declared), as `frames` counts
    frames += reader.skipped_frames();
    Ok(Probe {
        packet: None,
        why_not: "absent".to_string(),
        frames,
    })
}
