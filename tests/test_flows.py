"""The flow tracker on hand-written Packet records: roles, sequence state, duplicates, cases."""

from __future__ import annotations

import copy
import socket
from dataclasses import replace

from rstdiag import flows
from rstdiag.flows import Flow, FlowTracker, RstCase, seq_diff
from rstdiag.records import ACK, FIN, PSH, RST, SYN, Packet

CLIENT = socket.inet_aton("192.0.2.1")
SERVER = socket.inet_aton("198.51.100.7")
FLAGS = {"S": SYN, "A": ACK, "F": FIN, "R": RST, "P": PSH}
_IPID = iter(range(1, 1_000_000))


def pkt(frame: int, flags: str, *, from_client: bool = True, ts: float | None = None,
        seq: int = 0, ack: int = 0, length: int = 0, cport: int = 40000, sport: int = 8080,
        ipid: int | None = -1, ttl: int = 64) -> Packet:
    """One segment between CLIENT:cport and SERVER:sport; ts defaults to 1000 + frame ms."""
    bits = 0
    for letter in flags:
        bits |= FLAGS[letter]
    a, b = (CLIENT, cport), (SERVER, sport)
    (src, sp), (dst, dp) = (a, b) if from_client else (b, a)
    return Packet(frame, 1000.0 + frame / 1000 if ts is None else ts, 4, src, dst, sp, dp,
                  seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, bits, 512, length, ttl,
                  next(_IPID) if ipid == -1 else ipid)


def copy_of(p: Packet, frame: int, later: float) -> Packet:
    """The same packet captured a second time (as on an 'any' capture)."""
    return replace(p, frame=frame, ts=p.ts + later)


def feed_all(tracker: FlowTracker, packets: list[Packet]) -> list[RstCase]:
    out: list[RstCase] = []
    for p in packets:
        out.extend(tracker.feed(p))
    return out


def cases_of(packets: list[Packet]) -> list[RstCase]:
    tracker = FlowTracker()
    return feed_all(tracker, packets) + tracker.finish()


def only_flow(tracker: FlowTracker) -> Flow:
    [flow] = tracker.flows.values()
    return flow


def handshake(cisn: int = 1000, sisn: int = 5000) -> list[Packet]:
    return [pkt(1, "S", seq=cisn),
            pkt(2, "SA", from_client=False, seq=sisn, ack=cisn + 1),
            pkt(3, "A", seq=cisn + 1, ack=sisn + 1)]


# --- roles -------------------------------------------------------------------------------------


def test_syn_sender_is_the_client_even_from_a_service_port() -> None:
    tracker = FlowTracker()
    tracker.feed(pkt(1, "S", cport=443, sport=50000, seq=1000))
    flow = only_flow(tracker)
    assert flow.roles == "syn"
    assert (flow.sides[0].addr, flow.sides[0].port) == (CLIENT, 443)
    assert (flow.sides[1].addr, flow.sides[1].port) == (SERVER, 50000)


def test_synack_sender_is_the_server_when_the_syn_is_missing() -> None:
    tracker = FlowTracker()
    tracker.feed(pkt(1, "SA", from_client=False, cport=443, sport=50000, seq=5000, ack=1001))
    flow = only_flow(tracker)
    assert flow.roles == "synack"
    assert (flow.sides[0].addr, flow.sides[0].port) == (CLIENT, 443)
    assert (flow.sides[1].addr, flow.sides[1].port) == (SERVER, 50000)


def test_service_port_side_is_the_server_when_the_handshake_is_missing() -> None:
    tracker = FlowTracker()
    tracker.feed(pkt(1, "PA", from_client=False, cport=50000, sport=443, seq=7, ack=9, length=5))
    flow = only_flow(tracker)
    assert flow.roles == "port"
    assert (flow.sides[0].addr, flow.sides[0].port) == (CLIENT, 50000)
    assert (flow.sides[1].addr, flow.sides[1].port) == (SERVER, 443)


def test_rst_case_names_its_sender_by_role() -> None:
    [case] = cases_of([pkt(1, "S", seq=1000), pkt(2, "RA", from_client=False, ack=1001)])
    assert case.roles == "syn"
    assert case.rst.side == 1
    assert (case.sender.port, case.peer.port) == (8080, 40000)


# --- sequence arithmetic -----------------------------------------------------------------------


def test_seq_diff_is_wrap_safe() -> None:
    assert seq_diff(5, 0xFFFFFFF0) == 21
    assert seq_diff(0xFFFFFFF0, 5) == -21
    assert seq_diff(1000, 1000) == 0
    assert seq_diff(1010, 1000) == 10


def test_flow_whose_sequence_numbers_wrap_keeps_next_and_acked() -> None:
    cisn = 0xFFFFFFF0
    tracker = FlowTracker()
    feed_all(tracker, handshake(cisn=cisn) + [
        pkt(4, "PA", seq=cisn + 1, ack=5001, length=100),  # crosses 2**32
        pkt(5, "A", from_client=False, seq=5001, ack=cisn + 101),
        pkt(6, "PA", seq=cisn + 1, ack=5001, length=10),  # an old retransmission
        pkt(7, "A", from_client=False, seq=5001, ack=cisn + 11),  # an old, reordered ack
    ])
    client, server = only_flow(tracker).sides
    assert client.nxt == (cisn + 101) & 0xFFFFFFFF == 0x55
    assert server.acked == 0x55
    assert client.data_bytes == 110
    assert client.relative(client.nxt) == 101


# --- connections on a reused 4-tuple -----------------------------------------------------------


def test_new_syn_with_a_new_isn_after_a_rst_starts_a_new_flow() -> None:
    first, second = cases_of([
        pkt(1, "S", seq=1000), pkt(2, "RA", from_client=False, ack=1001),
        pkt(3, "S", seq=900_000, ts=1002.0), pkt(4, "RA", from_client=False, ack=900_001,
                                                   ts=1002.001),
    ])
    assert first.flow_id != second.flow_id
    assert second.client.isn == 900_000
    assert [s.frame for s in second.before] == [3]


def test_retransmitted_syn_after_a_rst_stays_in_the_same_flow() -> None:
    first, second = cases_of([
        pkt(1, "S", seq=1000), pkt(2, "RA", from_client=False, ack=1001),
        pkt(3, "S", seq=1000, ts=1001.0), pkt(4, "RA", from_client=False, ack=1001, ts=1001.001),
    ])
    assert first.flow_id == second.flow_id
    assert [s.frame for s in second.before] == [1, 2, 3]


# --- duplicates --------------------------------------------------------------------------------


def test_packet_seen_twice_within_microseconds_is_a_duplicate_and_changes_nothing() -> None:
    tracker = FlowTracker()
    data = pkt(4, "PA", seq=1001, ack=5001, length=100)
    feed_all(tracker, handshake() + [data])
    client = copy.deepcopy(only_flow(tracker).sides[0])
    history = list(only_flow(tracker).history)
    tracker.feed(copy_of(data, 5, later=0.000005))
    assert tracker.stats.duplicates == 1
    assert list(only_flow(tracker).history) == history
    assert only_flow(tracker).sides[0] == client


def test_ipv6_packet_without_ip_id_seen_twice_within_microseconds_is_a_duplicate() -> None:
    tracker = FlowTracker()
    data = pkt(4, "PA", seq=1001, ack=5001, length=100, ipid=None)
    feed_all(tracker, handshake() + [data, copy_of(data, 5, later=0.000005)])
    assert tracker.stats.duplicates == 1
    assert only_flow(tracker).sides[0].data_bytes == 100


def test_rst_seen_twice_becomes_a_case_marked_duplicate_of_the_first() -> None:
    rst = pkt(4, "R", from_client=False, seq=5001)
    cases = cases_of(handshake() + [rst, copy_of(rst, 5, later=0.000005),
                                    copy_of(rst, 6, later=0.00001)])
    assert [(c.rst.frame, c.duplicate_of) for c in cases] == [(4, None), (5, 4), (6, 4)]


def test_two_rsts_with_ip_id_zero_a_millisecond_apart_are_not_duplicates() -> None:
    tracker = FlowTracker()
    rst = pkt(4, "R", from_client=False, seq=5001, ipid=0)
    feed_all(tracker, handshake() + [rst, copy_of(rst, 5, later=0.001)])
    cases = tracker.finish()
    assert [c.duplicate_of for c in cases] == [None, None]
    assert tracker.stats.duplicates == 0


def test_same_packet_a_second_apart_is_a_retransmission_not_a_duplicate() -> None:
    tracker = FlowTracker()
    data = pkt(4, "PA", seq=1001, ack=5001, length=100)
    feed_all(tracker, handshake() + [data, copy_of(data, 5, later=1.0)])
    assert tracker.stats.duplicates == 0
    assert [s.frame for s in only_flow(tracker).history] == [1, 2, 3, 4, 5]


# --- what a case holds -------------------------------------------------------------------------


def test_case_before_holds_the_flow_history_before_the_rst() -> None:
    [case] = cases_of(handshake() + [pkt(4, "PA", seq=1001, ack=5001, length=10),
                                     pkt(5, "R", from_client=False, seq=5001)])
    assert [s.frame for s in case.before] == [1, 2, 3, 4]
    assert case.rst.frame == 5


def test_case_before_keeps_only_the_last_history_segments() -> None:
    packets = handshake() + [pkt(4 + i, "A", seq=1001, ack=5001 + i) for i in range(30)]
    [case] = cases_of(packets + [pkt(100, "R", from_client=False, seq=5001)])
    assert len(case.before) == flows.HISTORY
    assert case.before[-1].frame == 33


def test_case_after_holds_the_next_packets_up_to_the_limit_and_is_then_ready() -> None:
    tracker = FlowTracker()
    feed_all(tracker, handshake() + [pkt(4, "R", from_client=False, seq=5001)])
    following = [pkt(5 + i, "PA", seq=1001 + 10 * i, ack=5001, length=10)
                 for i in range(flows.AFTER + 3)]
    ready = feed_all(tracker, following)
    [case] = ready
    assert [s.frame for s in case.after] == [p.frame for p in following[: flows.AFTER]]
    assert tracker.finish() == []


def test_case_snapshots_do_not_change_when_later_packets_arrive() -> None:
    tracker = FlowTracker()
    feed_all(tracker, handshake() + [pkt(4, "PA", seq=1001, ack=5001, length=10),
                                     pkt(5, "R", from_client=False, seq=5001)])
    [case] = only_flow(tracker).waiting
    client, server, before = copy.deepcopy((case.client, case.server, case.before))
    feed_all(tracker, [pkt(6, "PA", seq=1011, ack=5001, length=50, ttl=99),
                       pkt(7, "FA", seq=1061, ack=5001),
                       pkt(8, "R", from_client=False, seq=5001),
                       pkt(9, "A", from_client=False, seq=5001, ack=1062, ttl=12)])
    assert (case.client, case.server, case.before) == (client, server, before)
    assert only_flow(tracker).sides[0].data_bytes == 60  # the live state did move on


def test_finish_returns_the_waiting_cases_and_empties_the_table() -> None:
    tracker = FlowTracker()
    ready = feed_all(tracker, handshake() + [pkt(4, "R", from_client=False, seq=5001),
                                             pkt(5, "A", seq=1001, ack=5001)])
    assert ready == []
    [case] = tracker.finish()
    assert case.rst.frame == 4
    assert [s.frame for s in case.after] == [5]
    assert tracker.flows == {}


def test_sweep_releases_a_case_once_its_after_window_has_passed() -> None:
    tracker = FlowTracker()
    feed_all(tracker, handshake() + [pkt(4, "R", from_client=False, seq=5001)])
    tracker.feed(pkt(5, "S", cport=40001, seq=1, ts=1000.004 + flows.AFTER_SECONDS + 1))
    [case] = tracker.sweep()
    assert case.rst.frame == 4


# --- memory bound ------------------------------------------------------------------------------


def _syn_flood(tracker: FlowTracker, count: int, first_frame: int = 1) -> list[RstCase]:
    out: list[RstCase] = []
    for i in range(count):
        frame = first_frame + i
        out.extend(tracker.feed(pkt(frame, "S", cport=1024 + i % 60000, sport=80 + i // 60000,
                                    seq=i, ts=1000.0 + frame * 0.0001)))
    return out


def test_flow_table_stays_bounded_by_evicting_the_oldest_flows() -> None:
    tracker = FlowTracker(max_flows=1000)
    _syn_flood(tracker, 5000)
    tracker.sweep()
    assert len(tracker.flows) <= 1100
    assert tracker.stats.evicted > 0
    assert tracker.stats.flows == 5000


def test_cases_of_evicted_flows_are_returned_not_lost() -> None:
    tracker = FlowTracker(max_flows=10)
    ready = feed_all(tracker, [pkt(1, "S", cport=9, seq=1000),
                               pkt(2, "RA", from_client=False, cport=9, ack=1001)])
    ready += _syn_flood(tracker, 50, first_frame=3)
    assert [c.rst.frame for c in ready] == [2]
    assert tracker.finish() == []


def test_flow_whose_arrival_shrinks_the_table_is_kept() -> None:
    tracker = FlowTracker(max_flows=10)
    _syn_flood(tracker, 11)
    assert len(tracker.flows) == 11  # full: the next new flow makes the table shrink
    tracker.feed(pkt(12, "S", cport=30000, seq=77, ts=1000.0012))
    tracker.feed(pkt(13, "SA", from_client=False, cport=30000, seq=5, ack=78, ts=1000.0013))
    assert tracker.stats.evicted > 0
    flow = tracker.flows[(CLIENT, 30000, SERVER, 8080)]
    assert flow.roles == "syn"
    assert [s.frame for s in flow.history] == [12, 13]
