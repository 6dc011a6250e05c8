//! The classifier: one RstCase in, one Verdict out. Pure: no I/O, no state between calls.
//!
//! Rules run in order; the first that recognises the case decides it. Each rule reads the
//! evidence named in shared/docs/causes.md and says in one line what it saw. A port of
//! rstdiag/classify.py: the evidence texts are Python's, character for character.

use std::collections::HashMap;

use crate::flows::{seq_diff, Roles, RstCase, Segment, SideState, TtlSet};
use crate::records::{flag_string, ACK, FIN, RST, SYN};
use crate::verdict::{py_fixed, Confidence, Endpoint, Label, Sender, Verdict};

use Confidence::{High, Low, Medium};

/// Seconds of silence after which a forgotten connection is the likely story.
pub const IDLE_GAP: f64 = 30.0;
pub const ACCEPT_BURST_SECONDS: f64 = 2.0;
pub const ACCEPT_EXPIRY_SECONDS: f64 = 120.0;
/// A reset 'right after' the handshake.
pub const CLIENT_ABORT_SECONDS: f64 = 10.0;
pub const MAX_TEXT: usize = 120;

/// What a rule found. `sender` None: the RST's own side sent it.
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    pub label: Label,
    pub confidence: Confidence,
    pub evidence: String,
    pub sender: Option<Sender>,
}

fn judged(label: Label, confidence: Confidence, evidence: String) -> Option<Judgement> {
    Some(Judgement {
        label,
        confidence,
        evidence,
        sender: None,
    })
}

pub type Rule = fn(&RstCase) -> Option<Judgement>;

// --- what the case shows ---------------------------------------------------------------

/// The peer's last non-RST segment before the RST: what the RST answers.
fn answered(case: &RstCase) -> Option<&Segment> {
    case.before
        .iter()
        .rev()
        .find(|seg| seg.side != case.rst.side && seg.flags & RST == 0)
}

/// TTLs of the claimed sender's own (non-RST) packets in this flow, before and after.
fn sender_ttls(case: &RstCase) -> TtlSet {
    let later: TtlSet = case
        .after
        .iter()
        .filter(|s| s.side == case.rst.side && s.flags & RST == 0)
        .map(|s| s.ttl)
        .collect();
    case.sender().ttls.union(&later)
}

/// A non-RST segment the claimed sender sent after 'its' RST, if any.
fn kept_talking(case: &RstCase) -> Option<&Segment> {
    case.after
        .iter()
        .find(|seg| seg.side == case.rst.side && seg.flags & RST == 0)
}

fn describe(seg: &Segment, owner: &SideState) -> String {
    let size = if seg.length != 0 {
        format!(" {} B", seg.length)
    } else {
        String::new()
    };
    format!(
        "#{} {}{} seq={}",
        seg.frame,
        flag_string(seg.flags),
        size,
        owner.relative(seg.seq)
    )
}

fn role(side: u8) -> &'static str {
    if side == 0 {
        "client"
    } else {
        "server"
    }
}

/// How far the peer's sequence space runs past the sender's last acknowledgement.
fn unacked_by_sender(case: &RstCase) -> i64 {
    let (peer, sender) = (case.peer(), case.sender());
    let Some(nxt) = peer.nxt else { return 0 };
    match sender.acked {
        // Python's `peer.base or peer.nxt`: a base of 0 counts as none (quirk kept)
        None => seq_diff(nxt, peer.base.filter(|b| *b != 0).unwrap_or(nxt)).max(0),
        Some(acked) => seq_diff(nxt, acked).max(0),
    }
}

/// The trailing run of keepalive probes from `side` (seq = snd.una - 1, at most 1 byte),
/// latest first.
fn keepalive_probes(case: &RstCase, side: u8) -> Vec<&Segment> {
    let owner = if side == 0 {
        &case.client
    } else {
        &case.server
    };
    let mut probes = Vec::new();
    for seg in case.before.iter().rev() {
        if seg.flags & RST != 0 {
            continue;
        }
        if seg.side != side {
            break;
        }
        let is_probe = seg.flags & (SYN | FIN) == 0
            && seg.flags & ACK != 0
            && seg.length <= 1
            && owner.nxt.is_some_and(|nxt| seq_diff(nxt, seg.seq) == 1);
        if !is_probe {
            break;
        }
        probes.push(seg);
    }
    probes
}

// --- the rules, in order ---------------------------------------------------------------

pub fn lone_rst(case: &RstCase) -> Option<Judgement> {
    // The history holds the last few segments only: after a run of RSTs, the sides' counts of
    // other packets still show the flow was seen.
    if case.client.packets != 0
        || case.server.packets != 0
        || case.before.iter().any(|seg| seg.flags & RST == 0)
    {
        return None;
    }
    let others = if case.before.is_empty() {
        String::new()
    } else {
        format!(" (only {} other RSTs)", case.before.len())
    };
    judged(
        Label::Unknown,
        Low,
        format!(
            "lone RST: no earlier packet of this flow in the capture{others}; its start was \
             not captured, or it is backscatter of a spoofed scan: nothing to infer a cause from"
        ),
    )
}

pub fn injected(case: &RstCase) -> Option<Judgement> {
    let rst = &case.rst;
    let ttls = sender_ttls(case);
    let later = kept_talking(case);
    let who = role(rst.side);
    if !ttls.is_empty() && !ttls.contains(rst.ttl) {
        let mut text = format!(
            "TTL {} but the {who}'s own packets have TTL {}",
            rst.ttl,
            ttls.text()
        );
        if let Some(later) = later {
            text += &format!("; the {who} kept talking after it (#{})", later.frame);
        }
        if rst.window != 0 && rst.flags & ACK != 0 && rst.window < 64 {
            text += &format!("; odd window {}", rst.window);
        }
        return Some(Judgement {
            label: Label::Injected,
            confidence: if later.is_some() { High } else { Medium },
            evidence: format!("forged in the {who}'s name: {text}"),
            sender: Some(Sender::Path),
        });
    }
    let later = later?;
    if rst.flags & ACK == 0 && answered(case).is_some_and(|prev| rst.seq == prev.ack) {
        return None; // a stack answering a segment it does not recognise: half-open decides
    }
    judged(
        Label::Injected,
        Medium,
        format!(
            "the {who} kept the connection going after 'its' RST ({}): not the owning stack's \
             teardown (a device in the path, or an endpoint crafting packets)",
            describe(later, case.sender())
        ),
    )
}

pub fn closed_port(case: &RstCase) -> Option<Judgement> {
    let rst = &case.rst;
    let prev = answered(case)?;
    if prev.flags & SYN == 0 || prev.flags & ACK != 0 || case.sender().packets != 0 {
        return None;
    }
    if rst.flags & ACK == 0 || rst.ack != prev.seq.wrapping_add(1).wrapping_add(prev.length) {
        return None;
    }
    let delay = (rst.ts - prev.ts) * 1000.0;
    let mut text = format!(
        "RST+ACK answers SYN #{} (ack = its seq + 1) {} ms later; no SYN+ACK",
        prev.frame,
        py_fixed(delay, 1)
    );
    let retries = case
        .before
        .iter()
        .filter(|s| s.side != rst.side && s.flags & SYN != 0)
        .count();
    if retries > 1 {
        text += &format!("; the SYN was tried {retries} times");
    }
    let host = &case.sender_host_ttls;
    if !host.is_empty() && !host.contains(rst.ttl) {
        return Some(Judgement {
            label: Label::ClosedPort,
            confidence: Medium,
            evidence: format!(
                "{text}; TTL {} differs from that host's TTL {} in other flows: likely a \
                 firewall REJECT in the path",
                rst.ttl,
                host.text()
            ),
            sender: Some(Sender::Path),
        });
    }
    judged(
        Label::ClosedPort,
        High,
        format!("{text}: nothing listens on that port"),
    )
}

pub fn follow_up(case: &RstCase) -> Option<Judgement> {
    let rst = &case.rst;
    let earlier = case
        .sender()
        .rsts
        .iter()
        .find(|earlier| earlier.ttl == rst.ttl)?;
    let answers = match answered(case) {
        Some(prev) => format!(", answering {}", describe(prev, case.peer())),
        None => String::new(),
    };
    judged(
        Label::FollowUp,
        High,
        format!(
            "further RST from the {} after its RST #{}{answers}",
            role(rst.side),
            earlier.frame
        ),
    )
}

pub fn client_abort(case: &RstCase) -> Option<Judgement> {
    let (rst, me, peer) = (&case.rst, case.sender(), case.peer());
    // `me.fin_frame` as Python tests it: a frame number 0 counts as none (quirk kept)
    if rst.side != 0
        || !me.sent_syn
        || me.data_bytes != 0
        || peer.data_bytes != 0
        || me.fin_frame.is_some_and(|f| f != 0)
    {
        return None;
    }
    let Some(prev) = answered(case) else {
        return judged(
            Label::ClientAbort,
            High,
            "the client reset its own SYN before any answer (scan or connect given up)".into(),
        );
    };
    if prev.flags & SYN != 0 && prev.flags & ACK != 0 {
        return judged(
            Label::ClientAbort,
            High,
            format!(
                "the client answered the SYN+ACK #{} with a RST instead of completing the \
                 handshake (half-open SYN scan, or a client that gave up)",
                prev.frame
            ),
        );
    }
    if me.acked.is_none() || rst.ts - prev.ts > CLIENT_ABORT_SECONDS {
        return None;
    }
    judged(
        Label::ClientAbort,
        Medium,
        "the client reset right after the handshake without sending data (connect scan, port \
         probe, or health check)"
            .into(),
    )
}

pub fn keepalive_timeout(case: &RstCase) -> Option<Judgement> {
    let probes = keepalive_probes(case, case.rst.side);
    let first = probes.last()?;
    let span = case.rst.ts - first.ts;
    judged(
        Label::KeepaliveTimeout,
        if probes.len() >= 2 { High } else { Medium },
        format!(
            "{} keepalive probe(s) from the {} since #{} ({} s) got no answer; then it gave up \
             with a RST",
            probes.len(),
            role(case.rst.side),
            first.frame,
            py_fixed(span, 1)
        ),
    )
}

pub fn data_after_close(case: &RstCase) -> Option<Judgement> {
    let me = case.sender();
    let fin_frame = me.fin_frame?;
    let prev = answered(case)?;
    if unacked_by_sender(case) <= 0 {
        return None;
    }
    let who = role(case.rst.side);
    let late = prev.frame > fin_frame && (prev.length != 0 || prev.flags & FIN != 0);
    if late {
        let what = if prev.length != 0 {
            format!("{} B of data", prev.length)
        } else {
            "a FIN".to_string()
        };
        return judged(
            Label::DataAfterClose,
            High,
            format!(
                "the {who} had closed (FIN #{fin_frame}); the peer then sent {what} (#{}) and \
                 the RST answers it",
                prev.frame
            ),
        );
    }
    judged(
        Label::DataAfterClose,
        Medium,
        format!(
            "the {who} had closed (FIN #{fin_frame}) while the peer's data/FIN crossed it \
             unacknowledged; the RST answers #{}",
            prev.frame
        ),
    )
}

pub fn reset_after_peer_rst(case: &RstCase) -> Option<Judgement> {
    let rst = &case.rst;
    let prev = answered(case)?;
    if rst.flags & ACK != 0 {
        return None;
    }
    let killer = case.peer().rsts.first()?;
    judged(
        Label::HalfOpen,
        High,
        format!(
            "bare RST answering {}: the connection was already reset in the peer's name (#{}, \
             possibly forged) so the {} no longer knows it, while the real peer still does",
            describe(prev, case.peer()),
            killer.frame,
            role(rst.side)
        ),
    )
}

pub fn accept_overflow(case: &RstCase) -> Option<Judgement> {
    let (rst, me, peer) = (&case.rst, &case.server, &case.client);
    if rst.side != 1 || rst.flags & ACK != 0 || !me.sent_synack {
        return None;
    }
    let isn = me.isn?;
    if me.data_bytes != 0 || me.fin_frame.is_some() {
        return None;
    }
    if rst.seq != isn.wrapping_add(1) {
        return None;
    }
    let acked = peer.acked?;
    if seq_diff(acked, isn) < 1 {
        return None;
    }
    let resent: Vec<&Segment> = case
        .before
        .iter()
        .filter(|s| s.side == 1 && s.flags & SYN != 0 && s.flags & ACK != 0)
        .collect();
    // A request expires within about a minute of SYN+ACK retries; later, state was lost.
    let expired = resent
        .last()
        .is_some_and(|last| rst.ts - last.ts > ACCEPT_EXPIRY_SECONDS);
    if expired || !keepalive_probes(case, 0).is_empty() {
        return None;
    }
    let sent = if peer.data_bytes != 0 {
        format!(" and sent {} B", peer.data_bytes)
    } else {
        String::new()
    };
    let text = format!(
        "the client completed the handshake{sent}; the listener answered with a bare RST at its \
         ISN+1 instead of accepting"
    );
    if resent.len() > 1 {
        return judged(
            Label::AcceptOverflow,
            High,
            format!(
                "{text}; it had re-sent its SYN+ACK although the client ACKed: the accept \
                 queue was full"
            ),
        );
    }
    judged(
        Label::AcceptOverflow,
        Medium,
        format!("{text}: the accept queue was full"),
    )
}

pub fn half_open(case: &RstCase) -> Option<Judgement> {
    let (rst, me) = (&case.rst, case.sender());
    if rst.flags & ACK != 0 {
        return None;
    }
    let prev = answered(case)?;
    let gap = case
        .before
        .iter()
        .rfind(|s| s.frame < prev.frame && s.flags & RST == 0)
        .map_or(0.0, |earlier| prev.ts - earlier.ts);
    let probes = keepalive_probes(case, 1 - rst.side.min(1));
    let forged = me.rsts.iter().find(|s| s.ttl != rst.ttl);
    let who = role(rst.side);
    let (why, confidence) = if let Some(forged) = forged {
        (
            format!(
                "RSTs were forged in the {who}'s name (#{}) and its own stack has lost the \
                 connection too",
                forged.frame
            ),
            Medium,
        )
    } else if let Some(probe) = probes.first() {
        (
            format!("it answers the peer's keepalive probe #{}", probe.frame),
            High,
        )
    } else if gap >= IDLE_GAP {
        (
            format!(
                "it answers the first segment after {} s of silence",
                py_fixed(gap, 0)
            ),
            High,
        )
    } else if me.packets == 0 {
        (
            "the sender shows no trace of this connection in the capture".to_string(),
            Medium,
        )
    } else if let Some(nxt) = me
        .nxt
        .filter(|nxt| rst.seq == prev.ack && prev.flags & ACK != 0 && seq_diff(prev.ack, *nxt) != 0)
    {
        (
            format!(
                "the segment acknowledges {}, which the {who} never sent (its next is {}): it \
                 belongs to a connection the sender does not have",
                me.relative(prev.ack),
                me.relative(nxt)
            ),
            Medium,
        )
    } else if rst.seq == prev.ack {
        (
            "a bare RST at the segment's own ack number, as a stack without the connection sends"
                .to_string(),
            Medium,
        )
    } else {
        return None;
    };
    judged(
        Label::HalfOpen,
        confidence,
        format!(
            "bare RST from the {who} answering {}: {why}; the peer still believes in the \
             connection",
            describe(prev, case.peer())
        ),
    )
}

pub fn mptcp_fastclose(case: &RstCase) -> Option<Judgement> {
    let prev = answered(case).filter(|prev| prev.fastclose)?;
    judged(
        Label::Unknown,
        Medium,
        format!(
            "answers the peer's MPTCP MP_FASTCLOSE (#{}): a reset the protocol requires, not a \
             fault of this connection",
            prev.frame
        ),
    )
}

pub fn unread_data(case: &RstCase) -> Option<Judgement> {
    let (rst, me, peer) = (&case.rst, case.sender(), case.peer());
    if rst.flags & ACK == 0 {
        return None;
    }
    let nxt = peer.nxt?;
    if seq_diff(rst.ack, nxt) > 0 {
        return None;
    }
    let base = me.acked.or(peer.base);
    let fresh = base.map_or(0, |base| seq_diff(rst.ack, base));
    if fresh > 0 {
        let fin = peer
            .fin_seq
            .is_some_and(|fin_seq| rst.ack == fin_seq.wrapping_add(1));
        let data = fresh - i64::from(fin);
        if data > 0 {
            return judged(
                Label::UnreadData,
                High,
                format!(
                    "the RST is the first acknowledgement of {data} B from the peer: data \
                     arrived and the application closed without reading it"
                ),
            );
        }
        return judged(
            Label::UnreadData,
            Medium,
            "the peer's FIN arrived and was answered by RST+ACK instead of a FIN: the \
             application closed with received data still unread"
                .into(),
        );
    }
    let request = peer.last_data_frame.filter(|_| rst.side == 1)?;
    if me.last_data_frame.is_some_and(|mine| mine >= request) {
        return None;
    }
    judged(
        Label::UnreadData,
        Low,
        format!(
            "the request (#{request}, acknowledged) got no reply before the server's RST+ACK: \
             closed with the request unread, or an SO_LINGER {{1,0}} close right after reading \
             it (the wire cannot tell them apart)"
        ),
    )
}

pub fn linger_abort(case: &RstCase) -> Option<Judgement> {
    let (rst, me) = (&case.rst, case.sender());
    if rst.flags & ACK == 0 {
        return None;
    }
    let at_next = me.nxt.is_none_or(|nxt| rst.seq == nxt);
    let fin = match me.fin_frame {
        Some(frame) => format!(" after its FIN #{frame}"),
        None => " with no FIN".to_string(),
    };
    judged(
        Label::LingerAbort,
        if at_next { Medium } else { Low },
        format!(
            "RST+ACK from the {}{fin}, at its next sequence number, everything it received \
             already acknowledged: an abortive close (SO_LINGER {{1,0}} or abort())",
            role(rst.side)
        ),
    )
}

pub fn unexplained(case: &RstCase) -> Judgement {
    let rst = &case.rst;
    let answers = match answered(case) {
        Some(prev) => format!(" after {}", describe(prev, case.peer())),
        None => String::new(),
    };
    Judgement {
        label: Label::Unknown,
        confidence: Low,
        evidence: format!(
            "{} from the {} seq={}{answers}; no known pattern fits",
            flag_string(rst.flags),
            role(rst.side),
            case.sender().relative(rst.seq)
        ),
        sender: None,
    }
}

pub const RULES: [Rule; 13] = [
    lone_rst,
    injected,
    closed_port,
    follow_up,
    keepalive_timeout,
    client_abort,
    data_after_close,
    reset_after_peer_rst,
    accept_overflow,
    half_open,
    mptcp_fastclose,
    unread_data,
    linger_abort,
];

// --- verdicts ----------------------------------------------------------------------------

fn endpoint(side: &SideState) -> Endpoint {
    Endpoint {
        addr: side.addr,
        port: side.port,
    }
}

/// Python's `payload.decode("ascii", "replace")` with every non-printable character as '.':
/// printable ASCII stays, other ASCII becomes '.', every non-ASCII byte U+FFFD (printable).
fn printable_text(payload: &[u8]) -> String {
    payload
        .iter()
        .take(MAX_TEXT)
        .map(|&b| match b {
            0x20..=0x7e => char::from(b),
            0x80..=0xff => '\u{FFFD}',
            _ => '.',
        })
        .collect()
}

/// The RST's own word: RFC 1122 diagnostic text, or an MPTCP reset reason.
fn rst_text(case: &RstCase) -> String {
    let mut notes = Vec::new();
    if !case.payload.is_empty() {
        notes.push(format!(
            "RST carries {} B: \"{}\"",
            case.rst.length,
            printable_text(&case.payload)
        ));
    }
    if let Some(reason) = case.mptcp_reset_reason {
        notes.push(format!("MPTCP MP_TCPRST reason code {reason}"));
    }
    notes.join("; ")
}

pub fn judge(case: &RstCase) -> Judgement {
    RULES
        .iter()
        .find_map(|rule| rule(case))
        .unwrap_or_else(|| unexplained(case))
}

/// The verdict for one RST.
pub fn classify(case: &RstCase) -> Verdict {
    let Judgement {
        label,
        confidence,
        mut evidence,
        sender,
    } = judge(case);
    if matches!(case.roles, Roles::Port | Roles::First) && label != Label::Unknown {
        evidence.push_str(" (roles guessed: the handshake is not in the capture)");
    }
    let own_word = rst_text(case);
    if !own_word.is_empty() {
        evidence = format!("{evidence}; {own_word}");
    }
    let sender = sender.unwrap_or(if case.rst.side == 0 {
        Sender::Client
    } else {
        Sender::Server
    });
    let (src, dst) = if case.rst.side == 0 {
        (&case.client, &case.server)
    } else {
        (&case.server, &case.client)
    };
    Verdict {
        frame: case.rst.frame,
        ts: case.rst.ts,
        src: src.addr,
        sport: src.port,
        dst: dst.addr,
        dport: dst.port,
        flags: case.rst.flags,
        client: endpoint(&case.client),
        server: endpoint(&case.server),
        sender,
        label,
        confidence,
        evidence,
        duplicate_of: None,
    }
}

/// A copy of a RST seen again (an 'any' capture, a burst of identical forgeries).
pub fn as_duplicate(original: &Verdict, case: &RstCase) -> Verdict {
    Verdict {
        frame: case.rst.frame,
        ts: case.rst.ts,
        duplicate_of: Some(original.frame),
        evidence: format!(
            "identical copy of #{}: {}",
            original.frame, original.evidence
        ),
        ..original.clone()
    }
}

/// Accept-queue overflows come in bursts: several to one listener at once confirm it.
pub fn refine_bursts(verdicts: &mut [Verdict]) {
    let mut by_listener: HashMap<Endpoint, Vec<usize>> = HashMap::new();
    for (i, v) in verdicts.iter().enumerate() {
        if v.label == Label::AcceptOverflow && v.duplicate_of.is_none() {
            by_listener.entry(v.server).or_default().push(i);
        }
    }
    for mut indexes in by_listener.into_values() {
        // Python's stable sort by time; total_cmp cannot panic (-0.0 + 0.0 is 0.0, as equal
        // to 0.0 as Python finds it)
        indexes.sort_by(|&x, &y| {
            let tx = verdicts.get(x).map_or(0.0, |v| v.ts + 0.0);
            let ty = verdicts.get(y).map_or(0.0, |v| v.ts + 0.0);
            tx.total_cmp(&ty)
        });
        let times: Vec<f64> = indexes
            .iter()
            .filter_map(|&i| verdicts.get(i))
            .map(|v| v.ts)
            .collect();
        for (k, near) in burst_sizes(&times).into_iter().enumerate() {
            if near < 2 {
                continue;
            }
            if let Some(v) = indexes.get(k).and_then(|&i| verdicts.get_mut(i)) {
                v.confidence = High;
                v.evidence = format!(
                    "{}; {near} such RSTs from this listener within {} s",
                    v.evidence,
                    py_fixed(ACCEPT_BURST_SECONDS, 0)
                );
            }
        }
    }
}

/// For each time (sorted), how many times lie within ACCEPT_BURST_SECONDS of it: two pointers
/// that only move forward, linear where comparing every pair was quadratic in a flood.
fn burst_sizes(times: &[f64]) -> Vec<usize> {
    let (mut lo, mut hi) = (0usize, 0usize);
    let mut out = Vec::with_capacity(times.len());
    for (k, &t) in times.iter().enumerate() {
        while lo < k
            && times
                .get(lo)
                .is_some_and(|&x| (x - t).abs() > ACCEPT_BURST_SECONDS)
        {
            lo += 1;
        }
        hi = hi.max(k);
        while times
            .get(hi + 1)
            .is_some_and(|&x| (x - t).abs() <= ACCEPT_BURST_SECONDS)
        {
            hi += 1;
        }
        out.push(hi - lo + 1);
    }
    out
}

#[cfg(test)]
mod tests;
