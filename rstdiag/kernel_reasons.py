"""The kernel's own reason for each RST this host sends: tracepoint tcp:tcp_send_reset.

A private tracefs instance (instances/rstdiag-<pid>-<random>) records the event, a thread
reads its trace_pipe, and `ReasonMatcher` pairs each event with the wire RST it produced by
4-tuple and time. The tracepoint fires for every network namespace of the host, so events of
traffic the capture does not see simply find no wire RST, and wire RSTs of other hosts find no
event.

Linux 6.x with tracefs; needs root (tracefs is root-only) to set up.

Ownership of an instance: tracefs is one per host, PIDs are per namespace, so an instance is
owned through a lock file, /run/rstdiag/<instance>.lock, held (flock) for the instance's
whole life, by rstdiag and by a small reaper process (rstdiag.tracereaper) that shares the
lock and removes the instance as soon as rstdiag is gone, even after SIGKILL or after rstdiag
dropped its privileges. An instance whose lock nobody holds was left by a run killed with its
reaper: the next run removes it. An instance without a lock file here (another mount
namespace's, a container's) is never touched.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import os
import queue
import re
import secrets
import select
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

TRACEFS = Path("/sys/kernel/tracing")
LOCK_DIR = Path("/run/rstdiag")
INSTANCE_PREFIX = "rstdiag-"
EVENT = Path("events/tcp/tcp_send_reset")
MATCH_SECONDS = 0.1  # the event and the wire packet are microseconds apart; allow slack
KEEP_SECONDS = 2.0  # how long an event or a wire RST waits for its other half
SETTLE_SECONDS = 0.15  # both halves are in by then (trace pipe reader, ring block timeout)

@dataclass(frozen=True, slots=True)
class KernelReset:
    """One tcp_send_reset event."""

    ts: float  # seconds since the epoch
    src: str  # the RST's sender
    sport: int
    dst: str  # 0.0.0.0 / :: with port 0 when a listener sent it
    dport: int
    state: str
    reason: str

    @property
    def listener_reply(self) -> bool:
        return self.dport == 0 and ipaddress.ip_address(self.dst).is_unspecified

    @property
    def text(self) -> str:
        return self.reason if self.state in ("", "UNKNOWN") else f"{self.reason} in {self.state}"


_LINE = re.compile(r"\s(?P<ts>\d+\.\d+):\s+tcp_send_reset:\s+(?P<rest>.*)$")


def _endpoint(text: str) -> tuple[str, int]:
    if text.startswith("["):
        addr, _, port = text[1:].partition("]:")
    else:
        addr, _, port = text.rpartition(":")
    return str(ipaddress.ip_address(addr)), int(port)


def parse_line(line: str, clock_offset: float = 0.0) -> KernelReset | None:
    """One trace_pipe line; None for anything else. `clock_offset` turns the trace clock
    (CLOCK_MONOTONIC) into seconds since the epoch."""
    m = _LINE.search(line)
    if m is None:
        return None
    fields = dict(kv.split("=", 1) for kv in m["rest"].split() if "=" in kv)
    try:
        src, sport = _endpoint(fields["src"])
        dst, dport = _endpoint(fields["dest"])
    except (KeyError, ValueError):
        return None
    return KernelReset(float(m["ts"]) + clock_offset, src, sport, dst, dport,
                       fields.get("state", ""), fields.get("reason", ""))


def _mount_tracefs() -> None:
    """Mount tracefs where it belongs if it is not there: `ip netns exec` remounts /sys in a
    private mount namespace without it (the mount goes with that namespace)."""
    if (TRACEFS / "events").exists() or not TRACEFS.is_dir() or os.geteuid() != 0:
        return
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)], capture_output=True,
                       timeout=10)


def unavailable() -> str | None:
    """Why the kernel's reasons cannot be read here, or None."""
    if os.geteuid() != 0:
        return "reading the kernel's trace events needs root"
    _mount_tracefs()
    if not (TRACEFS / EVENT).exists():
        if not (TRACEFS / "events").exists():
            return (f"no tracefs at {TRACEFS} (mount it: mount -t tracefs nodev {TRACEFS})")
        return f"this kernel has no {EVENT} tracepoint (Linux 6.x has it)"
    if not os.access(TRACEFS / "instances", os.W_OK):
        return f"cannot create a tracing instance under {TRACEFS / 'instances'}: needs root"
    return None


class ResetTracer:
    """A private tracefs instance with tcp_send_reset on, read by a thread into a queue.

    Use as a context manager: entering sets the instance up (root) and its reaper;
    `start_reading` starts the reading thread (after privileges are dropped); on exit the
    instance goes, also on Ctrl-C or an error, and after SIGKILL through the reaper.
    """

    def __init__(self, name: str | None = None, lock_dir: Path = LOCK_DIR) -> None:
        # random: PIDs repeat across PID namespaces, tracefs instances do not
        name = name or f"{INSTANCE_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
        self.path = TRACEFS / "instances" / name
        self.lock_path = lock_dir / f"{name}.lock"
        self.events: queue.Queue[KernelReset] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._reaper: subprocess.Popen[bytes] | None = None
        self._created = False
        self.clock_offset = 0.0

    def __enter__(self) -> ResetTracer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Set the instance up and open its trace pipe (not read yet: `start_reading`)."""
        self.lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        remove_stale_instances(self.lock_path.parent)
        self.path.mkdir()
        self._created = True
        self._reaper = _start_reaper(self.path, self.lock_path, self._lock_fd)
        with contextlib.suppress(OSError):
            (self.path / "buffer_size_kb").write_text("1024")
        self.clock_offset = _set_clock(self.path / "trace_clock")
        (self.path / EVENT / "enable").write_text("1")
        self._fd = os.open(self.path / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)

    def start_reading(self) -> None:
        if self._thread is None and self._fd is not None:
            self._thread = threading.Thread(target=self._read, name="rstdiag-trace",
                                            daemon=True)
            self._thread.start()

    def _read(self) -> None:
        fd, partial = self._fd, b""
        assert fd is not None
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([fd], [], [], 0.1)
                if not ready:
                    continue
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                return
            if not chunk:
                time.sleep(0.05)
                continue
            lines = (partial + chunk).split(b"\n")
            partial = lines.pop()
            for line in lines:
                event = parse_line(line.decode(errors="replace"), self.clock_offset)
                if event is not None:
                    self.events.put(event)

    def drain(self) -> list[KernelReset]:
        out: list[KernelReset] = []
        with contextlib.suppress(queue.Empty):
            while True:
                out.append(self.events.get_nowait())
        return out

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        reaped = False
        if self._reaper is not None:  # it removes the instance (and may, being root)
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                if self._reaper.stdin is not None:
                    self._reaper.stdin.close()
                reaped = self._reaper.wait(10) == 0
            self._reaper = None
        if self._created and not reaped:
            remove_instance(self.path)
        self._created = False
        if self._lock_fd is not None:
            if not reaped:
                with contextlib.suppress(OSError):
                    self.lock_path.unlink()
            os.close(self._lock_fd)
            self._lock_fd = None


def _start_reaper(path: Path, lock_path: Path, lock_fd: int) -> subprocess.Popen[bytes] | None:
    """The process that removes the instance once rstdiag is gone (its stdin closes): it
    shares the lock, in a session of its own so that Ctrl-C at the terminal spares it."""
    with contextlib.suppress(OSError):
        return subprocess.Popen(
            [sys.executable, "-m", "rstdiag.tracereaper", str(path), str(lock_path),
             str(lock_fd)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(lock_fd,), start_new_session=True)
    return None


def _set_clock(trace_clock: Path) -> float:
    """Pick the trace clock; the offset that turns its timestamps into the packets' time.

    TAI is the packets' clock (CLOCK_REALTIME) plus a whole number of seconds: exact, where
    CLOCK_MONOTONIC drifts from it and only an estimate of the offset is at hand.
    """
    with contextlib.suppress(OSError, AttributeError):
        if "tai" in trace_clock.read_text().replace("[", " ").replace("]", " ").split():
            trace_clock.write_text("tai")
            return -round(time.clock_gettime(time.CLOCK_TAI) - time.time())
    with contextlib.suppress(OSError):
        trace_clock.write_text("mono")
        return time.time() - time.monotonic()
    return 0.0


def remove_instance(path: Path) -> None:
    with contextlib.suppress(OSError):
        (path / EVENT / "enable").write_text("0")
    for _ in range(100):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:  # EBUSY while a reader still has a file of it open
            if exc.errno != errno.EBUSY:
                return
            time.sleep(0.02)


def remove_stale_instances(lock_dir: Path = LOCK_DIR) -> list[str]:
    """Remove the instances whose owner is provably gone: their lock file is here and nobody
    holds it. The names removed."""
    removed: list[str] = []
    with contextlib.suppress(OSError):
        for path in (TRACEFS / "instances").iterdir():
            if not path.name.startswith(INSTANCE_PREFIX):
                continue
            lock_path = lock_dir / f"{path.name}.lock"
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
            except OSError:  # no lock file here: not ours to judge
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held: its owner lives
                os.close(fd)
                continue
            try:
                remove_instance(path)
                with contextlib.suppress(OSError):
                    lock_path.unlink()
                removed.append(path.name)
            finally:
                os.close(fd)
    return removed


@dataclass(slots=True)
class _Wire:
    frame: int
    ts: float
    dst: str
    dport: int
    taken: bool = False


def _in_order(events: list[KernelReset], wires: list[_Wire]) -> list[tuple[KernelReset, _Wire]]:
    """The most pairs within MATCH_SECONDS that keep both sides in time order, the nearest
    among equals (dynamic programming; the lists are a burst on one 4-tuple, a few long)."""
    n, m = len(events), len(wires)
    best = [[(0, 0.0)] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            here = max(best[i - 1][j], best[i][j - 1])
            gap = abs(events[i - 1].ts - wires[j - 1].ts)
            if gap <= MATCH_SECONDS:
                count, closeness = best[i - 1][j - 1]
                here = max(here, (count + 1, closeness - gap))
            best[i][j] = here
    pairs: list[tuple[KernelReset, _Wire]] = []
    i, j = n, m
    while i and j:
        if best[i][j] == best[i - 1][j]:
            i -= 1
        elif best[i][j] == best[i][j - 1]:
            j -= 1
        else:
            pairs.append((events[i - 1], wires[j - 1]))
            i, j = i - 1, j - 1
    return pairs[::-1]


class ReasonMatcher:
    """Pairs kernel events with wire RSTs (frame numbers) as both come in, either first.

    A wire RST matches an event with the same sender address and port and the same
    destination (any destination for a listener's own RST, which the tracepoint reports with
    destination 0.0.0.0:0) within MATCH_SECONDS. On one 4-tuple, events and RSTs pair in time
    order (a burst of RSTs microseconds apart, an event whose RST a firewall dropped); a
    listener's events take the nearest RST. Both halves are left SETTLE_SECONDS to come in
    before they are paired, and are forgotten after KEEP_SECONDS.
    """

    def __init__(self) -> None:
        self._events: list[KernelReset] = []
        self._by_sender: dict[tuple[str, int], list[_Wire]] = {}
        self._order: deque[tuple[tuple[str, int], _Wire]] = deque()
        self.unmatched_wire = 0  # wire RSTs no event explained (another host, or forged)

    def wire(self, frame: int, ts: float, src: str, sport: int, dst: str, dport: int) -> None:
        w = _Wire(frame, ts, dst, dport)
        self._by_sender.setdefault((src, sport), []).append(w)
        self._order.append(((src, sport), w))

    def events(self, events: list[KernelReset]) -> None:
        self._events.extend(events)

    def match(self, now: float, settle: float = SETTLE_SECONDS) -> list[tuple[int, KernelReset]]:
        """(frame, event) pairs found since the last call; forgets what is too old."""
        ripe = now - settle
        flows: dict[tuple[str, int, str, int], list[KernelReset]] = {}
        listeners: list[KernelReset] = []
        for event in self._events:
            if event.ts > ripe or (event.src, event.sport) not in self._by_sender:
                continue
            if event.listener_reply:
                listeners.append(event)
            else:
                flows.setdefault((event.src, event.sport, event.dst, event.dport),
                                 []).append(event)
        used: set[int] = set()
        pairs: list[tuple[int, KernelReset]] = []
        for (src, sport, dst, dport), evs in flows.items():
            wires = [w for w in self._by_sender[(src, sport)]
                     if not w.taken and w.ts <= ripe and (w.dst, w.dport) == (dst, dport)]
            evs.sort(key=lambda e: e.ts)
            for event, w in _in_order(evs[-64:], wires[-64:]):
                w.taken = True
                used.add(id(event))
                pairs.append((w.frame, event))
        for event in listeners:
            near = [w for w in self._by_sender[(event.src, event.sport)]
                    if not w.taken and w.ts <= ripe and abs(w.ts - event.ts) <= MATCH_SECONDS]
            if near:
                w = min(near, key=lambda w: abs(w.ts - event.ts))
                w.taken = True
                used.add(id(event))
                pairs.append((w.frame, event))
        self._events = [e for e in self._events
                        if id(e) not in used and e.ts >= now - KEEP_SECONDS]
        order = self._order
        while order and (order[0][1].taken or order[0][1].ts < now - KEEP_SECONDS):
            key, w = order.popleft()
            if not w.taken:
                self.unmatched_wire += 1
            same = self._by_sender[key]
            same.remove(w)
            if not same:
                del self._by_sender[key]
        pairs.sort(key=lambda p: p[0])
        return pairs

    def flush(self) -> list[tuple[int, KernelReset]]:
        """At the end: the last pairs; every RST still waiting counts as unmatched."""
        pairs = self.match(float("inf"), settle=0.0)
        self.unmatched_wire += sum(1 for _, w in self._order if not w.taken)
        self._order.clear()
        self._by_sender.clear()
        self._events.clear()
        return pairs
