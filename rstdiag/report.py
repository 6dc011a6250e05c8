"""`rstdiag report`: one self-contained HTML page for a postmortem or a ticket.

It holds the summary by cause and by server, a chart of RSTs per cause over time (inline SVG,
drawn here: no script library, no CDN), the table of RSTs with a filter by cause (a few lines
of inline script), and the ladder diagram of the first RSTs of each cause, each on a flow of
its own, as SVG with the verdict, evidence and hint. Jinja2 fills the template
(rstdiag/templates/report.html.j2) with autoescaping on: capture-derived text (evidence,
file names) is text on the page, never markup. A Content-Security-Policy in the page forbids
any fetch, so that it stays what it looks like wherever it is opened.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .analysis import FileReport, summarize
from .labels import HINTS, Label, Verdict
from .ladder import Gap, Ladder, Row, build_ladder, packet_key, split_connections, visible_rows
from .records import Packet
from .textsafe import visible
from .timeline import bucketize
from .utctime import utc_text

LADDERS_PER_CAUSE = 3  # RSTs drawn per cause, each on a flow of its own
MAX_ROWS = 5000  # RSTs listed in the table; the rest are counted
MAX_SERVERS = 20
CHART_BUCKETS = 60
LADDER_HEAD = 8  # packets of a long flow drawn before and after the cut
LADDER_TAIL = 8

# one colour per cause, readable on white, the same hues as the terminal's
COLORS = {
    Label.CLOSED_PORT: "#0e7c86",
    Label.ACCEPT_OVERFLOW: "#c62828",
    Label.LINGER_ABORT: "#b7950b",
    Label.UNREAD_DATA: "#d68910",
    Label.DATA_AFTER_CLOSE: "#8e44ad",
    Label.HALF_OPEN: "#6c3483",
    Label.KEEPALIVE_TIMEOUT: "#1f618d",
    Label.INJECTED: "#922b21",
    Label.CLIENT_ABORT: "#17a589",
    Label.FOLLOW_UP: "#7f8c8d",
    Label.UNKNOWN: "#95a5a6",
}


# --- what the page shows, as plain data ---------------------------------------------------

@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


@dataclass(slots=True)
class Chart:
    """Stacked bars of RSTs per cause per time slice, in SVG coordinates."""

    width: int
    height: int
    bars: list[Bar]
    start: str
    end: str
    peak: int


@dataclass(frozen=True, slots=True)
class Arrow:
    """One packet of a ladder: a line from one lifeline to the other, and its labels."""

    y: float
    x1: float
    x2: float
    text: str
    frame: int
    ms: str
    rst: bool
    selected: bool


@dataclass(slots=True)
class LadderView:
    """A ladder as SVG geometry, with the verdicts of its RSTs."""

    anchor: str
    title: str
    client: str
    server: str
    width: int
    height: int
    left: float
    right: float
    arrows: list[Arrow]
    gaps: list[tuple[float, str]]
    verdicts: list[Verdict] = field(default_factory=list)


@dataclass(slots=True)
class Page:
    files: list[FileReport]
    summary: dict[str, int]
    servers: list[tuple[str, int, dict[str, int]]]
    chart: Chart | None
    rows: list[Verdict]
    total: int
    ladders: list[LadderView]
    errors: list[tuple[str, str]]
    generated: str


def by_server(verdicts: Iterable[Verdict], limit: int = MAX_SERVERS
              ) -> list[tuple[str, int, dict[str, int]]]:
    """(server, RSTs, RSTs by cause) of the servers with the most RSTs, most first."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for v in verdicts:
        counts[str(v.server)][str(v.label)] += 1
    ranked = sorted(counts.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    return [(server, sum(causes.values()), summarize_labels(causes))
            for server, causes in ranked[:limit]]


def summarize_labels(counts: Counter[str]) -> dict[str, int]:
    return {str(label): counts[label] for label in Label if counts[label]}


def chart_of(reports: Sequence[FileReport], verdicts: Sequence[Verdict],
             buckets: int = CHART_BUCKETS) -> Chart | None:
    """Stacked bars over the captures' time, first to last packet."""
    if not verdicts:
        return None
    firsts = [r.first_ts for r in reports if r.first_ts is not None]
    lasts = [r.last_ts for r in reports if r.last_ts is not None]
    timeline = bucketize(verdicts, start=min(firsts, default=None),
                         end=max(lasts, default=None), buckets=buckets)
    width, height, top = 720, 160, 10
    peak = max(timeline.total) or 1
    slot = width / timeline.buckets
    bars = []
    for index in range(timeline.buckets):
        y = float(height)
        when = utc_text(timeline.bucket_start(index))
        for label, counts in timeline.counts.items():
            if not counts[index]:
                continue
            h = counts[index] / peak * (height - top)
            y -= h
            bars.append(Bar(index * slot + 1, y, max(slot - 2, 1), h, COLORS[label],
                            f"{when}: {counts[index]} {label}"))
    return Chart(width, height, bars, utc_date(timeline.start), utc_date(timeline.end), peak)


def utc_date(ts: float) -> str:
    return utc_text(ts, "%Y-%m-%d %H:%M:%S.%f")


# --- ladders ------------------------------------------------------------------------------

def ladder_choices(verdicts: Iterable[Verdict], per_cause: int = LADDERS_PER_CAUSE
                   ) -> list[Verdict]:
    """The RSTs to draw: per cause, the first `per_cause`, each on a flow not drawn yet for
    that cause (identical copies of a RST are left out)."""
    chosen: list[Verdict] = []
    seen: dict[Label, set[tuple[str, str, str]]] = defaultdict(set)
    for v in verdicts:
        flow = (v.file, str(v.client), str(v.server))
        if v.duplicate_of is not None or flow in seen[v.label]:
            continue
        if len(seen[v.label]) < per_cause:
            seen[v.label].add(flow)
            chosen.append(v)
    return chosen


def flows_packets(path: str, keys: set[object]) -> dict[object, list[Packet]]:
    """The packets of the flows `keys` (ladder.packet_key), read from the capture."""
    from .frames import read_frames

    found: dict[object, list[Packet]] = defaultdict(list)
    if not keys:
        return found
    for _, pkt in read_frames(path, path).decoded():
        if pkt is not None:
            key = packet_key(pkt)
            if key in keys:
                found[key].append(pkt)
    return found


def ladders_of(report: FileReport, chosen: Sequence[Verdict]) -> list[Ladder]:
    """The ladder of each chosen RST of one capture (a second read of the file)."""
    import ipaddress

    from .ladder import flow_key

    def key_of(v: Verdict) -> object:
        return flow_key(ipaddress.ip_address(v.src).packed, v.sport,
                        ipaddress.ip_address(v.dst).packed, v.dport)

    keys = {key_of(v) for v in chosen}
    packets = flows_packets(report.path, keys)
    ladders = []
    for v in chosen:
        flow = packets.get(key_of(v))
        if flow:
            ladders.append(build_ladder(report.path, split_connections(flow), report.verdicts,
                                        v.frame))
    return ladders


def ladder_view(ladder: Ladder, index: int) -> LadderView:
    """SVG geometry of a ladder: lifelines at `left` and `right`, an arrow per packet."""
    items = visible_rows(ladder.rows, head=LADDER_HEAD, tail=LADDER_TAIL, context=2,
                         focus=ladder.focus())
    left, right, step, top = 250.0, 610.0, 26.0, 44.0
    arrows: list[Arrow] = []
    gaps: list[tuple[float, str]] = []
    y = top
    for item in items:
        y += step
        if isinstance(item, Gap):
            gaps.append((y, f"... {item.packets} packets ..."))
            continue
        row: Row = item
        x1, x2 = (left, right) if row.side == 0 else (right, left)
        arrows.append(Arrow(y, x1, x2, row.label(), row.frame, f"{row.ms:.1f}", row.is_rst,
                            row.frame == ladder.frame))
    title = f"{os.path.basename(ladder.path)} frame {ladder.frame}"
    return LadderView(f"ladder-{index}", title, str(ladder.client), str(ladder.server), 860,
                      int(y + step), left, right, arrows, gaps, ladder.verdicts)


# --- the page -----------------------------------------------------------------------------

def build_page(reports: Sequence[FileReport], errors: Sequence[tuple[str, str]] = (),
               *, ladders: Sequence[Ladder] = (), max_rows: int = MAX_ROWS,
               generated: float | None = None) -> Page:
    import time

    verdicts = [v for r in reports for v in r.verdicts]
    return Page(
        files=list(reports),
        summary=summarize(verdicts),
        servers=by_server(verdicts),
        chart=chart_of(reports, verdicts),
        rows=verdicts[:max_rows],
        total=len(verdicts),
        ladders=[ladder_view(ladder, n) for n, ladder in enumerate(ladders, 1)],
        errors=list(errors),
        generated=utc_text(time.time() if generated is None else generated),
    )


def render_page(page: Page) -> str:
    """The HTML of the page (Jinja2, autoescaped)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("rstdiag", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True)
    env.filters["visible"] = visible
    env.filters["basename"] = os.path.basename
    env.filters["utc"] = utc_text
    env.filters["utcdate"] = utc_date
    return env.get_template("report.html.j2").render(
        page=page, colors={str(k): v for k, v in COLORS.items()},
        hints={str(k): v for k, v in HINTS.items()}, labels=[str(label) for label in Label])
