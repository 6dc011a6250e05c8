"""Renderers for machines: JSON, JSONL and CSV, streamed (no rich: `read --format json`
never imports it).

Each renderer is a sink: `add(verdict)` as the engine makes a verdict final (or `add(lines)`,
a batch of them as the engine wrote them: reading.Lines), `close(end)` once every capture is
read. Each writes a verdict at once and keeps only the counts its summary needs.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from .analysis import FileReport
from .labels import Verdict
from .reading import Lines
from .select import Groups
from .tally import Tally
from .textsafe import visible

SCHEMA_VERSION = 1
FORMATS = ("table", "json", "jsonl", "csv")
CSV_FIELDS = ("file", "frame", "ts", "src", "sport", "dst", "dport", "flags", "client", "server",
              "sender", "label", "confidence", "evidence", "hint", "duplicate_of", "alternatives",
              "effect", "community_id")


@dataclass(slots=True)
class End:
    """What the sinks learn once every capture is read."""

    files: Sequence[Any]  # FileSummary (rstdiag.reading) or anything with its fields
    errors: Sequence[tuple[str, str]] = ()
    interrupted: bool = False


class Sink(Protocol):
    # Lines only reach the JSON and JSONL sinks (ReadOptions.whole_lines)
    def add(self, v: Verdict | Lines) -> None: ...
    def close(self, end: End) -> None: ...


# --- machine formats ----------------------------------------------------------------------

class JsonlSink:
    """One verdict per line, written at once."""

    def __init__(self, out: TextIO, extra: Any = None) -> None:
        self.out = out
        self.extra = extra  # verdict -> dict of more fields (check's outcome), or None

    def add(self, v: Verdict | Lines) -> None:
        if isinstance(v, Lines):  # the engine's lines as they are
            self.out.write(v.text + "\n")
        elif self.extra is None:
            self.out.write(v.to_json() + "\n")
        else:
            self.out.write(json.dumps({**v.to_dict(), **self.extra(v)}) + "\n")

    def close(self, end: End) -> None:
        self.out.flush()


class CsvSink:
    """A header, then one row per verdict, written at once; text from the capture made
    visible (a spreadsheet or a terminal shows it, neither should obey it)."""

    def __init__(self, out: TextIO, extra: Any = None, extra_fields: Sequence[str] = ()) -> None:
        self.extra = extra
        self.writer = csv.DictWriter(out, fieldnames=(*CSV_FIELDS, *extra_fields),
                                     extrasaction="ignore", lineterminator="\n")
        self.out = out
        self.started = False

    def _start(self) -> None:
        if not self.started:
            self.started = True
            self.writer.writeheader()

    def add(self, v: Verdict) -> None:
        self._start()
        row = v.to_row() if self.extra is None else {**v.to_row(), **self.extra(v)}
        self.writer.writerow({k: visible(x) if isinstance(x, str) else x
                              for k, x in row.items()})

    def close(self, end: End) -> None:
        self._start()
        self.out.flush()


class JsonSink:
    """The JSON document of `read --format json`, streamed: "rsts" comes first, a verdict a
    line as each is final; "files", "summary", "copies" (and "groups", "check") follow, once
    their counts are known. JSON key order carries no meaning."""

    def __init__(self, out: TextIO, groups: Groups | None = None, top: int | None = None,
                 more: Any = None) -> None:
        self.out = out
        self.tally = Tally()
        self.groups = groups
        self.top = top
        self.more = more  # () -> dict of more top-level keys, at the end
        self.empty = True
        self.started = False

    def _start(self) -> None:
        if not self.started:
            self.started = True
            self.out.write('{\n  "version": ' + str(SCHEMA_VERSION) + ',\n  "rsts": [')

    def add(self, v: Verdict | Lines) -> None:
        self._start()
        lead = "\n    " if self.empty else ",\n    "
        self.empty = False
        if isinstance(v, Lines):  # the engine's lines (no newline inside a JSON line)
            self.tally.add_counts(v.counts)
            self.out.write(lead + v.text.replace("\n", ",\n    "))
            return
        self.tally.add(v)
        if self.groups is not None:
            self.groups.add(v)
        self.out.write(lead + v.to_json())

    def close(self, end: End) -> None:
        self._start()
        self.out.write("]" if self.empty else "\n  ]")
        tail: dict[str, object] = {
            "files": [f.to_dict() for f in end.files],
            "summary": self.tally.summary(),
            "copies": self.tally.copies_summary(),
        }
        if self.groups is not None:
            tail["groups"] = {"by": self.groups.by, "groups": self.groups.to_list(self.top)}
        if self.more is not None:
            tail.update(self.more())
        for key, value in tail.items():
            self.out.write(f",\n  {json.dumps(key)}: "
                           + json.dumps(value, indent=2).replace("\n", "\n  "))
        self.out.write("\n}\n")
        self.out.flush()


# --- reports at once: the library's and the tests' entry points ----------------------------

@dataclass(slots=True)
class Counted:
    """A FileReport's counters in the shape the sinks read (distinct and copies apart)."""

    report: FileReport
    counters: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.report.path

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self.report, key, default)

    @property
    def first_ts(self) -> float | None:
        return self.report.first_ts

    @property
    def last_ts(self) -> float | None:
        return self.report.last_ts

    def to_dict(self) -> dict[str, object]:
        d = self.report.to_dict()
        copies = sum(1 for v in self.report.verdicts if v.duplicate_of is not None)
        d["rsts"] = len(self.report.verdicts) - copies
        d["copies"] = copies
        return {key: d[key] for key in ("path", "format", "frames", "tcp_packets", "flows",
                                        "rsts", "copies", "skipped", "evicted_flows",
                                        "judged_early", "warnings", "complete", "first_ts",
                                        "last_ts", "kernel_reasons") if key in d}


def feed(sink: Sink, reports: Sequence[FileReport], errors: Sequence[tuple[str, str]] = (),
         interrupted: bool = False) -> None:
    for report in reports:
        for v in report.verdicts:
            sink.add(v)
    sink.close(End([Counted(r) for r in reports], errors, interrupted))


def document(reports: Sequence[FileReport]) -> dict[str, object]:
    """The JSON document of `read --format json`, as a dict (schema in the README)."""
    tally = Tally()
    for report in reports:
        for v in report.verdicts:
            tally.add(v)
    return {
        "version": SCHEMA_VERSION,
        "rsts": [v.to_dict() for r in reports for v in r.verdicts],
        "files": [Counted(r).to_dict() for r in reports],
        "summary": tally.summary(),
        "copies": tally.copies_summary(),
    }


def write_json(reports: Sequence[FileReport], out: TextIO) -> None:
    feed(JsonSink(out), reports)


def write_jsonl(reports: Sequence[FileReport], out: TextIO) -> None:
    feed(JsonlSink(out), reports)


def write_csv(reports: Sequence[FileReport], out: TextIO) -> None:
    feed(CsvSink(out), reports)


def verdicts_of(reports: Iterable[FileReport]) -> Iterable[Verdict]:
    for report in reports:
        yield from report.verdicts
