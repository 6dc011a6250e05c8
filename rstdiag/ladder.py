"""One RST's flow as a ladder diagram: client on the left, server on the right, one line per
packet, each RST with its verdict under it (`rstdiag explain`).

The pure part splits a 4-tuple's packets into connections as the flow tracker does and turns
one connection plus the verdicts into rows (relative sequence numbers, time since the first
packet); `explain_file` reads a capture twice to get them (once for the verdicts, once for the
flow's packets); `print_ladder` draws them with rich.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from rich.text import Text

from .errors import RstdiagError
from .labels import Effect, Endpoint, Sender, Verdict
from .records import ACK, FIN, RST, SYN, Packet, flag_string
from .textsafe import data_text, visible
from .utctime import utc_text

if TYPE_CHECKING:
    from .select import Selection

HEAD = 20  # packets shown at the start of a long flow
TAIL = 40  # ...and at its end
CONTEXT = 3  # ...and around the chosen frame and the first RSTs
FOCUS_RSTS = 3  # RSTs whose surroundings are kept when a long flow is cut
FAR = 1 << 30  # a sequence number this far from its side's ISN is not shown relative to it
SCHEMA_VERSION = 1

FlowKey = tuple[tuple[bytes, int], tuple[bytes, int]]


class ExplainError(RstdiagError):
    """The frame or flow asked for is not in the capture (one line for stderr)."""


def flow_key(src: bytes, sport: int, dst: bytes, dport: int) -> FlowKey:
    """The same key for both directions of a 4-tuple."""
    a, b = (src, sport), (dst, dport)
    return (a, b) if a <= b else (b, a)


def packet_key(pkt: Packet) -> FlowKey:
    return flow_key(pkt.src, pkt.sport, pkt.dst, pkt.dport)


def endpoint_key(a: tuple[str, int], b: tuple[str, int]) -> FlowKey:
    """The key of the flow between two (address text, port) endpoints."""
    return flow_key(ipaddress.ip_address(a[0]).packed, a[1],
                    ipaddress.ip_address(b[0]).packed, b[1])


# --- connections ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Segment:
    """A packet as its connection sees it: `side` 0 is the client, 1 the server."""

    frame: int
    ts: float
    side: int
    flags: int
    seq: int
    ack: int
    length: int
    window: int
    ttl: int


@dataclass(slots=True)
class Side:
    """One side of a connection, numbered as the engine's tracker numbers it: `base` is the
    ISN, or the first sequence number seen minus one when the SYN was not captured."""

    addr: bytes
    port: int
    isn: int | None = None
    base: int | None = None
    packets: int = 0  # non-RST segments
    fin_frame: int | None = None
    reset: bool = False

    def record(self, seg: Segment) -> None:
        if seg.flags & RST:
            self.reset = True
            return
        self.packets += 1
        if seg.flags & SYN:
            if self.isn is None or self.packets == 1:
                self.isn = seg.seq
            self.base = seg.seq
        elif self.base is None:
            self.base = (seg.seq - 1) & 0xFFFFFFFF
        if seg.flags & FIN and self.fin_frame is None:
            self.fin_frame = seg.frame


@dataclass(slots=True)
class Connection:
    """The packets of one connection on a 4-tuple, with both sides' state after the last."""

    client: Side
    server: Side
    roles: str  # how client and server were told apart: syn, synack, port, first
    segments: list[Segment] = field(default_factory=list)

    @classmethod
    def starting_with(cls, pkt: Packet) -> Connection:
        from . import _core

        # the engine's own rule (SYN, SYN+ACK, service ports), so that both agree
        sender_is_client, roles = _core.roles_of(pkt.flags, pkt.sport, pkt.dport)
        me, peer = Side(pkt.src, pkt.sport), Side(pkt.dst, pkt.dport)
        client, server = (me, peer) if sender_is_client else (peer, me)
        return cls(client, server, roles)

    def closed(self) -> bool:
        return self.client.reset or self.server.reset or (
            self.client.fin_frame is not None and self.server.fin_frame is not None)

    def starts_new(self, pkt: Packet) -> bool:
        """A fresh SYN after a RST or FIN/FIN opens a new connection (the tracker's rule); a
        retransmitted one, with the client's ISN, does not."""
        if not pkt.flags & SYN or pkt.flags & ACK or not self.closed():
            return False
        client = self.client
        return not (client.addr == pkt.src and client.port == pkt.sport and client.isn == pkt.seq)

    def add(self, pkt: Packet) -> Segment:
        side = 0 if (pkt.src == self.client.addr and pkt.sport == self.client.port) else 1
        seg = Segment(pkt.frame, pkt.ts, side, pkt.flags, pkt.seq, pkt.ack, pkt.length,
                      pkt.window, pkt.ttl)
        (self.client, self.server)[side].record(seg)
        self.segments.append(seg)
        return seg

    def frames(self) -> tuple[int, int]:
        return self.segments[0].frame, self.segments[-1].frame

    def has_frame(self, frame: int) -> bool:
        return any(seg.frame == frame for seg in self.segments)


def split_connections(packets: Iterable[Packet]) -> list[Connection]:
    """One 4-tuple's packets, in capture order, split into its connections."""
    connections: list[Connection] = []
    current: Connection | None = None
    for pkt in packets:
        if current is None or current.starts_new(pkt):
            current = Connection.starting_with(pkt)
            connections.append(current)
        current.add(pkt)
    return connections


def choose_connection(connections: Sequence[Connection], frame: int | None) -> int:
    """Index of the connection to show: the one holding `frame`; without a frame, the first
    with a RST, else the last."""
    if frame is not None:
        for i, conn in enumerate(connections):
            if conn.has_frame(frame):
                return i
        raise ExplainError(f"frame {frame} is not in this flow")
    for i, conn in enumerate(connections):
        if any(seg.flags & RST for seg in conn.segments):
            return i
    return len(connections) - 1


# --- rows ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Row:
    """One packet of the ladder. `side` 0: client -> server, 1: server -> client."""

    frame: int
    ts: float
    ms: float  # since the connection's first packet
    side: int
    flags: int
    seq: int
    ack: int | None  # None when the ACK flag is not set
    rel_seq: int | None  # None when the side's ISN is unknown or the number is far from it
    rel_ack: int | None
    length: int
    ttl: int
    window: int
    verdict: Verdict | None = None

    @property
    def is_rst(self) -> bool:
        return bool(self.flags & RST)

    @property
    def direction(self) -> str:
        return "client->server" if self.side == 0 else "server->client"

    @property
    def sender(self) -> str:
        return "client" if self.side == 0 else "server"

    def label(self, flags_width: int = 0) -> str:
        """The text on the arrow: flags, relative seq/ack, payload length."""
        parts = [f"{flag_string(self.flags):<{flags_width}}"]
        parts.append(f"seq={self.rel_seq}" if self.rel_seq is not None
                     else f"seq={self.seq} (abs)")
        if self.ack is not None:
            parts.append(f"ack={self.rel_ack}" if self.rel_ack is not None
                         else f"ack={self.ack} (abs)")
        if self.length:
            parts.append(f"len={self.length}")
        return " ".join(parts)

    def to_dict(self) -> dict[str, object]:
        return {
            "frame": self.frame,
            "ts": round(self.ts, 6),
            "ms": round(self.ms, 3),
            "direction": self.direction,
            "flags": flag_string(self.flags),
            "seq": self.seq,
            "ack": self.ack,
            "rel_seq": self.rel_seq,
            "rel_ack": self.rel_ack,
            "len": self.length,
            "ttl": self.ttl,
            "window": self.window,
        }


@dataclass(frozen=True, slots=True)
class Gap:
    """Packets of a long flow left out of the ladder."""

    packets: int


def seq_diff(a: int, b: int) -> int:
    """a - b in sequence space: positive when a is after b."""
    d = (a - b) & 0xFFFFFFFF
    return d - 0x100000000 if d & 0x80000000 else d


def _relative(value: int, state: Side) -> int | None:
    if state.base is None:
        return None
    diff = seq_diff(value, state.base)
    return diff if abs(diff) < FAR else None


def build_rows(conn: Connection, verdicts: Mapping[int, Verdict] | None = None) -> list[Row]:
    """The ladder rows of a connection; `verdicts` (by frame) attach to their RSTs.

    Sequence numbers are relative to the sender's base and acknowledgements to the peer's,
    as the flow tracker computes them (Side.base: the ISN, or the first sequence number
    seen minus one when the SYN was not captured).
    """
    verdicts = verdicts or {}
    if not conn.segments:
        return []
    t0 = conn.segments[0].ts
    sides = (conn.client, conn.server)
    rows = []
    for seg in conn.segments:
        me, peer = sides[seg.side], sides[1 - seg.side]
        has_ack = bool(seg.flags & ACK)
        rows.append(Row(
            frame=seg.frame, ts=seg.ts, ms=(seg.ts - t0) * 1000, side=seg.side, flags=seg.flags,
            seq=seg.seq, ack=seg.ack if has_ack else None, rel_seq=_relative(seg.seq, me),
            rel_ack=_relative(seg.ack, peer) if has_ack else None, length=seg.length,
            ttl=seg.ttl, window=seg.window,
            verdict=verdicts.get(seg.frame) if seg.flags & RST else None))
    return rows


def visible_rows(rows: Sequence[Row], *, head: int = HEAD, tail: int = TAIL,
                 context: int = CONTEXT, focus: Iterable[int] = ()) -> list[Row | Gap]:
    """The rows of a long flow cut to its first `head` and last `tail` packets and `context`
    packets around each frame in `focus` (the chosen frame, the first RSTs); one Gap for
    each run left out. A gap would hide a single row is not made."""
    n = len(rows)
    keep = set(range(min(head, n))) | set(range(max(n - tail, 0), n))
    wanted = set(focus)
    for i, row in enumerate(rows):
        if row.frame in wanted:
            keep.update(range(max(i - context, 0), min(i + context + 1, n)))
    for i in range(1, n - 1):  # a one-row gap says less than the row itself
        if i not in keep and i - 1 in keep and i + 1 in keep:
            keep.add(i)
    out: list[Row | Gap] = []
    skipped = 0
    for i, row in enumerate(rows):
        if i in keep:
            if skipped:
                out.append(Gap(skipped))
                skipped = 0
            out.append(row)
        else:
            skipped += 1
    if skipped:
        out.append(Gap(skipped))
    return out


@dataclass(slots=True)
class Ladder:
    """Everything `rstdiag explain` shows: one connection of a flow, as rows."""

    path: str
    client: Endpoint
    server: Endpoint
    roles: str
    rows: list[Row]
    frame: int | None = None  # the frame asked for (--frame), if any
    connection: int = 1  # this connection's number among those of the 4-tuple (1-based)
    connections: int = 1
    warnings: list[str] = field(default_factory=list)

    @property
    def selected(self) -> Row | None:
        return next((r for r in self.rows if r.frame == self.frame), None)

    @property
    def rsts(self) -> list[Row]:
        return [r for r in self.rows if r.is_rst]

    @property
    def verdicts(self) -> list[Verdict]:
        return [r.verdict for r in self.rows if r.verdict is not None]

    def focus(self) -> list[int]:
        frames = [r.frame for r in self.rsts[:FOCUS_RSTS]]
        return frames + ([self.frame] if self.frame is not None else [])

    def visible(self, show_all: bool = False) -> list[Row | Gap]:
        if show_all:
            return list(self.rows)
        return visible_rows(self.rows, focus=self.focus())

    def to_dict(self) -> dict[str, object]:
        selected = self.selected
        return {
            "version": SCHEMA_VERSION,
            "file": self.path,
            "frame": self.frame,
            "frame_is_rst": None if selected is None else selected.is_rst,
            "client": str(self.client),
            "server": str(self.server),
            "roles": self.roles,
            "connection": self.connection,
            "connections": self.connections,
            "first_ts": round(self.rows[0].ts, 6) if self.rows else None,
            "packets": [r.to_dict() for r in self.rows],
            "rsts": [v.to_dict() for v in self.verdicts],
        }


def build_ladder(path: str, connections: Sequence[Connection], verdicts: Iterable[Verdict],
                 frame: int | None = None) -> Ladder:
    """The ladder of the connection holding `frame` (or the first with a RST)."""
    index = choose_connection(connections, frame)
    conn = connections[index]
    by_frame = {v.frame: v for v in verdicts}
    return Ladder(
        path=path,
        client=Endpoint(_address(conn.client.addr), conn.client.port),
        server=Endpoint(_address(conn.server.addr), conn.server.port),
        roles=conn.roles,
        rows=build_rows(conn, by_frame),
        frame=frame,
        connection=index + 1,
        connections=len(connections),
    )


# --- reading a capture ---------------------------------------------------------------------

_WHY_NOT = {
    "non_ip": "not IP",
    "non_tcp": "IP but not TCP",
    "ip_fragments": "an IP fragment",
    "malformed": "malformed",
}


def _address(packed: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if len(packed) == 16 else socket.AF_INET, packed)


def frame_flow(path: str, frame: int) -> tuple[tuple[str, int], tuple[str, int]]:
    """The two endpoints of the TCP packet at `frame` (the engine reads only that far)."""
    from . import _core
    from .errors import CaptureError
    from .frames import packet_of

    try:
        record, why, frames = _core.probe_frame(path, frame)
    except _core.CaptureError as exc:
        raise CaptureError(str(exc), getattr(exc, "offset", None)) from None
    if record is None:
        if why == "absent" or frame < 1:
            raise ExplainError(f"no frame {frame}: the capture has {frames} frames")
        text = _WHY_NOT.get(why, "unsupported link type" if why else "")
        raise ExplainError(f"frame {frame} is not a TCP packet{f' ({text})' if text else ''}")
    pkt = packet_of(record)
    return (_address(pkt.src), pkt.sport), (_address(pkt.dst), pkt.dport)


def first_selected(path: str, selection: Selection,
                   flow: tuple[tuple[str, int], tuple[str, int]] | None = None) -> int:
    """The frame of the first RST that passes the filters (on `flow`, when given)."""
    from .analysis import analyze_file

    report = analyze_file(path)
    wanted = None if flow is None else {_endpoint(*end) for end in flow}
    for v in report.verdicts:
        ends = {_endpoint(v.client.addr, v.client.port), _endpoint(v.server.addr, v.server.port)}
        if (wanted is None or ends == wanted) and selection.matches(v, report.first_ts):
            return v.frame
    where = "" if flow is None else " on that flow"
    raise ExplainError(f"no RST{where} passes the filters")


def _endpoint(addr: str, port: int) -> tuple[object, int]:
    return ipaddress.ip_address(addr), port


def explain_file(path: str, *, frame: int | None = None,
                 flow: tuple[tuple[str, int], tuple[str, int]] | None = None,
                 max_flows: int | None = None) -> Ladder:
    """The ladder of frame `frame`'s flow, or of the flow between the two endpoints `flow`.

    One pass of the engine gives the verdicts and the flow's packets (for a frame, a first
    pass as far as that frame finds its flow). Raises CaptureError for an unreadable
    capture, ExplainError when the frame is not a TCP packet of the capture or no packet
    belongs to the flow.
    """
    from .analysis import Analysis
    from .frames import packet_of

    if (frame is None) == (flow is None):
        raise ValueError("give a frame or a flow")
    endpoints = frame_flow(path, frame) if frame is not None else flow
    assert endpoints is not None
    analysis = Analysis(path, max_flows)
    analysis.open()
    analysis.core.watch(*endpoints)
    report = analysis.run()
    packets = [packet_of(record) for record in analysis.core.take_watched()]
    if not packets:
        (a, ap), (b, bp) = endpoints
        raise ExplainError(f"no TCP packets between {Endpoint(a, ap)} and {Endpoint(b, bp)}")
    ladder = build_ladder(path, split_connections(packets), report.verdicts, frame)
    ladder.warnings = list(report.warnings)
    return ladder


# --- drawing -------------------------------------------------------------------------------

MIN_ARROW = 36
MAX_ARROW = 72


def _time(ts: float) -> str:
    return utc_text(ts, "%Y-%m-%d %H:%M:%S.%f")


@dataclass(frozen=True, slots=True)
class _Layout:
    frame_width: int
    ms_width: int
    arrow: int  # characters between the two lifelines
    flags_width: int

    @property
    def left(self) -> int:
        """Column of the client's lifeline."""
        return 2 + self.frame_width + 2 + self.ms_width + 2

    @property
    def width(self) -> int:
        return self.left + self.arrow + 2 + len(" ttl=255 win=65535")


def _layout(ladder: Ladder, items: Sequence[Row | Gap], width: int | None) -> _Layout:
    rows = [r for r in items if isinstance(r, Row)]
    flags_width = max((len(flag_string(r.flags)) for r in rows), default=1)
    frame_width = max([len("frame"), *(len(str(r.frame)) for r in rows)])
    ms_width = max([len("ms"), *(len(f"{r.ms:.1f}") for r in rows)])
    longest = max((len(r.label(flags_width)) for r in rows), default=0)
    ends = len(visible(f"client {ladder.client}")) + len(visible(f"server {ladder.server}")) + 4
    arrow = max(MIN_ARROW, longest + 10)
    if arrow < ends <= MAX_ARROW:  # room for both endpoints on one line
        arrow = ends
    layout = _Layout(frame_width, ms_width, arrow, flags_width)
    if width is not None and layout.width > width:  # narrow terminal: shorter arrows
        arrow = max(longest + 6, arrow - (layout.width - width))
        layout = _Layout(frame_width, ms_width, arrow, flags_width)
    return layout


def _arrow(row: Row, layout: _Layout) -> str:
    # Flags line up on the client's side, where labels start at the lifeline.
    text = f" {row.label(layout.flags_width if row.side == 0 else 0)} "
    room = layout.arrow - len(text) - 3
    if row.side == 0:
        return "──" + text + "─" * max(room, 0) + ">"
    return "<" + "─" * max(room, 0) + text + "──"


def ladder_width(ladder: Ladder, show_all: bool = False) -> int:
    """Columns the ladder needs to be drawn without wrapping."""
    return _layout(ladder, ladder.visible(show_all), None).width


def print_ladder(ladder: Ladder, out: TextIO, *, color: bool, width: int | None = None,
                 show_all: bool = False, styles: Mapping[object, str] | None = None) -> None:
    """Draw the ladder: a heading, the endpoints, one line per packet, a verdict under each
    RST. `width` None fits the console (a terminal) or the ladder's own width (a file)."""
    from .render import LABEL_STYLES, PipeSafeConsole

    if styles is None:
        styles = LABEL_STYLES
    items = ladder.visible(show_all)
    console = PipeSafeConsole(file=out, force_terminal=color, no_color=not color, highlight=False,
                              markup=False, emoji=False,
                      width=width if width is not None else max(100, ladder_width(ladder,
                                                                                  show_all)))
    layout = _layout(ladder, items, console.width)
    for line in _heading(ladder):
        console.print(line, soft_wrap=width is None)  # a file or pipe: no need to wrap
    console.print()
    left, arrow = layout.left, layout.arrow
    c_name, s_name = visible(f"client {ladder.client}"), visible(f"server {ladder.server}")
    head = Text()
    head.append(f"{'frame':>{layout.frame_width + 2}}  {'ms':>{layout.ms_width}}  ", style="dim")
    if len(c_name) + len(s_name) + 2 <= arrow + 2:
        head.append(c_name + " " * (arrow + 2 - len(c_name) - len(s_name)) + s_name,
                    style="bold")
        console.print(head, no_wrap=True, crop=False)
    else:
        console.print(Text(" " * left + c_name, style="bold"), no_wrap=True, crop=False)
        head.append(" " * max(arrow + 2 - len(s_name), 0) + s_name, style="bold")
        console.print(head, no_wrap=True, crop=False)
    for item in items:
        if isinstance(item, Gap):
            packets = f" ... {item.packets} packet{'s' if item.packets != 1 else ''} ... "
            console.print(Text(" " * left + "│" + packets.center(arrow, " ") + "│", style="dim"),
                          no_wrap=True, crop=False)
            continue
        chosen = item.frame == ladder.frame
        line = Text()
        line.append("▶ " if chosen else "  ", style="bold")
        line.append(f"{item.frame:>{layout.frame_width}}", style="bold" if chosen else "")
        line.append(f"  {item.ms:>{layout.ms_width}.1f}  ", style="dim")
        line.append("│", style="dim")
        line.append(_arrow(item, layout),
                    style="bold red" if item.is_rst else ("bold" if chosen else ""))
        line.append("│", style="dim")
        line.append(f" ttl={item.ttl} win={item.window}", style="dim")
        console.print(line, no_wrap=True, crop=False)
        if item.verdict is not None:
            for text in _verdict_lines(item, styles, console.width - left - 1):
                console.print(Text(" " * (left + 1)) + text, no_wrap=True, crop=False)
    hidden = sum(item.packets for item in items if isinstance(item, Gap))
    if hidden:
        console.print(Text(f"{hidden} packets not shown: --all shows every packet", style="dim"))


_ROLES = {
    "syn": "the client sent the SYN",
    "synack": "the server sent the SYN+ACK",
    "port": "told apart by their ports: the SYN was not captured",
    "first": "the sender of the first packet taken as the client",
}


def _heading(ladder: Ladder) -> list[Text]:
    """The lines above the ladder; names and addresses are data (textsafe), never markup."""
    name = os.path.basename(ladder.path) or ladder.path
    rows, rsts = ladder.rows, ladder.rsts
    lines = []
    selected = ladder.selected
    if selected is not None and selected.is_rst:
        verdict = selected.verdict
        forged = verdict is not None and verdict.sender == Sender.PATH
        origin = (f"claiming to come from the {selected.sender}" if forged
                  else f"from the {selected.sender}")
        line = data_text(f"{name} frame {selected.frame}", "bold")
        line.append(f" is a RST {origin}")
        if verdict is not None:
            line.append(": ")
            line.append(str(verdict.label), style="bold")
            line.append(f" ({verdict.confidence} confidence)")
        lines.append(line)
    elif selected is not None:
        line = data_text(f"{name} frame {selected.frame}", "bold")
        line.append(f" is not a RST (flags {flag_string(selected.flags)}); its flow:")
        lines.append(line)
    else:
        line = data_text(name, "bold")
        line.append_text(data_text(f": the flow {ladder.client} - {ladder.server}"))
        lines.append(line)
    if not rows:
        return lines
    span = (rows[-1].ts - rows[0].ts) * 1000
    rst_text = f"{len(rsts)} RST{'s' if len(rsts) != 1 else ''}" if rsts else "no RST"
    lines.append(data_text(f"client {ladder.client} -> server {ladder.server} "
                           f"({_ROLES.get(ladder.roles, ladder.roles)})", "dim"))
    lines.append(Text(f"{len(rows)} packets, {rst_text}, {span:.1f} ms from "
                      f"{_time(rows[0].ts)} UTC", style="dim"))
    if ladder.connections > 1:
        lines.append(Text(f"this 4-tuple carries {ladder.connections} connections; this is "
                          f"number {ladder.connection} (frames {rows[0].frame}-"
                          f"{rows[-1].frame})", style="dim"))
    lines.append(Text("seq and ack relative to each side's ISN; ms since the first packet",
                      style="dim"))
    return lines


# What each effect means for the connection, under the RST's verdict.
EFFECT_MEANINGS: dict[Effect, str] = {
    Effect.ACCEPTED: "the receiver took it: the connection ends there",
    Effect.IGNORED: "the receiver dropped it (outside its window) and carried on as if nothing "
                    "happened",
    Effect.CHALLENGED: "in the receiver's window but not exact: a challenge ACK answered it "
                       "(RFC 5961) and the connection lives on",
    Effect.UNKNOWN: "the capture ends before the receiver shows what it did",
}


def _verdict_lines(row: Row, styles: Mapping[object, str], width: int) -> list[Text]:
    """The verdict under a RST: cause, sender, confidence; its effect, the alternatives the
    wire leaves open, evidence and hint wrapped to `width` columns."""
    v = row.verdict
    assert v is not None
    first = Text()
    first.append("↳ ", style="bold red")
    first.append(str(v.label), style=styles.get(v.label, "") or "bold")
    if v.sender == Sender.PATH:
        who = f"forged by the path in the {row.sender}'s name"
    else:
        who = f"sent by the {v.sender}"
    first.append(f", {who}, {v.confidence} confidence")
    if v.duplicate_of is not None:
        first.append(f" (an identical copy of #{v.duplicate_of})", style="dim")
    lines = [first]
    fields = [("evidence", visible(v.evidence), "")]
    if v.kernel_reason:
        fields.append(("kernel", visible(v.kernel_reason), ""))
    fields.append(("effect", f"{v.effect}: {EFFECT_MEANINGS[v.effect]}",
                   "bold" if v.effect in (Effect.IGNORED, Effect.CHALLENGED) else ""))
    if v.open_alternatives:
        also = ", ".join(str(a) for a in v.open_alternatives)
        fields.append(("also", f"{also} (the same packets; only the kernel's reason tells them "
                               "apart)", ""))
    fields.append(("hint", v.hint, "italic"))
    for name, value, style in fields:
        head = f"  {name}: "
        wrapped = textwrap.wrap(value, width=max(width - len(head), 20),
                                break_on_hyphens=False) or [""]
        for n, part in enumerate(wrapped):
            line = Text()
            line.append(head if n == 0 else " " * len(head), style="bold")
            line.append(part, style=style)
            lines.append(line)
    return lines
