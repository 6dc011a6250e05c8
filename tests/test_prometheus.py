"""A real Prometheus server scraping `rstdiag live` while real-socket scenarios run.

One lab (tests/netlab.py): `rstdiag live -i eth0 --no-view --metrics-port 0 --log FILE` in the
client namespace next to tcpdump, and Debian's `prometheus` in the same namespace scraping it
every second over that namespace's own loopback (nothing on the host's network), with
contrib/alerts.yml loaded. The closed-port and accept-overflow scenarios (tests/scenarios.py)
run; then Prometheus's HTTP API must give, by label, sender and port, the RSTs that
`rstdiag read` finds in tcpdump's capture, every packet tcpdump saw, and (with
--kernel-reasons, where tracefs allows) the kernel's agreement with the verdicts of the log.
Needs root, ip netns, tcpdump, nft and prometheus (skipped otherwise).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from livereplay import latest
from netlab import Lab, LabError, Proc, tracing_unavailable
from scenarios import SCENARIOS, Run

from rstdiag.analysis import analyze_file

ROOT = Path(__file__).resolve().parents[1]
RSTDIAG = [shutil.which("rstdiag")] if shutil.which("rstdiag") else [sys.executable, "-m",
                                                                      "rstdiag"]
PROMETHEUS_PORT = 9090  # inside the lab's namespace: its own loopback, free by construction
SCENARIO_NAMES = ("closed-port-v4", "accept-overflow")

# run inside the namespace: one GET of Prometheus's API, the JSON answer on stdout
GET = """
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    sys.stdout.write(r.read().decode())
"""


@dataclass
class Scraped:
    lab: Lab
    ns: str
    live: Proc
    expected: Counter[tuple[str, str, str]]  # rstdiag read of tcpdump's capture
    frames: int  # packets in tcpdump's capture
    log: Path
    kernel: bool  # rstdiag runs with --kernel-reasons

    def api(self, path: str, **params: str) -> dict[str, object]:
        url = f"http://127.0.0.1:{PROMETHEUS_PORT}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        out = self.lab.run(self.ns, sys.executable, "-c", GET, url, timeout=10)
        answer = json.loads(out.stdout)
        assert answer["status"] == "success", answer
        return answer["data"]  # type: ignore[no-any-return]

    def query(self, expr: str) -> list[dict[str, object]]:
        return self.api("/api/v1/query", query=expr)["result"]  # type: ignore[return-value]

    def rsts(self) -> dict[tuple[str, str, str], float]:
        return {(r["metric"]["label"], r["metric"]["sender"], r["metric"]["port"]):  # type: ignore[index]
                float(r["value"][1]) for r in self.query("rstdiag_rsts_total")}  # type: ignore[index]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None  # type: ignore[index]


def prometheus_config(target: str, outdir: Path) -> Path:
    """Scrape every second; JSON is YAML, so no YAML library is needed to write it."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ROOT / "contrib" / "alerts.yml")],
        "scrape_configs": [{"job_name": "rstdiag",
                            "static_configs": [{"targets": [target]}]}],
    }
    path = outdir / "prometheus.yml"
    path.write_text(json.dumps(config, indent=2))
    return path


def wait_for(check, timeout: float):  # type: ignore[no-untyped-def]
    """Poll `check()` until it returns something true; its last value either way."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def ready(lab: Lab, ns: str, prom: Proc) -> bool:
    """Prometheus answers /-/ready (503 while it starts); LabError if it died."""
    if prom.popen.poll() is not None:
        raise LabError(f"prometheus exited: {prom.stderr_log[-5:]}")
    try:
        lab.run(ns, sys.executable, "-c", GET, f"http://127.0.0.1:{PROMETHEUS_PORT}/-/ready",
                timeout=10)
    except LabError:
        return False
    return True


@pytest.fixture(scope="module")
def scraped(requires_netns: None, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Scraped]:
    if shutil.which("prometheus") is None:
        pytest.skip("needs prometheus (Debian package prometheus; tools/run-tests installs it)")
    outdir = tmp_path_factory.mktemp("prometheus")
    with Lab("prometheus") as lab:
        ns = lab.cli.ns
        cap = lab.capture(ns, outdir / "wire.pcap")
        cap.start()
        log = outdir / "rst.jsonl"
        kernel = tracing_unavailable() is None
        live = lab.popen(ns, *RSTDIAG, "live", "-i", "eth0", "--no-view", "--metrics-port",
                         "0", "--metrics-addr", "127.0.0.1", "--log", str(log),
                         *(["--kernel-reasons"] if kernel else []),
                         name="rstdiag live", stdin=False)
        url = live.expect_err("metrics on", timeout=20).rsplit(" ", 1)[1]
        live.expect_err("listening on", timeout=20)
        target = urllib.parse.urlsplit(url).netloc
        prom = lab.popen(ns, "prometheus", f"--config.file={prometheus_config(target, outdir)}",
                         f"--storage.tsdb.path={outdir / 'data'}",
                         f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}",
                         name="prometheus", stdin=False)
        wait_for(lambda: ready(lab, ns, prom), 20)
        run = Run(lab, v6=False)
        for name in SCENARIO_NAMES:  # closed-port first: accept-overflow then listens on 8080
            SCENARIOS[name].body(run)
        cap.stop()
        report = analyze_file(str(cap.path))
        expected = Counter((str(v.label), str(v.sender), str(v.server.port))
                           for v in report.verdicts if v.duplicate_of is None)
        yield Scraped(lab, ns, live, expected, report.frames, log, kernel)


@pytest.mark.netns
def test_prometheus_has_every_rst_by_label_sender_and_port(scraped: Scraped) -> None:
    want = {key: float(n) for key, n in scraped.expected.items()}
    assert ("closed-port", "server", "8080") in want
    assert ("accept-overflow", "server", "8080") in want
    # verdicts are final a few seconds after the RST, then within a scrape interval
    wait_for(lambda: scraped.rsts() == want, 20)
    result = scraped.query("rstdiag_rsts_total")
    print("query rstdiag_rsts_total:", json.dumps(result))  # the record, with pytest -s
    assert scraped.rsts() == want


@pytest.mark.netns
def test_prometheus_sees_every_packet_and_no_drops(scraped: Scraped) -> None:
    packets = wait_for(lambda: scraped.value("rstdiag_packets_total") == scraped.frames, 20)
    assert packets, (scraped.value("rstdiag_packets_total"), scraped.frames)
    assert scraped.value("rstdiag_dropped_packets_total") == 0
    assert scraped.value("rstdiag_flows_active") is not None
    assert scraped.value('up{job="rstdiag"}') == 1


@pytest.mark.netns
def test_alert_rules_evaluate_without_error_on_live_data(scraped: Scraped) -> None:
    def rules() -> list[dict[str, object]]:
        groups = scraped.api("/api/v1/rules")["groups"]
        found = [r for g in groups for r in g["rules"]]  # type: ignore[attr-defined]
        return found if all(r.get("lastEvaluation", "").startswith("20") for r in found) \
            else []

    evaluated = wait_for(rules, 10)
    assert {r["name"] for r in evaluated} == {"RstdiagAcceptQueueOverflow",
                                              "RstdiagKernelDrops", "RstdiagDown"}
    assert all(r["health"] == "ok" for r in evaluated), evaluated


@pytest.mark.netns
def test_dashboard_queries_run_and_show_the_rsts(scraped: Scraped) -> None:
    dashboard = json.loads((ROOT / "contrib" / "grafana-dashboard.json").read_text())
    rst_series = 0
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$instance", ".+")
            result = scraped.query(expr)  # a query Prometheus refuses fails here
            if "rstdiag_rsts_total" in expr and "accept-overflow" not in expr:
                rst_series += len(result)
    assert rst_series > 0


@pytest.mark.netns
def test_prometheus_counts_where_the_kernels_reasons_agree(scraped: Scraped) -> None:
    if not scraped.kernel:
        pytest.skip(f"tcp:tcp_send_reset not readable: {tracing_unavailable()}")

    def with_reason() -> int:
        final = latest([json.loads(line) for line in scraped.log.read_text().splitlines()])
        return sum(1 for v in final.values() if "kernel_reason" in v and "duplicate_of" not in v)

    def agreement() -> dict[str, float]:
        return {r["metric"]["agree"]: float(r["value"][1])  # type: ignore[index]
                for r in scraped.query("rstdiag_kernel_reason_agreement_total")}

    wait_for(lambda: agreement().get("yes") == with_reason() > 0, 20)
    print("query rstdiag_kernel_reason_agreement_total:", agreement())
    assert agreement() == {"yes": with_reason(), "no": 0, "no_opinion": 0}


@pytest.mark.netns
def test_log_holds_the_same_rsts_each_with_the_host(scraped: Scraped) -> None:
    live = scraped.live
    live.popen.send_signal(signal.SIGINT)
    assert live.wait(20) == 130, live.stderr_log
    with pytest.raises(LabError):  # until its output is all read
        while True:
            live.expect("\0", timeout=5)
    lines = [json.loads(line) for line in scraped.log.read_text().splitlines()]
    assert lines and all(d["host"] for d in lines)
    final = latest(lines).values()
    assert Counter((v["label"], v["sender"], v["server"].rsplit(":", 1)[1])  # type: ignore[union-attr]
                   for v in final if "duplicate_of" not in v) == scraped.expected


def test_prometheus_config_written_for_the_test_is_valid(tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("needs promtool (Debian package prometheus)")
    path = prometheus_config("127.0.0.1:9465", tmp_path)
    out = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
