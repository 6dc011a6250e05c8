"""The table for people, streamed: each row written as the engine makes a verdict final (its
column widths fitted to the first rows), then the summary by cause, the groups of `--by` and
the timeline, from counts. The sink keeps no verdict. (Machine formats: rstdiag.machine.)

Text from a capture (addresses, file names, evidence quoting a payload) is data: it reaches
the terminal through rstdiag.textsafe, never as rich markup.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console
from rich.text import Text

from .analysis import FileReport
from .labels import HINTS, Confidence, Label, Sender, Verdict
from .machine import End, feed
from .reasons import agreement_line
from .select import Groups
from .tally import Tally, plausible
from .textsafe import data_text, visible
from .timeline import bucketize_points, buckets_for_width, render_timeline
from .utctime import utc_text


class PipeSafeConsole(Console):
    """A rich Console that lets a closed pipe (| head) reach the caller as BrokenPipeError.

    rich's own handler exits with status 1; the CLI wants to exit quietly with its own status.
    """

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


PIPE_WIDTH = 120  # the timeline's width when the output is not a terminal
SAMPLE_ROWS = 200  # rows the table's column widths are fitted to before it streams
CONSOLE_HEIGHT = 25  # nothing the table prints depends on the terminal's height

# A colour of its own for every cause (16-colour terminals have them all).
LABEL_STYLES = {
    Label.CLOSED_PORT: "cyan",
    Label.ACCEPT_OVERFLOW: "yellow",
    Label.LINGER_ABORT: "bright_blue",
    Label.UNREAD_DATA: "bright_magenta",
    Label.DATA_AFTER_CLOSE: "magenta",
    Label.HALF_OPEN: "bright_cyan",
    Label.KEEPALIVE_TIMEOUT: "blue",
    Label.INJECTED: "red",
    Label.CLIENT_ABORT: "green",
    Label.FOLLOW_UP: "bright_black",
    Label.UNKNOWN: "bright_yellow",
}
SHORT_SENDER = {Sender.CLIENT: "cli", Sender.SERVER: "srv", Sender.PATH: "path",
                Sender.UNKNOWN: "?"}
SHORT_CONFIDENCE = {Confidence.HIGH: "hi", Confidence.MEDIUM: "med", Confidence.LOW: "lo"}
TIME_FORMATS = ("clock", "none", "epoch", "delta", "date", "since-start")


def plural(n: int, word: str, words: str | None = None) -> str:
    """`1 RST`, `2 RSTs`, `1,215 frames`."""
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


# --- the table ----------------------------------------------------------------------------

@dataclass(slots=True, frozen=True)
class Layout:
    """How a row of the table is drawn: set once from the first rows and the width."""

    gap: int = 2
    arrow: str = " -> "
    short: bool = False  # sender and confidence abbreviated
    time: str = "clock"  # one of TIME_FORMATS
    millis: bool = True
    stacked: bool = False  # the server on a second line
    widths: tuple[int, ...] = ()  # frame, time, flow (or client), sender, cause, confidence

    def headers(self) -> list[str]:
        return ["frame" if not self.short else "#", "time" if self.time != "none" else "",
                "flow (client -> server)" if not self.stacked else "client / -> server",
                "by" if self.short else "sender", "cause", "conf"]


def _time_cell(v: Verdict, layout: Layout, previous: float | None, start: float | None) -> str:
    if layout.time == "none":
        return ""
    if layout.time == "epoch":
        return f"{v.ts:.6f}"
    if layout.time == "delta":
        return f"{v.ts - previous if previous is not None else 0.0:.6f}"
    if layout.time == "since-start":
        return f"{v.ts - start if start is not None else 0.0:.6f}"
    if layout.time == "date":
        return utc_text(v.ts, "%Y-%m-%d %H:%M:%S.%f")
    return utc_text(v.ts, "%H:%M:%S.%f" if layout.millis else "%H:%M:%S")


def _cells(v: Verdict, layout: Layout, time: str) -> list[str]:
    sender = SHORT_SENDER[v.sender] if layout.short else str(v.sender)
    conf = SHORT_CONFIDENCE[v.confidence] if layout.short else str(v.confidence)
    flow = visible(str(v.client)) if layout.stacked else \
        f"{visible(str(v.client))}{layout.arrow}{visible(str(v.server))}"
    return [str(v.frame), time, flow, sender, str(v.label), conf]


def fit_layout(sample: Sequence[Verdict], width: int | None, time: str = "clock") -> Layout:
    """The widest layout whose rows fit `width` columns (None: no limit, the full layout).

    Addresses and ports are never cut: the other columns give way first (sender and
    confidence abbreviated, narrower gaps, the time without milliseconds, then without the
    time), and at last the flow takes two lines."""
    steps = [Layout(time=time), Layout(time=time, short=True),
             Layout(gap=1, arrow=" > ", short=True, time=time)]
    if time == "clock":
        steps.append(Layout(gap=1, arrow=" > ", short=True, millis=False))
    steps.append(Layout(gap=1, arrow=" > ", short=True, time="none"))
    steps.append(Layout(gap=1, arrow=" > ", short=True, time="none", stacked=True))
    chosen = steps[0]
    for layout in steps if width is not None else steps[:1]:
        widths = _widths(sample, layout)
        chosen = Layout(layout.gap, layout.arrow, layout.short, layout.time, layout.millis,
                        layout.stacked, widths)
        if width is None or _row_width(chosen) <= width:
            break
    return chosen


def _widths(sample: Sequence[Verdict], layout: Layout) -> tuple[int, ...]:
    widths = [len(h) for h in layout.headers()]
    for v in sample:
        cells = _cells(v, layout, _time_cell(v, layout, v.ts, v.ts))
        if layout.time in ("epoch", "delta", "since-start"):
            cells[1] = f"{v.ts:.6f}" if layout.time == "epoch" else "0000.000000"
        for i, cell in enumerate(cells):
            widths[i] = max(widths[i], len(cell))
        if layout.stacked:
            widths[2] = max(widths[2], len(layout.arrow.lstrip()) + len(visible(str(v.server))))
    return tuple(widths)


def _row_width(layout: Layout) -> int:
    columns = [w for i, w in enumerate(layout.widths) if i != 1 or layout.time != "none"]
    return sum(columns) + layout.gap * (len(columns) - 1)


class TableSink:
    """One line per RST (two for a flow stacked at a narrow width; the evidence under it with
    -v), then the summary by cause last, where a long scroll ends: the groups of `--by`
    instead of the rows when asked, and the timeline."""

    def __init__(self, console: Console, *, width: int | None, verbose: int = 0,
                 quiet: bool = False, time: str = "clock", several: bool = False,
                 groups: Groups | None = None, top: int | None = None,
                 title: str = "TCP resets", outcome: Any = None, summary: bool = True) -> None:
        self.console = console
        self.width = width  # None: not a terminal; no padding, no wrapping
        self.verbose = verbose
        self.quiet = quiet
        self.time = time
        self.several = several
        self.groups = groups
        self.top = top
        self.title = title
        self.outcome = outcome  # verdict -> (text, style) of check's outcome column, or None
        self.summary = summary  # False: the rows only (check ends with its own line)
        self.tally = Tally()
        self.sample: list[Verdict] | None = []
        self.layout: Layout | None = None
        self.previous: float | None = None
        self.file: str | None = None
        self.day: str | None = None
        self.start: float | None = None  # the time of the current capture's first RST
        self.start_of: str | None = None
        self.shown = 0

    @property
    def rows_wanted(self) -> bool:
        return not self.quiet and self.groups is None

    def add(self, v: Verdict) -> None:
        self.tally.add(v)
        if self.groups is not None:
            self.groups.add(v)
        if not self.rows_wanted or (v.duplicate_of is not None and self.verbose < 2):
            return
        if self.sample is not None:
            self.sample.append(v)
            if len(self.sample) >= SAMPLE_ROWS:
                self._flush_sample()
            return
        self._row(v)

    def _flush_sample(self) -> None:
        sample, self.sample = self.sample or [], None
        self.layout = fit_layout(sample, self.width, self.time)
        self._header()
        for v in sample:
            self._row(v)

    def _print(self, text: Text, crop: bool = False) -> None:
        """One line as it is in a pipe; on a terminal, wrapped (or cut, `crop`) to fit."""
        if self.width is not None and text.cell_len > self.width:
            if crop:
                text.truncate(self.width)
            else:
                self.console.print(text, soft_wrap=False, overflow="fold")
                return
        self.console.print(text, soft_wrap=True)

    def _header(self) -> None:
        assert self.layout is not None
        title = Text(self.title, style="bold")
        if self.layout.time in ("clock", "date"):
            title.append(" (times in UTC)", style="dim")
        self._print(title)
        self._print(self._line(self.layout.headers(), style="bold"))

    def _line(self, cells: Sequence[str | Text], style: str = "") -> Text:
        """Cells padded to the layout's widths. A cell wider than its column (a frame number
        with more digits than the first rows had) takes the room from the padding of the
        columns after it, so that the line still fits the terminal."""
        assert self.layout is not None
        layout = self.layout
        columns = [(i, c if isinstance(c, Text) else Text(c)) for i, c in enumerate(cells)
                   if i != 1 or layout.time != "none"]
        pads = [max((layout.widths[i] if i < len(layout.widths) else 0) - text.cell_len, 0)
                for i, text in columns]
        pads[-1] = 0  # the last column is not padded
        excess = sum(text.cell_len + pad for (_, text), pad in zip(columns, pads, strict=True)) \
            + layout.gap * (len(columns) - 1) - (self.width or 1 << 30)
        for n in range(1, len(pads)):
            if excess <= 0:
                break
            cut = min(pads[n], excess) if columns[n][0] != 0 else 0
            pads[n] -= cut
            excess -= cut
        line = Text(style=style)
        for n, ((i, text), pad) in enumerate(zip(columns, pads, strict=True)):
            if n:
                line.append(" " * layout.gap)
            if i == 0:
                line.append(" " * pad)
                line.append_text(text)
            else:
                line.append_text(text)
                line.append(" " * pad)
        line.rstrip()
        return line

    def _row(self, v: Verdict) -> None:
        assert self.layout is not None
        layout = self.layout
        self._separators(v)
        if v.file != self.start_of:
            self.start_of, self.start = v.file, v.ts
        time = _time_cell(v, layout, self.previous, self.start)
        self.previous = v.ts
        cells: list[str | Text] = list(_cells(v, layout, time))
        cells[2] = data_text(str(cells[2]))  # addresses come from the capture: data
        cells[4] = Text(str(v.label), style=LABEL_STYLES[v.label])
        if v.confidence is Confidence.LOW:
            cells[5] = Text(str(cells[5]), style="dim")
        if self.outcome is not None:
            text, style = self.outcome(v)
            cells.append(Text(text, style=style))
        line = self._line(cells)
        if v.duplicate_of is not None:
            line.append(f"  copy of #{v.duplicate_of}", style="dim")
        self._print(line)
        indent = layout.widths[0] + layout.gap
        if layout.stacked:
            server = Text(" " * (sum(layout.widths[:2]) + 2 * layout.gap
                                 if layout.time != "none" else indent))
            server.append_text(data_text(layout.arrow.lstrip() + str(v.server)))
            self._print(server)
        if self.verbose:
            self._wrapped(indent, visible(v.evidence), "")
        self.shown += 1

    def _wrapped(self, indent: int, text: str, style: str) -> None:
        if self.width is None:
            self._print(Text(" " * indent + text, style=style))
            return
        for part in textwrap.wrap(text, width=max(self.width - indent, 20),
                                  break_on_hyphens=False) or [""]:
            self._print(Text(" " * indent + part, style=style or "dim"))

    def _separators(self, v: Verdict) -> None:
        """A line naming the capture when a new one starts (several files), and the date
        whenever it changes: rows carry the time of day only."""
        if self.several and v.file != self.file:
            self.file = v.file
            self.day = None
            self._print(Text("── ", style="dim") + data_text(os.path.basename(v.file), "bold"))
        day = utc_text(v.ts, "%Y-%m-%d") if plausible(v.ts) else "?"
        if day != self.day and self.layout is not None and self.layout.time in ("clock",):
            self.day = day
            self._print(Text(f"── {day}", style="dim"))

    def close(self, end: End) -> None:
        if self.sample is not None and (self.sample or not self.rows_wanted):
            if self.sample:
                self._flush_sample()
            self.sample = None
        tally = self.tally
        hidden = tally.copy_count
        if self.rows_wanted and self.shown and hidden and self.verbose < 2:
            self._print(Text(f"{plural(hidden, 'identical copy', 'identical copies')} of "
                             "these RSTs not shown (-vv shows them)", style="dim"))
        if not self.summary:
            return
        if self.groups is not None:
            if self.shown or not self.quiet:
                self._print(Text())
            self._groups()
        self._print(Text())
        self._summary(end)
        if tally.rsts >= 2:
            self._timeline(end)

    def _summary(self, end: End) -> None:
        tally = self.tally
        frames = sum(f.get("frames", 0) for f in end.files)
        flows = sum(f.get("flows", 0) for f in end.files)
        where = f"{plural(frames, 'frame')}, {plural(flows, 'TCP flow')}"
        if len(end.files) > 1:
            where += f", {plural(len(end.files), 'file')}"
        if not tally.rsts and not tally.copy_count:
            self._print(Text(f"no TCP resets in {where}", style="bold"))
            return
        head = Text(f"{plural(tally.rsts, 'RST')} by cause", style="bold")
        head.append(f" in {where}")
        if tally.copy_count:
            note = f"{plural(tally.copy_count, 'identical copy', 'identical copies')} not counted"
            if self.width is not None and head.cell_len + len(note) + 2 > self.width:
                self._print(head)
                head = Text()
            else:
                head.append("; ")
            head.append(note, style="dim")
        self._print(head)
        rows = [(str(label), tally.distinct[label], tally.copies[label]) for label in Label
                if tally.distinct[label] or tally.copies[label]]
        name_w = max(len("cause"), *(len(r[0]) for r in rows))
        count_w = max(len("RSTs"), *(len(f"{r[1]:,}") for r in rows))
        copy_w = max(len("copies"), *(len(f"{r[2]:,}") for r in rows)) if tally.copy_count \
            else 0
        copies_head = f"  {'copies':>{copy_w}}" if copy_w else ""
        self._print(Text(f"{'cause':<{name_w}}  {'RSTs':>{count_w}}{copies_head}  hint",
                         style="bold"))
        for name, n, copies in rows:
            line = Text()
            line.append(f"{name:<{name_w}}", style=LABEL_STYLES[Label(name)])
            line.append(f"  {n:>{count_w},}" + (f"  {copies:>{copy_w},}" if copy_w else "")
                        + "  ")
            hint = HINTS[Label(name)] if self.verbose else HINTS[Label(name)].split(";")[0]
            room = None if self.width is None else self.width - line.cell_len
            line.append(_cut(hint, room), style="dim")
            self._print(line)
        self._kernel_reasons(end)
        if tally.impossible_ts:
            self._print(Text(f"{plural(tally.impossible_ts, 'RST')} with an impossible time "
                             "left out of the timeline", style="dim"))

    def _kernel_reasons(self, end: End) -> None:
        """How the kernel's reasons saved by `live -w --kernel-reasons` compared, as live
        said it at its end."""
        saved = [k for f in end.files if (k := f.get("kernel_reasons"))]
        if not saved:
            return
        total = {key: sum(int(k[key]) for k in saved)
                 for key in ("agree", "disagree", "no_opinion", "without_reason")}
        line = agreement_line(total["agree"], total["disagree"], total["no_opinion"])
        if total["without_reason"]:
            line += f", {plural(total['without_reason'], 'RST')} saved without one"
        self._print(Text(line))
        for k in saved:
            for disagreement in k["disagreements"]:
                self._print(data_text(f"  {disagreement}", style="yellow"))

    def _groups(self) -> None:
        assert self.groups is not None
        groups = self.groups
        ranked = groups.ranked(self.top)
        noun = {"server": ("server", "servers"), "client": ("client", "clients"),
                "port": ("server port", "server ports"), "flow": ("flow", "flows")}[groups.by]
        head = Text(f"RSTs by {noun[0]}", style="bold")
        head.append(f": {plural(len(groups.groups), *noun)}")
        if len(ranked) < len(groups.groups):
            head.append(f", the {len(ranked)} with the most RSTs", style="dim")
        self._print(head)
        if not ranked:
            return
        key_w = max(len(noun[0]), *(len(visible(g.key)) for g in ranked))
        cols = [("RSTs", [f"{g.rsts:,}" for g in ranked]),
                ("copies", [f"{g.copies:,}" for g in ranked]),
                ("flows", [f"{len(g.flows):,}" for g in ranked])]
        widths = [max(len(name), *(len(v) for v in values)) for name, values in cols]
        head_line = f"{noun[0]:<{key_w}}" + "".join(
            f"  {name:>{w}}" for (name, _), w in zip(cols, widths, strict=True)) + "  causes"
        self._print(Text(head_line, style="bold"))
        indent = key_w + sum(w + 2 for w in widths) + 2
        for n, g in enumerate(ranked):
            line = data_text(f"{g.key:<{key_w}}")
            for (_, values), w in zip(cols, widths, strict=True):
                line.append(f"  {values[n]:>{w}}")
            line.append("  ")
            parts = [(str(label), count) for label in Label if (count := g.causes[label])]
            column = indent
            for i, (name, count) in enumerate(parts):
                piece = f"{name} {count:,}" + ("," if i < len(parts) - 1 else "")
                if self.width is not None and column > indent and \
                        column + len(piece) + 1 > self.width:
                    self._print(line)
                    line, column = Text(" " * indent), indent
                elif column > indent:
                    line.append(" ")
                    column += 1
                line.append(f"{name}", style=LABEL_STYLES[Label(name)])
                line.append(f" {count:,}" + ("," if i < len(parts) - 1 else ""))
                column += len(piece)
            self._print(line)
        if len(ranked) < len(groups.groups):
            rest = len(groups.groups) - len(ranked)
            self._print(Text(f"{plural(rest, 'more ' + noun[0], 'more ' + noun[1])} "
                             "(--top N shows more)", style="dim"))

    def _timeline(self, end: End) -> None:
        firsts = [f.first_ts for f in end.files if plausible(f.first_ts)]
        lasts = [f.last_ts for f in end.files if plausible(f.last_ts)]
        width = self.width or PIPE_WIDTH
        timeline = bucketize_points(self.tally.timeline_points(),
                                    start=min(firsts, default=None),
                                    end=max(lasts, default=None),
                                    buckets=buckets_for_width(width))
        text = render_timeline(timeline, LABEL_STYLES)
        if text.plain:
            self._print(Text())
            for line in text.split("\n"):
                self._print(line, crop=True)


def _cut(text: str, room: int | None) -> str:
    if room is None or len(text) <= room:
        return text
    return text[: max(room - 1, 0)] + "…" if room > 1 else ""


def console_for(out: TextIO, *, color: bool, width: int | None) -> Console:
    """A console for a terminal `width` columns wide, or (None) for a pipe or file: no
    padding, no wrapping, lines as long as they are."""
    # a height too: with a width alone, rich asks the three standard streams for the
    # terminal's size at every row (76,000 failed ioctls, 0.4 s, for 25,000 rows)
    return PipeSafeConsole(file=out, force_terminal=color, no_color=not color,
                           color_system="standard" if color else None,
                           width=width if width is not None else 10_000, height=CONSOLE_HEIGHT,
                           highlight=False, soft_wrap=width is None, emoji=False, markup=False)


def write_table(reports: Sequence[FileReport], out: TextIO, *, color: bool, verbose: int = 0,
                quiet: bool = False, width: int | None = None, time: str = "clock",
                groups: Groups | None = None, top: int | None = None) -> None:
    """The table of every RST, then the summary by cause; `quiet`: the summary only."""
    console = console_for(out, color=color, width=width)
    feed(TableSink(console, width=width, verbose=verbose, quiet=quiet, time=time,
                   several=len(reports) > 1, groups=groups, top=top), reports)


