"""Prometheus metrics of `rstdiag live` (--metrics-port), served by the official client.

Imported only when metrics are asked for: prometheus_client stays out of every other command.

What is counted, and when:

* `rstdiag_rsts_total{label, sender, port}`: each RST once, when its verdict is final (the
  tracker has seen the packets after it: at most about 6 s after the RST). The label, sender
  and server port of a final verdict never change afterwards (a burst refinement or the
  kernel's reason only touch confidence and evidence), so a counter that only goes up is
  exact. Provisional verdicts are not counted: a counter cannot take back a count when an
  update relabels a RST. Identical copies of a RST (`duplicate_of`, the same packet seen
  twice) are not counted, as `rstdiag check` does not count them.
* `port` is the flow's server port. The first `max_ports` distinct server ports keep a series
  of their own; RSTs on any later port are counted under `port="other"`, so a port scan cannot
  make the series count grow without bound.
* packets, drops, open flows and the kernel's agreement are totals the session keeps; `sync`
  copies them in a few times a second.

The endpoint (`MetricsEndpoint`) is one thread serving every client with non-blocking sockets:
a slow or half-open client costs a socket, not a thread; at most MAX_CLIENTS are served at
once (the rest wait in a listen backlog of BACKLOG), a client that has not sent its request
and taken its answer within CLIENT_TIMEOUT seconds is dropped, and when all places are taken
a new connection takes the place of the oldest one silent for EVICT_AFTER seconds: slow
clients cannot keep a scrape out. It binds before
rstdiag drops its privileges and serves after; the capture filter leaves its traffic out, so
that rstdiag does not judge its own scrapes.
"""

from __future__ import annotations

import contextlib
import ipaddress
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field, replace

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from .labels import Verdict

OTHER_PORT = "other"
BACKLOG = 128  # connections the kernel queues while MAX_CLIENTS are served
MAX_CLIENTS = 64  # served at once, each a socket and a few kilobytes
CLIENT_TIMEOUT = 5.0  # seconds for a client to send its request and take the answer
MAX_REQUEST = 8192  # bytes of request line and headers
EVICT_AFTER = 1.0  # seconds a silent client keeps its place when others wait
AGREEMENT_VALUES = ("yes", "no", "no_opinion")


@dataclass(slots=True)
class PortFolder:
    """Server port -> the `port` label: its number for the first `limit` ports, then other."""

    limit: int
    kept: set[int] = field(default_factory=set)

    def label(self, port: int) -> str:
        if port in self.kept:
            return str(port)
        if len(self.kept) < self.limit:
            self.kept.add(port)
            return str(port)
        return OTHER_PORT


@dataclass(slots=True)
class Totals:
    """What the session has counted so far; `LiveMetrics.sync` turns it into counters."""

    packets: int = 0
    dropped: int = 0
    flows_active: int = 0
    agree: int = 0
    disagree: int = 0
    no_opinion: int = 0


@dataclass(slots=True)
class _Client:
    sock: socket.socket
    deadline: float
    since: float
    request: bytearray = field(default_factory=bytearray)
    answer: memoryview | None = None


def _response(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8",
              head: bool = False) -> bytes:
    header = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
              f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    return header if head else header + body


class MetricsEndpoint:
    """/metrics over HTTP/1.1, one request per connection, served by one thread (see the
    module's docstring). Bind with the constructor (OSError when the address cannot be
    bound), serve with `start`, stop with `close`."""

    def __init__(self, metrics: LiveMetrics, addr: str, port: int, *,
                 timeout: float = CLIENT_TIMEOUT, max_clients: int = MAX_CLIENTS) -> None:
        self.metrics = metrics
        self.addr = addr
        self.timeout = timeout
        self.max_clients = max_clients
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((addr, port))
            sock.listen(BACKLOG)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.port: int = sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/metrics"

    def own_traffic_filter(self) -> str:
        """A pcap-filter expression for the endpoint's own connections."""
        try:
            anywhere = ipaddress.ip_address(self.addr).is_unspecified
        except ValueError:
            anywhere = False
        port = f"tcp port {self.port}"
        return port if anywhere else f"host {self.addr} and {port}"

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="rstdiag-metrics",
                                            daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._sock.close()

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        clients: dict[int, _Client] = {}
        listening = False
        try:
            while not self._stop.is_set():
                room = len(clients) < self.max_clients or self._evictable(clients) is not None
                if room and not listening:
                    sel.register(self._sock, selectors.EVENT_READ)
                    listening = True
                elif not room and listening:
                    sel.unregister(self._sock)  # all answering: the rest wait in the backlog
                    listening = False
                for key, _ in sel.select(timeout=0.25):
                    if key.fileobj is self._sock:
                        self._accept(sel, clients)
                    else:
                        client = clients.get(key.fd)
                        if client is not None and not self._step(sel, client):
                            self._drop(sel, clients, client)
                now = time.monotonic()
                for client in [c for c in clients.values() if c.deadline < now]:
                    self._drop(sel, clients, client)
        finally:
            for client in list(clients.values()):
                self._drop(sel, clients, client)
            sel.close()

    def _accept(self, sel: selectors.BaseSelector, clients: dict[int, _Client]) -> None:
        for _ in range(self.max_clients):
            if len(clients) >= self.max_clients:
                silent = self._evictable(clients)
                if silent is None:
                    return
                self._drop(sel, clients, silent)
            try:
                sock, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ECONNABORTED, EMFILE: try again on the next round
                return
            sock.setblocking(False)
            now = time.monotonic()
            client = _Client(sock, now + self.timeout, now)
            clients[sock.fileno()] = client
            sel.register(sock, selectors.EVENT_READ)

    @staticmethod
    def _evictable(clients: dict[int, _Client]) -> _Client | None:
        """The oldest client silent (no whole request yet) for EVICT_AFTER seconds."""
        limit = time.monotonic() - EVICT_AFTER
        silent = [c for c in clients.values() if c.answer is None and c.since <= limit]
        return min(silent, key=lambda c: c.since) if silent else None

    def _step(self, sel: selectors.BaseSelector, client: _Client) -> bool:
        """Read the request or write the answer; False when the connection is done."""
        try:
            if client.answer is None:
                data = client.sock.recv(4096)
                if not data:
                    return False
                client.request += data
                if b"\r\n\r\n" not in client.request and b"\n\n" not in client.request:
                    if len(client.request) > MAX_REQUEST:
                        client.answer = memoryview(_response(
                            "431 Request Header Fields Too Large", b"request too large\n"))
                        sel.modify(client.sock, selectors.EVENT_WRITE)
                    return True
                client.answer = memoryview(self._answer(bytes(client.request)))
                sel.modify(client.sock, selectors.EVENT_WRITE)
                return True
            sent = client.sock.send(client.answer)
            client.answer = client.answer[sent:]
            return len(client.answer) > 0
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False

    def _answer(self, request: bytes) -> bytes:
        line = request.split(b"\r\n", 1)[0].split(b"\n", 1)[0].split()
        method, target = (line[0], line[1]) if len(line) >= 2 else (b"", b"")
        if method not in (b"GET", b"HEAD"):
            return _response("405 Method Not Allowed", b"GET /metrics\n")
        path = target.split(b"?", 1)[0]
        if path not in (b"/metrics", b"/"):
            return _response("404 Not Found", b"rstdiag serves /metrics\n")
        return _response("200 OK", generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST,
                         head=method == b"HEAD")

    @staticmethod
    def _drop(sel: selectors.BaseSelector, clients: dict[int, _Client],
              client: _Client) -> None:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(client.sock)
        clients.pop(client.sock.fileno(), None)
        with contextlib.suppress(OSError):
            client.sock.close()


class LiveMetrics:
    """The metrics of one live session, in a registry of its own."""

    def __init__(self, *, max_ports: int, kernel_reasons: bool = False) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # rstdiag's own memory and CPU, for the fleet
        self.ports = PortFolder(max_ports)
        self.rsts = Counter(
            "rstdiag_rsts", "TCP RSTs by cause (label), who sent them (sender) and the flow's "
            "server port (port; 'other' beyond the first ports seen), counted when final.",
            ["label", "sender", "port"], registry=self.registry)
        self.packets = Counter("rstdiag_packets", "Packets captured (that passed the filter).",
                               registry=self.registry)
        self.dropped = Counter("rstdiag_dropped_packets",
                               "Packets the kernel dropped before rstdiag saw them (ring full).",
                               registry=self.registry)
        self.flows_active = Gauge("rstdiag_flows_active", "TCP flows in the flow table now.",
                                  registry=self.registry)
        self.agreement: Counter | None = None
        if kernel_reasons:
            self.agreement = Counter(
                "rstdiag_kernel_reason_agreement",
                "Final verdicts with a kernel reason (tcp:tcp_send_reset), by whether the "
                "reason agrees with the label: yes, no, or no_opinion.",
                ["agree"], registry=self.registry)
            for value in AGREEMENT_VALUES:  # present from the start, at 0
                self.agreement.labels(agree=value)
        self._seen = Totals()

    def final(self, verdict: Verdict) -> None:
        """Count one RST whose verdict is final (called once per RST)."""
        if verdict.duplicate_of is not None:
            return
        self.rsts.labels(label=str(verdict.label), sender=str(verdict.sender),
                         port=self.ports.label(verdict.server.port)).inc()

    def sync(self, totals: Totals) -> None:
        """Bring the counters up to the session's totals (which only grow)."""
        seen = self._seen
        self.packets.inc(max(totals.packets - seen.packets, 0))
        self.dropped.inc(max(totals.dropped - seen.dropped, 0))
        self.flows_active.set(totals.flows_active)
        if self.agreement is not None:
            for value, now, before in (("yes", totals.agree, seen.agree),
                                       ("no", totals.disagree, seen.disagree),
                                       ("no_opinion", totals.no_opinion, seen.no_opinion)):
                if now > before:
                    self.agreement.labels(agree=value).inc(now - before)
        self._seen = replace(totals)

    def serve(self, addr: str, port: int) -> MetricsEndpoint:
        """Bind and start the endpoint; OSError when the address cannot be bound (in use,
        not ours)."""
        endpoint = MetricsEndpoint(self, addr, port)
        endpoint.start()
        return endpoint
