"""`rstdiag live`: the pipeline on replayed captures, its parts, and the real command on real
sockets in network namespaces (tests/netlab.py, tests/scenarios.py).

The netns tests start every scenario at once (threads, one lab each) when the first of them
asks: `rstdiag live -i eth0 --format jsonl` runs in the namespace next to the harness's
tcpdump, and its verdicts are checked against `rstdiag read` of tcpdump's capture, against the
kernel's reasons, and against its own -w file. Need root, ip netns, tcpdump and nft (skipped
otherwise); the kernel-reason checks also need tracefs with tcp:tcp_send_reset.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import pty
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from corpus import public
from hypothesis import given, settings
from hypothesis import strategies as st
from livereplay import latest, replay
from netlab import Lab, LabError, read_segments, tracing_unavailable
from scenarios import SCENARIOS, Run

from rstdiag.analysis import analyze_file
from rstdiag.kernel_reasons import KernelReset, ReasonMatcher, parse_line
from rstdiag.labels import Confidence, Label
from rstdiag.live import JsonlOutput, Status, TableOutput
from rstdiag.livecapture import (
    LiveCaptureError,
    compile_filter,
    filter_expression,
    skip_outgoing_loopback,
)
from rstdiag.reasons import SELECTS, agrees, confirmed

ROOT = Path(__file__).resolve().parents[1]
PCAPS = ROOT / "pcaps"
RSTDIAG = [shutil.which("rstdiag")] if shutil.which("rstdiag") else [sys.executable, "-m",
                                                                      "rstdiag"]


# =============================================================================== replayed

PUBLIC = ROOT.parent / "shared" / "pcaps-public"


def replayable() -> list[Path]:
    """The real-kernel captures of pcaps/ and the public corpus (where present)."""
    paths = sorted(PCAPS.glob("*.pcap")) + sorted(PCAPS.glob("*.pcapng"))
    if PUBLIC.is_dir():
        paths += sorted(p for p in PUBLIC.iterdir()
                        if p.suffix in (".pcap", ".pcapng", ".cap") and p.stat().st_size)
    return paths


@pytest.mark.parametrize("path", replayable(), ids=lambda p: p.name)
def test_live_pipeline_ends_with_the_verdicts_of_read(path: Path) -> None:
    published, pipe = replay(path)
    want = {v.frame: v.to_dict() | {"file": path.name} for v in analyze_file(str(path)).verdicts}
    assert latest([d for d, _ in published]) == want
    assert pipe.rst_count == len(want)
    assert pipe.summary() == dict(Counter(str(v["label"]) for v in want.values()))


def test_every_rst_gets_a_verdict_within_a_second_and_updates_reuse_its_frame() -> None:
    path = PCAPS / "accept-overflow-loop.pcap"
    if not path.exists():
        pytest.skip("pcaps/ not made (tools/make_pcaps.py)")
    published, _ = replay(path)
    rst_ts = {s.frame: s.ts for s in read_segments(path) if s.rst}
    first: dict[int, float] = {}
    for d, clock in published:
        frame = d["frame"]
        assert isinstance(frame, int)
        if frame not in first:
            assert "update" not in d
            first[frame] = clock
        else:
            assert d["update"] is True
    assert set(first) == set(rst_ts)
    assert all(first[f] - rst_ts[f] <= 1.0 for f in first), "a provisional verdict came late"
    updates = Counter(d["frame"] for d, _ in published if d.get("update"))
    assert updates, "the burst of overflows refines earlier verdicts"
    assert max(updates.values()) == 1, "one update per RST, not one per neighbour"
    final = latest([d for d, _ in published])
    assert {v["confidence"] for v in final.values()} == {"high"}


def test_jsonl_output_marks_updates_and_ends_with_a_summary_line(tmp_path: Path) -> None:
    path = PCAPS / "accept-overflow.pcap"
    if not path.exists():
        pytest.skip("pcaps/ not made (tools/make_pcaps.py)")
    published, pipe = replay(path)
    out_path = tmp_path / "out.jsonl"
    with out_path.open("w") as f:
        jsonl = JsonlOutput(f)
        for d, _ in published:
            v = next(v for v in analyze_file(str(path)).verdicts if v.frame == d["frame"])
            jsonl.verdict(v, bool(d.get("update")))
        jsonl.end(None, {"summary": pipe.summary(), "dropped": 0})  # type: ignore[arg-type]
    lines = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert [bool(d.get("update")) for d in lines[:-1]] == [bool(d.get("update"))
                                                          for d, _ in published]
    assert lines[-1] == {"summary": {"accept-overflow": 3}, "dropped": 0}


# =============================================================================== parts

TRACE_LINES = [
    "          <idle>-0       [001] ..s2.  4242.000100: tcp_send_reset: skbaddr=0000 skaddr=0000 "
    "src=198.19.7.1:8080 dest=198.18.7.1:40000 state=TCP_CLOSE reason=TCP_STATE",
    "   python3-123     [000] ..s1.  4242.000200: tcp_send_reset: skbaddr=0000 skaddr=0000 "
    "src=198.19.7.1:8080 dest=0.0.0.0:0 state=TCP_LISTEN reason=INVALID_SYN",
    "   python3-123     [000] ..s1.  4242.000300: tcp_send_reset: skbaddr=0000 skaddr=0000 "
    "src=[2001:db8:7:2::1]:8080 dest=[2001:db8:7:1::1]:40001 state=UNKNOWN reason=NO_SOCKET",
]


def test_trace_lines_parse_into_kernel_resets() -> None:
    a, b, c = (parse_line(line, clock_offset=1000.0) for line in TRACE_LINES)
    assert a == KernelReset(5242.0001, "198.19.7.1", 8080, "198.18.7.1", 40000, "TCP_CLOSE",
                            "TCP_STATE")
    assert a.text == "TCP_STATE in TCP_CLOSE" and not a.listener_reply
    assert b is not None and b.listener_reply and b.text == "INVALID_SYN in TCP_LISTEN"
    assert c is not None and (c.src, c.dst, c.dport) == ("2001:db8:7:2::1", "2001:db8:7:1::1",
                                                        40001)
    assert c.text == "NO_SOCKET"
    assert parse_line("# tracer: nop") is None


def test_matcher_pairs_either_order_listener_replies_and_forgets_the_rest() -> None:
    m = ReasonMatcher()
    m.wire(7, 100.0, "198.19.7.1", 8080, "198.18.7.1", 40000)
    assert m.match(100.1) == []
    event = KernelReset(100.0002, "198.19.7.1", 8080, "198.18.7.1", 40000, "TCP_CLOSE",
                        "TCP_STATE")
    m.events([event])
    assert m.match(100.1) == []  # both halves get a moment to come in
    assert m.match(100.3) == [(7, event)]
    listener = KernelReset(101.0, "198.19.7.1", 8080, "0.0.0.0", 0, "TCP_LISTEN", "INVALID_SYN")
    m.events([listener])  # the event first, the wire RST after it
    m.wire(9, 101.0001, "198.19.7.1", 8080, "198.18.7.1", 40002)
    assert m.match(101.3) == [(9, listener)]
    m.wire(11, 102.0, "198.18.7.1", 40003, "198.19.7.1", 8080)  # another host's RST
    m.events([KernelReset(102.0, "10.0.0.1", 1, "10.0.0.2", 2, "", "NO_SOCKET")])
    assert m.match(102.3) == []
    assert m.match(105.0) == [] and m.unmatched_wire == 1


def test_matcher_keeps_bursts_in_order_and_skips_resets_a_firewall_dropped() -> None:
    m = ReasonMatcher()
    flow = ("198.19.7.1", 8080, "198.18.7.1", 40000)
    # the kernel's RST at 10.0 never reached the wire (dropped), its next at 10.35 did
    dropped = KernelReset(10.0, *flow, "TCP_CLOSE", "TCP_STATE")
    sent = KernelReset(10.35, *flow, "TCP_LISTEN", "TCP_FLAGS")
    m.events([dropped, sent])
    m.wire(9, 10.35003, *flow)
    assert m.match(11.0) == [(9, sent)]
    # three RSTs microseconds apart, each event a little before its packet
    burst = [KernelReset(20.0 + i * 1e-5, *flow, "", r)
             for i, r in enumerate(("TCP_TIMEWAIT_SOCKET", "TCP_FLAGS", "NO_SOCKET"))]
    m.events(burst)
    for i, frame in enumerate((7, 9, 11)):
        m.wire(frame, 20.0 + i * 1e-5 + 2.5e-5, *flow)
    assert m.match(21.0) == [(7, burst[0]), (9, burst[1]), (11, burst[2])]
    assert m.flush() == [] and m.unmatched_wire == 0


def _wire_verdict(label: Label, confidence: Confidence = Confidence.MEDIUM):  # type: ignore[no-untyped-def]
    from rstdiag.labels import Endpoint, Sender, Verdict

    return Verdict(5, 100.0, "10.0.0.2", 80, "10.0.0.1", 40000, "R.",
                   Endpoint("10.0.0.1", 40000), Endpoint("10.0.0.2", 80), Sender.SERVER, label,
                   confidence, "RST+ACK at the server's next sequence number")


@pytest.mark.parametrize(("reason", "wire", "label"), [
    # the table of issue 13 / causes.md: the reason picks among what the wire allows
    ("TCP_ABORT_ON_CLOSE", Label.LINGER_ABORT, Label.UNREAD_DATA),
    ("TCP_ABORT_ON_CLOSE", Label.UNREAD_DATA, Label.UNREAD_DATA),
    ("TCP_STATE", Label.UNREAD_DATA, Label.LINGER_ABORT),
    ("TCP_STATE", Label.LINGER_ABORT, Label.LINGER_ABORT),
    ("TCP_ABORT_ON_DATA", Label.DATA_AFTER_CLOSE, Label.DATA_AFTER_CLOSE),
    ("TCP_TIMEWAIT_SOCKET", Label.DATA_AFTER_CLOSE, Label.DATA_AFTER_CLOSE),
    ("TCP_KEEPALIVE_TIMEOUT", Label.KEEPALIVE_TIMEOUT, Label.KEEPALIVE_TIMEOUT),
    ("INVALID_SYN", Label.ACCEPT_OVERFLOW, Label.ACCEPT_OVERFLOW),
    ("TCP_FLAGS", Label.ACCEPT_OVERFLOW, Label.ACCEPT_OVERFLOW),
    # NO_SOCKET: the flow's history decides among the labels it allows
    ("NO_SOCKET", Label.CLOSED_PORT, Label.CLOSED_PORT),
    ("NO_SOCKET", Label.HALF_OPEN, Label.HALF_OPEN),
    ("NO_SOCKET", Label.DATA_AFTER_CLOSE, Label.DATA_AFTER_CLOSE),
    ("NO_SOCKET", Label.FOLLOW_UP, Label.FOLLOW_UP),
])
def test_the_kernels_reason_selects_the_label_at_high_confidence_naming_itself(
        reason: str, wire: Label, label: Label) -> None:
    verdict, agreement = confirmed(_wire_verdict(wire, Confidence.LOW), reason, f"{reason} in X")
    assert agreement is True
    assert (verdict.label, verdict.confidence) == (label, Confidence.HIGH)
    assert f"{reason} in X" in verdict.evidence and verdict.kernel_reason == f"{reason} in X"


@pytest.mark.parametrize(("reason", "wire"), [
    ("TCP_STATE", Label.CLOSED_PORT), ("NO_SOCKET", Label.LINGER_ABORT),
    ("TCP_ABORT_ON_CLOSE", Label.HALF_OPEN), ("INVALID_SYN", Label.DATA_AFTER_CLOSE),
    ("TCP_KEEPALIVE_TIMEOUT", Label.UNREAD_DATA),
])
def test_a_reason_that_excludes_the_wires_label_is_a_disagreement_shown_in_the_evidence(
        reason: str, wire: Label) -> None:
    verdict, agreement = confirmed(_wire_verdict(wire), reason, reason)
    assert agreement is False and not agrees(reason, _wire_verdict(wire))
    assert (verdict.label, verdict.confidence) == (wire, Confidence.MEDIUM)
    assert f"kernel's reason {reason} excludes {wire}" in verdict.evidence


def test_a_reason_that_names_no_label_is_only_shown() -> None:
    verdict, agreement = confirmed(_wire_verdict(Label.HALF_OPEN), "NOT_SPECIFIED", "NOT_SPECIFIED")
    assert agreement is None and agrees("NOT_SPECIFIED", verdict) is None
    assert verdict == replace(_wire_verdict(Label.HALF_OPEN), kernel_reason="NOT_SPECIFIED")


needs_tcpdump = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")


@needs_tcpdump
def test_filter_is_rstdiags_tcp_and_the_users_expression_compiled_by_tcpdump() -> None:
    assert filter_expression(None) == "tcp"
    assert filter_expression(" port 80 ") == "tcp and (port 80)"
    program = compile_filter("tcp", cooked=False, snaplen=384)
    assert program[-2:] == [(6, 0, 0, 384), (6, 0, 0, 0)]  # accept: snaplen bytes; reject
    raw = compile_filter("tcp and (port 80)", cooked=True, snaplen=384)
    assert raw != compile_filter("tcp and (port 80)", cooked=False, snaplen=384)
    with pytest.raises(LiveCaptureError, match=r"bad filter 'tcp and \(port 80 and\)': .*syntax"):
        compile_filter("tcp and (port 80 and)", cooked=False, snaplen=384)
    lo = skip_outgoing_loopback(program, None)
    assert lo[:3] == [(0x20, 0, 0, 0xFFFFF004), (0x15, 0, 1, 4), (6, 0, 0, 0)]
    assert lo[3:] == program
    anyif = skip_outgoing_loopback(program, 1)
    assert anyif[:2] == [(0x20, 0, 0, 0xFFFFF008), (0x15, 0, 3, 1)] and anyif[5:] == program


# =============================================================================== the command


def cli(*args: str, prefix: tuple[str, ...] = (), timeout: float = 30
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, *RSTDIAG, *args], capture_output=True, text=True,
                          timeout=timeout)


def one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("rstdiag: error: "), lines[0]
    assert "Traceback" not in out.stderr
    return lines[0]


def test_no_such_interface_is_one_error_line_and_status_2() -> None:
    out = cli("live", "-i", "rd-nosuch0", "--duration", "1")
    assert out.returncode == 2
    assert "no such interface 'rd-nosuch0'" in one_error_line(out)
    assert out.stdout == ""


@needs_tcpdump
def test_bad_filter_is_one_error_line_with_tcpdumps_reason_and_status_2() -> None:
    out = cli("live", "-i", "lo", "-f", "port 80 and", "--duration", "1")
    assert out.returncode == 2
    line = one_error_line(out)
    assert "bad filter 'tcp and (port 80 and)'" in line and "syntax error" in line


@needs_tcpdump
def test_capture_without_privilege_says_how_to_get_it() -> None:
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv to drop CAP_NET_RAW")
        prefix: tuple[str, ...] = ("setpriv", "--bounding-set", "-net_raw,-net_admin")
    else:
        prefix = ()
    out = cli("live", "-i", "lo", "--duration", "1", prefix=prefix)
    assert out.returncode == 2
    assert one_error_line(out) == (
        "rstdiag: error: capture needs root or CAP_NET_RAW: run with sudo or setcap "
        "cap_net_raw,cap_net_admin+eip $(which python3)")


def test_metrics_port_in_use_is_one_error_line_and_status_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = cli("live", "-i", "lo", "--metrics-addr", "127.0.0.1", "--metrics-port", str(port),
                  "--duration", "1")
    assert out.returncode == 2
    assert one_error_line(out) == (f"rstdiag: error: --metrics-port: cannot serve metrics on "
                                   f"127.0.0.1:{port} (Address already in use)")
    assert out.stdout == ""


def test_metrics_address_that_is_not_this_hosts_is_one_error_line_and_status_2() -> None:
    out = cli("live", "-i", "lo", "--metrics-addr", "192.0.2.1", "--metrics-port", "9465",
              "--duration", "1")
    assert out.returncode == 2
    assert one_error_line(out) == ("rstdiag: error: --metrics-port: cannot serve metrics on "
                                   "192.0.2.1:9465 (Cannot assign requested address)")


def test_unwritable_log_is_one_error_line_and_status_2(tmp_path: Path) -> None:
    log = tmp_path / "no-such-dir" / "rst.jsonl"
    out = cli("live", "-i", "lo", "--log", str(log), "--duration", "1")
    assert out.returncode == 2
    assert one_error_line(out) == (f"rstdiag: error: --log {log}: cannot write the log "
                                   "(No such file or directory)")
    assert not log.parent.exists()


@pytest.mark.parametrize(("option", "value", "needs"), [
    ("--metrics-addr", "127.0.0.1", "--metrics-port"),
    ("--metrics-max-ports", "8", "--metrics-port"),
    ("--log-max-bytes", "1M", "--log"),
    ("--log-backups", "3", "--log"),
])
def test_metrics_and_log_settings_without_their_option_are_a_usage_error(
        option: str, value: str, needs: str) -> None:
    out = cli("live", "-i", "lo", option, value, "--duration", "1")
    assert out.returncode == 2
    assert f"{option} goes with {needs}" in out.stderr and "Traceback" not in out.stderr


def test_a_log_size_that_is_not_one_is_a_usage_error(tmp_path: Path) -> None:
    out = cli("live", "-i", "lo", "--log", str(tmp_path / "rst.jsonl"), "--log-max-bytes",
              "lots", "--duration", "1")
    assert out.returncode == 2
    assert "'lots' is not a size" in out.stderr and "Traceback" not in out.stderr


# =============================================================================== real sockets

netns = pytest.mark.netns


@dataclass
class LiveRun:
    """One scenario with `rstdiag live` capturing next to the harness's tcpdump."""

    name: str
    pcap: Path  # tcpdump's capture of the same interface
    objects: list[dict[str, object]]  # rstdiag's stdout, parsed (jsonl) or empty (table)
    stdout: list[str]
    stderr: list[str]
    status: int
    write: Path | None = None
    kernel: bool = False
    client: str = ""
    server: str = ""
    forged_from: str | None = None
    seconds: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, object]:
        return next(d for d in reversed(self.objects) if "summary" in d)

    @property
    def verdicts(self) -> dict[int, dict[str, object]]:
        return latest(self.objects)


# name -> how rstdiag live runs: stop by SIGINT (or "signal") unless a duration is given; the
# five scenarios of issue 13 save their packets (-w: pcapng with the kernel's reasons)
PLAN: dict[str, dict[str, object]] = {
    "closed-port-v4": {"duration": 5.0},
    "closed-port-v6": {},
    "linger-abort": {"write": True},
    "data-after-close": {"write": True, "signal": signal.SIGTERM},
    "half-open": {},
    "accept-overflow": {"write": True},
    "unread-data": {"write": True},
    "follow-up": {},
    "keepalive-timeout": {"write": True},
    "injected": {},
    "client-abort-probe": {"format": "table", "write": True},
}


def run_live_scenario(name: str, outdir: Path, *, kernel: bool, duration: float | None = None,
                      write: bool = False, fmt: str = "jsonl", extra: tuple[str, ...] = (),
                      stop: signal.Signals = signal.SIGINT) -> LiveRun:
    sc = SCENARIOS[name]
    started = time.monotonic()
    with Lab(name) as lab:
        run = Run(lab, sc.v6)
        ns = {"cli": lab.cli.ns, "srv": lab.srv.ns}[sc.captures[0][1]]
        cap = lab.capture(ns, outdir / f"{name}.pcap")
        cap.start()
        args = ["live", "-i", "eth0", "--format", fmt]
        write_path = outdir / f"{name}-live.pcap" if write else None
        if write_path is not None:
            args += ["-w", str(write_path)]
        if kernel:
            args.append("--kernel-reasons")
        if duration:
            args += ["--duration", str(duration)]
        args += extra
        live = lab.popen(ns, *RSTDIAG, *args, name=f"rstdiag live {name}", stdin=False)
        live.expect_err("listening on", timeout=20)
        try:
            sc.body(run)
        finally:
            cap.stop()
        if duration:
            status = live.wait(duration + 20)
        else:
            time.sleep(0.3)
            live.popen.send_signal(stop)
            status = live.wait(20)
        with contextlib.suppress(LabError):  # until the pump has read everything
            while True:
                live.expect("\0", timeout=10)
        objects = [json.loads(line) for line in live.stdout_log
                   if fmt == "jsonl" and line.startswith("{")]
        return LiveRun(name, cap.path, objects, list(live.stdout_log), list(live.stderr_log),
                       status, write_path, kernel, run.client, run.server,
                       run.client if sc.forged else None, time.monotonic() - started)


def run_with_retry(name: str, outdir: Path, kernel: bool) -> LiveRun:
    plan = PLAN[name]
    for attempt in (1, 2):
        try:
            return run_live_scenario(name, outdir, kernel=kernel,
                                     duration=plan.get("duration"),  # type: ignore[arg-type]
                                     write=bool(plan.get("write")),
                                     fmt=str(plan.get("format", "jsonl")),
                                     stop=plan.get("signal", signal.SIGINT))  # type: ignore
        except LabError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class LiveRuns:
    def __init__(self, futures: dict[str, Future[LiveRun]], kernel: bool) -> None:
        self.futures = futures
        self.kernel = kernel

    def __getitem__(self, name: str) -> LiveRun:
        return self.futures[name].result(timeout=180)


@pytest.fixture(scope="module")
def live_runs(requires_netns: None, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[LiveRuns]:
    outdir = tmp_path_factory.mktemp("live")
    kernel = tracing_unavailable() is None
    pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="live")
    slow_first = sorted(PLAN, key=lambda n: n not in ("keepalive-timeout", "closed-port-v4"))
    futures = {name: pool.submit(run_with_retry, name, outdir, kernel) for name in slow_first}
    pool.shutdown(wait=False)
    try:
        yield LiveRuns(futures, kernel)
    finally:
        for future in futures.values():
            future.exception(timeout=180)


def four_tuple_labels(verdicts: list[dict[str, object]]) -> Counter[tuple[object, ...]]:
    return Counter((v["src"], v["sport"], v["dst"], v["dport"], v["label"]) for v in verdicts)


JSONL_RUNS = [n for n, p in PLAN.items() if p.get("format", "jsonl") == "jsonl"]


@netns
@pytest.mark.parametrize("name", JSONL_RUNS)
def test_live_verdicts_are_those_of_read_on_tcpdumps_capture(live_runs: LiveRuns,
                                                             name: str) -> None:
    r = live_runs[name]
    assert r.status == (0 if PLAN[name].get("duration") else 130), r.stderr
    live = list(r.verdicts.values())
    assert live, f"rstdiag live saw no RST: {r.stderr}"
    read = [v.to_dict() for v in analyze_file(str(r.pcap)).verdicts]
    assert four_tuple_labels(live) == four_tuple_labels(read)
    assert r.summary["summary"] == dict(Counter(str(v["label"]) for v in live))
    assert r.summary["dropped"] == 0 and r.summary["complete"] is True
    assert r.summary["stopped"] == ("duration" if PLAN[name].get("duration") else "interrupted")
    first = {}
    for d in r.objects:
        if "frame" in d:
            assert ("update" in d) == (d["frame"] in first), "an update before its verdict"
            first.setdefault(d["frame"], d)


@netns
def test_live_sees_each_scenarios_own_label(live_runs: LiveRuns) -> None:
    want = {"closed-port-v4": "closed-port", "closed-port-v6": "closed-port",
            "linger-abort": "linger-abort", "data-after-close": "data-after-close",
            "half-open": "half-open", "accept-overflow": "accept-overflow",
            "unread-data": "unread-data", "keepalive-timeout": "keepalive-timeout",
            "injected": "injected"}
    for name, label in want.items():
        labels = {v["label"] for v in live_runs[name].verdicts.values()}
        assert label in labels, f"{name}: {labels}"


# what the kernel says for the scenario's own RST (tests/scenarios.py, observed on 6.18)
KERNEL_REASON = {"closed-port-v4": "NO_SOCKET", "closed-port-v6": "NO_SOCKET",
                 "linger-abort": "TCP_STATE", "data-after-close": "TCP_TIMEWAIT_SOCKET",
                 "unread-data": "TCP_ABORT_ON_CLOSE", "keepalive-timeout": "TCP_KEEPALIVE_TIMEOUT",
                 "accept-overflow": "INVALID_SYN"}


@netns
@pytest.mark.parametrize("name", JSONL_RUNS)
def test_kernel_reasons_agree_with_live_verdicts(live_runs: LiveRuns, name: str) -> None:
    if not live_runs.kernel:
        pytest.skip(f"tcp:tcp_send_reset not readable: {tracing_unavailable()}")
    r = live_runs[name]
    counts = r.summary["kernel_reasons"]
    assert isinstance(counts, dict)
    assert counts["disagree"] == 0, counts["disagreements"]
    with_reason = [v for v in r.verdicts.values() if "kernel_reason" in v]
    assert counts["agree"] == len([v for v in with_reason if "duplicate_of" not in v]) >= 1
    for v in with_reason:
        reason = str(v["kernel_reason"]).split()[0]
        assert agrees(reason, _verdict(v)), v
        if reason in SELECTS:  # the reason decided: high confidence, and it says so
            assert v["confidence"] == "high" and str(v["kernel_reason"]) in str(v["evidence"])
    if name in KERNEL_REASON:
        assert KERNEL_REASON[name] in {str(v["kernel_reason"]).split()[0] for v in with_reason}
    if r.forged_from is not None:  # the path's forgeries: no kernel sent them
        forged = [v for v in r.verdicts.values() if v["src"] == r.forged_from]
        assert forged and all("kernel_reason" not in v for v in forged)
    instance = next(line.rsplit(" ", 1)[1] for line in r.stderr if "kernel reasons from" in line)
    assert not Path(instance).exists(), "the tracing instance is left behind"


# the label the kernel's reason selects for the scenario's own RST (issue 13's table)
KERNEL_LABEL = {"linger-abort": ("TCP_STATE", "linger-abort"),
                "unread-data": ("TCP_ABORT_ON_CLOSE", "unread-data"),
                "data-after-close": ("TCP_TIMEWAIT_SOCKET", "data-after-close"),
                "keepalive-timeout": ("TCP_KEEPALIVE_TIMEOUT", "keepalive-timeout"),
                "accept-overflow": ("INVALID_SYN", "accept-overflow"),
                "closed-port-v4": ("NO_SOCKET", "closed-port")}


@netns
@pytest.mark.parametrize("name", sorted(KERNEL_LABEL))
def test_live_labels_each_rst_this_host_sends_as_the_kernels_reason_says(
        live_runs: LiveRuns, name: str) -> None:
    if not live_runs.kernel:
        pytest.skip(f"tcp:tcp_send_reset not readable: {tracing_unavailable()}")
    reason, label = KERNEL_LABEL[name]
    decided = [v for v in live_runs[name].verdicts.values()
               if str(v.get("kernel_reason", "")).split(" ")[0] == reason]
    assert decided, live_runs[name].verdicts
    assert {v["label"] for v in decided} == {label}
    assert {v["confidence"] for v in decided} == {"high"}


# issue 13's five: the kernel's reason for the scenario's own RST, and the label it selects
SAVED = {name: KERNEL_LABEL[name] for name in ("linger-abort", "unread-data",
                                               "data-after-close", "keepalive-timeout",
                                               "accept-overflow")}
# what `read` of the -w file must give as live gave it, for every RST
SAME = ("label", "confidence", "sender", "kernel_reason", "alternatives", "src", "sport",
        "dst", "dport", "flags", "duplicate_of")


def _saved_run(live_runs: LiveRuns, name: str) -> LiveRun:
    if not live_runs.kernel:
        pytest.skip(f"tcp:tcp_send_reset not readable: {tracing_unavailable()}")
    r = live_runs[name]
    assert r.write is not None and r.status == 130, r.stderr
    return r


@netns
@pytest.mark.parametrize("name", sorted(SAVED))
def test_read_of_the_w_file_gives_the_kernel_confirmed_verdicts_that_live_gave(
        live_runs: LiveRuns, name: str) -> None:
    r = _saved_run(live_runs, name)
    out = cli("read", "--format", "json", str(r.write))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    read = {v["frame"]: v for v in doc["rsts"]}
    assert {f: {k: v.get(k) for k in SAME} for f, v in read.items()} == \
        {f: {k: v.get(k) for k in SAME} for f, v in r.verdicts.items()}
    reason, label = SAVED[name]
    decided = [v for v in read.values() if str(v.get("kernel_reason", "")).split()[0] == reason]
    assert decided and {v["label"] for v in decided} == {label}
    assert all(v["confidence"] == "high" and f"kernel's reason {v['kernel_reason']}" in
               v["evidence"] for v in decided)
    [entry] = doc["files"]
    assert entry["format"] == "pcapng"
    assert entry["kernel_reasons"] == r.summary["kernel_reasons"]


@netns
@pytest.mark.parametrize("name", sorted(SAVED))
def test_wireshark_shows_each_rsts_kernel_reason_as_its_packet_comment(
        live_runs: LiveRuns, name: str) -> None:
    if not shutil.which("tshark"):
        pytest.skip("needs tshark")
    r = _saved_run(live_runs, name)
    out = subprocess.run(["tshark", "-r", str(r.write), "-Y", "frame.comment", "-T", "fields",
                          "-e", "frame.number", "-e", "frame.comment"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    comments = {int(n): text.rstrip() for n, text in
                (line.split("\t", 1) for line in out.stdout.splitlines())}
    rsts = {s.frame for s in read_segments(r.write) if s.rst}
    assert set(comments) == rsts  # every RST, and only RSTs
    none = "rstdiag kernel reason: none (no tcp_send_reset event matched this RST)"
    assert comments == {f: f"rstdiag kernel reason: {v['kernel_reason']}"
                        if "kernel_reason" in v else none for f, v in r.verdicts.items()}


@netns
@pytest.mark.parametrize("fmt", ["table", "jsonl", "csv"])
def test_every_read_format_of_the_w_file_gives_the_kernels_label(live_runs: LiveRuns,
                                                                 fmt: str) -> None:
    r = _saved_run(live_runs, "unread-data")
    reason, label = SAVED["unread-data"]
    out = cli("read", "--format", fmt, str(r.write))
    assert out.returncode == 0, out.stderr
    live = next(v for v in r.verdicts.values()
                if str(v.get("kernel_reason", "")).startswith(reason))
    if fmt == "table":
        k = r.summary["kernel_reasons"]
        assert isinstance(k, dict)
        assert f"kernel reasons: {k['agree']} agree, 0 disagree" in out.stdout
        assert label in out.stdout
        return
    rows = [json.loads(line) for line in out.stdout.splitlines()] if fmt == "jsonl" else \
        list(csv.DictReader(io.StringIO(out.stdout)))
    row = next(v for v in rows if int(v["frame"]) == live["frame"])
    assert (row["label"], row["confidence"], row["evidence"]) == (
        label, "high", live["evidence"])
    assert f"kernel's reason {live['kernel_reason']}" in row["evidence"]


def _verdict(d: dict[str, object]):  # type: ignore[no-untyped-def]
    from rstdiag.labels import Endpoint, Sender, Verdict

    return Verdict(0, 0.0, "", 0, "", 0, "", Endpoint("", 0), Endpoint("", 0),
                   Sender(d["sender"]), Label(d["label"]), Confidence(d["confidence"]), "")


@netns
def test_sigint_leaves_a_complete_capture_whose_frames_the_verdicts_name(
        live_runs: LiveRuns) -> None:
    r = live_runs["linger-abort"]
    assert r.status == 130 and r.write is not None
    summary = r.summary
    assert summary["stopped"] == "interrupted" and summary["file"] == str(r.write)
    assert {v["file"] for v in r.verdicts.values()} == {str(r.write)}
    packets = summary["packets"]
    assert isinstance(packets, int) and packets > 0
    report = analyze_file(str(r.write))
    assert report.frames == packets and report.complete and not report.warnings
    # the frame numbers of the live verdicts are those of the -w file
    assert {v.frame: str(v.label) for v in report.verdicts} == {
        f: v["label"] for f, v in r.verdicts.items()}
    segments = {s.frame: s for s in read_segments(r.write)}
    assert all(segments[f].rst for f in r.verdicts)
    if shutil.which("tshark"):
        out = subprocess.run(["tshark", "-r", str(r.write), "-T", "fields", "-e",
                              "frame.number"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert len(out.stdout.split()) == packets


@netns
def test_table_output_off_a_terminal_ends_with_the_summary(live_runs: LiveRuns) -> None:
    r = live_runs["client-abort-probe"]
    assert r.status == 130
    text = "\n".join(r.stdout)
    assert "client-abort" in text
    assert any(" RSTs in " in line and " frames " in line for line in r.stdout), text
    assert r.write is not None and analyze_file(str(r.write)).frames > 0


@netns
def test_duration_ends_the_capture_by_itself(live_runs: LiveRuns) -> None:
    r = live_runs["closed-port-v4"]
    assert r.status == 0
    assert r.summary["stopped"] == "duration"
    assert 5.0 <= float(r.summary["seconds"]) < 8.0  # type: ignore[arg-type]


@netns
def test_interface_down_is_one_error_line_and_status_2(requires_netns: None) -> None:
    ns = f"rd-live-down-{os.getpid()}-{threading.get_ident() % 1000}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:  # a new namespace's lo is down
        out = cli("live", "-i", "lo", "--duration", "1", prefix=("ip", "netns", "exec", ns))
        assert out.returncode == 2
        assert "interface lo is down" in one_error_line(out)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@netns
@netns
def test_the_live_views_filters_show_only_the_rsts_they_name(
        requires_netns: None, tmp_path: Path) -> None:
    """`live --cause follow-up`: the view shows the follow-up RSTs of the scenario, exactly
    those `read` of tcpdump's capture labels so; the summary still counts every RST."""
    r = run_live_scenario("follow-up", tmp_path, kernel=False, extra=("--cause", "follow-up"))
    assert r.status == 130, r.stderr
    shown = list(r.verdicts.values())
    read = [v.to_dict() for v in analyze_file(str(r.pcap)).verdicts]
    wanted = [v for v in read if v["label"] == "follow-up"]
    assert shown and four_tuple_labels(shown) == four_tuple_labels(wanted)
    assert sum(r.summary["summary"].values()) == len(read) > len(wanted)


def test_live_jsonl_names_the_host_in_every_verdict_and_the_summary(live_runs: LiveRuns) -> None:
    r = live_runs["linger-abort"]
    assert r.objects and {d["host"] for d in r.objects} == {socket.gethostname()}


def on_a_terminal(args: list[str], timeout: float = 30) -> tuple[int, str]:
    """Run with stdout on a pseudo-terminal (as in an interactive shell): status, output."""
    main, sub = pty.openpty()
    proc = subprocess.Popen(args, stdout=sub, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(sub)
    chunks = []
    try:
        while True:
            try:
                data = os.read(main, 65536)
            except OSError:  # EIO: the other end closed
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(main)
    proc.wait(timeout)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


HIDE_CURSOR = "\x1b[?25l"  # rich's live view hides the cursor while it redraws


@netns
@pytest.mark.parametrize(("flags", "view"), [((), True), (("--no-view",), False)])
def test_no_view_keeps_a_terminal_free_of_the_live_view(requires_netns: None,
                                                        flags: tuple[str, ...],
                                                        view: bool) -> None:
    ns = f"rd-live-tty-{os.getpid()}-{threading.get_ident() % 1000}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        status, text = on_a_terminal(["ip", "netns", "exec", ns, *RSTDIAG, "live", "-i", "lo",
                                      "--duration", "1.5", *flags])
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    assert status == 0, text
    assert (HIDE_CURSOR in text) is view
    assert "0 RSTs in 0 TCP flows" in text  # the summary at the end, either way


def test_timeline_points_are_the_final_verdicts_at_their_own_times() -> None:
    """What the closing timeline draws: every RST once, at its time (not its whole second,
    so that its buckets are those of `read`), under its final label."""
    out, pipe = replay(public("censorship-detection__tripwire-1597963966.pcap"))
    final = latest([d for d, _ in out])
    expected = Counter((round(float(d["ts"]), 6), Label(str(d["label"]))) for d in final.values())
    assert Counter({(round(ts, 6), label): n for (ts, label), n in pipe.points.items()}) == \
        expected


def test_table_output_ends_with_the_rst_timeline_under_the_summary() -> None:
    out = io.StringIO()
    table = TableOutput(out, color=False, interactive=False, kernel_reasons=False)
    status = Status("eth0", packets=50, rsts=3, counts={"closed-port": 2, "half-open": 1},
                    timeline=[(1000.0, Label.CLOSED_PORT, 2), (1090.0, Label.HALF_OPEN, 1)],
                    first_ts=995.0, last_ts=1100.0)
    table.end(status, {})
    lines = out.getvalue().splitlines()
    summary = next(i for i, line in enumerate(lines) if "3 RSTs in" in line)
    rows = [line for line in lines[summary:] if "█" in line]
    assert [row.split()[:2] for row in rows] == [["all", "3"], ["closed-port", "2"],
                                                 ["half-open", "1"]]
    assert "peak 00:16:39, 2 RSTs" in rows[1]


@settings(max_examples=100, deadline=None)
@given(evidence=st.text(), reason=st.text(), addr=st.text(max_size=40))
def test_the_live_view_shows_capture_text_as_data_never_markup_or_escapes(
        evidence: str, reason: str, addr: str) -> None:
    """Whatever a capture puts into a verdict (a RST's payload in the evidence, addresses,
    the kernel's reason), the table view neither fails nor passes an escape sequence on."""
    from rstdiag.labels import Endpoint, Sender, Verdict

    v = Verdict(7, 1e9, addr, 80, "fe80::1", 40000, "R.", Endpoint("fe80::1", 40000),
                Endpoint(addr, 80), Sender.SERVER, Label.HALF_OPEN, Confidence.LOW, evidence,
                kernel_reason=reason)
    out = io.StringIO()
    table = TableOutput(out, color=False, interactive=False, kernel_reasons=True)
    table.verdict(v, False)
    status = Status(addr, packets=1, rsts=1, counts={"half-open": 1},
                    timeline=[(1e9, Label.HALF_OPEN, 1)], first_ts=1e9, last_ts=1e9)
    table.console.print(table._render(status))
    table.end(status, {})
    text = out.getvalue()
    assert "\x1b" not in text and "\x9b" not in text and "\x00" not in text


def test_the_live_view_prints_markup_in_a_rsts_text_and_ipv6_addresses_literally() -> None:
    from rstdiag.labels import Endpoint, Sender, Verdict

    evidence = "RST carries '[/] [link=file:///etc/passwd]y[/link] \x1b]8;;x\x07'"
    v = Verdict(7, 1e9, "fe80::2", 80, "fe80::1", 40000, "R.", Endpoint("fe80::1", 40000),
                Endpoint("fe80::2", 80), Sender.SERVER, Label.HALF_OPEN, Confidence.LOW,
                evidence)
    out = io.StringIO()
    table = TableOutput(out, color=False, interactive=False, kernel_reasons=False)
    table.verdict(v, False)
    table.end(Status("eth0", rsts=1, counts={"half-open": 1}), {})
    text = out.getvalue()
    assert "[fe80::1]:40000 -> [fe80::2]:80" in text
    assert "[/] [link=file:///etc/passwd]y[/link] \\x1b]8;;x\\x07" in text
