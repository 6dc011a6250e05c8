"""Renderers: reports in, text out (a rich table for people, JSON/JSONL/CSV for machines)."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .analysis import FileReport, summarize
from .labels import HINTS, Confidence, Label, Verdict
from .timeline import bucketize, buckets_for_width, render_timeline
from .utctime import utc_text


class PipeSafeConsole(Console):
    """A rich Console that lets a closed pipe (| head) reach the caller as BrokenPipeError.

    rich's own handler exits with status 1; the CLI wants to exit quietly with its own status.
    """

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


SCHEMA_VERSION = 1
FORMATS = ("table", "json", "jsonl", "csv")
CSV_FIELDS = ("file", "frame", "ts", "src", "sport", "dst", "dport", "flags", "client", "server",
              "sender", "label", "confidence", "evidence", "hint", "duplicate_of", "alternatives",
              "effect", "community_id")

LABEL_STYLES = {
    Label.CLOSED_PORT: "cyan",
    Label.ACCEPT_OVERFLOW: "bold red",
    Label.LINGER_ABORT: "yellow",
    Label.UNREAD_DATA: "yellow",
    Label.DATA_AFTER_CLOSE: "magenta",
    Label.HALF_OPEN: "bold magenta",
    Label.KEEPALIVE_TIMEOUT: "blue",
    Label.INJECTED: "bold red",
    Label.CLIENT_ABORT: "cyan",
    Label.FOLLOW_UP: "dim",
    Label.UNKNOWN: "dim",
}


def document(reports: Sequence[FileReport], stream: bool = False) -> dict[str, object]:
    """The JSON document of `read --format json` (schema in the README). `stream`: "rsts" is
    an iterator, for write_document, so that the RSTs' dicts are not all in memory at once."""
    verdicts = [v for r in reports for v in r.verdicts]
    rsts = (v.to_dict() for v in verdicts)
    return {
        "version": SCHEMA_VERSION,
        "files": [r.to_dict() for r in reports],
        "rsts": rsts if stream else list(rsts),
        "summary": summarize(verdicts),
    }


def write_json(reports: Sequence[FileReport], out: TextIO) -> None:
    write_document(document(reports, stream=True), out)


def write_document(doc: dict[str, object], out: TextIO) -> None:
    """`json.dump(doc, out, indent=2)`, but each RST of "rsts" on a line of its own.

    json's indented output is written by its pure-Python encoder: 2.4 s for the 25,000 RSTs of
    a 2-million-packet capture. One line per RST is the C encoder's, and as easy to grep."""
    out.write("{")
    for n, (key, value) in enumerate(doc.items()):
        out.write(",\n  " if n else "\n  ")
        out.write(json.dumps(key) + ": ")
        if key == "rsts":
            _write_rsts(value, out)  # type: ignore[arg-type]
        else:
            out.write(json.dumps(value, indent=2).replace("\n", "\n  "))
    out.write("\n}\n")


def _write_rsts(rsts: Iterable[dict[str, object]], out: TextIO) -> None:
    out.write("[")
    empty = True
    for rst in rsts:
        out.write(("\n    " if empty else ",\n    ") + json.dumps(rst))
        empty = False
    out.write("]" if empty else "\n  ]")


def write_jsonl(reports: Sequence[FileReport], out: TextIO) -> None:
    for report in reports:
        for verdict in report.verdicts:
            out.write(json.dumps(verdict.to_dict()) + "\n")


def write_csv(reports: Sequence[FileReport], out: TextIO) -> None:
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for report in reports:
        for verdict in report.verdicts:
            writer.writerow(verdict.to_row())


def _time(ts: float) -> str:
    return utc_text(ts)


def write_table(reports: Sequence[FileReport], out: TextIO, *, color: bool, verbose: int = 0,
                quiet: bool = False, width: int | None = None) -> None:
    """A table of every RST, then a summary by cause; `quiet` prints the summary only."""
    console = PipeSafeConsole(file=out, force_terminal=color, no_color=not color, width=width,
                      highlight=False, soft_wrap=False)
    several = len(reports) > 1
    verdicts = [v for r in reports for v in r.verdicts]
    if not quiet and verdicts:
        table = Table(title="TCP resets", title_justify="left", expand=False, show_lines=False)
        if several:
            table.add_column("file", overflow="fold")
        for name in ("frame", "time (UTC)", "flow (client -> server)", "sender", "cause", "conf"):
            table.add_column(name, no_wrap=name != "flow (client -> server)")
        table.add_column("evidence", overflow="fold", ratio=3)
        table.add_column("hint", overflow="fold", ratio=2)
        for v in verdicts:
            if v.duplicate_of is not None and not verbose:
                continue
            row = [str(v.frame), _time(v.ts), f"{v.client} -> {v.server}", str(v.sender),
                   f"[{LABEL_STYLES[v.label]}]{v.label}[/]", _confidence(v), v.evidence, v.hint]
            table.add_row(*([os.path.basename(v.file)] if several else []), *row)
        console.print(table)
        hidden = sum(1 for v in verdicts if v.duplicate_of is not None)
        if hidden and not verbose:
            console.print(f"[dim]{hidden} identical copies of RSTs above not shown (-v shows "
                          "them)[/]")
    console.print(_summary_table(reports, verdicts))
    if len(verdicts) >= 2:
        console.print(_timeline(reports, verdicts, console.width))


def _timeline(reports: Sequence[FileReport], verdicts: Sequence[Verdict], width: int) -> Text:
    """RSTs per cause over the captures' time (first to last packet), as sparklines."""
    firsts = [r.first_ts for r in reports if r.first_ts is not None]
    lasts = [r.last_ts for r in reports if r.last_ts is not None]
    timeline = bucketize(verdicts, start=min(firsts, default=None), end=max(lasts, default=None),
                         buckets=buckets_for_width(width))
    return render_timeline(timeline, LABEL_STYLES)


def _confidence(v: Verdict) -> str:
    style = {Confidence.HIGH: "green", Confidence.MEDIUM: "yellow", Confidence.LOW: "red"}
    return f"[{style[v.confidence]}]{v.confidence}[/]"


def _summary_table(reports: Sequence[FileReport], verdicts: Sequence[Verdict]) -> Table:

    frames = sum(r.frames for r in reports)
    flows = sum(r.flows for r in reports)
    title = (f"{len(verdicts)} RSTs in {flows} TCP flows, {frames} frames"
             + (f", {len(reports)} files" if len(reports) > 1 else ""))
    table = Table(title=title, title_justify="left")
    table.add_column("cause")
    table.add_column("RSTs", justify="right")
    table.add_column("hint", overflow="fold")
    for label, count in summarize(verdicts).items():
        lab = Label(label)
        table.add_row(f"[{LABEL_STYLES[lab]}]{label}[/]", str(count), _short_hint(lab))
    return table


def _short_hint(label: Label) -> str:
    return HINTS[label].split(";")[0]
