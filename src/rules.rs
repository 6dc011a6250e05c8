//! The classifier: one RstCase in, one Verdict out. Pure: no I/O, no state between calls.
//!
//! Rules run in order; the first that recognises the case decides it. Each rule reads the
//! evidence named in shared/docs/causes.md and says in one line what it saw. A port of
//! rstdiag/classify.py: the evidence texts are Python's, character for character.

use std::collections::HashMap;

use crate::flows::{seq_diff, Device, Roles, RstCase, Segment, SideState, TtlSet};
use crate::records::{flag_string, ACK, FIN, PSH, RST, SYN, URG};
use crate::verdict::{py_fixed, Confidence, Effect, Endpoint, Label, Sender, Verdict};

use Confidence::{High, Low, Medium};

pub mod listeners;

/// Seconds of silence after which a forgotten connection is the likely story.
pub const IDLE_GAP: f64 = 30.0;
pub const ACCEPT_BURST_SECONDS: f64 = 2.0;
pub const ACCEPT_EXPIRY_SECONDS: f64 = 120.0;
/// A reset 'right after' the handshake.
pub const CLIENT_ABORT_SECONDS: f64 = 10.0;
pub const MAX_TEXT: usize = 120;
/// A RST answers a segment only if it follows it within this (a round trip across the globe,
/// with the capture at the far end, and a slow stack).
pub const ANSWER_SECONDS: f64 = 3.0;
/// Without a handshake to time, the receiver's packets this soon after a RST may have crossed
/// it on the way (sent before it arrived): they say nothing about its effect.
pub const CROSSING_SECONDS: f64 = 0.2;

/// What a rule found. `sender` None: the RST's own side sent it.
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    pub label: Label,
    pub confidence: Confidence,
    pub evidence: String,
    pub sender: Option<Sender>,
    /// the other labels the same evidence allows
    pub alternatives: Vec<Label>,
}

fn judged(label: Label, confidence: Confidence, evidence: String) -> Option<Judgement> {
    Some(Judgement {
        label,
        confidence,
        evidence,
        sender: None,
        alternatives: Vec::new(),
    })
}

/// A judgement the wire cannot make alone: `also` fits the same packets (only the kernel's
/// reason tells them apart), so the confidence is at most medium.
fn ambiguous(
    label: Label,
    confidence: Confidence,
    evidence: String,
    also: &[Label],
) -> Option<Judgement> {
    Some(Judgement {
        label,
        confidence: if confidence == High {
            Medium
        } else {
            confidence
        },
        evidence,
        sender: None,
        alternatives: also.to_vec(),
    })
}

fn by_path(label: Label, confidence: Confidence, evidence: String) -> Option<Judgement> {
    Some(Judgement {
        label,
        confidence,
        evidence,
        sender: Some(Sender::Path),
        alternatives: Vec::new(),
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

/// Whether `prev` tells the RST's sender something it did not know: data, SYN or FIN, a
/// keepalive probe, or an acknowledgement that moved. A repeated bare ACK does not.
fn is_news(case: &RstCase, prev: &Segment) -> bool {
    if prev.length != 0 || prev.flags & (SYN | FIN) != 0 {
        return true;
    }
    let probe = case
        .peer()
        .nxt
        .is_some_and(|nxt| seq_diff(nxt, prev.seq) == 1);
    let earlier_ack = case
        .before
        .iter()
        .rev()
        .filter(|s| s.side == prev.side && s.flags & RST == 0 && s.frame != prev.frame)
        .find(|s| s.ts <= prev.ts)
        .map(|s| s.ack);
    probe || earlier_ack.is_none_or(|ack| ack != prev.ack)
}

/// The segment the RST answers: the peer's last one, if the RST follows it closely and it was
/// news to the sender. A RST long after the last exchange answers nothing: its sender decided.
fn answers(case: &RstCase) -> Option<&Segment> {
    answered(case).filter(|prev| case.rst.ts - prev.ts <= ANSWER_SECONDS && is_news(case, prev))
}

/// The answered segment when the RST is what a stack without the connection sends for it:
/// bare, at the segment's acknowledgement number.
fn stateless_answer(case: &RstCase) -> Option<&Segment> {
    let rst = &case.rst;
    answers(case)
        .filter(|prev| rst.flags & ACK == 0 && prev.flags & ACK != 0 && rst.seq == prev.ack)
}

/// Seconds since the flow's last non-RST segment before the RST.
fn idle_before(case: &RstCase) -> f64 {
    case.before
        .iter()
        .rev()
        .find(|s| s.flags & RST == 0)
        .map_or(0.0, |last| case.rst.ts - last.ts)
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
        owner.shown(seg.seq)
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

/// The device that sent the endpoint's data: its host, behind whatever answered for it.
fn data_device(me: &SideState, not_ttl: u8) -> Option<&Device> {
    me.seen_devices()
        .filter(|d| d.ttl != not_ttl && d.data_packets != 0)
        .max_by_key(|d| d.data_packets)
}

pub fn path_device(case: &RstCase) -> Option<Judgement> {
    let (rst, me) = (&case.rst, case.sender());
    let device = me.device(rst.ttl).filter(|d| d.data_packets == 0)?;
    let host = data_device(me, rst.ttl)?;
    let who = role(rst.side);
    let mut seen = format!(
        "two devices send in the {who}'s name: {} with no data (it answered the handshake \
         from #{}) and the {who}'s host, {} with the data; the RST has TTL {}",
        device.text(),
        device.first_frame,
        host.text(),
        rst.ttl
    );
    if let Some(id) = rst
        .ipid
        .filter(|_| device.counts_on(rst.ipid) && !host.counts_on(rst.ipid))
    {
        seen += &format!(" and IP ID {id}, on the first device's counter");
    }
    if let Some(prev) = stateless_answer(case) {
        return by_path(
            Label::HalfOpen,
            Medium,
            format!(
                "{seen}: that device (a firewall, SYN proxy or NAT in front of the {who}) \
                 answers {} as a stack without the connection: it lost the connection's state",
                describe(prev, case.peer())
            ),
        );
    }
    let idle = idle_before(case);
    let why = if idle >= IDLE_GAP {
        format!(
            " after {} s idle: a middlebox idle timeout",
            py_fixed(idle, 0)
        )
    } else {
        String::new()
    };
    by_path(
        Label::Injected,
        if idle >= IDLE_GAP { High } else { Medium },
        format!("{seen}: a firewall or SYN proxy in front of the {who} reset the connection{why}"),
    )
}

pub fn injected(case: &RstCase) -> Option<Judgement> {
    let rst = &case.rst;
    let ttls = sender_ttls(case);
    let later = kept_talking(case);
    let who = role(rst.side);
    if !ttls.is_empty() && !ttls.contains(rst.ttl) {
        // back-to-back RSTs from that device with differing sequence numbers are forgeries
        let jumping = case
            .sender()
            .rsts
            .iter()
            .any(|r| r.ttl == rst.ttl && r.seq != rst.seq);
        if let Some(prev) = stateless_answer(case).filter(|_| later.is_none() && !jumping) {
            return by_path(
                Label::HalfOpen,
                Medium,
                format!(
                    "bare RST answering {} at its ack number, from another device than the \
                     {who}'s host (TTL {}; the {who}'s packets have TTL {}): whatever holds \
                     the address now (a NAT or firewall that lost the state, or a host that \
                     lost it) has no such connection",
                    describe(prev, case.peer()),
                    rst.ttl,
                    ttls.text()
                ),
            );
        }
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
        return by_path(
            Label::Injected,
            if later.is_some() { High } else { Medium },
            format!("forged in the {who}'s name: {text}"),
        );
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

/// The name of a scan probe other than SYN: a segment without SYN or ACK.
fn probe_name(flags: u8) -> String {
    match flags & (FIN | PSH | URG) {
        0 => "NULL".to_string(),
        FIN => "FIN".to_string(),
        f if f == FIN | PSH | URG => "Xmas".to_string(),
        f => format!("{} (flags {})", "odd", flag_string(f)),
    }
}

/// A FIN, NULL or Xmas scan probe answered by a closed port (an open one stays silent).
fn closed_port_probe(case: &RstCase, prev: &Segment) -> Option<Judgement> {
    let rst = &case.rst;
    if prev.flags & (SYN | ACK | RST) != 0 || rst.flags & ACK == 0 || rst.ack != prev.end() {
        return None;
    }
    let fin = if prev.flags & FIN != 0 { " + 1" } else { "" };
    judged(
        Label::ClosedPort,
        High,
        format!(
            "RST+ACK answers a {} scan probe #{} (ack = its seq{fin}) {} ms later: nothing \
             listens on that port (a closed port answers FIN, NULL and Xmas probes, an open \
             one stays silent)",
            probe_name(prev.flags),
            prev.frame,
            py_fixed((rst.ts - prev.ts) * 1000.0, 1)
        ),
    )
}

pub fn closed_port(case: &RstCase) -> Option<Judgement> {
    let rst = &case.rst;
    let prev = answered(case)?;
    if case.sender().packets != 0 {
        return None;
    }
    if prev.flags & (SYN | ACK) == 0 {
        return closed_port_probe(case, prev);
    }
    if prev.flags & SYN == 0 || prev.flags & ACK != 0 {
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
        return by_path(
            Label::ClosedPort,
            Medium,
            format!(
                "{text}; TTL {} differs from that host's TTL {} in other flows: likely a \
                 firewall REJECT in the path",
                rst.ttl,
                host.text()
            ),
        );
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
                 handshake (a stealth SYN scan, or a client that gave up)",
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

/// A bare RST that answers nothing, at the sender's next sequence number, from a side that
/// had acknowledged everything: its own abortive close, as BSD-derived stacks send it.
pub fn bare_abortive_close(case: &RstCase) -> Option<Judgement> {
    let (rst, me, peer) = (&case.rst, case.sender(), case.peer());
    if rst.flags & ACK != 0 || answers(case).is_some() || me.nxt != Some(rst.seq) {
        return None;
    }
    let (peer_nxt, acked) = (peer.nxt?, me.acked?);
    if seq_diff(peer_nxt, acked) > 0 {
        return None;
    }
    let last = case.before.iter().rev().find(|s| s.flags & RST == 0)?;
    ambiguous(
        Label::LingerAbort,
        Medium,
        format!(
            "bare RST from the {} {} s after the last exchange (#{}), answering nothing, at \
             its next sequence number, everything it received acknowledged: its own abortive \
             close (SO_LINGER {{1,0}} or abort(); BSD-derived stacks such as macOS and iOS \
             send it without the ACK flag)",
            role(rst.side),
            py_fixed(rst.ts - last.ts, 1),
            last.frame
        ),
        &[Label::UnreadData],
    )
}

/// Whether `prev` acknowledges less than the sender sent, by no more than the data it sent:
/// the sender's last bytes were never acknowledged (it then gave up, and forgot the flow).
fn gave_up(me: &SideState, prev: &Segment, nxt: u32) -> bool {
    let behind = -seq_diff(prev.ack, nxt);
    behind > 0 && behind as u64 <= me.data_bytes + 1
}

pub fn half_open(case: &RstCase) -> Option<Judgement> {
    let (rst, me) = (&case.rst, case.sender());
    if rst.flags & ACK != 0 {
        return None;
    }
    let prev = answers(case)?;
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
        .filter(|nxt| rst.seq == prev.ack && prev.flags & ACK != 0 && !gave_up(me, prev, *nxt))
        .filter(|nxt| seq_diff(prev.ack, *nxt) != 0)
    {
        (
            format!(
                "the segment acknowledges {}, which the {who} never sent (its next is {}): it \
                 belongs to a connection the sender does not have",
                me.shown(prev.ack),
                me.shown(nxt)
            ),
            Medium,
        )
    } else if let Some(nxt) = me
        .nxt
        .filter(|nxt| rst.seq == prev.ack && prev.flags & ACK != 0 && gave_up(me, prev, *nxt))
    {
        (
            format!(
                "the segment acknowledges {}, behind the {who}'s next {}: the {who}'s last {} B \
                 never got acknowledged, and its stack gave the connection up (retransmission \
                 timeout or TCP_USER_TIMEOUT) and forgot it",
                me.shown(prev.ack),
                me.shown(nxt),
                -seq_diff(prev.ack, nxt)
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
        return ambiguous(
            Label::UnreadData,
            Medium,
            "the peer's FIN arrived and was answered by RST+ACK instead of a FIN: the \
             application closed with received data still unread, or with SO_LINGER {1,0} \
             (the wire cannot tell them apart)"
                .into(),
            &[Label::LingerAbort],
        );
    }
    let request = peer.last_data_frame.filter(|_| rst.side == 1)?;
    if me.last_data_frame.is_some_and(|mine| mine >= request) {
        return None;
    }
    ambiguous(
        Label::UnreadData,
        Medium,
        format!(
            "the request (#{request}, acknowledged) got no reply before the server's RST+ACK: \
             closed with the request unread, or an SO_LINGER {{1,0}} close right after reading \
             it (the wire cannot tell them apart)"
        ),
        &[Label::LingerAbort],
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
    ambiguous(
        Label::LingerAbort,
        if at_next { Medium } else { Low },
        format!(
            "RST+ACK from the {}{fin}, at its next sequence number, everything it received \
             already acknowledged: an abortive close (SO_LINGER {{1,0}} or abort()), or a \
             close with received data unread (the wire cannot tell them apart)",
            role(rst.side)
        ),
        &[Label::UnreadData],
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
            case.sender().shown(rst.seq)
        ),
        sender: None,
        alternatives: Vec::new(),
    }
}

pub const RULES: [Rule; 15] = [
    lone_rst,
    path_device,
    injected,
    closed_port,
    follow_up,
    keepalive_timeout,
    client_abort,
    data_after_close,
    reset_after_peer_rst,
    accept_overflow,
    bare_abortive_close,
    half_open,
    mptcp_fastclose,
    unread_data,
    linger_abort,
];

// --- did the RST take effect? -------------------------------------------------------------

/// How long after the RST the receiver's packets may have crossed it: one round trip (from the
/// handshake) with some slack, or CROSSING_SECONDS when the handshake was not captured.
fn crossing(case: &RstCase) -> f64 {
    case.client
        .handshake_rtt
        .filter(|rtt| *rtt >= 0.0)
        .map_or(CROSSING_SECONDS, |rtt| rtt * 2.0 + 0.001)
}

/// Whether the receiver could accept the RST (RFC 793, RFC 5961), and what shows it: the
/// sequence number against what the receiver expects, then what the receiver did next.
pub fn effect(case: &RstCase) -> (Effect, String) {
    let (rst, sender, receiver) = (&case.rst, case.sender(), case.peer());
    let them = role(1 - rst.side.min(1));
    // a SYN with a new ISN starts another connection: it says nothing about this one
    let talk: Vec<&Segment> = case
        .after
        .iter()
        .filter(|s| s.side != rst.side && s.flags & RST == 0)
        .filter(|s| s.flags & SYN == 0 || receiver.isn == Some(s.seq))
        .collect();
    let kept = talk
        .iter()
        .find(|s| s.ts - rst.ts > crossing(case))
        .copied();
    let kept_text = |seg: &Segment| {
        let resent = (seg.flags & (SYN | FIN) != 0 || seg.length != 0)
            && receiver
                .nxt
                .is_some_and(|nxt| seq_diff(seg.end(), nxt) <= 0);
        let what = if resent {
            "retransmitted"
        } else {
            "kept sending"
        };
        format!("the {them} {what} after it ({})", describe(seg, receiver))
    };
    // A receiver in SYN-SENT takes a RST that acknowledges its SYN.
    if receiver.sent_syn && !receiver.sent_synack && sender.isn.is_none() {
        let acceptable = rst.flags & ACK != 0
            && receiver
                .isn
                .is_some_and(|isn| rst.ack == isn.wrapping_add(1));
        return match kept {
            Some(seg) => (Effect::Ignored, kept_text(seg)),
            None if acceptable => (Effect::Accepted, String::new()),
            None => (Effect::Unknown, String::new()),
        };
    }
    if receiver.packets == 0 {
        return (Effect::Unknown, String::new());
    }
    let Some(expected) = sender.nxt.or(receiver.acked) else {
        return (Effect::Unknown, String::new());
    };
    let exact = rst.seq == expected || receiver.acked == Some(rst.seq);
    if exact {
        return match kept {
            Some(seg) => (
                Effect::Ignored,
                format!(
                    "{}: the RST, at the expected sequence number, did not reach its stack",
                    kept_text(seg)
                ),
            ),
            None => (Effect::Accepted, String::new()),
        };
    }
    let base = receiver.acked.unwrap_or(expected);
    let off = seq_diff(rst.seq, base);
    // the window as last advertised, scaled at most by 2^14 (the scale is in the handshake's
    // options, which the tracker does not keep): an upper bound
    let window = case
        .before
        .iter()
        .rev()
        .find(|s| s.side != rst.side && s.flags & RST == 0)
        .map_or(0, |s| i64::from(s.window));
    let in_window = off > 0 && off < window.max(1) << 14;
    let place = if off < 0 {
        format!(
            "seq {} is {} before the {them}'s window (it expects {})",
            sender.shown(rst.seq),
            -off,
            sender.shown(base)
        )
    } else if in_window {
        format!(
            "seq {} is in the {them}'s window but {off} past the expected {}",
            sender.shown(rst.seq),
            sender.shown(base)
        )
    } else {
        format!(
            "seq {} is beyond the {them}'s window (it expects {})",
            sender.shown(rst.seq),
            sender.shown(base)
        )
    };
    let challenge = talk
        .first()
        .filter(|s| s.length == 0 && s.flags & (SYN | FIN) == 0 && receiver.acked == Some(s.ack));
    if let (true, Some(ack)) = (in_window, challenge) {
        return (
            Effect::Challenged,
            format!(
                "{place}: answered by the challenge ACK #{} (RFC 5961), the connection lives on",
                ack.frame
            ),
        );
    }
    match kept {
        Some(seg) => (Effect::Ignored, format!("{place}; {}", kept_text(seg))),
        None => (Effect::Unknown, String::new()),
    }
}

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
        alternatives,
    } = judge(case);
    if matches!(case.roles, Roles::Port | Roles::First) && label != Label::Unknown {
        evidence.push_str(" (roles guessed: the handshake is not in the capture)");
    }
    let own_word = rst_text(case);
    if !own_word.is_empty() {
        evidence = format!("{evidence}; {own_word}");
    }
    if !alternatives.is_empty() {
        let names: Vec<&str> = alternatives.iter().map(|l| l.as_str()).collect();
        evidence = format!("{evidence}; the wire also allows: {}", names.join(", "));
    }
    let (effect, shown) = effect(case);
    if matches!(effect, Effect::Ignored | Effect::Challenged) {
        evidence = format!("{evidence}; the RST was {effect}: {shown}");
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
        alternatives,
        effect,
        story_hint: None,
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
