#!/usr/bin/env python3
"""How fast `rstdiag live` captures and judges, next to tcpdump, on a veth pair (root).

    python bench/live_benchmark.py                    # the issue's targets in one run:
                                                      # top speed, then 200k pps for 30 s
    python bench/live_benchmark.py --pps 100000 --loops 2
    python bench/live_benchmark.py -B 524288          # rstdiag and tcpdump with a 512 MiB ring

Builds two network namespaces joined by a veth pair, generates the capture with
../shared/tools/gen_bigpcap.py when missing (1M packets), and for each rate replays it with
tcpreplay (preloaded, --loop times) from one namespace while the capturing tool runs on the
other end, one at a time so that they do not share the CPU: `rstdiag live --format jsonl -w
/dev/null` (every packet also written, as -w does) and `tcpdump -w /dev/null`. For each:
packets seen, dropped by the kernel (PACKET_STATISTICS, as each tool reports it), RSTs judged
against the RST packets replayed (rstdiag), and packets/s: packets seen over the time from the
replay's first packet to the tool's last busy moment (its CPU time stops growing), and that
lag after the replay's last packet.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT.parent / "shared" / "tools" / "gen_bigpcap.py"
TICKS = os.sysconf("SC_CLK_TCK")


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(list(args), capture_output=True, text=True)
    if check and out.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: {out.stderr.strip()}")
    return out


class Veth:
    """Namespaces <tag>-tx and <tag>-rx, veth tx0 <-> rx0, both up."""

    def __init__(self) -> None:
        self.tag = f"rdbench-{os.getpid()}"
        self.tx, self.rx = f"{self.tag}-tx", f"{self.tag}-rx"

    def __enter__(self) -> Veth:
        for ns in (self.tx, self.rx):
            sh("ip", "netns", "add", ns)
        sh("ip", "-n", self.tx, "link", "add", "tx0", "type", "veth", "peer", "name", "rx0",
           "netns", self.rx)
        for ns, dev in ((self.tx, "tx0"), (self.rx, "rx0")):
            sh("ip", "-n", ns, "link", "set", dev, "mtu", "9000", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        return self

    def __exit__(self, *exc: object) -> None:
        for ns in (self.tx, self.rx):
            sh("ip", "netns", "del", ns, check=False)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its waited-for children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return -1.0
    return sum(int(f) for f in fields[11:15]) / TICKS


def settle(pid: int, quiet: float = 1.0, limit: float = 600.0) -> float:
    """Wait until the process has been nearly idle (under 10% of a CPU: a live tool's ticks)
    for `quiet` seconds; when it was last busy (the tool is done with what it was sent)."""
    start = last_busy = time.monotonic()
    last_cpu = cpu_seconds(pid)
    while time.monotonic() - start < limit:
        time.sleep(0.25)
        cpu, now = cpu_seconds(pid), time.monotonic()
        if cpu < 0:
            return now
        if cpu - last_cpu > 0.025:
            last_busy = now
        last_cpu = cpu
        if now - last_busy >= quiet:
            return last_busy
    return time.monotonic()


def replay(veth: Veth, pcap: Path, pps: int | None, loops: int) -> dict[str, float]:
    rate = ["--topspeed"] if not pps else [f"--pps={pps}"]
    out = sh("ip", "netns", "exec", veth.tx, "tcpreplay", "-q", "--preload-pcap",
             f"--loop={loops}", *rate, "-i", "tx0", str(pcap))
    text = out.stdout + out.stderr
    m = re.search(r"Actual: (\d+) packets .* in ([\d.]+) seconds", text)
    r = re.search(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps", text)
    failed = re.search(r"Failed packets:\s+(\d+)", text)
    return {"sent": int(m[1]) if m else 0, "seconds": float(m[2]) if m else 0.0,
            "pps": float(r[1]) if r else 0.0, "failed": int(failed[1]) if failed else 0}


def rst_packets(pcap: Path) -> int:
    """RST segments in the capture, IPv4 and IPv6 (what `rstdiag read` judges)."""
    from rstdiag.analysis import analyze_file

    return len(analyze_file(str(pcap)).verdicts)


def run_tool(veth: Veth, pcap: Path, pps: int | None, loops: int, tool: str, buffer_kib: int,
             outdir: Path) -> dict[str, object]:
    err_path = outdir / f"{tool}.stderr"
    out_path = outdir / f"{tool}.out"
    if tool == "rstdiag":
        cmd = ["rstdiag", "live", "-i", "rx0", "--format", "jsonl", "-B", str(buffer_kib),
               "-p", "-w", "/dev/null", "-Z", "root"]
        ready = "listening on"
    else:
        cmd = ["tcpdump", "-i", "rx0", "-n", "-p", "-B", str(buffer_kib), "-w", "/dev/null",
               "tcp"]
        ready = "listening on"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(["ip", "netns", "exec", veth.rx, *cmd], stdout=out, stderr=err)
        try:
            deadline = time.monotonic() + 20
            while ready not in err_path.read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{tool} did not start: {err_path.read_text()}")
                time.sleep(0.05)
            time.sleep(0.3)
            result: dict[str, dict[str, float]] = {}
            ended: list[float] = []

            def send() -> None:
                result["replay"] = replay(veth, pcap, pps, loops)
                ended.append(time.monotonic())

            sender = threading.Thread(target=send)
            sender.start()
            sender.join()
            busy_until = settle(proc.pid)
        finally:
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(60)
            if proc.poll() is None:
                proc.kill()
    stderr = err_path.read_text()
    seen = dropped = 0
    if tool == "rstdiag":
        lines = [json.loads(line) for line in out_path.read_text().splitlines() if line]
        summary = next((d for d in reversed(lines) if "summary" in d), {})
        seen, dropped = int(summary.get("packets", 0)), int(summary.get("dropped", 0))
        extra = {"rsts": summary.get("rsts"), "verdict_lines": len(lines) - 1}
    else:
        m = re.search(r"(\d+) packets captured", stderr)
        d = re.search(r"(\d+) packets dropped by kernel", stderr)
        seen, dropped = (int(m[1]) if m else 0), (int(d[1]) if d else 0)
        extra = {}
    # the replay's own time (from its first packet to its last, preloading aside), and how
    # long after its last packet the tool was still busy with the backlog
    sending = float(result.get("replay", {}).get("seconds", 0.0)) or 1e-6
    lag = max(busy_until - ended[0], 0.0) if ended else 0.0
    return {"tool": tool, "replay": result.get("replay", {}), "seen": seen, "dropped": dropped,
            "seconds": round(sending + lag, 2), "lag": round(lag, 2),
            "pps": round(seen / (sending + lag)), **extra}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--packets", type=int, default=1_000_000)
    ap.add_argument("--pcap", type=Path, default=None,
                    help="capture to replay (default /tmp/live-N.pcap, generated)")
    ap.add_argument("--pps", type=int, action="append", default=[],
                    help="replay at this rate (repeatable); default: top speed, then 200000")
    ap.add_argument("--topspeed", action="store_true", help="also at top speed with --pps")
    ap.add_argument("--loops", type=int, default=None,
                    help="replays of the file per run (default: 1 at top speed; at a fixed "
                    "rate, enough for 30 s)")
    ap.add_argument("-B", "--buffer-size", type=int, default=65536,
                    help="kernel buffer of both tools, KiB (default 65536)")
    ap.add_argument("--tools", default="rstdiag,tcpdump",
                    help="rstdiag (live, jsonl, -w /dev/null), tcpdump (-w /dev/null)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces, packet capture)")
    for tool in ("ip", "tcpreplay", "tcpdump", "rstdiag"):
        if shutil.which(tool) is None:
            raise SystemExit(f"needs {tool} on PATH")
    pcap = args.pcap or Path(f"/tmp/live-{args.packets}.pcap")
    if not pcap.exists():
        print(f"generating {pcap} ({args.packets} packets) ...", file=sys.stderr)
        subprocess.run([sys.executable, str(GENERATOR), "-n", str(args.packets), "-o",
                        str(pcap)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    rates: list[int | None] = list(args.pps) or [None, 200_000]
    if args.pps and args.topspeed:
        rates.append(None)
    rsts = rst_packets(pcap)
    results = []
    outdir = Path(f"/tmp/rdbench-{os.getpid()}")
    outdir.mkdir(exist_ok=True)
    with Veth() as veth:
        for pps in rates:
            loops = args.loops or (1 if pps is None else max(1, round(30 * pps / args.packets)))
            for tool in args.tools.split(","):
                r = run_tool(veth, pcap, pps, loops, tool, args.buffer_size, outdir)
                r["rate"] = pps or "top speed"
                r["rst_packets"] = rsts * loops
                results.append(r)
                rp = r["replay"]
                judged = (f"; RSTs judged {r['rsts']} of {r['rst_packets']}"
                          if tool == "rstdiag" else "")
                print(f"{str(r['rate']):>10}  {tool:8} sent {rp.get('sent', 0):>8} at "  # type: ignore[union-attr]
                      f"{rp.get('pps', 0):>9,.0f} pps in {rp.get('seconds', 0):.1f} s; seen "  # type: ignore[union-attr]
                      f"{r['seen']:>8}, dropped {r['dropped']:>8}; {r['pps']:>9,} packets/s "
                      f"over {r['seconds']} s (done {r['lag']} s after the replay){judged}",
                      flush=True)
    shutil.rmtree(outdir, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
