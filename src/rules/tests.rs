//! The classifier: one rule at a time on cases built directly, and whole conversations (fed
//! through the tracker as tests/conversation.py does) against the Python engine's verdicts.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::flows::{FlowTracker, Segment, SideState};
use crate::records::{Packet, PSH};

mod conversations;
mod expert;
mod listeners;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
const CLIENT_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0xc000, 0x0201));
const SERVER_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7));

// --- conversations -----------------------------------------------------------------------

/// A verdict as the Python engine wrote it.
pub(super) struct Expected {
    pub frame: u64,
    pub label: &'static str,
    pub sender: &'static str,
    pub confidence: &'static str,
    pub src: &'static str,
    pub dst: &'static str,
    pub client: &'static str,
    pub server: &'static str,
    pub duplicate_of: Option<u64>,
    pub evidence: &'static str,
}

use crate::records::flag_bits;

fn hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn number<T: std::str::FromStr>(text: &str) -> T {
    text.parse()
        .unwrap_or_else(|_| panic!("not a number: {text}"))
}

/// Packets of a conversation written one line a packet, as tests/conversation.py builds them:
/// "c" or "s" (sender), the flags, then key=value: seq, ack, len, gap (seconds since the
/// previous line, default 1 ms), ttl, ipid (default: a per-side counter), win, fc=1
/// (MP_FASTCLOSE), payload (hex), reason (MP_TCPRST), cport, sport, v6=1 (::192.0.2.1 and
/// 2001:db8::7), frame and t (absolute time: the line does not move the conversation's clock).
fn packets(lines: &[&str]) -> Vec<Packet> {
    let mut ts = 1000.0;
    let mut ipids: [u16; 2] = [100, 5000];
    let mut out = Vec::new();
    for line in lines {
        let mut words = line.split_whitespace();
        let from_client = words.next() == Some("c");
        let flags = flag_bits(words.next().unwrap_or(""));
        let kw: BTreeMap<&str, &str> = words.filter_map(|w| w.split_once('=')).collect();
        let when = match kw.get("t") {
            Some(t) => number(t),
            None => {
                ts += kw.get("gap").map_or(0.001, |g| number::<f64>(g));
                ts
            }
        };
        let side = usize::from(!from_client);
        let ipid = match kw.get("ipid") {
            Some(&"none") => None,
            Some(id) => Some(number(id)),
            None => ipids.get_mut(side).map(|id| {
                *id += 1;
                *id
            }),
        };
        let cport = kw.get("cport").map_or(40000, |p| number(p));
        let sport = kw.get("sport").map_or(8080, |p| number(p));
        let (client, server) = if kw.get("v6") == Some(&"1") {
            (CLIENT_V6, SERVER_V6)
        } else {
            (CLIENT, SERVER)
        };
        let ((src, sp), (dst, dp)) = if from_client {
            ((client, cport), (server, sport))
        } else {
            ((server, sport), (client, cport))
        };
        out.push(Packet {
            frame: kw.get("frame").map_or(out.len() as u64 + 1, |f| number(f)),
            ts: when,
            src,
            dst,
            sport: sp,
            dport: dp,
            seq: kw.get("seq").map_or(0, |s| number(s)),
            ack: kw.get("ack").map_or(0, |s| number(s)),
            flags,
            window: kw.get("win").map_or(512, |w| number(w)),
            length: kw.get("len").map_or(0, |l| number(l)),
            ttl: kw.get("ttl").map_or(64, |t| number(t)),
            ipid,
            payload: kw.get("payload").map(|p| hex(p)).unwrap_or_default(),
            mptcp_fastclose: kw.get("fc") == Some(&"1"),
            mptcp_reset_reason: kw.get("reason").map(|r| number(r)),
        });
    }
    out
}

/// The verdicts of a conversation, as tests/conversation.py's `verdicts()` makes them.
fn verdicts(lines: &[&str]) -> Vec<Verdict> {
    let mut tracker = FlowTracker::default();
    let mut cases = Vec::new();
    for pkt in packets(lines) {
        tracker.feed(pkt, &mut cases);
    }
    tracker.finish(&mut cases);
    let mut found: BTreeMap<u64, Verdict> = BTreeMap::new();
    for case in &cases {
        let original = case.duplicate_of.and_then(|frame| found.get(&frame));
        let verdict = match original {
            Some(original) => as_duplicate(original, case),
            None => classify(case),
        };
        found.insert(case.rst.frame, verdict);
    }
    let mut out: Vec<Verdict> = found.into_values().collect();
    refine_bursts(&mut out);
    out
}

pub(super) fn check(lines: &[&str], expected: &[Expected]) {
    let got = verdicts(lines);
    assert_eq!(got.len(), expected.len(), "verdicts: {got:#?}");
    for (v, e) in got.iter().zip(expected) {
        assert_eq!(v.frame, e.frame);
        assert_eq!(v.evidence, e.evidence, "frame {}", e.frame);
        assert_eq!(
            (v.label.as_str(), v.sender.as_str(), v.confidence.as_str()),
            (e.label, e.sender, e.confidence),
            "frame {}",
            e.frame
        );
        assert_eq!(
            (addr_text(v.src), addr_text(v.dst)),
            (e.src.to_string(), e.dst.to_string())
        );
        assert_eq!(
            (v.client.to_string(), v.server.to_string()),
            (e.client.to_string(), e.server.to_string())
        );
        assert_eq!(v.duplicate_of, e.duplicate_of, "frame {}", e.frame);
    }
}

use crate::verdict::addr_text;

/// The verdicts of a conversation as the engine releases them (across flows: a closing
/// listener's resets wait for the SYNs after them): after the capture's end, or without
/// `finish` as far as the capture so far lets them leave (a sweep at the last packet's time).
pub(super) fn engine_verdicts(lines: &[&str], finish: bool) -> Vec<Verdict> {
    let mut analysis = crate::engine::Analysis::new(None);
    let mut now = 0.0;
    for pkt in packets(lines) {
        now = pkt.ts;
        analysis.packet(pkt);
    }
    if finish {
        analysis.finish(true);
    } else {
        analysis.sweep_at(now);
    }
    analysis.take()
}

/// (label, sender, confidence, alternatives, effect) of each verdict, with its evidence.
pub(super) fn judgements(lines: &[&str]) -> Vec<(String, String)> {
    verdicts(lines)
        .iter()
        .map(|v| {
            let alternatives: Vec<&str> = v.alternatives.iter().map(|l| l.as_str()).collect();
            (
                format!(
                    "{} {} {} [{}] {}",
                    v.label,
                    v.sender,
                    v.confidence,
                    alternatives.join(" "),
                    v.effect
                ),
                v.evidence.clone(),
            )
        })
        .collect()
}

// --- cases built directly ----------------------------------------------------------------

fn seg(frame: u64, side: u8, flags: u8, seq: u32, ack: u32) -> Segment {
    Segment {
        frame,
        ts: 1000.0 + frame as f64 / 1000.0,
        side,
        flags,
        seq,
        ack,
        length: 0,
        window: 512,
        ttl: 64,
        ipid: None,
        fastclose: false,
        mptcp_reason: None,
    }
}

/// A case of `rst` whose history is `before`, the sides' state recorded from it.
fn case_of(before: &[Segment], rst: Segment) -> RstCase {
    let mut sides = [SideState::new(CLIENT, 40000), SideState::new(SERVER, 8080)];
    for s in before {
        if let Some(side) = sides.get_mut(usize::from(s.side)) {
            side.record(s);
        }
    }
    let [client, server] = sides;
    RstCase {
        flow_id: 1,
        rst,
        client,
        server,
        roles: Roles::Syn,
        before: before.to_vec(),
        after: Vec::new(),
        sender_host_ttls: TtlSet::default(),
        payload: Vec::new(),
        mptcp_reset_reason: None,
        duplicate_of: None,
    }
}

fn handshake() -> Vec<Segment> {
    vec![
        seg(1, 0, SYN, 1000, 0),
        seg(2, 1, SYN | ACK, 5000, 1001),
        seg(3, 0, ACK, 1001, 5001),
    ]
}

fn label_of(found: Option<Judgement>) -> Option<(Label, Confidence)> {
    found.map(|j| (j.label, j.confidence))
}

#[test]
fn lone_rst_needs_no_other_packet_of_the_flow() {
    let case = case_of(&[], seg(1, 1, RST, 7, 0));
    assert_eq!(label_of(lone_rst(&case)), Some((Label::Unknown, Low)));
    let seen = case_of(&[seg(1, 0, ACK, 1, 1)], seg(2, 1, RST, 7, 0));
    assert_eq!(lone_rst(&seen), None);
}

#[test]
fn rst_that_is_not_lone_is_not_judged_by_the_lone_rule_even_without_history() {
    let mut case = case_of(&[], seg(9, 1, RST, 7, 0));
    case.client.packets = 3; // the history held only RSTs, the counts still show the flow
    assert_eq!(lone_rst(&case), None);
}

#[test]
fn injected_rule_blames_the_path_for_a_ttl_the_sender_never_used() {
    let mut rst = seg(4, 1, RST | ACK, 5001, 1001);
    rst.ttl = 40;
    let found = injected(&case_of(&handshake(), rst));
    assert_eq!(found.as_ref().map(|j| j.sender), Some(Some(Sender::Path)));
    assert_eq!(label_of(found), Some((Label::Injected, Medium)));
}

#[test]
fn injected_rule_leaves_a_bare_rst_at_the_answered_ack_to_half_open() {
    let mut case = case_of(&handshake(), seg(4, 1, RST, 1001, 0));
    case.before.push(seg(4, 0, ACK | PSH, 1001, 5001));
    case.rst = seg(5, 1, RST, 5001, 0);
    case.after.push(seg(6, 1, ACK, 5001, 1001));
    assert_eq!(injected(&case), None);
}

#[test]
fn closed_port_rule_wants_the_ack_of_the_syn() {
    let syn = [seg(1, 0, SYN, 1000, 0)];
    assert!(closed_port(&case_of(&syn, seg(2, 1, RST | ACK, 0, 1001))).is_some());
    assert!(closed_port(&case_of(&syn, seg(2, 1, RST | ACK, 0, 1002))).is_none());
    assert!(closed_port(&case_of(&syn, seg(2, 1, RST, 0, 1001))).is_none());
}

#[test]
fn closed_port_rule_blames_a_firewall_for_a_ttl_unlike_the_hosts() {
    let mut case = case_of(&[seg(1, 0, SYN, 1000, 0)], seg(2, 1, RST | ACK, 0, 1001));
    case.sender_host_ttls = [64u8, 128].into_iter().collect();
    case.rst.ttl = 250;
    let found = closed_port(&case);
    assert_eq!(found.as_ref().map(|j| j.sender), Some(Some(Sender::Path)));
    assert!(found.is_some_and(|j| j.evidence.contains("that host's TTL 64/128 in other flows")));
}

#[test]
fn follow_up_rule_wants_an_earlier_rst_with_the_same_ttl() {
    let mut case = case_of(&handshake(), seg(5, 1, RST, 5001, 0));
    case.server.rsts.push(seg(4, 1, RST, 5001, 0));
    assert_eq!(label_of(follow_up(&case)), Some((Label::FollowUp, High)));
    case.rst.ttl = 9;
    assert_eq!(follow_up(&case), None);
}

#[test]
fn keepalive_rule_counts_the_senders_trailing_probes() {
    let mut before = handshake();
    before.push(seg(4, 0, ACK, 1000, 5001));
    before.push(seg(5, 0, ACK, 1000, 5001));
    let case = case_of(&before, seg(6, 0, RST | ACK, 1001, 5001));
    assert_eq!(keepalive_probes(&case, 0).len(), 2);
    assert_eq!(
        label_of(keepalive_timeout(&case)),
        Some((Label::KeepaliveTimeout, High))
    );
}

#[test]
fn client_abort_rule_is_for_the_syn_sender_only() {
    let before = [seg(1, 0, SYN, 1000, 0), seg(2, 1, SYN | ACK, 5000, 1001)];
    let from_client = case_of(&before, seg(3, 0, RST, 1001, 0));
    assert_eq!(
        label_of(client_abort(&from_client)),
        Some((Label::ClientAbort, High))
    );
    let from_server = case_of(&before, seg(3, 1, RST, 5001, 0));
    assert_eq!(client_abort(&from_server), None);
}

#[test]
fn unacked_data_counts_from_the_peers_next_when_its_base_is_zero_as_python_does() {
    // Python's `peer.base or peer.nxt` takes a base of 0 for none.
    let mut case = case_of(&[seg(1, 0, ACK | PSH, 1, 0)], seg(2, 1, RST, 0, 0));
    case.client.base = Some(0);
    case.client.nxt = Some(11);
    assert_eq!(unacked_by_sender(&case), 0);
    case.client.base = Some(1);
    assert_eq!(unacked_by_sender(&case), 10);
}

#[test]
fn data_after_close_rule_wants_the_senders_fin_and_unacked_peer_data() {
    let mut before = handshake();
    before.push(seg(4, 1, FIN | ACK, 5001, 1001));
    let mut data = seg(5, 0, ACK | PSH, 1001, 5002);
    data.length = 6;
    before.push(data);
    let case = case_of(&before, seg(6, 1, RST, 5002, 0));
    assert_eq!(
        label_of(data_after_close(&case)),
        Some((Label::DataAfterClose, High))
    );
    let mut acked = case.clone();
    acked.server.acked = Some(1007);
    assert_eq!(data_after_close(&acked), None);
}

#[test]
fn reset_after_peer_rst_rule_wants_a_bare_rst_and_a_peer_rst() {
    let mut case = case_of(&handshake(), seg(5, 0, RST, 1001, 0));
    assert_eq!(reset_after_peer_rst(&case), None);
    case.server.rsts.push(seg(4, 1, RST, 5001, 0));
    assert_eq!(
        label_of(reset_after_peer_rst(&case)),
        Some((Label::HalfOpen, High))
    );
}

#[test]
fn accept_overflow_rule_wants_a_bare_rst_at_the_listeners_isn_plus_one() {
    let case = case_of(&handshake(), seg(4, 1, RST, 5001, 0));
    assert_eq!(
        label_of(accept_overflow(&case)),
        Some((Label::AcceptOverflow, Medium))
    );
    let elsewhere = case_of(&handshake(), seg(4, 1, RST, 5002, 0));
    assert_eq!(accept_overflow(&elsewhere), None);
}

#[test]
fn accept_overflow_rule_gives_up_on_a_request_older_than_its_expiry() {
    let mut rst = seg(4, 1, RST, 5001, 0);
    rst.ts = 1000.002 + ACCEPT_EXPIRY_SECONDS + 0.5;
    assert_eq!(accept_overflow(&case_of(&handshake(), rst)), None);
}

#[test]
fn half_open_rule_wants_a_bare_rst_answering_something() {
    let mut before = handshake();
    before.push(seg(4, 0, ACK, 1000, 5001));
    let case = case_of(&before, seg(5, 1, RST, 5001, 0));
    assert_eq!(label_of(half_open(&case)), Some((Label::HalfOpen, High)));
    let with_ack = case_of(&before, seg(5, 1, RST | ACK, 5001, 1001));
    assert_eq!(half_open(&with_ack), None);
}

#[test]
fn fastclose_rule_wants_the_answered_segment_to_carry_it() {
    let mut before = handshake();
    let mut close = seg(4, 0, ACK, 1001, 5001);
    close.fastclose = true;
    before.push(close);
    let case = case_of(&before, seg(5, 1, RST | ACK, 5001, 1001));
    assert_eq!(
        label_of(mptcp_fastclose(&case)),
        Some((Label::Unknown, Medium))
    );
}

#[test]
fn unread_data_rule_wants_the_rst_to_acknowledge_fresh_bytes() {
    let mut before = handshake();
    let mut data = seg(4, 0, ACK | PSH, 1001, 5001);
    data.length = 10;
    before.push(data);
    let case = case_of(&before, seg(5, 1, RST | ACK, 5001, 1011));
    let found = unread_data(&case);
    assert!(found
        .as_ref()
        .is_some_and(|j| j.evidence.contains("acknowledgement of 10 B")));
    assert_eq!(label_of(found), Some((Label::UnreadData, High)));
}

#[test]
fn linger_abort_rule_is_medium_at_the_senders_next_and_low_elsewhere() {
    let case = case_of(&handshake(), seg(4, 0, RST | ACK, 1001, 5001));
    assert_eq!(
        label_of(linger_abort(&case)),
        Some((Label::LingerAbort, Medium))
    );
    let off = case_of(&handshake(), seg(4, 0, RST | ACK, 1500, 5001));
    assert_eq!(
        label_of(linger_abort(&off)),
        Some((Label::LingerAbort, Low))
    );
}

#[test]
fn first_rule_that_fits_decides() {
    // A closed port's RST+ACK with a foreign TTL fits both: injected comes first.
    let mut rst = seg(3, 1, RST | ACK, 0, 1001);
    rst.ttl = 30;
    let mut before = vec![seg(1, 0, SYN, 1000, 0)];
    before.push(seg(2, 1, ACK, 5000, 1001)); // the server's own TTL 64
    let case = case_of(&before, rst);
    assert_eq!(judge(&case).label, Label::Injected);
}

#[test]
fn unexplained_rst_says_what_was_seen() {
    let case = case_of(&[], seg(1, 1, RST | ACK, 77, 9));
    assert_eq!(
        unexplained(&case).evidence,
        "R. from the server seq=77 (abs); no known pattern fits"
    );
}

#[test]
fn a_sequence_number_far_from_its_sides_base_is_shown_absolute_as_the_ladder_shows_it() {
    let mut side = SideState::new(IpAddr::from([192, 0, 2, 1]), 80);
    assert_eq!(side.shown(77), "77 (abs)");
    side.base = Some(1000);
    assert_eq!(side.shown(1500), "500");
    assert_eq!(side.shown(900), "-100");
    assert_eq!(
        side.shown(1000u32.wrapping_add(1 << 30)),
        "1073742824 (abs)"
    );
}

#[test]
fn rst_text_shows_printable_ascii_dots_for_control_bytes_and_replacement_for_the_rest() {
    assert_eq!(printable_text(b"ok\x00\x1f\x7f \xff~"), "ok... \u{FFFD}~");
    assert_eq!(printable_text(&[b'a'; 200]).chars().count(), MAX_TEXT);
}

#[test]
fn rst_text_joins_the_payload_and_the_mptcp_reason() {
    let mut case = case_of(&[], seg(1, 1, RST, 7, 0));
    assert_eq!(rst_text(&case), "");
    case.payload = b"no".to_vec();
    case.rst.length = 2;
    case.mptcp_reset_reason = Some(0);
    assert_eq!(
        rst_text(&case),
        "RST carries 2 B: \"no\"; MPTCP MP_TCPRST reason code 0"
    );
}

// --- verdicts ----------------------------------------------------------------------------

fn overflow(frame: u64, ts: f64, port: u16) -> Verdict {
    let server = Endpoint { addr: SERVER, port };
    Verdict {
        frame,
        ts,
        src: SERVER,
        sport: port,
        dst: CLIENT,
        dport: 40000,
        flags: RST,
        client: Endpoint {
            addr: CLIENT,
            port: 40000,
        },
        server,
        sender: Sender::Server,
        label: Label::AcceptOverflow,
        confidence: Medium,
        evidence: "x".to_string(),
        duplicate_of: None,
        alternatives: Vec::new(),
        effect: Effect::Accepted,
        story_hint: None,
    }
}

#[test]
fn burst_counts_the_overflows_within_two_seconds_of_each() {
    let mut verdicts: Vec<Verdict> = [0.0, 1.5, 3.0, 10.0]
        .iter()
        .enumerate()
        .map(|(i, t)| overflow(i as u64, *t, 80))
        .collect();
    refine_bursts(&mut verdicts);
    let evidence: Vec<&str> = verdicts.iter().map(|v| v.evidence.as_str()).collect();
    assert_eq!(
        evidence,
        [
            "x; 2 such RSTs from this listener within 2 s",
            "x; 3 such RSTs from this listener within 2 s",
            "x; 2 such RSTs from this listener within 2 s",
            "x"
        ]
    );
    let confidence: Vec<Confidence> = verdicts.iter().map(|v| v.confidence).collect();
    assert_eq!(confidence, [High, High, High, Medium]);
}

#[test]
fn burst_window_includes_exactly_two_seconds() {
    let mut verdicts = vec![overflow(1, 100.0, 80), overflow(2, 102.0, 80)];
    refine_bursts(&mut verdicts);
    assert!(verdicts.iter().all(|v| v.confidence == High));
}

#[test]
fn burst_is_per_listener_and_in_time_order_whatever_the_input_order() {
    let mut verdicts = vec![
        overflow(1, 105.0, 80),
        overflow(2, 100.0, 81),
        overflow(3, 100.5, 80),
        overflow(4, 104.0, 80),
    ];
    refine_bursts(&mut verdicts);
    let confidence: Vec<Confidence> = verdicts.iter().map(|v| v.confidence).collect();
    assert_eq!(confidence, [High, Medium, Medium, High]);
}

#[test]
fn burst_ignores_copies_and_other_labels() {
    let mut copy = overflow(2, 100.1, 80);
    copy.duplicate_of = Some(1);
    let mut other = overflow(3, 100.2, 80);
    other.label = Label::HalfOpen;
    let mut verdicts = vec![overflow(1, 100.0, 80), copy, other];
    refine_bursts(&mut verdicts);
    assert!(verdicts.iter().all(|v| v.confidence == Medium));
}

#[test]
fn duplicate_verdict_repeats_the_original_under_its_own_frame_and_time() {
    let original = overflow(7, 100.0, 80);
    let case = case_of(&[], seg(9, 1, RST, 5001, 0));
    let copy = as_duplicate(&original, &case);
    assert_eq!(
        (copy.frame, copy.ts, copy.duplicate_of),
        (9, 1000.009, Some(7))
    );
    assert_eq!(copy.evidence, "identical copy of #7: x");
    assert_eq!(
        (copy.label, copy.confidence, copy.server),
        (original.label, original.confidence, original.server)
    );
}

#[test]
fn verdict_names_client_and_server_whatever_the_rst_direction() {
    let v = classify(&case_of(
        &[seg(1, 0, SYN, 1000, 0)],
        seg(2, 1, RST | ACK, 0, 1001),
    ));
    assert_eq!(
        (v.client.to_string(), v.server.to_string()),
        ("192.0.2.1:40000".into(), "198.51.100.7:8080".into())
    );
    assert_eq!(
        (v.src, v.sport, v.dst, v.dport),
        (SERVER, 8080, CLIENT, 40000)
    );
    assert_eq!((v.sender, v.flags), (Sender::Server, RST | ACK));
}
