"""Captures read as a stream: each verdict handed on as soon as the engine makes it final.

`Reader` runs the engine over the files of `read` and `check` in the order given (several
at once on engine threads when asked, still handed on in that order) and yields the verdicts
a `Selection` lets through; nothing keeps them. Each file's counters (`FileSummary`) are known
at its end. Ctrl-C and SIGTERM stop it between two batches of packets, or at once while it
waits for input; the current file is then judged as it stands, and reported as incomplete.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, Any

from . import _core
from .analysis import verdict_of
from .env import Environment
from .errors import CaptureError, EngineFault, RstdiagError
from .labels import Verdict
from .reasons import SavedReasons
from .select import Selection

BATCH = 8192  # frames per batch of the engine's thread: verdicts come at least this often
QUEUE_BATCHES = 4  # batches of verdicts a file read ahead may hold before it waits
STOP_SECONDS = 5.0  # how long an interrupted run waits for its workers to stop


@dataclass(slots=True)
class FileSummary:
    """One capture's counters, final at its end. `rsts` counts its distinct RSTs, `copies`
    their identical copies (filters aside: the whole capture)."""

    path: str
    counters: dict[str, Any] = field(default_factory=dict)
    rsts: int = 0
    copies: int = 0

    def count(self, v: Verdict) -> None:
        if v.duplicate_of is None:
            self.rsts += 1
        else:
            self.copies += 1

    def count_lines(self, lines: Lines) -> None:
        for _, distinct, copies in lines.counts:
            self.rsts += distinct
            self.copies += copies

    def get(self, key: str, default: Any = None) -> Any:
        return self.counters.get(key, default)

    @property
    def first_ts(self) -> float | None:
        return self.counters.get("first_ts")

    @property
    def last_ts(self) -> float | None:
        return self.counters.get("last_ts")

    def to_dict(self) -> dict[str, object]:
        """An entry of the JSON document's "files"."""
        c = self.counters
        first, last = c.get("first_ts"), c.get("last_ts")
        return {
            "path": self.path,
            "format": c.get("format", ""),
            "frames": c.get("frames", 0),
            "tcp_packets": c.get("tcp_packets", 0),
            "flows": c.get("flows", 0),
            "rsts": self.rsts,
            "copies": self.copies,
            "skipped": c.get("skipped", {}),
            "evicted_flows": c.get("evicted_flows", 0),
            "judged_early": c.get("judged_early", 0),
            "warnings": c.get("warnings", []),
            "complete": c.get("complete", False),
            "first_ts": None if first is None else round(first, 6),
            "last_ts": None if last is None else round(last, 6),
            # a capture saved by `live -w --kernel-reasons`: how its reasons compared
            **({"kernel_reasons": c["kernel_reasons"]} if "kernel_reasons" in c else {}),
        }


@dataclass(slots=True)
class ReadOptions:
    max_flows: int | None = None
    count: int | None = None  # -c: stop after this many packets, over all files
    bpf: str | None = None  # -f: only the packets this pcap-filter expression accepts
    jobs: int | None = 1  # files read at once (None: one per core)
    selection: Selection = field(default_factory=Selection)
    # the output writes each verdict's JSON line: the engine spells it (Verdict.to_json)
    json_lines: bool = False
    # ... and needs nothing else of a verdict: with no selection, the reader yields whole
    # batches of lines (Lines), no Verdict object at all
    whole_lines: bool = False


@dataclass(slots=True)
class Lines:
    """A batch of verdicts as the engine wrote them: their JSON lines, "\\n" between them
    (json.dumps(verdict.to_dict()) each), and how many of each label are distinct RSTs and
    identical copies (label, distinct, copies). `read --format json|jsonl` writes these as
    they are."""

    text: str
    counts: list[tuple[str, int, int]]


class Interrupts:
    """SIGINT and SIGTERM during a read. While the reader waits (inside the engine, on input
    or on a file read ahead) they raise KeyboardInterrupt there; anywhere else (writing the
    output) they are noted, and the reader stops at its next batch. Output is thus never cut
    in the middle of a record."""

    def __init__(self) -> None:
        self.requested = False
        self.waiting = False
        self._saved: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self.waiting:
            raise KeyboardInterrupt

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._saved[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)

    def wait(self) -> _Waiting:
        return _Waiting(self)


class _Waiting:
    def __init__(self, interrupts: Interrupts) -> None:
        self.interrupts = interrupts

    def __enter__(self) -> None:
        self.interrupts.waiting = True
        if self.interrupts.requested:
            raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        self.interrupts.waiting = False


class Reader:
    """The verdicts of `files`, in order, as they become final (with `whole_lines`, batches
    of them as Lines where no selection is to be made). After the iteration:
    `files` (a FileSummary per capture read), `errors` ((path, message) per capture that
    could not be read), `interrupted`. Warnings and errors go to `env`'s stderr as each
    file ends."""

    def __init__(self, env: Environment, paths: tuple[str, ...], options: ReadOptions,
                 interrupts: Interrupts | None = None,
                 progress: Callable[[str], Any] | None = None) -> None:
        self.env = env
        self.paths = paths
        self.options = options
        self.interrupts = interrupts or Interrupts()
        self.progress = progress  # path -> context manager giving a bytes-read callback
        self.files: list[FileSummary] = []
        self.errors: list[tuple[str, str]] = []
        self.interrupted = False
        self.packets_left = options.count

    def __iter__(self) -> Iterator[Verdict | Lines]:
        workers = min(self.options.jobs or os.cpu_count() or 1, len(self.paths))
        if workers > 1 and "-" not in self.paths and self.options.count is None:
            yield from self._parallel(workers)
            return
        for path in self.paths:
            yield from self._one(path)
            if self.interrupted or self.packets_left == 0:
                return

    # --- one file at a time, in this thread -------------------------------------------------

    def _one(self, path: str) -> Iterator[Verdict | Lines]:
        summary = FileSummary(path)
        try:
            run = _FileRun(path, self.options, self.packets_left)
        except (RstdiagError, OSError) as exc:
            self._failed(path, exc)
            return
        with run:
            try:
                bar = self.progress(path) if self.progress is not None else None
                with bar if bar is not None else _nothing() as tick:
                    yield from self._batches(run, summary, tick)
            except KeyboardInterrupt:
                self.interrupted = True
                self.env.warn(f"{path}: interrupted; reporting what was read")
                yield from run.finish(summary, complete=False)
            except EngineFault as exc:
                yield from run.keep(summary, exc.report.verdicts)  # type: ignore[attr-defined]
                self._failed(path, exc)
                summary.counters = run.core.summary()
                self.files.append(summary)
                return
            except (RstdiagError, OSError) as exc:
                self._failed(path, exc)
                return
        self._ended(summary)

    def _batches(self, run: _FileRun, summary: FileSummary,
                 tick: Callable[[int], None] | None) -> Iterator[Verdict | Lines]:
        while True:
            with self.interrupts.wait():
                more = run.read(BATCH)
            yield from run.take(summary)
            if tick is not None:
                tick(run.core.bytes_read)
            if self.interrupts.requested:
                raise KeyboardInterrupt
            if not more:
                break
        yield from run.finish(summary, complete=True)
        if self.packets_left is not None:
            self.packets_left -= summary.get("frames", 0)

    def _ended(self, summary: FileSummary) -> None:
        for warning in summary.get("warnings", []):
            self.env.warn(f"{summary.path}: {warning}")
        self.files.append(summary)

    def _failed(self, path: str, exc: BaseException) -> None:
        message = str(exc.strerror or exc) if isinstance(exc, OSError) else str(exc)
        self.env.error(f"{path}: {message}")
        self.errors.append((path, message))

    # --- several files at once, on engine threads -------------------------------------------

    def _parallel(self, workers: int) -> Iterator[Verdict | Lines]:
        cancel = threading.Event()
        queues: list[queue.Queue[Any]] = [queue.Queue(QUEUE_BATCHES) for _ in self.paths]
        threads: list[threading.Thread] = []
        stoppers: list[_core.Stopper] = []  # each worker's engine, stoppable from here

        def start_up_to(n: int) -> None:
            # Not daemons: the interpreter waits for them before it shuts down. A thread still
            # in the engine then would be ended by CPython as it takes the GIL back, an
            # unwinding the engine's frames cannot let through (glibc aborts the process:
            # "FATAL: exception not rethrown").
            while len(threads) < min(n, len(self.paths)):
                started = len(threads)
                thread = threading.Thread(target=self._worker, name="rstdiag-engine",
                                          args=(self.paths[started], queues[started], cancel,
                                                stoppers))
                threads.append(thread)
                thread.start()

        try:
            for index, path in enumerate(self.paths):
                start_up_to(index + workers)
                while True:
                    with self.interrupts.wait():
                        kind, payload = queues[index].get()
                    if kind == "batch":
                        yield from payload
                        if self.interrupts.requested:
                            raise KeyboardInterrupt
                        continue
                    summary, error = payload
                    if error is not None:
                        self.env.error(f"{path}: {error}")
                        self.errors.append((path, error))
                    if summary is not None:
                        self._ended(summary)
                    break
        except KeyboardInterrupt:
            self.interrupted = True
            self.env.warn(f"interrupted; reporting the {len(self.files)} files read to the end")
        finally:
            _stop(cancel, stoppers, threads)  # also when the output failed or was closed

    def _worker(self, path: str, out: queue.Queue[Any], cancel: threading.Event,
                stoppers: list[_core.Stopper]) -> None:
        def put(item: tuple[str, Any]) -> bool:
            while not cancel.is_set():
                try:
                    out.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        summary = FileSummary(path)
        try:
            run = _FileRun(path, self.options, self.packets_left)
        except (RstdiagError, OSError) as exc:
            put(("end", (None, _message(exc))))
            return
        stoppers.append(run.core.stopper())
        with run:
            if cancel.is_set():  # stopped before its stopper was in the list
                return
            try:
                while True:
                    more = run.read(BATCH)
                    batch = list(run.take(summary))
                    if batch and not put(("batch", batch)):
                        return
                    if cancel.is_set():
                        return
                    if not more:
                        break
                put(("batch", list(run.finish(summary, complete=True))))
                put(("end", (summary, None)))
            except EngineFault as exc:
                put(("batch", list(run.keep(summary, exc.report.verdicts))))  # type: ignore
                summary.counters = run.core.summary()
                put(("end", (summary, str(exc))))
            except (RstdiagError, OSError) as exc:
                put(("end", (None, _message(exc))))


def _stop(cancel: threading.Event, stoppers: list[_core.Stopper],
          threads: list[threading.Thread]) -> None:
    """Stop the worker threads (after their current batch; an engine waiting on a pipe at
    once) and wait for them, up to STOP_SECONDS: the interpreter waits for any left."""
    cancel.set()
    for stopper in list(stoppers):
        stopper.stop()
    deadline = time.monotonic() + STOP_SECONDS
    for thread in threads:
        if thread.ident is not None:  # started
            thread.join(max(0.0, deadline - time.monotonic()))


def _message(exc: BaseException) -> str:
    return str(exc.strerror or exc) if isinstance(exc, OSError) else str(exc)


class _nothing:  # noqa: N801 - a null context manager giving None
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class _FileRun:
    """One capture through the engine: opened (through tcpdump for `-f`), read in batches,
    its final verdicts filtered by the selection and counted in its FileSummary."""

    def __init__(self, path: str, options: ReadOptions, frames: int | None = None) -> None:
        """`frames`: read no more (-c)."""
        self.path = path
        self.selection = options.selection
        self.json_file = path if options.json_lines else None
        self.whole_lines = options.whole_lines and options.selection.everything
        self.core = _core.Analysis(options.max_flows)
        self.reasons = SavedReasons()  # the kernel's, where `live -w` saved them
        self.start: float | None = None
        self.tcpdump: subprocess.Popen[bytes] | None = None
        try:
            if options.bpf:
                self.tcpdump = _filtered(path, options.bpf)
                assert self.tcpdump.stdout is not None
                # the engine reads tcpdump's pipe itself, as it reads standard input
                self.core.open(f"/proc/self/fd/{self.tcpdump.stdout.fileno()}", path)
            else:
                self.core.open(path)
        except _core.CaptureError as exc:
            why = _tcpdump_error(self.tcpdump)
            self.close()
            raise CaptureError(why or str(exc), getattr(exc, "offset", None)) from None
        self.relative = any(b is not None and b.relative
                            for b in (self.selection.since, self.selection.until))
        if frames is not None:
            self.core.limit_frames(frames)

    def __enter__(self) -> _FileRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.tcpdump is not None:
            if self.tcpdump.poll() is None:
                self.tcpdump.kill()
            self.tcpdump.wait()
            self.tcpdump = None

    def read(self, limit: int) -> bool:
        """The next batch of verdicts (the engine reads `limit` frames a batch): whether more
        are to come."""
        try:
            more = self.core.read(limit)
        except _core.CaptureError as exc:
            raise CaptureError(str(exc), getattr(exc, "offset", None)) from None
        except _core.EngineError as exc:
            raise self._fault(exc) from None
        if self.relative and self.start is None:
            self.start = self.core.summary()["first_ts"]
        return more

    def _fault(self, exc: BaseException) -> EngineFault:
        self.core.finish(False)
        from .analysis import FileReport

        return EngineFault(str(exc), FileReport(self.path, verdicts=self._taken()))

    def _taken(self) -> list[Verdict]:
        """The engine's final verdicts, with the kernel's reasons the capture saved."""
        verdicts = [verdict_of(r, self.path) for r in self.core.take(self.json_file)]
        return self.reasons.apply(verdicts, self.core.kernel_reasons())

    def take(self, summary: FileSummary) -> Iterator[Verdict | Lines]:
        if self.whole_lines:
            taken = self.core.take_lines(self.path)
            if taken is not None:  # else kernel reasons saved in the capture wait: verdicts
                lines = Lines(*taken)
                summary.count_lines(lines)
                return iter((lines,) if lines.text else ())
        return self.keep(summary, self._taken())

    def keep(self, summary: FileSummary, verdicts: list[Verdict]) -> Iterator[Verdict]:
        for v in verdicts:
            summary.count(v)
            if self.selection.matches(v, self.start):
                yield v

    def finish(self, summary: FileSummary, complete: bool) -> Iterator[Verdict | Lines]:
        try:
            self.core.finish(complete)
        except _core.EngineError as exc:
            raise self._fault(exc) from None
        yield from self.take(summary)
        summary.counters = self.core.summary()
        if (kernel := self.reasons.summary()) is not None:
            summary.counters["kernel_reasons"] = kernel
        if self.tcpdump is not None:
            why = _tcpdump_error(self.tcpdump)
            if why:
                summary.counters.setdefault("warnings", []).append(why)


def _filtered(path: str, expression: str) -> subprocess.Popen[bytes]:
    """`tcpdump -r PATH -w - EXPR`: the capture as tcpdump filters it (pcap, frames
    renumbered), for `-f`. Standard input ("-") passes through."""
    tcpdump = shutil.which("tcpdump") or next(
        (p for p in ("/usr/sbin/tcpdump", "/usr/bin/tcpdump") if os.path.exists(p)), None)
    if tcpdump is None:
        raise RstdiagError("-f needs tcpdump to apply the filter: install it (apt install "
                           "tcpdump), or filter with --host, --port")
    return subprocess.Popen([tcpdump, "-r", path, "-w", "-", expression],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=None)


def _tcpdump_error(proc: subprocess.Popen[bytes] | None) -> str | None:
    """tcpdump's own complaint, one line (a bad expression, an unreadable file)."""
    if proc is None:
        return None
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode == 0:
        return None
    err: IO[bytes] | None = proc.stderr
    text = err.read().decode("utf-8", "replace") if err is not None else ""
    lines = [line.removeprefix("tcpdump: ") for line in text.splitlines()
             if line.strip() and not line.startswith("reading from")]
    return f"-f: {lines[-1] if lines else 'tcpdump failed'} (syntax: man pcap-filter)"
