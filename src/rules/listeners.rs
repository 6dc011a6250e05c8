//! Listeners across flows: a listener that closes resets the connections still in its accept
//! queue (Linux: TCP_STATE), and the SYNs after it get closed-port. Each RST alone tells only
//! part of that story; together, on one server address and port, they tell the deploy and
//! restart story operators meet.
//!
//! The engine notes every judged RST here (in whatever order the flows release them), holds the
//! resets that may be a queued connection's until LISTENER_SECONDS of capture have passed, and
//! settles each verdict as it leaves, in frame order. Memory stays bounded: a few recent events
//! per listener, listeners quiet for a while forgotten, and at most MAX_LISTENERS of them.

use std::collections::{HashMap, VecDeque};

use crate::flows::RstCase;
use crate::records::{ACK, SYN};
use crate::verdict::{Endpoint, Label, Sender, Verdict, LISTENER_CLOSED_HINT};

/// How long after a listener's resets a closed-port SYN still tells of its close (and so how
/// long those resets wait for one).
pub const LISTENER_SECONDS: f64 = 10.0;
/// Resets of one close come together: a gap longer than this starts another.
pub const CLOSE_GAP_SECONDS: f64 = 1.0;
/// Events kept per listener, and listeners kept at once.
const EVENTS: usize = 32;
const MAX_LISTENERS: usize = 16_384;

/// A server RST+ACK at its next sequence number on a connection whose handshake the capture
/// saw, to which the server never sent data or a FIN, and its first RST: what a closing
/// listener sends to each connection still waiting in its accept queue (it may also be an
/// application's abortive close before answering: the SYNs after it tell them apart).
pub fn reset_before_serving(case: &RstCase) -> bool {
    let (rst, server) = (&case.rst, &case.server);
    rst.side == 1
        && rst.flags & ACK != 0
        && server.sent_synack
        && server.data_bytes == 0
        && server.fin_frame.is_none()
        && server.rsts.is_empty()
        && server.nxt == Some(rst.seq)
        && case.client.acked.is_some()
}

/// A closed-port RST the server's own host sent for a SYN.
fn refuses_a_syn(v: &Verdict) -> bool {
    v.label == Label::ClosedPort && v.sender == Sender::Server && v.flags & ACK != 0
}

/// One close: its resets (the first, and the time of the last).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Close {
    first_frame: u64,
    first_ts: f64,
    last_ts: f64,
}

#[derive(Default, Debug)]
struct Listener {
    /// resets of connections never served, grouped into closes, by time
    closes: VecDeque<Close>,
    /// closed-port RSTs for SYNs: (ts, frame), by time
    refusals: VecDeque<(f64, u64)>,
    last_ts: f64,
}

impl Listener {
    fn add_reset(&mut self, frame: u64, ts: f64) {
        let near = self
            .closes
            .iter_mut()
            .find(|c| ts >= c.first_ts - CLOSE_GAP_SECONDS && ts <= c.last_ts + CLOSE_GAP_SECONDS);
        match near {
            Some(close) => {
                if ts < close.first_ts || (ts == close.first_ts && frame < close.first_frame) {
                    close.first_frame = frame;
                    close.first_ts = ts;
                }
                close.last_ts = close.last_ts.max(ts);
            }
            None => {
                let at = self.closes.partition_point(|c| c.first_ts <= ts);
                self.closes.insert(
                    at,
                    Close {
                        first_frame: frame,
                        first_ts: ts,
                        last_ts: ts,
                    },
                );
            }
        }
        if self.closes.len() > EVENTS {
            self.closes.pop_front();
        }
    }

    fn add_refusal(&mut self, frame: u64, ts: f64) {
        let at = self.refusals.partition_point(|(t, _)| *t <= ts);
        self.refusals.insert(at, (ts, frame));
        if self.refusals.len() > EVENTS {
            self.refusals.pop_front();
        }
    }

    /// The close a reset at `ts` belongs to.
    fn close_of(&self, ts: f64) -> Option<&Close> {
        self.closes
            .iter()
            .find(|c| c.first_ts <= ts && ts <= c.last_ts)
    }

    /// The first SYN refused after `close` (within LISTENER_SECONDS of its last reset).
    fn refusal_after(&self, close: &Close) -> Option<u64> {
        self.refusals
            .iter()
            .find(|(t, _)| *t >= close.last_ts && *t - close.last_ts <= LISTENER_SECONDS)
            .map(|(_, frame)| *frame)
    }

    /// The latest close a refusal at `ts` follows.
    fn close_before(&self, ts: f64) -> Option<&Close> {
        self.closes
            .iter()
            .rev()
            .find(|c| c.last_ts <= ts && ts - c.last_ts <= LISTENER_SECONDS)
    }
}

/// The listeners of one capture, as their RSTs tell them.
#[derive(Default)]
pub struct Listeners {
    listeners: HashMap<Endpoint, Listener>,
    pruned_at: f64,
}

impl Listeners {
    /// Note a judged RST; true when its verdict must wait LISTENER_SECONDS for the SYNs after
    /// it before it leaves (a reset that may be a closing listener's).
    pub fn note(&mut self, case: &RstCase, verdict: &Verdict) -> bool {
        if verdict.duplicate_of.is_some() {
            return false;
        }
        let queued = reset_before_serving(case);
        let refusal = refuses_a_syn(verdict) && case.before.iter().any(|s| s.flags & SYN != 0);
        if !queued && !refusal {
            return false;
        }
        if self.listeners.len() >= MAX_LISTENERS && !self.listeners.contains_key(&verdict.server) {
            // a flood of listeners: forget the half quiet longest rather than grow
            let mut times: Vec<f64> = self.listeners.values().map(|l| l.last_ts).collect();
            let (_, cut, _) = times.select_nth_unstable_by(MAX_LISTENERS / 2, f64::total_cmp);
            let cut = *cut;
            self.listeners.retain(|_, l| l.last_ts > cut);
        }
        let listener = self.listeners.entry(verdict.server).or_default();
        listener.last_ts = listener.last_ts.max(verdict.ts);
        if queued {
            listener.add_reset(verdict.frame, verdict.ts);
        } else {
            listener.add_refusal(verdict.frame, verdict.ts);
        }
        queued
    }

    /// A verdict as it leaves, in frame order (every RST before it judged; a held reset also
    /// every RST within LISTENER_SECONDS after it): it tells its listener's close if a SYN got
    /// closed-port after the resets.
    pub fn settle(&self, verdict: &mut Verdict) {
        if verdict.duplicate_of.is_some() {
            return;
        }
        let Some(listener) = self.listeners.get(&verdict.server) else {
            return;
        };
        let close = if refuses_a_syn(verdict) {
            listener.close_before(verdict.ts)
        } else {
            listener
                .close_of(verdict.ts)
                .filter(|close| listener.refusal_after(close).is_some())
        };
        if let Some(close) = close {
            verdict.evidence = format!(
                "{}; the listener on :{} closed at #{} (later SYNs get closed-port); \
                 connections still queued were reset",
                verdict.evidence, verdict.server.port, close.first_frame
            );
            verdict.story_hint = Some(LISTENER_CLOSED_HINT);
        }
    }

    /// Forget listeners quiet for three windows (at most once a window of capture time).
    pub fn prune(&mut self, now: f64) {
        if now - self.pruned_at < LISTENER_SECONDS {
            return;
        }
        self.pruned_at = now;
        self.listeners
            .retain(|_, l| now - l.last_ts <= 3.0 * LISTENER_SECONDS);
    }

    pub fn len(&self) -> usize {
        self.listeners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }
}
