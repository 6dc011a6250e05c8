"""Per-flow tracking: roles, per-side sequence state, a short history, and one case per RST.

The tracker turns a stream of Packets into RstCases, each holding everything the classifier
needs to judge one RST: the flow's history before it, both sides' state at that moment, and
the few packets that followed it (injection shows in what the claimed sender does next).
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .records import ACK, FIN, RST, SYN, Packet

HISTORY = 16  # segments kept per flow; the classifier looks at the last few
AFTER = 8  # segments after a RST collected before it is judged
AFTER_SECONDS = 5.0  # ...or this much capture time, whichever comes first
DUPLICATE_SECONDS = 0.05  # the same packet seen twice (an 'any' capture) arrives within this
DUPLICATE_SECONDS_NO_ID = 0.00002
SWEEP_EVERY = 65536  # packets between sweeps of idle flows
CLOSED_IDLE = 30.0  # a closed flow is forgotten after this much idle capture time
OPEN_IDLE = 900.0  # an open flow is forgotten after this much idle capture time
MAX_FLOWS = 200_000  # flows held at once; the oldest are evicted beyond it
MAX_HOSTS = 100_000  # hosts whose TTLs are remembered across flows
MAX_TTLS = 8

_MASK = 0xFFFFFFFF

# Ports that name a service: the side using one is the server when the SYN was not captured.
SERVICE_PORTS = frozenset({
    20, 21, 22, 23, 25, 53, 80, 110, 111, 119, 135, 139, 143, 179, 389, 443, 445, 465, 514,
    587, 636, 993, 995, 1433, 1521, 2049, 3306, 3389, 5432, 5672, 6379, 6443, 8000, 8080,
    8443, 9092, 9200, 11211, 27017,
})


def seq_diff(a: int, b: int) -> int:
    """a - b in sequence space (RFC 1982 style): positive when a is after b."""
    d = (a - b) & _MASK
    return d - 0x100000000 if d & 0x80000000 else d


def addr_text(addr: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if len(addr) == 16 else socket.AF_INET, addr)


@dataclass(slots=True)
class Segment:
    """A packet as its flow sees it: `side` 0 is the client, 1 the server."""

    frame: int
    ts: float
    side: int
    flags: int
    seq: int
    ack: int
    length: int
    window: int
    ttl: int
    ipid: int | None
    fastclose: bool = False
    mptcp_reason: int | None = None

    @property
    def end(self) -> int:
        """Sequence number just past this segment (SYN and FIN take one each)."""
        return (self.seq + self.length + bool(self.flags & SYN) + bool(self.flags & FIN)) & _MASK


@dataclass(slots=True)
class SideState:
    """What one side of a flow has sent so far (RSTs apart, which are kept in `rsts`)."""

    addr: bytes
    port: int
    isn: int | None = None
    base: int | None = None  # origin of relative sequence numbers
    sent_syn: bool = False
    sent_synack: bool = False
    nxt: int | None = None  # highest sequence number sent + 1
    fin_frame: int | None = None
    fin_seq: int | None = None
    data_bytes: int = 0
    last_data_frame: int | None = None
    acked: int | None = None  # highest ack sent in a non-RST segment
    packets: int = 0  # non-RST segments
    ttls: set[int] = field(default_factory=set)
    first_ts: float | None = None
    last_ts: float | None = None
    rsts: list[Segment] = field(default_factory=list)

    def snapshot(self) -> SideState:
        # Spelled out: dataclasses.replace costs several times more, once per RST and side.
        return SideState(self.addr, self.port, self.isn, self.base, self.sent_syn,
                         self.sent_synack, self.nxt, self.fin_frame, self.fin_seq,
                         self.data_bytes, self.last_data_frame, self.acked, self.packets,
                         set(self.ttls), self.first_ts, self.last_ts, list(self.rsts))

    def relative(self, seq: int) -> int:
        return seq_diff(seq, self.base) if self.base is not None else seq

    def record(self, seg: Segment) -> None:
        # The hot path of every packet: locals and inline arithmetic on purpose.
        flags = seg.flags
        if self.first_ts is None:
            self.first_ts = seg.ts
        self.last_ts = seg.ts
        if flags & RST:
            if len(self.rsts) < 4:
                self.rsts.append(seg)
            return
        self.packets += 1
        ttls = self.ttls
        if len(ttls) < MAX_TTLS:
            ttls.add(seg.ttl)
        seq, length = seg.seq, seg.length
        if flags & SYN:
            if self.isn is None or self.packets == 1:
                self.isn = seq
            self.base = seq
            if flags & ACK:
                self.sent_synack = True
            else:
                self.sent_syn = True
        elif self.base is None:
            self.base = (seq - 1) & _MASK
        end = (seq + length + (flags & SYN and 1) + (flags & FIN)) & _MASK
        nxt = self.nxt
        if nxt is None or 0 < ((end - nxt) & _MASK) < 0x80000000:
            self.nxt = end
        if length:
            self.data_bytes += length
            self.last_data_frame = seg.frame
        if flags & FIN and self.fin_frame is None:
            self.fin_frame = seg.frame
            self.fin_seq = (seq + length) & _MASK
        if flags & ACK:
            acked = self.acked
            if acked is None or 0 < ((seg.ack - acked) & _MASK) < 0x80000000:
                self.acked = seg.ack


@dataclass(slots=True)
class RstCase:
    """Everything known about one RST: the classifier's whole input."""

    flow_id: int
    rst: Segment
    client: SideState  # snapshots taken just before the RST
    server: SideState
    roles: str  # how client and server were told apart: syn, synack, port, first
    before: tuple[Segment, ...]  # the flow's last segments before the RST, oldest first
    after: list[Segment] = field(default_factory=list)  # what the flow saw next
    sender_host_ttls: frozenset[int] = frozenset()  # the sender's TTLs seen in other flows
    payload: bytes = b""
    mptcp_reset_reason: int | None = None
    duplicate_of: int | None = None  # frame of the identical RST just before this one

    @property
    def sender(self) -> SideState:
        return self.client if self.rst.side == 0 else self.server

    @property
    def peer(self) -> SideState:
        return self.server if self.rst.side == 0 else self.client


@dataclass(slots=True)
class Flow:
    flow_id: int
    sides: tuple[SideState, SideState]  # (client, server)
    roles: str
    history: deque[Segment]
    waiting: list[RstCase] = field(default_factory=list)
    last_ts: float = 0.0
    rst_seen: bool = False

    def closed(self) -> bool:
        return self.rst_seen or (
            self.sides[0].fin_frame is not None and self.sides[1].fin_frame is not None
        )


@dataclass(slots=True)
class TrackerStats:
    flows: int = 0
    duplicates: int = 0
    evicted: int = 0  # flows dropped because the table was full


_NO_TTLS: frozenset[int] = frozenset()
_NO_RSTS: tuple[Segment, ...] = ()


def _lean_side(addr: bytes, port: int) -> SideState:
    """A side of a flow that only feed_lifecycle touches. Its empty TTL set and RST list are
    shared and immutable: 500 bytes less a flow, and a loud error if anything records into it."""
    return SideState(addr, port, ttls=_NO_TTLS, rsts=_NO_RSTS)  # type: ignore[arg-type]


def _roles(pkt: Packet) -> tuple[bool, str]:
    """(is the packet's sender the client?, how that was decided)."""
    if pkt.flags & SYN:
        return (not pkt.flags & ACK, "synack" if pkt.flags & ACK else "syn")
    s_service, d_service = pkt.sport in SERVICE_PORTS, pkt.dport in SERVICE_PORTS
    if s_service != d_service:
        return (d_service, "port")
    if (pkt.sport < 1024) != (pkt.dport < 1024):
        return (pkt.dport < 1024, "port")
    if pkt.flags & RST and pkt.sport != pkt.dport:
        # A lone RST usually answers something: guess the lower port is the service.
        return (pkt.dport < pkt.sport, "port")
    return (True, "first")


class FlowTracker:
    """Feeds packets into flows and yields RstCases once they can be judged."""

    def __init__(self, max_flows: int = MAX_FLOWS, sweep_every: int | None = SWEEP_EVERY) -> None:
        """`sweep_every=None`: the caller sweeps (rstdiag.twopass replays the full stream's
        sweeps while feeding only part of it)."""
        self.sweep_every = sweep_every
        self.flows: dict[tuple[bytes, int, bytes, int], Flow] = {}
        self.host_ttls: dict[bytes, set[int]] = {}
        self.stats = TrackerStats()
        self.max_flows = max_flows
        self._packets = 0
        self._now = 0.0

    def feed(self, pkt: Packet) -> list[RstCase]:
        """Track one packet; return the cases that became ready."""
        ready: list[RstCase] = []
        self._track(self._flow_of(pkt, ready), pkt, ready)
        if self.sweep_every and self._packets % self.sweep_every == 0:
            ready.extend(self.sweep())
        return ready

    def feed_lifecycle(self, pkt: Packet) -> list[RstCase]:
        """Track, of a packet of a flow known never to carry a RST (rstdiag.twopass knows), only
        what the flow's life in the table depends on: its creation, its SYNs' sequence number,
        its FINs and its last packet's time. The rest of its state stays empty: no verdict ever
        reads it. Its sender's TTL is the caller's to note (note_host_ttl) if it matters."""
        ready: list[RstCase] = []
        flow = self._flow_of(pkt, ready, history=1)
        flow.last_ts = pkt.ts
        client = flow.sides[0]
        side = client if pkt.src == client.addr and pkt.sport == client.port else flow.sides[1]
        flags = pkt.flags
        if flags & SYN and side.isn is None:  # as record() sets it
            side.isn = pkt.seq
        if flags & FIN and side.fin_frame is None:
            side.fin_frame = pkt.frame
        return ready

    def _flow_of(self, pkt: Packet, ready: list[RstCase], history: int = HISTORY) -> Flow:
        """Count the packet and find its flow: the one in the table, or a new one (on a new
        4-tuple, or a new connection on a closed one) keeping `history` segments."""
        self._packets += 1
        if pkt.ts > self._now:
            self._now = pkt.ts
        a, b = (pkt.src, pkt.sport), (pkt.dst, pkt.dport)
        key = (a + b) if a <= b else (b + a)
        flow = self.flows.get(key)
        if flow is not None and self._starts_new_connection(flow, pkt):
            ready.extend(self._forget(key))
            flow = None
        if flow is None:
            flow = self._new_flow(key, pkt, ready, history)
        return flow

    def finish(self) -> list[RstCase]:
        """End of input: every waiting case is ready."""
        ready: list[RstCase] = []
        for flow in self.flows.values():
            ready.extend(flow.waiting)
            flow.waiting = []
        self.flows.clear()
        return ready

    def sweep(self) -> list[RstCase]:
        """Release cases whose after-window passed; forget idle flows; keep the table bounded."""
        ready: list[RstCase] = []
        now = self._now
        for key in list(self.flows):
            flow = self.flows[key]
            if flow.waiting and now - flow.waiting[0].rst.ts > AFTER_SECONDS:
                ready.extend(flow.waiting)
                flow.waiting = []
            idle = now - flow.last_ts
            if idle > OPEN_IDLE or (idle > CLOSED_IDLE and flow.closed()):
                ready.extend(self._forget(key))
        excess = len(self.flows) - self.max_flows
        if excess > 0:
            idlest = sorted(self.flows, key=lambda k: self.flows[k].last_ts)[:excess]
            for key in idlest:
                ready.extend(self._forget(key))
                self.stats.evicted += 1
        if len(self.host_ttls) > MAX_HOSTS:
            for host in list(self.host_ttls)[: MAX_HOSTS // 2]:
                del self.host_ttls[host]
        return ready

    def _forget(self, key: tuple[bytes, int, bytes, int]) -> list[RstCase]:
        flow = self.flows.pop(key)
        waiting, flow.waiting = flow.waiting, []
        return waiting

    def _starts_new_connection(self, flow: Flow, pkt: Packet) -> bool:
        """A fresh SYN on a closed 4-tuple is a new connection, a retransmitted one is not."""
        if not (pkt.flags & SYN) or pkt.flags & ACK or not flow.closed():
            return False
        client = flow.sides[0]
        return not (client.addr == pkt.src and client.port == pkt.sport and client.isn == pkt.seq)

    def _new_flow(self, key: tuple[bytes, int, bytes, int], pkt: Packet,
                  ready: list[RstCase], history: int = HISTORY) -> Flow:
        sender_is_client, how = _roles(pkt)
        if history == HISTORY:
            me, peer = SideState(pkt.src, pkt.sport), SideState(pkt.dst, pkt.dport)
        else:  # feed_lifecycle's: never recorded into, so no set and list of their own
            me, peer = _lean_side(pkt.src, pkt.sport), _lean_side(pkt.dst, pkt.dport)
        sides = (me, peer) if sender_is_client else (peer, me)
        self.stats.flows += 1
        flow = Flow(self.stats.flows, sides, how, deque(maxlen=history), last_ts=pkt.ts)
        self.flows[key] = flow
        if len(self.flows) > self.max_flows * 1.1:  # do not wait for the next sweep to shrink
            ready.extend(self.sweep())
        return flow

    def _track(self, flow: Flow, pkt: Packet, ready: list[RstCase]) -> None:
        client = flow.sides[0]
        side = 0 if (pkt.src == client.addr and pkt.sport == client.port) else 1
        seg = Segment(pkt.frame, pkt.ts, side, pkt.flags, pkt.seq, pkt.ack, pkt.length,
                      pkt.window, pkt.ttl, pkt.ipid, pkt.mptcp_fastclose, pkt.mptcp_reset_reason)
        flow.last_ts = pkt.ts
        history = flow.history
        # _twin only when the last segment could be the same packet (a cheap first look)
        twin = self._twin(flow, seg) if history and history[-1].seq == seg.seq else None
        if twin is not None and not seg.flags & RST:
            self.stats.duplicates += 1
            return
        waiting = flow.waiting
        if waiting:
            for case in waiting:
                case.after.append(seg)
            if len(waiting[0].after) >= AFTER:
                ready.extend(c for c in waiting if len(c.after) >= AFTER)
                flow.waiting = [c for c in waiting if len(c.after) < AFTER]
        if seg.flags & RST:
            flow.waiting.append(self._case(flow, seg, pkt, twin))
            flow.rst_seen = True
        else:
            ttls = self.host_ttls.get(pkt.src)
            if ttls is None:
                self.host_ttls[pkt.src] = {pkt.ttl}
            elif len(ttls) < MAX_TTLS:
                ttls.add(pkt.ttl)
        flow.sides[side].record(seg)
        history.append(seg)

    def _twin(self, flow: Flow, seg: Segment) -> Segment | None:
        """The identical packet just before this one, if this is a copy of it."""
        if not flow.history:
            return None
        last = flow.history[-1]
        if (last.side == seg.side and last.seq == seg.seq and last.ack == seg.ack
                and last.flags == seg.flags and last.length == seg.length
                and last.window == seg.window and last.ipid == seg.ipid
                and last.mptcp_reason == seg.mptcp_reason):
            # Without an IP ID to tell them apart (IPv6, or the zero ID of Linux's RSTs), a
            # stack's answers to two arriving segments look identical: only a near-zero gap
            # says it is one packet captured twice.
            window = DUPLICATE_SECONDS if seg.ipid else DUPLICATE_SECONDS_NO_ID
            if 0 <= seg.ts - last.ts <= window:
                return last
        return None

    def _case(self, flow: Flow, seg: Segment, pkt: Packet, twin: Segment | None) -> RstCase:
        client, server = flow.sides
        duplicate_of = None
        if twin is not None:
            duplicate_of = twin.frame
            for waiting in flow.waiting:  # a chain of copies points at the first of them
                if waiting.rst.frame == twin.frame and waiting.duplicate_of is not None:
                    duplicate_of = waiting.duplicate_of
            self.stats.duplicates += 1
        return RstCase(
            flow_id=flow.flow_id,
            rst=seg,
            client=client.snapshot(),
            server=server.snapshot(),
            roles=flow.roles,
            before=tuple(flow.history),
            sender_host_ttls=frozenset(self.host_ttls.get(pkt.src, ())),
            payload=pkt.payload,
            mptcp_reset_reason=pkt.mptcp_reset_reason,
            duplicate_of=duplicate_of,
        )

    def note_host_ttl(self, src: bytes, ttl: int) -> None:
        """Only the sender's TTL, of a non-RST packet not fed here (rstdiag.twopass feeds a
        subset, and splits flows between processes): the host TTL table sees it all the same."""
        ttls = self.host_ttls.get(src)
        if ttls is None:
            self.host_ttls[src] = {ttl}
        elif len(ttls) < MAX_TTLS:
            ttls.add(ttl)

    # --- for live capture (rstdiag.live): verdicts before a case is final, time without packets

    def pending(self, pkt: Packet | None = None) -> list[RstCase]:
        """The cases still collecting their after-packets: all, or those of `pkt`'s flow.

        The cases are live objects (their `after` keeps growing): classify one to get a
        provisional verdict, the final one comes from `feed`/`sweep`/`finish` as usual.
        """
        if pkt is not None:
            a, b = (pkt.src, pkt.sport), (pkt.dst, pkt.dport)
            flow = self.flows.get((a + b) if a <= b else (b + a))
            return list(flow.waiting) if flow is not None else []
        return [case for flow in self.flows.values() for case in flow.waiting]

    def sweep_at(self, now: float) -> list[RstCase]:
        """`sweep` with the clock moved to `now` (seconds since the epoch) if it is later:
        a live capture's wall time, so that cases and idle flows age while no packet comes."""
        self._now = max(self._now, now)
        return self.sweep()


def track(packets: Iterable[Packet], tracker: FlowTracker | None = None) -> Iterator[RstCase]:
    """All RstCases of a packet stream, each as soon as it is ready."""
    tracker = tracker or FlowTracker()
    for pkt in packets:
        yield from tracker.feed(pkt)
    yield from tracker.finish()
