//! The flow tracker on hand-written Packet records: roles, sequence state, duplicates, cases.
//! Ported from tests/test_flows.py.

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::records::PSH;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));

thread_local! {
    static IPID: Cell<u16> = const { Cell::new(0) };
}

use crate::records::flag_bits;

/// One segment between CLIENT:40000 and SERVER:8080; ts is 1000 + frame ms, a fresh IP ID.
fn pkt(frame: u64, flags: &str) -> Packet {
    let ipid = IPID.with(|id| {
        id.set(id.get().wrapping_add(1));
        id.get()
    });
    Packet {
        frame,
        ts: 1000.0 + frame as f64 / 1000.0,
        src: CLIENT,
        dst: SERVER,
        sport: 40000,
        dport: 8080,
        seq: 0,
        ack: 0,
        flags: flag_bits(flags),
        window: 512,
        length: 0,
        ttl: 64,
        ipid: Some(ipid),
        payload: Vec::new(),
        mptcp_fastclose: false,
        mptcp_reset_reason: None,
    }
}

/// Builder-style tweaks of a test packet.
trait Tweak {
    fn sent_by_server(self) -> Self;
    fn seq(self, seq: u32) -> Self;
    fn ack(self, ack: u32) -> Self;
    fn len(self, length: u32) -> Self;
    fn ts(self, ts: f64) -> Self;
    fn ports(self, client: u16, server: u16) -> Self;
    fn ipid(self, ipid: Option<u16>) -> Self;
    fn ttl(self, ttl: u8) -> Self;
    /// The same packet captured a second time (as on an 'any' capture).
    fn copy(&self, frame: u64, later: f64) -> Self;
}

impl Tweak for Packet {
    fn sent_by_server(mut self) -> Self {
        std::mem::swap(&mut self.src, &mut self.dst);
        std::mem::swap(&mut self.sport, &mut self.dport);
        self
    }
    fn seq(mut self, seq: u32) -> Self {
        self.seq = seq;
        self
    }
    fn ack(mut self, ack: u32) -> Self {
        self.ack = ack;
        self
    }
    fn len(mut self, length: u32) -> Self {
        self.length = length;
        self
    }
    fn ts(mut self, ts: f64) -> Self {
        self.ts = ts;
        self
    }
    fn ports(mut self, client: u16, server: u16) -> Self {
        if self.src == CLIENT {
            (self.sport, self.dport) = (client, server);
        } else {
            (self.sport, self.dport) = (server, client);
        }
        self
    }
    fn ipid(mut self, ipid: Option<u16>) -> Self {
        self.ipid = ipid;
        self
    }
    fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }
    fn copy(&self, frame: u64, later: f64) -> Self {
        Packet {
            frame,
            ts: self.ts + later,
            ..self.clone()
        }
    }
}

fn feed_all(tracker: &mut FlowTracker, packets: Vec<Packet>) -> Vec<RstCase> {
    let mut out = Vec::new();
    for p in packets {
        tracker.feed(p, &mut out);
    }
    out
}

fn finish(tracker: &mut FlowTracker) -> Vec<RstCase> {
    let mut out = Vec::new();
    tracker.finish(&mut out);
    out
}

fn cases_of(packets: Vec<Packet>) -> Vec<RstCase> {
    let mut tracker = FlowTracker::default();
    let mut out = feed_all(&mut tracker, packets);
    out.extend(finish(&mut tracker));
    out
}

fn only_flow(tracker: &FlowTracker) -> &Flow {
    assert_eq!(tracker.flows.len(), 1);
    tracker
        .flows
        .values()
        .next()
        .unwrap_or_else(|| unreachable!())
}

fn frames(segs: &[Segment]) -> Vec<u64> {
    segs.iter().map(|s| s.frame).collect()
}

fn history_frames(flow: &Flow) -> Vec<u64> {
    flow.history.iter().map(|s| s.frame).collect()
}

fn handshake_with(cisn: u32, sisn: u32) -> Vec<Packet> {
    vec![
        pkt(1, "S").seq(cisn),
        pkt(2, "SA")
            .sent_by_server()
            .seq(sisn)
            .ack(cisn.wrapping_add(1)),
        pkt(3, "A")
            .seq(cisn.wrapping_add(1))
            .ack(sisn.wrapping_add(1)),
    ]
}

fn handshake() -> Vec<Packet> {
    handshake_with(1000, 5000)
}

fn with(mut packets: Vec<Packet>, more: impl IntoIterator<Item = Packet>) -> Vec<Packet> {
    packets.extend(more);
    packets
}

// --- roles -------------------------------------------------------------------------------------

#[test]
fn syn_sender_is_the_client_even_from_a_service_port() {
    let mut tracker = FlowTracker::default();
    feed_all(&mut tracker, vec![pkt(1, "S").ports(443, 50000).seq(1000)]);
    let flow = only_flow(&tracker);
    assert_eq!(flow.roles, Roles::Syn);
    assert_eq!((flow.sides[0].addr, flow.sides[0].port), (CLIENT, 443));
    assert_eq!((flow.sides[1].addr, flow.sides[1].port), (SERVER, 50000));
}

#[test]
fn synack_sender_is_the_server_when_the_syn_is_missing() {
    let mut tracker = FlowTracker::default();
    let synack = pkt(1, "SA")
        .sent_by_server()
        .ports(443, 50000)
        .seq(5000)
        .ack(1001);
    feed_all(&mut tracker, vec![synack]);
    let flow = only_flow(&tracker);
    assert_eq!(flow.roles, Roles::Synack);
    assert_eq!((flow.sides[0].addr, flow.sides[0].port), (CLIENT, 443));
    assert_eq!((flow.sides[1].addr, flow.sides[1].port), (SERVER, 50000));
}

#[test]
fn service_port_side_is_the_server_when_the_handshake_is_missing() {
    let mut tracker = FlowTracker::default();
    let data = pkt(1, "PA")
        .sent_by_server()
        .ports(50000, 443)
        .seq(7)
        .ack(9)
        .len(5);
    feed_all(&mut tracker, vec![data]);
    let flow = only_flow(&tracker);
    assert_eq!(flow.roles, Roles::Port);
    assert_eq!((flow.sides[0].addr, flow.sides[0].port), (CLIENT, 50000));
    assert_eq!((flow.sides[1].addr, flow.sides[1].port), (SERVER, 443));
}

#[test]
fn low_port_side_is_the_server_when_neither_port_names_a_service() {
    let mut tracker = FlowTracker::default();
    feed_all(&mut tracker, vec![pkt(1, "A").ports(50000, 999)]);
    let flow = only_flow(&tracker);
    assert_eq!(flow.roles, Roles::Port);
    assert_eq!(flow.sides[1].port, 999);
}

#[test]
fn lone_rst_between_high_ports_takes_the_lower_port_as_the_service() {
    let mut tracker = FlowTracker::default();
    feed_all(&mut tracker, vec![pkt(1, "R").ports(40000, 30000)]);
    let flow = only_flow(&tracker);
    assert_eq!(flow.roles, Roles::Port);
    assert_eq!(flow.sides[1].port, 30000);
}

#[test]
fn first_packets_sender_is_the_client_when_nothing_else_tells() {
    let mut tracker = FlowTracker::default();
    feed_all(
        &mut tracker,
        vec![pkt(1, "A").sent_by_server().ports(40000, 40001)],
    );
    let flow = only_flow(&tracker);
    assert_eq!(flow.roles, Roles::First);
    assert_eq!(flow.sides[0].port, 40001);
    assert_eq!(Roles::First.as_str(), "first");
}

#[test]
fn rst_case_names_its_sender_by_role() {
    let cases = cases_of(vec![
        pkt(1, "S").seq(1000),
        pkt(2, "RA").sent_by_server().ack(1001),
    ]);
    let [case] = cases.as_slice() else {
        panic!("one case expected")
    };
    assert_eq!(case.roles, Roles::Syn);
    assert_eq!(case.rst.side, 1);
    assert_eq!((case.sender().port, case.peer().port), (8080, 40000));
}

// --- sequence arithmetic -----------------------------------------------------------------------

#[test]
fn seq_diff_is_wrap_safe() {
    assert_eq!(seq_diff(5, 0xFFFF_FFF0), 21);
    assert_eq!(seq_diff(0xFFFF_FFF0, 5), -21);
    assert_eq!(seq_diff(1000, 1000), 0);
    assert_eq!(seq_diff(1010, 1000), 10);
}

#[test]
fn flow_whose_sequence_numbers_wrap_keeps_next_and_acked() {
    let cisn: u32 = 0xFFFF_FFF0;
    let mut tracker = FlowTracker::default();
    let packets = with(
        handshake_with(cisn, 5000),
        [
            pkt(4, "PA").seq(cisn.wrapping_add(1)).ack(5001).len(100), // crosses 2**32
            pkt(5, "A")
                .sent_by_server()
                .seq(5001)
                .ack(cisn.wrapping_add(101)),
            pkt(6, "PA").seq(cisn.wrapping_add(1)).ack(5001).len(10), // an old retransmission
            pkt(7, "A")
                .sent_by_server()
                .seq(5001)
                .ack(cisn.wrapping_add(11)), // an old ack
        ],
    );
    feed_all(&mut tracker, packets);
    let [client, server] = &only_flow(&tracker).sides;
    assert_eq!(client.nxt, Some(0x55));
    assert_eq!(server.acked, Some(0x55));
    assert_eq!(client.data_bytes, 110);
    assert_eq!(client.relative(0x55), 101);
}

#[test]
fn side_without_a_syn_counts_from_just_before_its_first_segment() {
    let mut side = SideState::new(CLIENT, 40000);
    let seg = Segment {
        seq: 700,
        length: 10,
        flags: ACK | PSH,
        ..NO_SEGMENT
    };
    side.record(&seg);
    assert_eq!(side.base, Some(699));
    assert_eq!(side.isn, None);
    assert_eq!(side.relative(710), 11);
}

#[test]
fn fin_takes_one_sequence_number_and_is_remembered_once() {
    let mut side = SideState::new(CLIENT, 40000);
    side.record(&Segment {
        frame: 4,
        seq: 100,
        length: 5,
        flags: FIN | ACK,
        ..NO_SEGMENT
    });
    side.record(&Segment {
        frame: 6,
        seq: 100,
        length: 5,
        flags: FIN | ACK,
        ..NO_SEGMENT
    });
    assert_eq!(
        (side.fin_frame, side.fin_seq, side.nxt),
        (Some(4), Some(105), Some(106))
    );
}

#[test]
fn side_keeps_its_first_four_rsts_apart_from_its_other_packets() {
    let mut side = SideState::new(CLIENT, 40000);
    for frame in 1..=6 {
        side.record(&Segment {
            frame,
            flags: RST,
            ..NO_SEGMENT
        });
    }
    assert_eq!(frames(&side.rsts), [1, 2, 3, 4]);
    assert_eq!((side.packets, side.nxt, side.ttls.len()), (0, None, 0));
    assert_eq!(side.first_ts, Some(0.0));
}

#[test]
fn side_remembers_at_most_eight_ttls() {
    let mut side = SideState::new(CLIENT, 40000);
    for ttl in 1..=12 {
        side.record(&Segment {
            ttl,
            flags: ACK,
            ..NO_SEGMENT
        });
    }
    assert_eq!(side.ttls.text(), "1/2/3/4/5/6/7/8");
}

// --- connections on a reused 4-tuple -----------------------------------------------------------

#[test]
fn new_syn_with_a_new_isn_after_a_rst_starts_a_new_flow() {
    let cases = cases_of(vec![
        pkt(1, "S").seq(1000),
        pkt(2, "RA").sent_by_server().ack(1001),
        pkt(3, "S").seq(900_000).ts(1002.0),
        pkt(4, "RA").sent_by_server().ack(900_001).ts(1002.001),
    ]);
    let [first, second] = cases.as_slice() else {
        panic!("two cases expected")
    };
    assert_ne!(first.flow_id, second.flow_id);
    assert_eq!(second.client.isn, Some(900_000));
    assert_eq!(frames(&second.before), [3]);
}

#[test]
fn retransmitted_syn_after_a_rst_stays_in_the_same_flow() {
    let cases = cases_of(vec![
        pkt(1, "S").seq(1000),
        pkt(2, "RA").sent_by_server().ack(1001),
        pkt(3, "S").seq(1000).ts(1001.0),
        pkt(4, "RA").sent_by_server().ack(1001).ts(1001.001),
    ]);
    let [first, second] = cases.as_slice() else {
        panic!("two cases expected")
    };
    assert_eq!(first.flow_id, second.flow_id);
    assert_eq!(frames(&second.before), [1, 2, 3]);
}

#[test]
fn new_syn_on_an_open_flow_stays_in_it() {
    let mut tracker = FlowTracker::default();
    feed_all(&mut tracker, with(handshake(), [pkt(4, "S").seq(77_000)]));
    assert_eq!(tracker.stats().flows, 1);
    assert_eq!(history_frames(only_flow(&tracker)), [1, 2, 3, 4]);
}

#[test]
fn new_connection_on_a_reused_tuple_releases_the_old_flows_cases() {
    let mut tracker = FlowTracker::default();
    let ready = feed_all(
        &mut tracker,
        vec![
            pkt(1, "S").seq(1000),
            pkt(2, "RA").sent_by_server().ack(1001),
            pkt(3, "S").seq(900_000),
        ],
    );
    assert_eq!(ready.iter().map(|c| c.rst.frame).collect::<Vec<_>>(), [2]);
}

// --- duplicates --------------------------------------------------------------------------------

#[test]
fn packet_seen_twice_within_microseconds_is_a_duplicate_and_changes_nothing() {
    let mut tracker = FlowTracker::default();
    let data = pkt(4, "PA").seq(1001).ack(5001).len(100);
    let copy = data.copy(5, 0.000005);
    feed_all(&mut tracker, with(handshake(), [data]));
    let client = only_flow(&tracker).sides[0].clone();
    let history = history_frames(only_flow(&tracker));
    feed_all(&mut tracker, vec![copy]);
    assert_eq!(tracker.stats().duplicates, 1);
    assert_eq!(history_frames(only_flow(&tracker)), history);
    assert_eq!(only_flow(&tracker).sides[0], client);
}

#[test]
fn ipv6_packet_without_ip_id_seen_twice_within_microseconds_is_a_duplicate() {
    let mut tracker = FlowTracker::default();
    let data = pkt(4, "PA").seq(1001).ack(5001).len(100).ipid(None);
    let copy = data.copy(5, 0.000005);
    feed_all(&mut tracker, with(handshake(), [data, copy]));
    assert_eq!(tracker.stats().duplicates, 1);
    assert_eq!(only_flow(&tracker).sides[0].data_bytes, 100);
}

#[test]
fn rst_seen_twice_becomes_a_case_marked_duplicate_of_the_first() {
    let rst = pkt(4, "R").sent_by_server().seq(5001);
    let copies = [rst.copy(5, 0.000005), rst.copy(6, 0.00001)];
    let cases = cases_of(with(with(handshake(), [rst]), copies));
    let marks: Vec<(u64, Option<u64>)> = cases
        .iter()
        .map(|c| (c.rst.frame, c.duplicate_of))
        .collect();
    assert_eq!(marks, [(4, None), (5, Some(4)), (6, Some(4))]);
}

#[test]
fn copy_of_a_copy_whose_original_was_released_points_at_the_copy() {
    // The chain is followed through waiting cases only: once the first is released, the next
    // copy names the one it repeats.
    let mut tracker = FlowTracker::default();
    let rst = pkt(4, "R").sent_by_server().seq(5001);
    let copy = rst.copy(5, 0.01);
    let copy2 = rst.copy(6, 0.02);
    let mut ready = feed_all(&mut tracker, with(handshake(), [rst, copy]));
    tracker.sweep_at(1000.004 + AFTER_SECONDS + 0.001, &mut ready);
    assert_eq!(
        ready.iter().map(|c| c.rst.frame).collect::<Vec<_>>(),
        [4, 5]
    );
    ready.extend(feed_all(&mut tracker, vec![copy2]));
    ready.extend(finish(&mut tracker));
    let marks: Vec<Option<u64>> = ready.iter().map(|c| c.duplicate_of).collect();
    assert_eq!(marks, [None, Some(4), Some(5)]);
}

#[test]
fn two_rsts_with_ip_id_zero_a_millisecond_apart_are_not_duplicates() {
    let mut tracker = FlowTracker::default();
    let rst = pkt(4, "R").sent_by_server().seq(5001).ipid(Some(0));
    let copy = rst.copy(5, 0.001);
    feed_all(&mut tracker, with(handshake(), [rst, copy]));
    let cases = finish(&mut tracker);
    assert_eq!(
        cases.iter().map(|c| c.duplicate_of).collect::<Vec<_>>(),
        [None, None]
    );
    assert_eq!(tracker.stats().duplicates, 0);
}

#[test]
fn two_rsts_with_an_ip_id_a_millisecond_apart_are_duplicates() {
    let rst = pkt(4, "R").sent_by_server().seq(5001).ipid(Some(9));
    let copy = rst.copy(5, 0.001);
    let cases = cases_of(with(handshake(), [rst, copy]));
    assert_eq!(
        cases.iter().map(|c| c.duplicate_of).collect::<Vec<_>>(),
        [None, Some(4)]
    );
}

#[test]
fn same_packet_arriving_earlier_than_its_twin_is_not_a_duplicate() {
    let mut tracker = FlowTracker::default();
    let data = pkt(4, "PA").seq(1001).ack(5001).len(100);
    let copy = data.copy(5, -0.000001);
    feed_all(&mut tracker, with(handshake(), [data, copy]));
    assert_eq!(tracker.stats().duplicates, 0);
}

#[test]
fn same_packet_a_second_apart_is_a_retransmission_not_a_duplicate() {
    let mut tracker = FlowTracker::default();
    let data = pkt(4, "PA").seq(1001).ack(5001).len(100);
    let copy = data.copy(5, 1.0);
    feed_all(&mut tracker, with(handshake(), [data, copy]));
    assert_eq!(tracker.stats().duplicates, 0);
    assert_eq!(history_frames(only_flow(&tracker)), [1, 2, 3, 4, 5]);
}

// --- what a case holds -------------------------------------------------------------------------

#[test]
fn case_before_holds_the_flow_history_before_the_rst() {
    let cases = cases_of(with(
        handshake(),
        [
            pkt(4, "PA").seq(1001).ack(5001).len(10),
            pkt(5, "R").sent_by_server().seq(5001),
        ],
    ));
    let [case] = cases.as_slice() else {
        panic!("one case expected")
    };
    assert_eq!(frames(&case.before), [1, 2, 3, 4]);
    assert_eq!(case.rst.frame, 5);
}

#[test]
fn case_before_keeps_only_the_last_history_segments() {
    let acks = (0..30).map(|i| pkt(4 + i, "A").seq(1001).ack(5001 + i as u32));
    let packets = with(
        with(handshake(), acks),
        [pkt(100, "R").sent_by_server().seq(5001)],
    );
    let cases = cases_of(packets);
    let [case] = cases.as_slice() else {
        panic!("one case expected")
    };
    assert_eq!(case.before.len(), HISTORY);
    assert_eq!(case.before.first().map(|s| s.frame), Some(18));
    assert_eq!(case.before.last().map(|s| s.frame), Some(33));
}

#[test]
fn case_after_holds_the_next_packets_up_to_the_limit_and_is_then_ready() {
    let mut tracker = FlowTracker::default();
    feed_all(
        &mut tracker,
        with(handshake(), [pkt(4, "R").sent_by_server().seq(5001)]),
    );
    let following: Vec<Packet> = (0..AFTER as u64 + 3)
        .map(|i| pkt(5 + i, "PA").seq(1001 + 10 * i as u32).ack(5001).len(10))
        .collect();
    let expected: Vec<u64> = following.iter().take(AFTER).map(|p| p.frame).collect();
    let ready = feed_all(&mut tracker, following);
    let [case] = ready.as_slice() else {
        panic!("one case expected")
    };
    assert_eq!(frames(&case.after), expected);
    assert!(finish(&mut tracker).is_empty());
}

#[test]
fn case_snapshots_do_not_change_when_later_packets_arrive() {
    let mut tracker = FlowTracker::default();
    feed_all(
        &mut tracker,
        with(
            handshake(),
            [
                pkt(4, "PA").seq(1001).ack(5001).len(10),
                pkt(5, "R").sent_by_server().seq(5001),
            ],
        ),
    );
    let case = tracker
        .pending()
        .next()
        .cloned()
        .unwrap_or_else(|| unreachable!());
    feed_all(
        &mut tracker,
        vec![
            pkt(6, "PA").seq(1011).ack(5001).len(50).ttl(99),
            pkt(7, "FA").seq(1061).ack(5001),
            pkt(8, "R").sent_by_server().seq(5001),
            pkt(9, "A").sent_by_server().seq(5001).ack(1062).ttl(12),
        ],
    );
    let now = tracker
        .pending()
        .next()
        .cloned()
        .unwrap_or_else(|| unreachable!());
    assert_eq!(
        (&now.client, &now.server, &now.before),
        (&case.client, &case.server, &case.before)
    );
    assert_eq!(frames(&now.after), [6, 7, 8, 9]);
    assert_eq!(only_flow(&tracker).sides[0].data_bytes, 60); // the live state did move on
}

#[test]
fn case_carries_the_rsts_payload_and_mptcp_reason() {
    let mut rst = pkt(4, "RA").sent_by_server().seq(5001).ack(1001).len(3);
    rst.payload = b"bye".to_vec();
    rst.mptcp_reset_reason = Some(2);
    let cases = cases_of(with(handshake(), [rst]));
    let [case] = cases.as_slice() else {
        panic!("one case expected")
    };
    assert_eq!(
        (case.payload.as_slice(), case.mptcp_reset_reason),
        (&b"bye"[..], Some(2))
    );
    assert_eq!(case.rst.mptcp_reason, Some(2));
}

#[test]
fn case_knows_the_senders_ttls_from_its_other_flows() {
    let other = pkt(1, "S")
        .ports(40001, 8080)
        .seq(1)
        .sent_by_server()
        .ttl(60);
    let mut packets = vec![other];
    packets.extend(with(
        handshake(),
        [pkt(4, "R").sent_by_server().seq(5001).ttl(250)],
    ));
    // the SYN is the other flow's first packet: the server host sent it with TTL 60
    let cases = cases_of(packets);
    let [case] = cases.as_slice() else {
        panic!("one case expected")
    };
    assert_eq!(case.sender_host_ttls.text(), "60/64");
}

#[test]
fn finish_returns_the_waiting_cases_and_empties_the_table() {
    let mut tracker = FlowTracker::default();
    let ready = feed_all(
        &mut tracker,
        with(
            handshake(),
            [
                pkt(4, "R").sent_by_server().seq(5001),
                pkt(5, "A").seq(1001).ack(5001),
            ],
        ),
    );
    assert!(ready.is_empty());
    let cases = finish(&mut tracker);
    let [case] = cases.as_slice() else {
        panic!("one case expected")
    };
    assert_eq!(case.rst.frame, 4);
    assert_eq!(frames(&case.after), [5]);
    assert_eq!(tracker.open_flows(), 0);
}

#[test]
fn finish_returns_cases_in_the_order_their_flows_began() {
    let mut tracker = FlowTracker::default();
    let packets: Vec<Packet> = (0..50u16)
        .map(|i| {
            pkt(u64::from(i) + 1, "R")
                .ports(40000 + i, 8080)
                .seq(u32::from(i))
        })
        .collect();
    feed_all(&mut tracker, packets);
    let order: Vec<u64> = finish(&mut tracker).iter().map(|c| c.rst.frame).collect();
    assert_eq!(order, (1..=50).collect::<Vec<u64>>());
}

#[test]
fn sweep_releases_a_case_once_its_after_window_has_passed() {
    let mut tracker = FlowTracker::default();
    feed_all(
        &mut tracker,
        with(handshake(), [pkt(4, "R").sent_by_server().seq(5001)]),
    );
    let later = pkt(5, "S")
        .ports(40001, 8080)
        .seq(1)
        .ts(1000.004 + AFTER_SECONDS + 1.0);
    feed_all(&mut tracker, vec![later]);
    let mut ready = Vec::new();
    tracker.sweep(&mut ready);
    assert_eq!(ready.iter().map(|c| c.rst.frame).collect::<Vec<_>>(), [4]);
}

#[test]
fn sweep_at_a_later_wall_time_releases_cases_without_packets() {
    let mut tracker = FlowTracker::default();
    feed_all(
        &mut tracker,
        with(handshake(), [pkt(4, "R").sent_by_server().seq(5001)]),
    );
    let mut ready = Vec::new();
    tracker.sweep_at(1000.004 + AFTER_SECONDS, &mut ready);
    assert!(ready.is_empty()); // exactly the window: not past it
    tracker.sweep_at(900.0, &mut ready); // the clock never goes back
    assert!(ready.is_empty());
    tracker.sweep_at(1000.004 + AFTER_SECONDS + 0.01, &mut ready);
    assert_eq!(ready.len(), 1);
    assert_eq!(tracker.open_flows(), 1); // the flow stays until it is idle long enough
}

#[test]
fn closed_flow_is_forgotten_after_thirty_idle_seconds_and_an_open_one_after_fifteen_minutes() {
    let mut tracker = FlowTracker::default();
    let closed = vec![
        pkt(1, "S").seq(1000),
        pkt(2, "RA").sent_by_server().ack(1001),
    ];
    let open = handshake().into_iter().map(|p| p.ports(40001, 8080));
    feed_all(&mut tracker, with(closed, open));
    let mut ready = Vec::new();
    tracker.sweep_at(1000.003 + CLOSED_IDLE + 0.01, &mut ready);
    assert_eq!((tracker.open_flows(), ready.len()), (1, 1));
    tracker.sweep_at(1000.003 + OPEN_IDLE - 0.01, &mut ready);
    assert_eq!(tracker.open_flows(), 1);
    tracker.sweep_at(1000.003 + OPEN_IDLE + 0.01, &mut ready);
    assert_eq!(tracker.open_flows(), 0);
}

#[test]
fn flows_are_swept_every_65536_packets() {
    let mut tracker = FlowTracker::default();
    let mut ready = Vec::new();
    tracker.feed(pkt(1, "S").seq(1000), &mut ready);
    tracker.feed(pkt(2, "RA").sent_by_server().ack(1001), &mut ready);
    for i in 3..SWEEP_EVERY {
        let p = pkt(i, "A").ports(40001, 8080).ts(1100.0);
        tracker.feed(p, &mut ready);
    }
    assert_eq!((ready.len(), tracker.open_flows()), (0, 2));
    tracker.feed(
        pkt(SWEEP_EVERY, "A").ports(40001, 8080).ts(1100.0),
        &mut ready,
    );
    assert_eq!((ready.len(), tracker.open_flows()), (1, 1));
}

#[test]
fn pending_shows_waiting_cases_all_or_of_one_flow() {
    let mut tracker = FlowTracker::default();
    let rst_a = pkt(1, "R").ports(40000, 8080);
    let rst_b = pkt(2, "R").ports(40001, 8080);
    let probe = pkt(3, "A").ports(40001, 8080);
    feed_all(&mut tracker, vec![rst_a, rst_b]);
    let all: Vec<u64> = tracker.pending().map(|c| c.rst.frame).collect();
    assert_eq!(all, [1, 2]);
    let mine: Vec<u64> = tracker.pending_of(&probe).map(|c| c.rst.frame).collect();
    assert_eq!(mine, [2]);
    let none = pkt(4, "A").ports(40009, 8080);
    assert_eq!(tracker.pending_of(&none).count(), 0);
}

// --- memory bound ------------------------------------------------------------------------------

fn syn_flood(tracker: &mut FlowTracker, count: u64, first_frame: u64) -> Vec<RstCase> {
    let mut out = Vec::new();
    for i in 0..count {
        let frame = first_frame + i;
        let p = pkt(frame, "S")
            .ports(1024 + (i % 60000) as u16, 80 + (i / 60000) as u16)
            .seq(i as u32)
            .ts(1000.0 + frame as f64 * 0.0001);
        tracker.feed(p, &mut out);
    }
    out
}

#[test]
fn flow_table_stays_bounded_by_evicting_the_oldest_flows() {
    let mut tracker = FlowTracker::new(1000);
    syn_flood(&mut tracker, 5000, 1);
    let mut ready = Vec::new();
    tracker.sweep(&mut ready);
    assert!(tracker.open_flows() <= 1100);
    assert!(tracker.stats().evicted > 0);
    assert_eq!(tracker.stats().flows, 5000);
}

#[test]
fn eviction_keeps_the_most_recently_active_flows() {
    let mut tracker = FlowTracker::new(10);
    syn_flood(&mut tracker, 12, 1); // the 12th flow makes the table shrink to 10
    assert_eq!(tracker.open_flows(), 10);
    assert_eq!(tracker.stats().evicted, 2);
    let mut kept: Vec<u64> = tracker.flows.values().map(|f| f.flow_id).collect();
    kept.sort_unstable();
    assert_eq!(kept, (3..=12).collect::<Vec<u64>>());
}

#[test]
fn eviction_among_equally_idle_flows_takes_the_oldest_first() {
    let mut tracker = FlowTracker::new(2);
    let mut ready = Vec::new();
    for port in [40003, 40001, 40002] {
        tracker.feed(pkt(1, "R").ports(port, 8080).ts(1000.0), &mut ready);
    }
    let order: Vec<u16> = ready.iter().map(|c| c.client.port).collect();
    assert_eq!(order, [40003]);
}

#[test]
fn cases_of_evicted_flows_are_returned_not_lost() {
    let mut tracker = FlowTracker::new(10);
    let mut ready = feed_all(
        &mut tracker,
        vec![
            pkt(1, "S").ports(9, 8080).seq(1000),
            pkt(2, "RA").sent_by_server().ports(9, 8080).ack(1001),
        ],
    );
    ready.extend(syn_flood(&mut tracker, 50, 3));
    assert_eq!(ready.iter().map(|c| c.rst.frame).collect::<Vec<_>>(), [2]);
    assert!(finish(&mut tracker).is_empty());
}

#[test]
fn flow_whose_arrival_shrinks_the_table_is_kept() {
    let mut tracker = FlowTracker::new(10);
    syn_flood(&mut tracker, 11, 1);
    assert_eq!(tracker.open_flows(), 11); // full: the next new flow makes the table shrink
    let syn = pkt(12, "S").ports(30000, 8080).seq(77).ts(1000.0012);
    let synack = pkt(13, "SA")
        .sent_by_server()
        .ports(30000, 8080)
        .seq(5)
        .ack(78)
        .ts(1000.0013);
    feed_all(&mut tracker, vec![syn.clone(), synack]);
    assert!(tracker.stats().evicted > 0);
    let flow = tracker
        .flows
        .get(&FlowKey::of(&syn))
        .unwrap_or_else(|| unreachable!());
    assert_eq!(flow.roles, Roles::Syn);
    assert_eq!(history_frames(flow), [12, 13]);
}

#[test]
fn rst_of_a_flow_evicted_as_it_arrives_is_lost_as_in_python() {
    let mut tracker = FlowTracker::new(10);
    syn_flood(&mut tracker, 11, 1);
    let stale = pkt(12, "R").ports(30000, 8080).ts(1.0); // older than every flow in the table
    let mut ready = feed_all(&mut tracker, vec![stale]);
    tracker.finish(&mut ready);
    assert!(ready.iter().all(|c| c.rst.frame != 12));
    assert_eq!(tracker.stats().flows, 12);
}

#[test]
fn host_table_forgets_the_first_seen_half_beyond_its_bound() {
    let mut hosts = HostTtls::default();
    for i in 0..=MAX_HOSTS as u32 {
        hosts.note(IpAddr::V4(Ipv4Addr::from(i)), 64);
    }
    hosts.trim();
    assert_eq!(hosts.hosts.len(), MAX_HOSTS + 1 - MAX_HOSTS / 2);
    assert!(hosts.of(IpAddr::V4(Ipv4Addr::from(0u32))).is_empty());
    assert!(!hosts
        .of(IpAddr::V4(Ipv4Addr::from(MAX_HOSTS as u32 / 2)))
        .is_empty());
}

#[test]
fn ttl_set_iterates_sorted_and_joins_with_slashes() {
    let set: TtlSet = [128u8, 64, 255, 0, 64].into_iter().collect();
    assert_eq!(set.text(), "0/64/128/255");
    assert_eq!(set.len(), 4);
    assert!(set.contains(255) && !set.contains(63));
    assert_eq!(TtlSet::default().text(), "");
}

/// One lone RST on each of `count` flows (client ports from 1024, servers on port 80 up),
/// `gap` seconds apart from ts 1000.
fn lone_rsts(count: u64, gap: f64) -> Vec<Packet> {
    (0..count)
        .map(|i| {
            pkt(i + 1, "R")
                .ports(1024 + (i % 60000) as u16, 80 + (i / 60000) as u16)
                .ts(1000.0 + i as f64 * gap)
        })
        .collect()
}

#[test]
fn waiting_cases_are_bounded_and_the_oldest_judged_early_are_counted() {
    let mut tracker = FlowTracker::default();
    let extra = 10;
    let ready = feed_all(&mut tracker, lone_rsts(MAX_WAITING as u64 + extra, 0.0001));
    let frames: Vec<u64> = ready.iter().map(|c| c.rst.frame).collect();
    assert_eq!(frames, (1..=extra).collect::<Vec<u64>>());
    assert_eq!(tracker.stats().early, extra);
    assert_eq!(tracker.pending().count(), MAX_WAITING);
}

#[test]
fn a_case_past_its_after_window_released_by_the_bound_is_not_counted_early() {
    let mut tracker = FlowTracker::default();
    let mut packets = lone_rsts(MAX_WAITING as u64 + 1, 0.0001);
    if let Some(first) = packets.first_mut() {
        first.ts = 1000.0 - 2.0 * AFTER_SECONDS; // waited its whole window; no sweep came yet
    }
    let ready = feed_all(&mut tracker, packets);
    assert_eq!(ready.iter().map(|c| c.rst.frame).collect::<Vec<_>>(), [1]);
    assert_eq!(tracker.stats().early, 0);
}

#[test]
fn an_early_judged_case_takes_the_packets_seen_after_it_so_far() {
    let mut tracker = FlowTracker::default();
    let mut packets = vec![pkt(1, "R").ports(1, 8080).ts(999.0)];
    packets.push(pkt(2, "A").ports(1, 8080).ts(999.0));
    let later = lone_rsts(MAX_WAITING as u64, 0.0001);
    packets.extend(later.into_iter().map(|p| {
        let frame = p.frame + 2;
        Packet { frame, ..p }
    }));
    let ready = feed_all(&mut tracker, packets);
    assert_eq!(ready.len(), 1);
    let after: Vec<u64> = ready
        .iter()
        .flat_map(|c| c.after.iter().map(|s| s.frame))
        .collect();
    assert_eq!(after, [2]);
    assert_eq!(tracker.stats().early, 1);
}

#[test]
fn cases_released_by_their_after_packets_leave_the_bound_and_its_queue() {
    let mut tracker = FlowTracker::default();
    let mut ready = Vec::new();
    let rounds = 3 * MAX_WAITING as u64;
    for i in 0..rounds {
        let port = 1024 + (i % 60000) as u16;
        let at = |n: u64| 1000.0 + i as f64 * 0.001 + n as f64 * 0.00001;
        let base = i * (AFTER as u64 + 1) + 1;
        tracker.feed(pkt(base, "R").ports(port, 80).ts(at(0)), &mut ready);
        for n in 1..=AFTER as u64 {
            tracker.feed(pkt(base + n, "A").ports(port, 80).ts(at(n)), &mut ready);
        }
    }
    assert_eq!(ready.len() as u64, rounds);
    assert!(ready.iter().all(|c| c.after.len() == AFTER));
    assert_eq!(tracker.stats().early, 0);
    assert!(tracker.waiting.queue.len() <= 2 * MAX_WAITING);
    assert_eq!(tracker.waiting.count, 0);
}

#[test]
fn a_closed_flow_whose_case_left_keeps_no_room_for_it() {
    let mut tracker = FlowTracker::default();
    feed_all(&mut tracker, lone_rsts(MAX_WAITING as u64 + 1, 0.0001));
    let first = pkt(1, "R").ports(1024, 80);
    let flow = tracker.flows.get(&FlowKey::of(&first));
    assert_eq!(flow.map(|f| f.waiting.capacity()), Some(0));
}

#[test]
fn flows_and_cases_stay_within_their_memory_budget() {
    // bench/memory.py's figures and MAX_FLOWS's sizing rest on these
    assert!(std::mem::size_of::<Flow>() <= 632);
    assert!(std::mem::size_of::<RstCase>() <= 704);
    assert!(std::mem::size_of::<Segment>() <= 40);
}
