"""rstdiag/metrics.py: the Prometheus metrics of `rstdiag live`, fed by the live pipeline.

Captures of pcaps/ are replayed through the live pipeline in their own time (tests/livereplay.py);
the counters must end where `rstdiag read` of the same capture says, however many provisional
verdicts and updates were published on the way.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from livereplay import replay
from prometheus_client.parser import text_string_to_metric_families

from rstdiag.analysis import analyze_file
from rstdiag.labels import Endpoint, Verdict
from rstdiag.metrics import OTHER_PORT, LiveMetrics, MetricsEndpoint, Totals

PCAPS = Path(__file__).resolve().parents[1] / "pcaps"


def capture(name: str) -> Path:
    path = PCAPS / name
    if not path.exists():
        pytest.skip("pcaps/ not made (tools/make_pcaps.py)")
    return path


def rst_counts(metrics: LiveMetrics) -> dict[tuple[str, str, str], float]:
    """rstdiag_rsts_total as (label, sender, port) -> value, read back from the registry."""
    out: dict[tuple[str, str, str], float] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "rstdiag_rsts_total":
                key = (sample.labels["label"], sample.labels["sender"], sample.labels["port"])
                out[key] = sample.value
    return out


def read_counts(path: Path) -> Counter[tuple[str, str, str]]:
    """What `rstdiag read` says: distinct RSTs by label, sender and server port."""
    return Counter((str(v.label), str(v.sender), str(v.server.port))
                   for v in analyze_file(str(path)).verdicts if v.duplicate_of is None)


def a_verdict() -> Verdict:
    return analyze_file(str(capture("closed-port-v4.pcap"))).verdicts[0]


@pytest.mark.parametrize("name", ["sample.pcapng", "accept-overflow-loop.pcap",
                                  "injected.pcap", "follow-up.pcap"])
def test_each_rst_counts_once_by_label_sender_and_server_port(name: str) -> None:
    path = capture(name)
    metrics = LiveMetrics(max_ports=32)
    replay(path, on_final=metrics.final)
    assert rst_counts(metrics) == dict(read_counts(path))


def test_updated_verdicts_are_not_counted_again() -> None:
    path = capture("accept-overflow-loop.pcap")
    metrics = LiveMetrics(max_ports=32)
    published, pipe = replay(path, on_final=metrics.final)
    updates = [d for d, _ in published if d.get("update")]
    assert updates, "the capture's burst of overflows publishes updates"
    assert sum(rst_counts(metrics).values()) == pipe.rst_count == len(published) - len(updates)


def test_server_ports_beyond_the_limit_fold_into_other() -> None:
    base = a_verdict()
    metrics = LiveMetrics(max_ports=2)
    for port in (443, 8080, 443, 5432, 6379, 8080):
        metrics.final(replace(base, server=Endpoint(base.server.addr, port)))
    label, sender = str(base.label), str(base.sender)
    assert rst_counts(metrics) == {(label, sender, "443"): 2, (label, sender, "8080"): 2,
                                   (label, sender, OTHER_PORT): 2}


def test_identical_copies_of_a_rst_are_not_counted() -> None:
    base = a_verdict()
    metrics = LiveMetrics(max_ports=32)
    metrics.final(base)
    metrics.final(replace(base, frame=base.frame + 1, duplicate_of=base.frame))
    assert sum(rst_counts(metrics).values()) == 1


def test_sync_brings_counters_up_to_the_totals_and_sets_open_flows() -> None:
    metrics = LiveMetrics(max_ports=32)
    metrics.sync(Totals(packets=100, dropped=0, flows_active=7))
    metrics.sync(Totals(packets=250, dropped=3, flows_active=2))
    value = metrics.registry.get_sample_value
    assert value("rstdiag_packets_total") == 250
    assert value("rstdiag_dropped_packets_total") == 3
    assert value("rstdiag_flows_active") == 2


def test_kernel_agreement_is_exported_only_with_kernel_reasons_and_starts_at_zero() -> None:
    without = LiveMetrics(max_ports=32)
    assert without.registry.get_sample_value("rstdiag_kernel_reason_agreement_total",
                                             {"agree": "yes"}) is None
    metrics = LiveMetrics(max_ports=32, kernel_reasons=True)
    value = metrics.registry.get_sample_value
    assert [value("rstdiag_kernel_reason_agreement_total", {"agree": a})
            for a in ("yes", "no", "no_opinion")] == [0, 0, 0]
    metrics.sync(Totals(agree=5, disagree=1, no_opinion=2))
    metrics.sync(Totals(agree=6, disagree=1, no_opinion=2))
    assert [value("rstdiag_kernel_reason_agreement_total", {"agree": a})
            for a in ("yes", "no", "no_opinion")] == [6, 1, 2]


def test_registries_are_private_to_each_session() -> None:
    a, b = LiveMetrics(max_ports=32), LiveMetrics(max_ports=32)
    a.final(a_verdict())
    assert sum(rst_counts(a).values()) == 1 and rst_counts(b) == {}


def test_endpoint_serves_the_metrics_over_http_and_frees_its_port() -> None:
    metrics = LiveMetrics(max_ports=32)
    metrics.final(a_verdict())
    metrics.sync(Totals(packets=42))
    server = metrics.serve("127.0.0.1", 0)
    try:
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(server.url, timeout=5) as response:
            text = response.read().decode()
    finally:
        server.close()
    samples = {s.name: s for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["rstdiag_packets_total"].value == 42
    assert samples["rstdiag_rsts_total"].labels["label"] == "closed-port"
    assert samples["process_resident_memory_bytes"].value > 0  # rstdiag's own footprint
    again = metrics.serve("127.0.0.1", server.port)  # closed: the port can be bound again
    again.close()


def test_prometheus_client_is_imported_only_when_metrics_are_asked_for() -> None:
    probe = ("import sys, rstdiag.cli, rstdiag.live; "
             "print('prometheus_client' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def _scrape(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
        response.read()
        return response.status


def test_slow_clients_cost_no_thread_and_cannot_keep_a_scrape_out() -> None:
    metrics = LiveMetrics(max_ports=32)
    endpoint = MetricsEndpoint(metrics, "127.0.0.1", 0)
    endpoint.start()
    threads = threading.active_count()
    slow = []
    try:
        for _ in range(400):  # connected, never a request: what a slowloris does
            slow.append(socket.create_connection(("127.0.0.1", endpoint.port), timeout=10))
        assert _scrape(endpoint.port) == 200
        assert threading.active_count() == threads
    finally:
        for sock in slow:
            sock.close()
        endpoint.close()


def test_a_client_silent_past_the_timeout_is_dropped() -> None:
    endpoint = MetricsEndpoint(LiveMetrics(max_ports=32), "127.0.0.1", 0, timeout=0.3)
    endpoint.start()
    try:
        with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\n")  # and never the end of the headers
            assert sock.recv(100) == b""  # closed by the endpoint, not by the test's timeout
    finally:
        endpoint.close()


def test_two_hundred_concurrent_scrapes_are_all_answered() -> None:
    endpoint = MetricsEndpoint(LiveMetrics(max_ports=32), "127.0.0.1", 0)
    endpoint.start()
    try:
        with ThreadPoolExecutor(max_workers=200) as pool:
            statuses = list(pool.map(_scrape, [endpoint.port] * 200))
    finally:
        endpoint.close()
    assert statuses == [200] * 200


def test_the_endpoint_answers_only_get_of_metrics() -> None:
    endpoint = MetricsEndpoint(LiveMetrics(max_ports=32), "127.0.0.1", 0)
    endpoint.start()
    try:
        for request, status in ((b"GET /other HTTP/1.0\r\n\r\n", b"404"),
                                (b"POST /metrics HTTP/1.0\r\n\r\n", b"405"),
                                (b"HEAD /metrics HTTP/1.0\r\n\r\n", b"200")):
            with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as sock:
                sock.sendall(request)
                answer = b"".join(iter(lambda s=sock: s.recv(65536), b""))
            assert answer.split()[1] == status
    finally:
        endpoint.close()


def test_its_own_traffic_is_left_out_of_the_capture_filter() -> None:
    local = MetricsEndpoint(LiveMetrics(max_ports=32), "127.0.0.1", 0)
    anywhere = MetricsEndpoint(LiveMetrics(max_ports=32), "0.0.0.0", 0)
    try:
        assert local.own_traffic_filter() == f"host 127.0.0.1 and tcp port {local.port}"
        assert anywhere.own_traffic_filter() == f"tcp port {anywhere.port}"
    finally:
        local.close()
        anywhere.close()
