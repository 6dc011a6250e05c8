"""The library core: a capture file in, a report of every RST's verdict out.

source (pcapfile) -> decode -> flows (tracker) -> classify -> report. No printing here: the
CLI and other callers render the report.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import BinaryIO

from .classify import as_duplicate, classify, refine_bursts
from .decode import SUPPORTED_LINKTYPES, Decoder
from .errors import CaptureError, RstdiagError
from .flows import FlowTracker, RstCase
from .labels import Label, Verdict
from .pcapfile import PCAP_HEADER_LEN, CaptureReader, open_capture, pcap_layout
from .records import RawFrame

BULK_MIN_BYTES = 16 << 20  # pcap and pcapng files from this size on are read in two passes
MAX_LINKTYPE_WARNINGS = 8  # distinct unsupported link types warned about one by one

LINKTYPE_NAMES = {
    9: "PPP", 50: "PPP in HDLC framing", 105: "IEEE 802.11", 119: "802.11 Prism",
    127: "802.11 radiotap", 192: "PPI", 195: "IEEE 802.15.4", 197: "ERF",
    220: "USB Linux mmapped", 249: "netlink", 253: "Linux netlink",
}


@dataclass(slots=True)
class FileReport:
    """What one capture held: every RST's verdict, plus what was skipped and why."""

    path: str
    format: str = ""
    frames: int = 0
    tcp_packets: int = 0
    flows: int = 0
    duplicates: int = 0
    evicted_flows: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    complete: bool = True  # False when interrupted before the end of the file
    first_ts: float | None = None  # earliest and latest frame time of the file (None: no frames)
    last_ts: float | None = None

    def summary(self) -> dict[str, int]:
        return summarize(self.verdicts)

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "format": self.format,
            "frames": self.frames,
            "tcp_packets": self.tcp_packets,
            "flows": self.flows,
            "rsts": len(self.verdicts),
            "skipped": self.skipped,
            "evicted_flows": self.evicted_flows,
            "warnings": self.warnings,
            "complete": self.complete,
            "first_ts": None if self.first_ts is None else round(self.first_ts, 6),
            "last_ts": None if self.last_ts is None else round(self.last_ts, 6),
        }


def summarize(verdicts: Iterable[Verdict]) -> dict[str, int]:
    """RST counts by label, in taxonomy order, labels with none left out."""
    counts = Counter(v.label for v in verdicts)
    return {str(label): counts[label] for label in Label if counts[label]}


class Analysis:
    """One capture file's run through the pipeline; `finish()` gives the report so far.

    Split from `analyze_file` so that an interrupted run (Ctrl-C) still reports what it read.
    """

    def __init__(self, path: str, max_flows: int | None = None) -> None:
        self.path = path
        self.max_flows = max_flows
        self.decoder = Decoder()
        self.tracker = FlowTracker() if max_flows is None else FlowTracker(max_flows)
        self.report = FileReport(path)
        self._verdicts: dict[int, Verdict] = {}
        self._reader: CaptureReader | None = None
        self._warned_linktypes: set[int] = set()

    def run(self, progress: Callable[[int], None] | None = None) -> FileReport:
        reader, stream = open_capture(self.path)
        try:
            self._read(reader, progress)
        finally:
            stream.close()
        return self.finish()

    def run_stream(self, stream: BinaryIO,
                   progress: Callable[[int], None] | None = None) -> FileReport:
        """`run` on an open binary stream (a BytesIO, a pipe), named `path`; not closed here."""
        self._read(CaptureReader(stream, self.path), progress)
        return self.finish()

    def _read(self, reader: CaptureReader, progress: Callable[[int], None] | None) -> None:
        self._reader = reader
        self.report.format = reader.format
        if reader.linktype is not None:  # a pcap of an unsupported type fails even if empty
            self._check_linktype(reader.linktype)
        for n, raw in enumerate(reader, 1):
            self._frame(raw)
            if progress is not None and n % 4096 == 0:
                progress(reader.bytes_read)

    def _frame(self, raw: RawFrame) -> None:
        report, ts = self.report, raw.ts
        if report.first_ts is None or ts < report.first_ts:
            report.first_ts = ts
        if report.last_ts is None or ts > report.last_ts:
            report.last_ts = ts
        pkt = self.decoder.decode(raw)
        if pkt is None:
            self._check_linktype(raw.linktype)
            return
        for case in self.tracker.feed(pkt):
            self._judge(case)

    def _check_linktype(self, linktype: int) -> None:
        if linktype in SUPPORTED_LINKTYPES or linktype in self._warned_linktypes:
            return
        self._warned_linktypes.add(linktype)
        if len(self._warned_linktypes) > MAX_LINKTYPE_WARNINGS:  # a pcapng may declare 65536
            if len(self._warned_linktypes) == MAX_LINKTYPE_WARNINGS + 1:
                self.report.warnings.append("packets on interfaces with further unsupported "
                                            "link types skipped (counted in skipped)")
            return
        name = LINKTYPE_NAMES.get(linktype, "unknown")
        if self.report.format == "pcap":
            raise CaptureError(f"unsupported link type {linktype} ({name}): rstdiag reads "
                               "Ethernet, 802.1Q, Linux cooked (SLL, SLL2), raw IP and BSD "
                               "loopback captures", offset=20)
        self.report.warnings.append(
            f"packets on an interface with unsupported link type {linktype} ({name}) skipped")

    def _judge(self, case: RstCase) -> None:
        if case.duplicate_of is not None and case.duplicate_of in self._verdicts:
            original = self._verdicts[case.duplicate_of]
            if original.duplicate_of is not None:  # the tracker lost the chain (idle sweep)
                original = self._verdicts.get(original.duplicate_of, original)
            verdict = as_duplicate(original, case)
        else:
            verdict = classify(case)
        self._verdicts[verdict.frame] = verdict

    def finish(self, complete: bool = True) -> FileReport:
        for case in self.tracker.finish():
            self._judge(case)
        report = self.report
        report.complete = complete
        if self._reader is not None:
            report.warnings.extend(w for w in self._reader.warnings if w not in report.warnings)
        stats = self.decoder.stats
        report.frames = stats.frames
        report.tcp_packets = stats.tcp
        report.skipped = stats.skipped()
        if self._reader is not None and self._reader.skipped_frames:
            # numbered like any other frame, so that every verdict's frame is <= frames
            report.frames += self._reader.skipped_frames
            report.skipped = {**report.skipped,
                              "undeclared_interface": self._reader.skipped_frames}
        report.flows = self.tracker.stats.flows
        report.duplicates = self.tracker.stats.duplicates
        report.evicted_flows = self.tracker.stats.evicted
        if report.evicted_flows:
            report.warnings.append(
                f"flow table full: {report.evicted_flows} oldest flows evicted "
                f"(cap {self.tracker.max_flows}); RSTs on them may lack context")
        ordered = sorted(self._verdicts.values(), key=lambda v: v.frame)
        report.verdicts = [_with_file(v, self.path) for v in refine_bursts(ordered)]
        return report


def _with_file(verdict: Verdict, path: str) -> Verdict:
    return replace(verdict, file=path)


def open_analysis(path: str, max_flows: int | None = None, processes: int = 1) -> Analysis:
    """The analysis for one capture: big classic pcap files get the two-pass path
    (rstdiag.twopass), which gives the same report sooner, its flows split between
    `processes`; everything else the simple one."""
    if is_big_pcap(path):
        from .twopass import TwoPassAnalysis  # numpy: imported only when it pays

        return TwoPassAnalysis(path, max_flows, parts=processes)
    return Analysis(path, max_flows)


def is_big_pcap(path: str) -> bool:
    """A pcap or pcapng file of BULK_MIN_BYTES or more: the two-pass path's (which falls back
    to the simple one for a file it cannot read in bulk)."""
    try:
        if path == "-" or not os.path.isfile(path) or os.path.getsize(path) < BULK_MIN_BYTES:
            return False
        with open(path, "rb") as stream:
            head = stream.read(PCAP_HEADER_LEN)
    except OSError:
        return False
    return pcap_layout(head) is not None or head[:4] == b"\x0a\x0d\x0d\x0a"


def analyze_path(path: str, max_flows: int | None = None
                 ) -> tuple[FileReport | None, str | None]:
    """`analyze_file` for a worker process: (report, None), or (None, why it is unreadable)."""
    try:
        return analyze_file(path, max_flows), None
    except RstdiagError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, str(exc.strerror or exc)


def analyze_file(path: str, max_flows: int | None = None) -> FileReport:
    """Read one capture and label every RST in it. Raises CaptureError if unreadable."""
    return open_analysis(path, max_flows).run()
