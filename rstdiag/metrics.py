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
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector
from prometheus_client.exposition import start_http_server

from .labels import Verdict

OTHER_PORT = "other"
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


class MetricsServer:
    """The HTTP endpoint (/metrics) in a daemon thread; `close` stops it and frees the port."""

    def __init__(self, registry: CollectorRegistry, addr: str, port: int) -> None:
        self._httpd, self._thread = start_http_server(port, addr=addr, registry=registry)
        self.port: int = self._httpd.server_port
        self.addr = addr

    @property
    def url(self) -> str:
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


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

    def serve(self, addr: str, port: int) -> MetricsServer:
        """Start the endpoint; OSError when the address cannot be bound (in use, not ours)."""
        return MetricsServer(self.registry, addr, port)
