"""RSTs per cause over a capture's time: bucketing (pure) and a sparkline per cause.

`bucketize` turns verdicts into counts per label per time bucket; `render_timeline` draws one
row per cause with a sparkline, the time axis and the peak bucket named, so that a burst of
RSTs stands out in the terminal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rich.text import Text

from .labels import Label, Verdict
from .utctime import utc, utc_text

SPARKS = "▁▂▃▄▅▆▇█"
DEFAULT_BUCKETS = 48
MIN_BUCKETS = 16


@dataclass(frozen=True, slots=True)
class Timeline:
    """RST counts per label in `buckets` equal slices of [start, end] (seconds since the epoch).

    `counts` holds only labels with RSTs, in taxonomy order. A span of zero (one RST, or every
    RST at one instant, with no wider span given) is a single bucket.
    """

    start: float
    end: float
    buckets: int
    counts: dict[Label, tuple[int, ...]]

    @property
    def span(self) -> float:
        return self.end - self.start

    @property
    def width(self) -> float:
        """Seconds per bucket (0 for a span of zero)."""
        return self.span / self.buckets

    @property
    def total(self) -> tuple[int, ...]:
        """All labels together, per bucket."""
        if not self.counts:
            return (0,) * self.buckets
        return tuple(sum(column) for column in zip(*self.counts.values(), strict=True))

    @property
    def rsts(self) -> int:
        return sum(self.total)

    def bucket_start(self, index: int) -> float:
        return self.start + index * self.width

    def bucket_of(self, ts: float) -> int:
        """The bucket a time falls in; times outside [start, end] go to the first or last."""
        if self.span <= 0:
            return 0
        index = math.floor((ts - self.start) / self.width)
        return min(max(index, 0), self.buckets - 1)


def bucketize(verdicts: Iterable[Verdict], *, start: float | None = None,
              end: float | None = None, buckets: int = DEFAULT_BUCKETS) -> Timeline:
    """Count RSTs per label per bucket over [start, end].

    `start`/`end` default to the first and last RST's time and are widened to include every
    RST (a capture's RSTs lie within its packets' times, but do not trust it). An empty input
    gives a timeline without counts.
    """
    return bucketize_points(((v.ts, v.label, 1) for v in verdicts), start=start, end=end,
                            buckets=buckets)


def bucketize_points(points: Iterable[tuple[float, Label, int]], *, start: float | None = None,
                     end: float | None = None, buckets: int = DEFAULT_BUCKETS) -> Timeline:
    """`bucketize` of (time, label, how many RSTs) points: counts kept per second, say, by a
    live capture that cannot keep every verdict."""
    if buckets < 1:
        raise ValueError("buckets must be at least 1")
    points = list(points)
    times = [ts for ts, _, _ in points]
    lo = min([t for t in (start, *times) if t is not None], default=0.0)
    hi = max([t for t in (end, *times) if t is not None], default=lo)
    hi = max(hi, lo)
    if hi == lo:
        buckets = 1
    frame = Timeline(lo, hi, buckets, {})
    per_label: dict[Label, list[int]] = {}
    for ts, label, count in points:
        per_label.setdefault(label, [0] * buckets)[frame.bucket_of(ts)] += count
    counts = {label: tuple(per_label[label]) for label in Label if label in per_label}
    return Timeline(lo, hi, buckets, counts)


def peak(counts: Sequence[int]) -> tuple[int, int]:
    """(index, count) of the first fullest bucket; (0, 0) when all are empty."""
    best = max(counts, default=0)
    return (counts.index(best) if best else 0, best)


def sparkline(counts: Sequence[int]) -> str:
    """One character per bucket, scaled to the row's own peak: blank for none, ▁ at least for
    one RST, █ for the peak."""
    top = max(counts, default=0)
    if top == 0:
        return " " * len(counts)
    out = []
    for count in counts:
        if count <= 0:
            out.append(" ")
        else:
            level = math.ceil(count * len(SPARKS) / top) - 1
            out.append(SPARKS[min(max(level, 0), len(SPARKS) - 1)])
    return "".join(out)


def time_label(ts: float, *, precise: bool = False, dated: bool = False) -> str:
    """HH:MM:SS in UTC; with milliseconds when `precise`, with the date when `dated`."""
    moment = utc(ts)
    if moment is None:
        return utc_text(ts)
    text = moment.strftime("%H:%M:%S.%f")[:-3] if precise else moment.strftime("%H:%M:%S")
    return f"{moment:%Y-%m-%d} {text}" if dated else text


def _rsts(count: int) -> str:
    return f"{count} RST" if count == 1 else f"{count} RSTs"


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.3g} min"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    return f"{seconds * 1000:.3g} ms"


def buckets_for_width(width: int) -> int:
    """How many buckets fit a console `width` beside the names, counts and peak text."""
    return max(MIN_BUCKETS, min(DEFAULT_BUCKETS, width - 60))


def render_timeline(timeline: Timeline, styles: Mapping[Label, str] | None = None) -> Text:
    """The timeline as lines of text: a title, one row per cause (and one for all of them
    when there are several), the time axis under the sparklines."""
    styles = styles or {}
    text = Text(no_wrap=True, overflow="crop")
    if not timeline.counts:
        return text
    start, end = utc(timeline.start), utc(timeline.end)
    dated = start is not None and end is not None and start.date() != end.date()
    precise = timeline.width < 1
    if timeline.span <= 0:
        text.append(f"RSTs over time: all {timeline.rsts} at "
                    f"{time_label(timeline.start, precise=True, dated=dated)} UTC", style="bold")
        return text
    text.append("RSTs over time (UTC)", style="bold")
    text.append(f", one column per {_duration(timeline.width)}\n", style="dim")
    rows: list[tuple[str, str, tuple[int, ...]]] = []
    if len(timeline.counts) > 1:
        rows.append(("all", "bold", timeline.total))
    rows.extend((str(label), styles.get(label, ""), row) for label, row in timeline.counts.items())
    name_width = max(len(name) for name, _, _ in rows)
    count_width = max(len(str(sum(row))) for _, _, row in rows)
    for name, style, row in rows:
        text.append(f"{name:<{name_width}}", style=style)
        text.append(f" {sum(row):>{count_width}} ")
        text.append("│", style="dim")
        text.append(sparkline(row), style=style)
        text.append("│", style="dim")
        index, count = peak(row)
        when = time_label(timeline.bucket_start(index), precise=precise, dated=dated)
        text.append(f" peak {when}, {_rsts(count)}\n", style="dim")
    first = time_label(timeline.start, precise=precise, dated=dated)
    last = time_label(timeline.end, precise=precise, dated=dated)
    axis_width = timeline.buckets + 2
    gap = axis_width - len(first) - len(last)
    axis = f"{first}{' ' * gap}{last}" if gap >= 1 else f"{first} .. {last}"
    text.append(" " * (name_width + count_width + 2) + axis, style="dim")
    return text
