"""`rstdiag live`: the core pipeline fed from a live interface, verdicts as RSTs happen.

packets (AF_PACKET ring, kernel BPF: set up by livecapture) -> the engine's capture thread
(src/live: ring, -w file, decode, flows, classify; no Python step per packet) -> this module,
a few times a second: verdicts to a rich view on a terminal, or JSON lines, the log and the
metrics. The same decoder, tracker and classifier as `rstdiag read`, plus what a stream needs:

* a provisional verdict within a second of a RST (its case classified as it is, while the
  tracker still collects the packets after it), and an update (`"update": true`) when the final
  verdict, a burst of accept-queue overflows, or the kernel's reason changes it;
* sweeps by wall time, so verdicts come out and idle flows go when traffic is slow;
* the kernel's own reason for RSTs this host sends (--kernel-reasons): it selects the label
  among those the wire allows (reasons.confirmed), and a disagreement is shown and
  counted.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import sys
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from . import _core
from .analysis import VerdictTuple, verdict_of
from .env import Environment
from .errors import ExitStatus
from .kernel_reasons import (
    KEEP_SECONDS,
    SETTLE_SECONDS,
    KernelReset,
    ReasonMatcher,
    ResetTracer,
)
from .labels import HINTS, Label, Verdict
from .livecapture import (
    ARPHRD_LOOPBACK,
    DEFAULT_BUFFER_KIB,
    DEFAULT_SNAPLEN,
    LiveCapture,
    LiveCaptureError,
    compile_filter,
    filter_expression,
    lookup_interface,
    loopback_index,
    skip_outgoing_loopback,
)
from .logsink import DEFAULT_BACKUPS, DEFAULT_MAX_BYTES, RotatingWriter, VerdictLog, verdict_record
from .reasons import KernelStats, agreement_line
from .reasons import confirmed as kernel_confirmed
from .textsafe import data_text, visible

if TYPE_CHECKING:
    from .metrics import LiveMetrics, MetricsEndpoint
    from .select import Selection

LIVE_SNAPLEN = 384  # without -w: every header rstdiag reads, and the text a RST may carry
TICK = 0.25  # seconds between refreshes: view, provisional verdicts, pcap flush, statistics
PROVISIONAL_DELAY = 0.2  # a RST's provisional verdict waits this long for the kernel's reason
RECENT_SECONDS = 5.0  # settled RSTs kept this long: duplicates, bursts, late kernel reasons
IDLE_SWEEP_SECONDS = 10.0  # forget idle flows at least this often when traffic is slow
SHOWN_FRAMES = 4096  # frames the view remembers having shown, for their updates
AFTER_SECONDS = 5.0  # the engine's after-window of a RST: a final verdict is due by then
METRICS_ADDR = "127.0.0.1"  # a fleet's Prometheus scrapes from elsewhere: --metrics-addr
# a final verdict waits this long for the kernel's reason before the metrics count it
REASON_WAIT = KEEP_SECONDS + SETTLE_SECONDS + TICK
MAX_TIMELINE_POINTS = 1 << 18  # exact RST times kept for the closing timeline; then ms
METRICS_MAX_PORTS = 32  # server ports with series of their own; the rest are port="other"


@dataclass(slots=True)
class _Rst:
    """One RST on its way from provisional to final verdict."""

    frame: int
    arrived: float  # the clock when the engine first showed it (its provisional verdict)
    base: Verdict | None = None  # the latest verdict: provisional, then the engine's final one
    final: bool = False
    settled: float = 0.0  # the clock at the final verdict
    shown: Verdict | None = None  # as last published
    reason: KernelReset | None = None
    counted: bool = False  # in the kernel agreement counts
    point: tuple[float, Label] | None = None  # its entry in the timeline's points
    metered: bool = False  # handed to on_final


class Pipeline:
    """Live packets in, verdicts out through `publish(verdict, update)`.

    The engine is `core`: a `_core.LiveSession`, whose own thread feeds it from the ring
    (`sync()` brings the packet counts over), or by default a `_core.Analysis` fed one packet
    at a time by `packet()` (a capture replayed in tests; frames numbered from 1, as in the -w
    file). `tick()` a few times a second takes the final verdicts and shows the provisional
    ones; `finish()` at the end. Holds the RSTs of the last few seconds only: memory stays
    flat however long it runs (the engine forgets closed and idle flows).
    """

    def __init__(self, source: str, linktype: int, publish: Callable[[Verdict, bool], None], *,
                 max_flows: int | None = None, kernel_reasons: bool = False,
                 clock: Callable[[], float] = time.monotonic,
                 on_final: Callable[[Verdict], None] | None = None,
                 on_reason: Callable[[int, str], object] | None = None,
                 core: _core.LiveSession | None = None) -> None:
        self.source = source
        self.clock = clock  # arrival times of RSTs (a test replays a capture in its own time)
        self.linktype = linktype
        self.publish = publish
        # once per RST, with its final verdict (the kernel's reason applied: with
        # --kernel-reasons it waits up to REASON_WAIT for it); the metrics count these
        self.on_final = on_final
        # (frame, "REASON in STATE") as each kernel reason is matched: the -w file keeps it
        self.on_reason = on_reason
        self.core: _core.Analysis | _core.LiveSession = core or _core.Analysis(max_flows)
        self.frames = 0
        self.last_ts = 0.0  # capture time of the latest packet
        self.first_ts: float | None = None
        self.rst_count = 0  # distinct RSTs published
        self.counts: Counter[Label] = Counter()
        # RSTs per (time, label) as shown: the timeline at the end, bucketed as `read` does;
        # exact times up to MAX_TIMELINE_POINTS distinct ones, then whole milliseconds
        self.points: Counter[tuple[float, Label]] = Counter()
        self.kernel = KernelStats()
        self.matcher = ReasonMatcher() if kernel_reasons else None
        self._rsts: dict[int, _Rst] = {}
        self._unsettled: deque[_Rst] = deque()  # no final verdict yet, oldest first
        self._settled: deque[_Rst] = deque()
        self._unmetered: deque[_Rst] = deque()  # final, waiting for the kernel's reason
        self._unshown: deque[_Rst] = deque()  # discovered, no verdict shown yet
        self._next_frame = 0  # the engine's provisional verdicts from this frame on are new
        self._last_sweep = clock()

    # -- packets ---------------------------------------------------------------------------

    def packet(self, sec: int, nsec: int, data: bytes, wirelen: int) -> None:
        """One packet into an engine fed from Python (a replay)."""
        assert isinstance(self.core, _core.Analysis)
        self.frames += 1
        self.last_ts = ts = sec + nsec * 1e-9
        if self.first_ts is None:
            self.first_ts = ts
        self.core.frame(self.frames, ts, self.linktype, data, wirelen)

    def sync(self, frames: int, first_ts: float | None, last_ts: float) -> None:
        """The packet counts of an engine fed by its own thread."""
        self.frames, self.first_ts, self.last_ts = frames, first_ts, last_ts

    # -- time ------------------------------------------------------------------------------

    def tick(self, wall: float, mono: float, events: list[KernelReset] | None = None) -> None:
        """Kernel reasons, sweeps by wall time, final and provisional verdicts, forgetting.

        `wall` is the time the capture has reached: the clock when it keeps up, the latest
        packet's time while a backlog waits in the ring (so that the after-window of a RST is
        not cut short by the analysis lagging behind)."""
        while self._unsettled and self._unsettled[0].final:
            self._unsettled.popleft()
        overdue = bool(self._unsettled) and mono - self._unsettled[0].arrived > AFTER_SECONDS
        if (overdue and mono - self._last_sweep >= 1.0) or \
                mono - self._last_sweep >= IDLE_SWEEP_SECONDS:
            self._last_sweep = mono
            self.core.sweep_at(wall)
        self._finals()
        self._discover()
        if self.matcher is not None:
            self.matcher.events(events or [])
            for frame, event in self.matcher.match(wall):
                self._reason(frame, event)
        self._provisional(lambda r: mono - r.arrived >= PROVISIONAL_DELAY)
        self._meter(lambda r: r.reason is not None or mono - r.arrived >= REASON_WAIT)
        while self._settled and mono - self._settled[0].settled > RECENT_SECONDS:
            r = self._settled.popleft()
            if self._rsts.get(r.frame) is r:
                del self._rsts[r.frame]

    def finish(self) -> None:
        """End of capture: every RST gets its final verdict (and reason, if it came)."""
        self.core.finish(True)
        self._finals()
        if self.matcher is not None:
            for frame, event in self.matcher.flush():
                self._reason(frame, event)
        self._meter(lambda r: True)

    # -- verdicts --------------------------------------------------------------------------

    def _verdict(self, record: VerdictTuple) -> Verdict:
        return verdict_of(record, self.source)

    def _arrived(self, verdict: Verdict) -> _Rst:
        """The RST of `verdict`, noted the first time the engine shows it."""
        r = self._rsts.get(verdict.frame)
        if r is None:
            r = self._rsts[verdict.frame] = _Rst(verdict.frame, self.clock())
            self._unsettled.append(r)
            if self.matcher is not None:
                self.matcher.wire(verdict.frame, verdict.ts, verdict.src, verdict.sport,
                                  verdict.dst, verdict.dport)
        return r

    def _discover(self) -> None:
        """The RSTs new since the last tick, judged as they stand: their provisional verdict
        (the engine is asked for those only; the final verdict updates it if it differs)."""
        for record in self.core.provisional(self._next_frame):
            verdict = self._verdict(record)
            new = verdict.frame not in self._rsts
            r = self._arrived(verdict)
            if new:
                self._unshown.append(r)
            if r.shown is None and not r.final:
                r.base = verdict
            self._next_frame = max(self._next_frame, r.frame + 1)

    def _provisional(self, due: Callable[[_Rst], bool]) -> None:
        """Show the provisional verdicts that are due, oldest first."""
        while self._unshown:
            r = self._unshown[0]
            if r.shown is None and not r.final:
                if r.base is None or not due(r):
                    return
                self._publish(r)
            self._unshown.popleft()

    def _finals(self) -> None:
        for record in self.core.take():
            verdict = self._verdict(record)
            r = self._arrived(verdict)
            first = not r.final
            r.final = True
            r.settled = self.clock()
            r.base = verdict
            self._settled.append(r)
            self._publish(r)
            if first:
                self._unmetered.append(r)
        if self.matcher is None:
            self._meter(lambda r: True)

    def _meter(self, due: Callable[[_Rst], bool]) -> None:
        """Final verdicts to `on_final` in order, each once its kernel reason is in (or due)."""
        while self._unmetered and due(self._unmetered[0]):
            r = self._unmetered.popleft()
            if self.on_final is not None and r.shown is not None and not r.metered:
                r.metered = True
                self.on_final(r.shown)

    def _reason(self, frame: int, event: KernelReset) -> None:
        if self.on_reason is not None:
            self.on_reason(frame, event.text)
        r = self._rsts.get(frame)
        if r is None:
            return
        r.reason = event
        if r.shown is not None:
            self._publish(r)

    def _publish(self, r: _Rst) -> None:
        verdict = r.base
        assert verdict is not None
        agreement: bool | None = None
        if r.reason is not None:
            verdict, agreement = kernel_confirmed(verdict, r.reason.reason, r.reason.text)
        if r.final and r.reason is not None and not r.counted and verdict.duplicate_of is None:
            r.counted = True
            self.kernel.count(r.frame, verdict, agreement, r.reason.text)
        if verdict == r.shown:
            return
        update = r.shown is not None
        if r.shown is not None:
            self.counts[r.shown.label] -= 1
            if r.point is not None:
                self.points[r.point] -= 1
                if not self.points[r.point]:
                    del self.points[r.point]
        else:
            self.rst_count += 1
        self.counts[verdict.label] += 1
        ts = verdict.ts if len(self.points) < MAX_TIMELINE_POINTS else round(verdict.ts, 3)
        r.point = (ts, verdict.label)
        self.points[r.point] += 1
        r.shown = verdict
        self.publish(verdict, update)

    # -- numbers ---------------------------------------------------------------------------

    def summary(self) -> dict[str, int]:
        return {str(label): self.counts[label] for label in Label if self.counts[label] > 0}

    def counters(self) -> tuple[int, int, int]:
        """(flows in the engine's table, flows seen, TCP packets decoded)."""
        return self.core.counters()


# ================================================================================ outputs


def _summary_line(pipe: Pipeline, source: str, write: str | None, dropped: int, stopped: str,
                  seconds: float, host: str | None = None) -> dict[str, object]:
    out: dict[str, object] = {
        "summary": pipe.summary(),
        "interface": source,
        "file": write,
        "packets": pipe.frames,
        "tcp_packets": pipe.counters()[2],
        "flows": pipe.counters()[1],
        "rsts": pipe.rst_count,
        "dropped": dropped,
        "complete": dropped == 0,
        "stopped": stopped,
        "seconds": round(seconds, 3),
    }
    if host is not None:
        out["host"] = host
    if pipe.matcher is not None:
        k = pipe.kernel
        out["kernel_reasons"] = k.to_dict(pipe.matcher.unmatched_wire)
    return out


class JsonlOutput:
    """One JSON object per verdict per line, flushed at once; a summary object last.

    With `host`, each verdict names the host that saw it (as in the --log file)."""

    def __init__(self, out: TextIO, host: str | None = None) -> None:
        self.out = out
        self.host = host
        self.broken = False

    def start(self) -> None:
        pass

    def verdict(self, v: Verdict, update: bool) -> None:
        if self.broken:
            return
        try:
            self.out.write(json.dumps(verdict_record(v, update, self.host)) + "\n")
            self.out.flush()
        except BrokenPipeError:
            self.broken = True

    def refresh(self, status: Status) -> None:
        pass

    def stop(self) -> None:
        pass

    def end(self, status: Status, summary: dict[str, object]) -> None:
        if self.broken:
            return
        try:
            self.out.write(json.dumps(summary) + "\n")
            self.out.flush()
        except BrokenPipeError:
            self.broken = True


@dataclass(slots=True)
class Status:
    source: str
    packets: int = 0
    pps: float = 0.0
    flows: int = 0
    open_flows: int = 0
    rsts: int = 0
    dropped: int = 0
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    kernel: KernelStats | None = None
    # (second, label, RSTs) of every RST shown, and the capture's first and last packet time
    timeline: list[tuple[float, Label, int]] = field(default_factory=list)
    first_ts: float | None = None
    last_ts: float | None = None


class TableOutput:
    """A rich Live view on a terminal: newest verdicts on top, counters by cause, status."""

    MAX_ROWS = 200

    def __init__(self, out: TextIO, *, color: bool | None, interactive: bool,
                 kernel_reasons: bool) -> None:
        from rich.console import Console

        self.console = Console(file=out, highlight=False, soft_wrap=False,
                               force_terminal=True if color else None,
                               no_color=color is False,
                               width=None if interactive else 160)
        self.interactive = interactive
        self.kernel_reasons = kernel_reasons
        self.rows: OrderedDict[int, Verdict] = OrderedDict()
        self.broken = False
        self._live = None

    def start(self) -> None:
        if not self.interactive:
            return
        from rich.live import Live

        self._live = Live(self._render(Status("")), console=self.console, auto_refresh=False,
                          transient=True, redirect_stdout=False, redirect_stderr=False)
        self._live.start()

    def verdict(self, v: Verdict, update: bool) -> None:
        if update and v.frame in self.rows:
            self.rows[v.frame] = v
            return
        self.rows[v.frame] = v
        while len(self.rows) > self.MAX_ROWS:
            self.rows.popitem(last=False)

    def refresh(self, status: Status) -> None:
        if self._live is not None:
            self._live.update(self._render(status), refresh=True)

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _table(self, limit: int):  # type: ignore[no-untyped-def]
        from rich.table import Table
        from rich.text import Text

        from .render import LABEL_STYLES

        table = Table(title="TCP resets, newest first", title_justify="left", expand=True)
        table.add_column("frame", justify="right", no_wrap=True)
        table.add_column("time (UTC)", no_wrap=True)
        table.add_column("flow (client -> server)", no_wrap=True, overflow="ellipsis")
        table.add_column("sender", no_wrap=True)
        table.add_column("cause", no_wrap=True)
        table.add_column("conf", no_wrap=True)
        if self.kernel_reasons:
            table.add_column("kernel", no_wrap=True, overflow="ellipsis")
        table.add_column("evidence", no_wrap=True, overflow="ellipsis", ratio=1)
        for v in list(reversed(self.rows.values()))[:limit]:
            # every string from the wire (addresses, evidence quoting a RST's payload, the
            # kernel's reason) is data, never markup: textsafe
            row = [Text(str(v.frame)), Text(_clock(v.ts)), data_text(f"{v.client} -> {v.server}"),
                   Text(str(v.sender)), Text(str(v.label), style=LABEL_STYLES[v.label]),
                   Text(str(v.confidence))]
            if self.kernel_reasons:
                row.append(data_text(v.kernel_reason or ""))
            row.append(data_text(v.evidence))
            table.add_row(*row)
        return table

    def _render(self, status: Status):  # type: ignore[no-untyped-def]
        from rich.console import Group
        from rich.text import Text

        from .render import LABEL_STYLES

        limit = max(self.console.size.height - 9, 3)
        counts = Text()
        for label, n in status.counts.items():
            counts.append(f"{label} ", style=LABEL_STYLES[Label(label)])
            counts.append(f"{n}   ")
        line = (f"{visible(status.source)}: {status.packets} packets ({status.pps:,.0f}/s), "
                f"{status.open_flows} open flows, {status.rsts} RSTs, "
                f"{status.dropped} dropped by the kernel")
        if status.kernel is not None:
            line += (f"; kernel reasons: {status.kernel.agree} agree, "
                     f"{status.kernel.disagree} disagree")
        parts = [self._table(limit), counts or Text("no RSTs yet", style="dim"),
                 Text(line + "   (Ctrl-C stops)", style="dim")]
        return Group(*parts)

    def end(self, status: Status, summary: dict[str, object]) -> None:
        from rich.table import Table
        from rich.text import Text

        from .render import LABEL_STYLES
        from .timeline import bucketize_points, buckets_for_width, render_timeline

        try:
            if self.rows:
                self.console.print(self._table(self.MAX_ROWS if not self.interactive
                                               else max(self.console.size.height - 12, 5)))
            title = Text(f"{status.rsts} RSTs in {status.flows} TCP flows, {status.packets} "
                         f"frames ({visible(status.source)}, {status.seconds:.1f} s)")
            table = Table(title=title, title_justify="left")
            table.add_column("cause")
            table.add_column("RSTs", justify="right")
            table.add_column("hint", overflow="fold")
            for label, count in status.counts.items():
                lab = Label(label)
                table.add_row(Text(label, style=LABEL_STYLES[lab]), Text(str(count)),
                              Text(HINTS[lab].split(";")[0]))
            self.console.print(table)
            if status.rsts >= 2:  # as read prints it under its summary
                timeline = bucketize_points(status.timeline, start=status.first_ts,
                                            end=status.last_ts,
                                            buckets=buckets_for_width(self.console.width))
                self.console.print(render_timeline(timeline, LABEL_STYLES))
            k = status.kernel
            if k is not None:
                self.console.print(Text(agreement_line(k.agree, k.disagree, k.no_opinion)))
                for line in k.disagreements:
                    self.console.print(data_text(f"  {line}", style="yellow"))
            self.console.file.flush()
        except BrokenPipeError:
            self.broken = True


# ================================================================================ session


@dataclass(slots=True)
class LiveOptions:
    interface: str
    expression: str | None = None
    count: int | None = None  # packets (that pass the filter), as tcpdump -c
    duration: float | None = None
    write: str | None = None
    snaplen: int | None = None
    buffer_kib: int = DEFAULT_BUFFER_KIB
    promiscuous: bool = True
    fmt: str | None = None  # table, jsonl, None: table on a terminal or with --no-view, else jsonl
    color: bool | None = None
    kernel_reasons: bool = False
    max_flows: int | None = None
    view: bool = True  # the live view, on a terminal only (--no-view: headless)
    metrics_port: int | None = None  # serve Prometheus metrics (0: any free port)
    metrics_addr: str = METRICS_ADDR
    metrics_max_ports: int = METRICS_MAX_PORTS
    log: str | None = None  # verdicts as JSON lines, rotated by size
    log_max_bytes: int = DEFAULT_MAX_BYTES
    log_backups: int = DEFAULT_BACKUPS
    host: str | None = None  # the `host` of logged verdicts; None: this host's name
    user: str | None = None  # -Z: the user to run as once everything is open (None: default)
    selection: Selection | None = None  # the filters of the view (the log keeps every RST)


def run_live(env: Environment, opts: LiveOptions) -> ExitStatus:
    """Capture until -c/--duration or Ctrl-C; report as it goes and a summary at the end.

    Everything that needs privilege is opened first (the capture socket and its ring, the -w
    file, the tracing instance, the metrics socket, the log); then the process drops to an
    unprivileged user without capabilities (privdrop, -Z), and only then do the threads that
    read packets, trace events and metrics requests start."""
    from .privdrop import PrivilegeError, drop_privileges

    try:
        iface = lookup_interface(opts.interface)
        with contextlib.ExitStack() as stack:
            host = opts.host or socket.gethostname()
            log = _open_log(env, opts, host, stack)
            metrics = _bind_metrics(env, opts, stack)
            snaplen = opts.snaplen or (DEFAULT_SNAPLEN if opts.write else LIVE_SNAPLEN)
            expression = filter_expression(opts.expression)
            if metrics is not None:  # its own scrapes are not RSTs to judge
                expression = f"{expression} and not ({metrics.own_traffic_filter()})"
            program = compile_filter(expression, iface.cooked, snaplen)
            if iface.hatype == ARPHRD_LOOPBACK:
                program = skip_outgoing_loopback(program, None)
            elif iface.name == "any":
                lo = loopback_index()
                if lo is not None:
                    program = skip_outgoing_loopback(program, lo)
            if opts.kernel_reasons:
                from .kernel_reasons import unavailable

                why = unavailable()
                if why is not None:
                    raise LiveCaptureError(f"--kernel-reasons: {why}")
            capture = LiveCapture(iface, program, buffer_bytes=opts.buffer_kib * 1024,
                                  promiscuous=opts.promiscuous)
            stack.callback(capture.close)
            tracer = None
            if opts.kernel_reasons:
                try:
                    tracer = stack.enter_context(ResetTracer())
                except OSError as exc:
                    raise LiveCaptureError(f"--kernel-reasons: cannot set up the tracing "
                                           f"instance ({exc.strerror or exc})") from None
            try:
                core = _core.LiveSession(
                    capture.fileno(), capture.block_size, capture.blocks, iface.linktype,
                    iface.cooked, iface.name, max_flows=opts.max_flows, count=opts.count,
                    write=opts.write, write_snaplen=snaplen + (16 if iface.cooked else 0),
                    keep_reasons=tracer is not None)
            except OSError as exc:
                what = f"{opts.write}: cannot write the capture" if opts.write else \
                    "cannot map the capture ring"
                raise LiveCaptureError(f"{what} ({exc})") from None
            stack.callback(core.stop)
            _warm_up(metrics)
            try:
                dropped_to = drop_privileges(opts.user)
            except PrivilegeError as exc:
                raise LiveCaptureError(str(exc)) from None
            core.start()
            if tracer is not None:
                tracer.start_reading()
            if metrics is not None:
                metrics.start()
            if metrics is not None:
                print(f"rstdiag: metrics on {metrics.url}", file=env.stderr, flush=True)
            print(f"rstdiag: listening on {iface.name}, link-type {iface.linktype_name}, "
                  f"snapshot length {snaplen} bytes, filter {expression!r}, "
                  f"{capture.ring_bytes >> 20} MiB ring", file=env.stderr, flush=True)
            if dropped_to:
                print(f"rstdiag: running as {dropped_to}", file=env.stderr, flush=True)
            if tracer is not None:
                print(f"rstdiag: kernel reasons from {tracer.path}", file=env.stderr,
                      flush=True)
            session = _Session(env, opts, iface.name, iface.linktype, capture, core, tracer,
                               host=host, log=log, metrics=metrics.metrics if metrics else None)
            return session.run()
    except LiveCaptureError as exc:
        env.error(str(exc))
        return ExitStatus.ERROR
    except KeyboardInterrupt:  # before the capture started: nothing to report
        return ExitStatus.INTERRUPTED


def _warm_up(metrics: MetricsEndpoint | None) -> None:
    """Import now, while privileged, every module the session loads on first use: the
    unprivileged user may not read the directories Python and rstdiag are installed in. A
    throwaway render of each output (and of the metrics) runs the lazy imports of rich."""
    import rich.live  # noqa: F401 - the live view's, loaded by its start

    from .labels import Confidence, Endpoint, Sender

    sample = Verdict(1, 1e9, "192.0.2.1", 80, "2001:db8::1", 40000, "R.",
                     Endpoint("2001:db8::1", 40000), Endpoint("192.0.2.1", 80), Sender.SERVER,
                     Label.UNREAD_DATA, Confidence.HIGH, "warm-up \x1b \u202e", "x", None, "R")
    table = TableOutput(io.StringIO(), color=True, interactive=False, kernel_reasons=True)
    table.verdict(sample, False)
    status = Status("lo", packets=1, rsts=2, counts={str(sample.label): 2},
                    kernel=KernelStats(disagreements=["x"]),
                    timeline=[(1e9, sample.label, 1), (1e9 + 1, sample.label, 1)],
                    first_ts=1e9, last_ts=1e9 + 2)
    table.console.print(table._render(status))
    table.end(status, {})
    jsonl = JsonlOutput(io.StringIO())
    jsonl.verdict(sample, True)
    jsonl.end(status, {"summary": {}})
    if metrics is not None:
        from prometheus_client.exposition import generate_latest

        generate_latest(metrics.metrics.registry)


def _open_log(env: Environment, opts: LiveOptions, host: str,
              stack: contextlib.ExitStack) -> VerdictLog | None:
    """The --log sink, or LiveCaptureError (one line) when FILE cannot be written."""
    if opts.log is None:
        return None
    try:
        writer = RotatingWriter(opts.log, opts.log_max_bytes, opts.log_backups)
    except OSError as exc:
        raise LiveCaptureError(f"--log {opts.log}: cannot write the log "
                               f"({exc.strerror or exc})") from None
    log = VerdictLog(writer, host, env.warn)
    stack.callback(log.close)
    print(f"rstdiag: verdicts logged to {opts.log} (rotated at {opts.log_max_bytes} bytes, "
          f"{opts.log_backups} kept)", file=env.stderr, flush=True)
    return log


def _bind_metrics(env: Environment, opts: LiveOptions, stack: contextlib.ExitStack
                  ) -> MetricsEndpoint | None:
    """The Prometheus endpoint's socket, bound (served once privileges are dropped), or
    LiveCaptureError (one line) when it cannot listen."""
    if opts.metrics_port is None:
        return None
    try:
        from .metrics import LiveMetrics, MetricsEndpoint
    except ImportError as exc:  # a broken install: it is a declared dependency
        raise LiveCaptureError(f"--metrics-port needs the prometheus_client package "
                               f"({exc}): pip install prometheus_client") from None

    metrics = LiveMetrics(max_ports=opts.metrics_max_ports, kernel_reasons=opts.kernel_reasons)
    where = (f"[{opts.metrics_addr}]" if ":" in opts.metrics_addr else opts.metrics_addr) + \
        f":{opts.metrics_port}"
    try:
        endpoint = MetricsEndpoint(metrics, opts.metrics_addr, opts.metrics_port)
    except OSError as exc:
        raise LiveCaptureError(f"--metrics-port: cannot serve metrics on {where} "
                               f"({exc.strerror or exc})") from None
    stack.callback(endpoint.close)
    return endpoint


class _Session:
    def __init__(self, env: Environment, opts: LiveOptions, source: str, linktype: int,
                 capture: LiveCapture, core: _core.LiveSession, tracer: ResetTracer | None, *,
                 host: str | None = None, log: VerdictLog | None = None,
                 metrics: LiveMetrics | None = None) -> None:
        self.env = env
        self.opts = opts
        self.source = source
        self.capture = capture
        self.core = core
        self.tracer = tracer
        self.log = log
        self.metrics = metrics
        self.host = host
        view = opts.view and env.stdout_isatty
        fmt = opts.fmt or ("table" if view or not opts.view else "jsonl")
        if fmt == "jsonl":
            self.output: JsonlOutput | TableOutput = JsonlOutput(env.stdout, host)
        else:
            self.output = TableOutput(env.stdout, color=opts.color, interactive=view,
                                      kernel_reasons=tracer is not None)
        # a verdict's `file`: the -w file, whose frame numbers the verdicts give, else the
        # interface
        # with --kernel-reasons, the -w file (pcapng) keeps each RST's reason in its comment
        keep = core.note_reason if tracer is not None and opts.write else None
        self.pipe = Pipeline(opts.write or source, linktype, self._publish,
                             kernel_reasons=tracer is not None, core=core,
                             on_final=metrics.final if metrics is not None else None,
                             on_reason=keep)
        self.stop: str | None = None
        self.idle = True  # the last look found the ring empty: the analysis keeps up
        self._last_wall = 0.0
        self._signals: dict[int, object] = {}
        self._reported = False  # the capture thread's own stop, reported once
        self.selection = opts.selection
        # the frames the view showed lately: their updates are shown even when the final
        # verdict no longer passes the filters (the row must not keep a stale verdict)
        self._shown: OrderedDict[int, None] = OrderedDict()

    def _publish(self, verdict: Verdict, update: bool) -> None:
        shown_before = verdict.frame in self._shown
        if shown_before or self._selected(verdict):
            self.output.verdict(verdict, update and shown_before)
        if self.log is not None:  # the log keeps every RST, as the metrics count them all
            self.log.verdict(verdict, update)

    def _selected(self, verdict: Verdict) -> bool:
        """Whether the view shows a verdict it has not shown: the filters (--cause, --port,
        ...) pass it. `+DURATION` times count from the first packet captured."""
        if self.selection is not None and not self.selection.matches(verdict,
                                                                     self.pipe.first_ts):
            return False
        self._shown[verdict.frame] = None
        while len(self._shown) > SHOWN_FRAMES:
            self._shown.popitem(last=False)
        return True

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.stop == "interrupted":  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.stop = "interrupted"

    def run(self) -> ExitStatus:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._signals[sig] = signal.signal(sig, self._on_signal)
        status = ExitStatus.OK
        started = last = time.monotonic()
        last_frames = 0
        deadline = started + self.opts.duration if self.opts.duration else None
        st = Status(self.source, kernel=self.pipe.kernel if self.tracer else None)
        try:
            self.output.start()
            next_tick = started + TICK
            while self.stop is None:
                now = time.monotonic()
                wait = next_tick - now
                if deadline is not None:
                    wait = min(wait, deadline - now)
                if self.core.wait(max(wait, 0.0)):
                    status = self._thread_stopped()
                now = time.monotonic()
                if deadline is not None and now >= deadline and self.stop is None:
                    self.stop = "duration"
                if now >= next_tick and self.stop is None:
                    next_tick = now + TICK
                    self._tick(now)
                    if now - last >= 1.0:
                        st.pps = (self.pipe.frames - last_frames) / (now - last)
                        last, last_frames = now, self.pipe.frames
                    self._status(st, started)
                    self.output.refresh(st)
                if self.output.broken:
                    self.stop = "closed"
        except KeyboardInterrupt:
            self.stop = "interrupted"
        finally:
            self.output.stop()
            for sig, handler in self._signals.items():
                signal.signal(sig, handler)  # type: ignore[arg-type]
        if self.stop == "interrupted":
            status = ExitStatus.INTERRUPTED
        return self._end(status, started)

    def _thread_stopped(self) -> ExitStatus:
        """The capture thread stopped by itself: -c reached, or an error (one line)."""
        kind, text = self.core.status()[4:]
        if kind == "count":
            self.stop = "count"
            return ExitStatus.OK
        self._report(kind, text)
        return ExitStatus.ERROR

    def _report(self, kind: str, text: str) -> None:
        if self._reported or kind not in ("capture-error", "write-error", "panic"):
            return
        self._reported = True
        self.output.stop()
        if kind == "write-error":
            self.stop = "write-error"
            self.env.error(f"{self.opts.write}: cannot write the capture ({text}); stopped, "
                           "the file ends at its last whole packet; reporting what was "
                           "captured")
        elif kind == "panic":
            self.stop = "error"
            self.env.error(f"internal error in the engine: {text} (please report it); "
                           "reporting what was captured")
        else:
            self.stop = "error"
            self.env.error(f"{text}; reporting what was captured")

    def _tick(self, now: float) -> None:
        self.capture.stats()
        frames, first_ts, last_ts, self.idle, _, _ = self.core.status()
        self.pipe.sync(frames, first_ts, last_ts)
        events = self.tracer.drain() if self.tracer is not None else []
        wall = time.time() if self.idle else max(last_ts, self._last_wall)
        self._last_wall = wall
        self.pipe.tick(wall, now, events)
        self.core.flush()
        self._sync_metrics()

    def _sync_metrics(self) -> None:
        if self.metrics is None:
            return
        from .metrics import Totals

        k = self.pipe.kernel
        self.metrics.sync(Totals(packets=self.pipe.frames, dropped=self.capture.dropped,
                                 flows_active=self.pipe.counters()[0], agree=k.agree,
                                 disagree=k.disagree, no_opinion=k.no_opinion))

    def _status(self, st: Status, started: float) -> None:
        st.packets = self.pipe.frames
        st.open_flows, st.flows, _ = self.pipe.counters()
        st.rsts = self.pipe.rst_count
        st.dropped = self.capture.dropped
        st.seconds = time.monotonic() - started
        st.counts = self.pipe.summary()

    def _final_status(self, st: Status, started: float) -> None:
        self._status(st, started)
        st.timeline = [(ts, label, n) for (ts, label), n in sorted(self.pipe.points.items())
                       if n]
        st.first_ts, st.last_ts = self.pipe.first_ts, self.pipe.last_ts or None

    def _end(self, status: ExitStatus, started: float) -> ExitStatus:
        if self.tracer is not None and self.stop not in ("error", "write-error"):
            time.sleep(0.1)  # the last events of the trace pipe
        self.core.stop()
        kind, text = self.core.status()[4:]
        if kind in ("write-error", "capture-error", "panic") and not self._reported:
            self._report(kind, text)
            status = ExitStatus.ERROR
        self._tick(time.monotonic())
        if self.tracer is not None:
            self.pipe.matcher.events(self.tracer.drain())  # type: ignore[union-attr]
        self.pipe.finish()
        self._sync_metrics()
        st = Status(self.source, kernel=self.pipe.kernel if self.tracer else None)
        self._final_status(st, started)
        summary = _summary_line(self.pipe, self.source, self.opts.write, st.dropped,
                                self.stop or "end", st.seconds, self.host)
        self.output.end(st, summary)
        if st.dropped:
            self.env.warn(f"{st.dropped} packets dropped by the kernel before rstdiag saw them: "
                          "the view is incomplete (a larger -B, a narrower -f filter, or -w "
                          "and `rstdiag read` later)")
        if self.output.broken:
            _silence_stdout()
            return ExitStatus.OK if status is ExitStatus.OK else status
        return status


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}"


def _silence_stdout() -> None:
    """The reader went away (| head): no flush error at exit."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
