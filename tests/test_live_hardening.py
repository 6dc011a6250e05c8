"""`rstdiag live` under attack and on a bad day (issue 16): a hostile RST from the network,
a full disk under -w, killed runs and PID namespaces around the tracing instance, privileges
after start, and its own metrics traffic. Real kernels in network namespaces (tests/netlab.py);
root, ip netns, tcpdump and nft needed (skipped otherwise).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netlab import Lab, tracing_unavailable
from test_live import HIDE_CURSOR, RSTDIAG, on_a_terminal

from rstdiag.analysis import analyze_file
from rstdiag.kernel_reasons import TRACEFS

pytestmark = pytest.mark.netns

HOSTILE_PAYLOADS = [b"[/]", b"\x1b]8;;file:///etc/passwd\x07y\x1b]8;;\x07",
                    b"[link=file:///etc/passwd]y[/link]", b"\x1b[2J\x1b[31mred\x00\xe2\x80\xae"]


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def rst_segment(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """A TCP RST+ACK carrying `payload`, checksummed for src -> dst (IPv4)."""
    header = struct.pack("!HHIIBBHHH", sport, dport, 1000, 2000, 5 << 4, 0x14, 0, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack(
        "!BBH", 0, socket.IPPROTO_TCP, len(header) + len(payload))
    csum = _checksum(pseudo + header + payload)
    return header[:16] + struct.pack("!H", csum) + header[18:] + payload


SEND_RSTS = r"""
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
for hexed in sys.argv[2:]:
    sock.sendto(bytes.fromhex(hexed), (sys.argv[1], 0))
"""


def test_a_hostile_rst_from_the_network_neither_stops_live_nor_reaches_the_terminal(
        requires_netns: None) -> None:
    with Lab("hostile") as lab:
        segments = [rst_segment(lab.cli.v4, lab.srv.v4, 40000 + i, 8080, p).hex()
                    for i, p in enumerate(HOSTILE_PAYLOADS)]
        sender = [sys.executable, "-c", SEND_RSTS, lab.srv.v4, *segments]

        def send_later() -> None:
            time.sleep(2.0)
            lab.run(lab.cli.ns, *sender)

        import threading

        thread = threading.Thread(target=send_later)
        thread.start()
        status, text = on_a_terminal(["ip", "netns", "exec", lab.srv.ns, *RSTDIAG, "live",
                                      "-i", "eth0", "--duration", "4"], timeout=60)
        thread.join()
    assert status == 0, text
    assert HIDE_CURSOR in text  # the live view ran, and ran to the end
    assert f"{len(HOSTILE_PAYLOADS)} RSTs in" in text
    for payload in HOSTILE_PAYLOADS:
        if b"\x1b" in payload:
            assert payload.split(b"\x07")[0].decode() not in text
    assert "\x1b]8;;file" not in text and "\x1b[2J" not in text and "\u202e" not in text


FILL_AND_RUN = r"""
import os, shutil, subprocess, sys
mnt, out, *cmd = sys.argv[1:]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt], check=True)
proc = subprocess.run(cmd, capture_output=True, text=True)
shutil.copy(os.path.join(mnt, "full.pcap"), out)
print(json.dumps({"status": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}))
""".replace("import os,", "import json, os,")

TRAFFIC = r"""
import socket, sys, threading, time
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
def serve():
    conn, _ = srv.accept()
    while conn.recv(65536):
        pass
threading.Thread(target=serve, daemon=True).start()
cli = socket.create_connection(srv.getsockname())
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    cli.sendall(b"x" * 8192)
    time.sleep(0.001)
"""


@pytest.mark.parametrize("reasons", [False, True], ids=["pcap", "pcapng-kernel-reasons"])
def test_a_full_disk_under_w_stops_with_one_error_line_the_summary_and_a_readable_file(
        requires_netns: None, tmp_path: Path, reasons: bool) -> None:
    if reasons and tracing_unavailable():
        pytest.skip(f"--kernel-reasons: {tracing_unavailable()}")
    mnt = tmp_path / "full"
    mnt.mkdir()
    out = tmp_path / "copy.pcap"
    ns = f"rd-full-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        traffic = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", TRAFFIC,
                                    "8"])
        try:
            run = subprocess.run(
                ["unshare", "--mount", "--propagation", "private", sys.executable, "-c",
                 FILL_AND_RUN, str(mnt), str(out), "ip", "netns", "exec", ns, *RSTDIAG, "live",
                 "-i", "lo", "-w", str(mnt / "full.pcap"), "--format", "jsonl",
                 "--duration", "20", *(["--kernel-reasons"] if reasons else [])],
                capture_output=True, text=True, timeout=60)
        finally:
            traffic.wait(30)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["status"] == 2
    errors = [line for line in result["stderr"].splitlines() if line.startswith("rstdiag: error")]
    assert len(errors) == 1 and "No space left on device" in errors[0], result["stderr"]
    assert "Traceback" not in result["stderr"]
    summary = json.loads(result["stdout"].splitlines()[-1])
    assert summary["stopped"] == "write-error" and summary["packets"] > 0
    report = analyze_file(str(out))  # cut back to its last whole packet
    assert report.complete and not report.warnings and 0 < report.frames <= summary["packets"]
    assert report.format == ("pcapng" if reasons else "pcap")


def _status_fields(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def test_live_runs_unprivileged_after_start(requires_netns: None) -> None:
    ns = f"rd-priv-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *RSTDIAG, "live", "-i", "lo",
                                 "--format", "jsonl", "--duration", "30", "-Z", "nobody",
                                 "--metrics-port", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            lines = []
            while not any("running as" in line for line in lines):
                line = proc.stderr.readline()
                assert line, "".join(lines)
                lines.append(line)
            status = _status_fields(proc.pid)  # `ip netns exec` execs: this is rstdiag
            threads = [_status_fields(proc.pid) | {"tid": t}
                       for t in os.listdir(f"/proc/{proc.pid}/task")]
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    nobody = str(__import__("pwd").getpwnam("nobody").pw_uid)
    assert status["Uid"].split() == [nobody] * 4
    assert status["CapEff"] == status["CapPrm"] == status["CapBnd"] == "0" * 16
    assert status["NoNewPrivs"] == "1"
    assert len(threads) >= 3  # the capture and metrics threads run as nobody too
    assert all(t["Uid"].split() == [nobody] * 4 for t in threads)
    assert proc.returncode == 130


SCRAPE_AND_RESET = r"""
import socket, struct, sys
for _ in range(50):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    s.recv(100)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
"""


def test_live_does_not_judge_its_own_metrics_traffic(requires_netns: None) -> None:
    ns = f"rd-own-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *RSTDIAG, "live", "-i", "lo",
                                 "--format", "jsonl", "--duration", "6", "--metrics-port",
                                 "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        assert proc.stderr is not None
        port = 0
        while not port:
            line = proc.stderr.readline()
            assert line
            if "metrics on" in line:
                port = int(line.rsplit(":", 1)[1].split("/")[0])
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", SCRAPE_AND_RESET,
                        str(port)], check=True, timeout=60)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["rsts"] == 0 and summary["packets"] == 0, summary


# ------------------------------------------------------------------ tracing instances

needs_tracing = pytest.mark.skipif(tracing_unavailable() is not None,
                                   reason=f"no tcp:tcp_send_reset: {tracing_unavailable()}")


def _start_kernel_reasons(ns: str, *prefix: str) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen([*prefix, "ip", "netns", "exec", ns, *RSTDIAG, "live", "-i", "lo",
                             "--format", "jsonl", "--kernel-reasons", "--duration", "60"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    while True:
        line = proc.stderr.readline()
        assert line, "rstdiag ended before its tracing instance was set up"
        if "kernel reasons from" in line:
            return proc, Path(line.rsplit(" ", 1)[1].strip())


def _wait_gone(path: Path, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return not path.exists()


@pytest.fixture
def lo_namespace(requires_netns: None):  # type: ignore[no-untyped-def]
    ns = f"rd-trace-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    yield ns
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@needs_tracing
def test_sigkill_leaves_no_tracing_instance_behind(lo_namespace: str) -> None:
    proc, instance = _start_kernel_reasons(lo_namespace)
    assert instance.exists() and (instance / "events/tcp/tcp_send_reset/enable").read_text() \
        .strip() == "1"
    proc.kill()
    proc.wait(10)
    assert _wait_gone(instance), "the reaper did not remove the killed run's instance"


def _children(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(c) for c in f.read().split()]
    return out


@needs_tracing
def test_an_instance_whose_owner_is_gone_is_removed_by_the_next_run(lo_namespace: str) -> None:
    proc, instance = _start_kernel_reasons(lo_namespace)
    reapers = _children(proc.pid)
    for pid in [proc.pid, *reapers]:  # owner and reaper killed at once: nothing cleans up
        os.kill(pid, signal.SIGKILL)
    proc.wait(10)
    time.sleep(0.5)
    assert instance.exists()
    again, other = _start_kernel_reasons(lo_namespace)
    try:
        assert not instance.exists() and other.exists()
    finally:
        again.send_signal(signal.SIGINT)
        again.wait(30)
    assert _wait_gone(other)


@needs_tracing
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare")
def test_runs_in_other_pid_namespaces_never_touch_a_live_runs_instance(
        lo_namespace: str) -> None:
    first, instance = _start_kernel_reasons(lo_namespace)
    try:
        runs = [_start_kernel_reasons(lo_namespace, "unshare", "--pid", "--fork")
                for _ in range(2)]
        for _, path in runs:
            assert path != instance and path.exists()
        assert instance.exists()
        assert (instance / "events/tcp/tcp_send_reset/enable").read_text().strip() == "1"
        for proc, path in runs:
            # unshare ignores SIGINT and SIGTERM: rstdiag (PID 1 in there) is its child
            for child in _children(proc.pid):
                os.kill(child, signal.SIGINT)
            proc.wait(30)
            assert _wait_gone(path)
        assert instance.exists()
        assert (instance / "events/tcp/tcp_send_reset/enable").read_text().strip() == "1"
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(30)
    assert _wait_gone(instance)
    assert not any(p.name.startswith("rstdiag-") and p.name == instance.name
                   for p in (TRACEFS / "instances").iterdir())


def test_a_z_user_that_does_not_exist_is_one_error_line_and_status_2(
        lo_namespace: str) -> None:
    out = subprocess.run(["ip", "netns", "exec", lo_namespace, *RSTDIAG, "live", "-i", "lo",
                          "--duration", "1", "-Z", "no-such-user-rstdiag"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if "error" in line]
    assert errors == ["rstdiag: error: -Z no-such-user-rstdiag: no such user (-Z root keeps "
                      "root)"], out.stderr
