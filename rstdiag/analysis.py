"""The library core: a capture in, a report of every RST's verdict out.

Everything per packet and per RST happens in the compiled engine, `rstdiag._core` (Rust:
capture reading, decoding, flow tracking, the classifier's rules). This module runs it on a
file, standard input or an open binary stream, and turns what it gives into the report types
the renderers share. No printing here: the CLI and other callers render the report.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from . import _core
from .errors import CaptureError, EngineFault, RstdiagError
from .labels import Confidence, Effect, Endpoint, Label, Sender, Verdict
from .reasons import SavedReasons

_LABELS = {str(label): label for label in Label}
_SENDERS = {str(sender): sender for sender in Sender}
_CONFIDENCES = {str(confidence): confidence for confidence in Confidence}
_EFFECTS = {str(effect): effect for effect in Effect}

VerdictTuple = tuple[int, float, str, int, str, int, str, str, int, str, int, str, str, str, str,
                     int | None, list[str], str, str | None, str, str | None]


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
    judged_early: int = 0  # RSTs judged before their after-window ended: too many waited
    # a capture saved by `live -w --kernel-reasons`: how the reasons it keeps compared
    kernel_reasons: dict[str, object] | None = None

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
            "judged_early": self.judged_early,
            "warnings": self.warnings,
            "complete": self.complete,
            "first_ts": None if self.first_ts is None else round(self.first_ts, 6),
            "last_ts": None if self.last_ts is None else round(self.last_ts, 6),
            **({} if self.kernel_reasons is None else {"kernel_reasons": self.kernel_reasons}),
        }


def summarize(verdicts: Iterable[Verdict]) -> dict[str, int]:
    """RST counts by label, in taxonomy order, labels with none left out."""
    counts = Counter(v.label for v in verdicts)
    return {str(label): counts[label] for label in Label if counts[label]}


def verdict_of(record: VerdictTuple, path: str) -> Verdict:
    """A verdict as the engine hands it over, as the renderers' record."""
    (frame, ts, src, sport, dst, dport, flags, client, cport, server, sport_, sender, label,
     confidence, evidence, duplicate_of, alternatives, effect, story_hint, flow_id,
     json_line) = record
    # positional, and no generator for the usual empty alternatives: this runs once per RST
    verdict = Verdict(frame, ts, src, sport, dst, dport, flags, Endpoint(client, cport),
                      Endpoint(server, sport_), _SENDERS[sender], _LABELS[label],
                      _CONFIDENCES[confidence], evidence, path, duplicate_of, None,
                      tuple(_LABELS[a] for a in alternatives) if alternatives else (),
                      _EFFECTS[effect], story_hint, flow_id)
    if json_line is not None:
        verdict.keep_json(json_line)
    return verdict


class Analysis:
    """One capture's run through the engine.

    `verdicts()` streams the final verdicts in frame order as the engine releases them;
    `run()` collects them into a FileReport. Split from `analyze_file` so that an
    interrupted run (Ctrl-C) still reports what it read: `finish(complete=False)`.
    """

    def __init__(self, path: str, max_flows: int | None = None,
                 cancel: threading.Event | None = None) -> None:
        self.path = path
        self.max_flows = max_flows
        self.cancel = cancel  # set by another thread: stop between two batches (Ctrl-C)
        self.core = _core.Analysis(max_flows)
        self.collected: list[Verdict] = []
        self.reasons = SavedReasons()  # the kernel's, where `live -w` saved them
        self._opened = False

    def open(self, stream: BinaryIO | None = None) -> None:
        """Open `path` ("-": standard input), or read the open binary `stream` under that
        name. Raises CaptureError when it is not a capture rstdiag can read."""
        with _engine_errors(self):
            if stream is None:
                self.core.open(self.path)
            else:
                self.core.open_stream(stream, self.path)
        self._opened = True

    def verdicts(self, progress: Callable[[int], None] | None = None) -> Iterator[Verdict]:
        """Read to the end, yielding each verdict once it is final."""
        if not self._opened:
            self.open()
        core = self.core
        while True:
            with _engine_errors(self):
                more = core.read()
            yield from self._taken()
            if progress is not None:
                progress(core.bytes_read)
            if not more:
                break
            if self.cancel is not None and self.cancel.is_set():
                break
        with _engine_errors(self):
            core.finish(not more)
        yield from self._taken()

    def _taken(self) -> list[Verdict]:
        """The engine's final verdicts, with the kernel's reasons the capture saved."""
        verdicts = [verdict_of(record, self.path) for record in self.core.take()]
        return self.reasons.apply(verdicts, self.core.kernel_reasons())

    def run(self, progress: Callable[[int], None] | None = None) -> FileReport:
        for verdict in self.verdicts(progress):
            self.collected.append(verdict)
        return self.report()

    def run_stream(self, stream: BinaryIO,
                   progress: Callable[[int], None] | None = None) -> FileReport:
        """`run` on an open binary stream (a BytesIO, a pipe), named `path`; not closed here."""
        self.open(stream)
        return self.run(progress)

    def finish(self, complete: bool = True) -> FileReport:
        """End early (or at the end): every waiting RST judged, the report of what was read."""
        self.core.finish(complete)
        self.collected.extend(self._taken())
        return self.report()

    def report(self) -> FileReport:
        """The report: the engine's counters and the verdicts collected so far."""
        s = self.core.summary()
        return FileReport(
            self.path, s["format"], s["frames"], s["tcp_packets"], s["flows"],
            s["duplicates"], s["evicted_flows"], s["skipped"], s["warnings"],
            self.collected, s["complete"], s["first_ts"], s["last_ts"], s["judged_early"],
            self.reasons.summary())


class _engine_errors:  # noqa: N801 - used as a context manager, reads as a phrase
    """The engine's exceptions as rstdiag's: a capture it cannot read (CaptureError); an
    internal error (EngineFault, carrying the report of what was read before it)."""

    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> bool:
        if isinstance(exc, _core.CaptureError):
            raise CaptureError(str(exc), getattr(exc, "offset", None)) from None
        if isinstance(exc, _core.EngineError):
            report = self.analysis.finish(complete=False)
            raise EngineFault(str(exc), report) from None
        return False


def analyze_path(path: str, max_flows: int | None = None, cancel: threading.Event | None = None
                 ) -> tuple[FileReport | None, str | None]:
    """`analyze_file` for a worker thread: (report, None), or (report or None, why it
    failed). `cancel` stops it early."""
    try:
        return Analysis(path, max_flows, cancel).run(), None
    except EngineFault as exc:
        return exc.report, str(exc)  # type: ignore[return-value]
    except RstdiagError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, str(exc.strerror or exc)


def analyze_file(path: str, max_flows: int | None = None) -> FileReport:
    """Read one capture and label every RST in it. Raises CaptureError if unreadable."""
    return Analysis(path, max_flows).run()


class Report:
    """The RSTs of one capture, streamed: iterate to get each verdict once it is final, in
    frame order; nothing is held once it has been handed over. `file` has the capture's
    counters (final once the iteration ended) and `summary()` the RSTs by cause so far."""

    def __init__(self, analysis: Analysis) -> None:
        self._analysis = analysis
        self._counts: Counter[Label] = Counter()
        self._started = False

    def __iter__(self) -> Iterator[Verdict]:
        if self._started:
            raise RuntimeError("a Report streams its verdicts once; call analyze() again")
        self._started = True
        for verdict in self._analysis.verdicts():
            self._counts[verdict.label] += 1
            yield verdict

    @property
    def file(self) -> FileReport:
        return self._analysis.report()

    def summary(self) -> dict[str, int]:
        return {str(label): self._counts[label] for label in Label if self._counts[label]}


def analyze(source: str | os.PathLike[str] | BinaryIO, *,
            max_flows: int | None = None) -> Report:
    """Label every RST of a capture: a path ("-" is standard input) or an open binary file.

    Raises CaptureError at once when it is not a capture rstdiag can read::

        import rstdiag
        report = rstdiag.analyze("capture.pcap")
        for verdict in report:
            print(verdict.frame, verdict.label, verdict.sender, verdict.evidence)
        print(report.file.frames, report.summary())
    """
    if isinstance(source, str | os.PathLike):
        analysis = Analysis(os.fspath(source), max_flows)
        analysis.open()
    else:
        analysis = Analysis(getattr(source, "name", "<stream>"), max_flows)
        if not isinstance(analysis.path, str):
            analysis.path = "<stream>"
        analysis.open(source)
    return Report(analysis)
