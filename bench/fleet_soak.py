#!/usr/bin/env python3
"""Long run of `rstdiag live` as a fleet host runs it: memory flat, the log rotated (root).

    python bench/fleet_soak.py                          # 150 s, 300 connections/s
    python bench/fleet_soak.py --seconds 600 --rate 500

In a network namespace of its own (created here, removed at the end; nothing on the host's
network), `rstdiag live -i lo --no-view --metrics-port 0 --log FILE --log-max-bytes 256K
--log-backups 3` runs while a generator makes real TCP traffic on that namespace's loopback,
for a bounded time: requests answered and closed normally, connections the server aborts with
SO_LINGER {1,0} right after reading the request (on the wire: unread-data, low confidence), and
SYNs to 200 closed ports (closed-port; more ports than the metrics keep series for, so most
fold into port="other"). Every 10 s: rstdiag's resident
memory (/proc/PID/status) and what its metrics endpoint says. At the end: the log files and
their sizes, and whether every line of them is JSON with a host.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GENERATOR = r"""
import socket, struct, sys, threading, time
rate, seconds = float(sys.argv[1]), float(sys.argv[2])

def serve(port, abort):
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(512)
    while True:
        conn, _ = lsock.accept()
        try:
            conn.recv(100)
            if abort:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nok")
        except OSError:
            pass
        conn.close()

for port, abort in ((8080, False), (8443, True)):
    threading.Thread(target=serve, args=(port, abort), daemon=True).start()
time.sleep(0.2)
print("READY", flush=True)
counts = {"ok": 0, "aborted": 0, "refused": 0}
start = time.monotonic()
i = 0
while time.monotonic() - start < seconds:
    i += 1
    kind = i % 10
    port = 8443 if kind < 2 else 20000 + i % 200 if kind < 4 else 8080
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        s.recv(100)
        counts["aborted" if port == 8443 else "ok"] += 1
    except ConnectionRefusedError:
        counts["refused"] += 1
    except OSError:
        counts["aborted"] += 1
    finally:
        s.close()
    time.sleep(max(start + i / rate - time.monotonic(), 0))
print("COUNTS", counts, flush=True)
"""

FETCH = """
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())
"""


def sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=True)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def metrics(ns: str, url: str) -> dict[str, float]:
    """rstdiag_* sums by name, from the endpoint (fetched inside the namespace)."""
    text = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", FETCH, url],
                          capture_output=True, text=True, timeout=10).stdout
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("rstdiag_", "process_resident")) and "_created" not in line:
            name = line.split("{")[0].split()[0]
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    ports = {line.split('port="')[1].split('"')[0] for line in text.splitlines()
             if line.startswith("rstdiag_rsts_total{")}
    out["port_series"] = len(ports)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=150.0)
    parser.add_argument("--rate", type=float, default=300.0, help="connections per second")
    parser.add_argument("--log-max-bytes", default="256K")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (a network namespace, a capture socket)")
    rstdiag = shutil.which("rstdiag") or str(Path(sys.executable).with_name("rstdiag"))
    ns = f"rdsoak-{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="rstdiag-soak-"))
    log = work / "rst.jsonl"
    sh("ip", "netns", "add", ns)
    procs: list[subprocess.Popen[str]] = []
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        live = subprocess.Popen(
            ["ip", "netns", "exec", ns, rstdiag, "live", "-i", "lo", "--no-view",
             "--metrics-port", "0", "--metrics-addr", "127.0.0.1", "--log", str(log),
             "--log-max-bytes", args.log_max_bytes, "--log-backups", "3"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(live)
        url = ""
        assert live.stderr is not None
        for line in live.stderr:
            if "metrics on" in line:
                url = line.split()[-1]
            if "listening on" in line:
                break
        gen = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", GENERATOR,
                                str(args.rate), str(args.seconds)],
                               stdout=subprocess.PIPE, text=True)
        procs.append(gen)
        started = time.monotonic()
        print(f"{'s':>5} {'RSS MiB':>8} {'packets':>9} {'RSTs':>7} {'flows':>6} "
              f"{'ports':>5} {'log files':>9}")
        samples = []
        while gen.poll() is None or time.monotonic() - started < args.seconds + 10:
            time.sleep(10)
            m = metrics(ns, url)
            files = sorted(p.name for p in work.iterdir())
            sample = (time.monotonic() - started, rss_kib(live.pid) / 1024,
                      m.get("rstdiag_packets_total", 0), m.get("rstdiag_rsts_total", 0),
                      m.get("rstdiag_flows_active", 0), m["port_series"], len(files))
            samples.append(sample)
            print(f"{sample[0]:5.0f} {sample[1]:8.1f} {sample[2]:9.0f} {sample[3]:7.0f} "
                  f"{sample[4]:6.0f} {sample[5]:5.0f} {sample[6]:9d}", flush=True)
            if gen.poll() is not None and time.monotonic() - started >= args.seconds + 10:
                break
        gen_out = gen.communicate(timeout=30)[0].strip()
        live.send_signal(signal.SIGINT)
        out, _ = live.communicate(timeout=60)
        print(f"generator: {gen_out}")
        print(f"rstdiag exit status {live.returncode}; summary: {out.strip().splitlines()[-3:]}")
        sizes = {p.name: p.stat().st_size for p in sorted(work.iterdir())}
        print(f"log files: {sizes}")
        lines = [json.loads(line) for p in work.iterdir() for line in p.read_text().splitlines()]
        print(f"{len(lines)} JSON lines kept, all with host: {all(d.get('host') for d in lines)}")
        steady = [s[1] for s in samples if s[0] >= 30]
        if steady:
            print(f"RSS after 30 s: first {steady[0]:.1f} MiB, last {steady[-1]:.1f} MiB, "
                  f"max {max(steady):.1f} MiB")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
