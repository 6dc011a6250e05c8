#!/usr/bin/env python3
"""Benchmark rstdiag against tcptrace, tshark and tcpdump on one big capture, in one run.

    python bench/benchmark.py                 # 2M packets (generated if missing)
    python bench/benchmark.py -n 500000       # a smaller file
    python bench/benchmark.py --snaplen 96    # the truncated variant

Generates the capture with ../shared/tools/gen_bigpcap.py when it is missing, warms the page
cache, then runs each tool under GNU time and prints wall time, peak RSS and the ratio to
tcptrace, and rstdiag's RST counts by label against the generator's summary.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT.parent / "shared" / "tools" / "gen_bigpcap.py"
GNU_TIME = "/usr/bin/time"


def generate(path: Path, packets: int, snaplen: int) -> dict[str, object]:
    summary = path.with_suffix(".summary.json")
    if not path.exists() or not summary.exists():
        print(f"generating {path} ({packets} packets) ...", file=sys.stderr)
        cmd = [sys.executable, str(GENERATOR), "-o", str(path), "-n", str(packets),
               "--summary", str(summary)]
        if snaplen:
            cmd += ["--snaplen", str(snaplen)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads(summary.read_text())


def warm(path: Path) -> None:
    with path.open("rb") as f:
        while f.read(16 << 20):
            pass


def timed(name: str, cmd: list[str], stdout: Path) -> dict[str, object]:
    """Run one tool under GNU time: wall seconds and peak RSS in MB."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tfile, stdout.open("wb") as out:
        proc = subprocess.run([GNU_TIME, "-v", "-o", tfile.name, *cmd], stdout=out,
                              stderr=subprocess.PIPE)
        text = Path(tfile.name).read_text()
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", text)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if wall is None or rss is None:
        raise SystemExit(f"{name}: could not read GNU time output:\n{text}\n{proc.stderr!r}")
    hours, minutes, seconds = wall.groups()
    secs = int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    return {"tool": name, "seconds": secs, "rss_mb": int(rss.group(1)) / 1024,
            "status": proc.returncode, "cmd": " ".join(cmd)}


def version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return (out.stdout or out.stderr).strip().splitlines()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--packets", type=int, default=2_000_000)
    parser.add_argument("--snaplen", type=int, default=0)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--jobs", type=int, default=0,
                        help="rstdiag's --jobs (default: rstdiag's own, one per core)")
    parser.add_argument("--skip", action="append", default=[],
                        help="tool to leave out (tshark takes a minute on 2M packets)")
    args = parser.parse_args()
    if not Path(GNU_TIME).exists():
        raise SystemExit("GNU time is needed: apt-get install time")
    suffix = f"-snap{args.snaplen}" if args.snaplen else ""
    capture = args.dir / f"bench-{args.packets}{suffix}.pcap"
    summary = generate(capture, args.packets, args.snaplen)
    warm(capture)
    outdir = args.dir / "bench-out"
    outdir.mkdir(exist_ok=True)
    rstdiag = shutil.which("rstdiag") or "rstdiag"
    tools = {
        "rstdiag": [rstdiag, "read", "--format", "json",
                    *(["--jobs", str(args.jobs)] if args.jobs else []), str(capture)],
        "tcptrace": ["tcptrace", "-n", str(capture)],
        "tshark": ["tshark", "-r", str(capture), "-Y", "tcp.flags.reset==1"],
        "tcpdump": ["tcpdump", "-r", str(capture), "-w", "/dev/null"],
    }
    results = []
    for name, cmd in tools.items():
        if name in args.skip or shutil.which(cmd[0]) is None:
            continue
        results.append(timed(name, cmd, outdir / f"{name}.out"))
    base = next((r for r in results if r["tool"] == "tcptrace"), None)
    print(f"capture: {capture} ({capture.stat().st_size / 1e6:.0f} MB, "
          f"{summary['packets']} packets, {summary['flows']} flows, "
          f"{summary['rst_packets']} RST packets)")
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
          f"python {platform.python_version()}")
    for cmd in (["tcptrace", "-v"], ["tshark", "--version"], ["tcpdump", "--version"]):
        print(f"  {version(cmd)}")
    print("\n| tool | wall s | peak RSS MB | wall vs tcptrace |")
    print("|---|---:|---:|---:|")
    for r in results:
        ratio = f"{r['seconds'] / base['seconds']:.2f}x" if base else "-"
        print(f"| {r['tool']} | {r['seconds']:.2f} | {r['rss_mb']:.0f} | {ratio} |")
    doc = json.loads((outdir / "rstdiag.out").read_text())
    print(f"\nrstdiag: {len(doc['rsts'])} RSTs reported (generator: {summary['rst_packets']})")
    print(f"rstdiag labels: {doc['summary']}")
    print(f"generator flows by kind: {summary['kinds']}")
    flows = flows_by_label(doc["rsts"])
    print(f"flows with a closed-port RST: {flows.get('closed-port', 0)} "
          f"(generator syn_rst flows: {summary['kinds'].get('syn_rst', 0)})")
    print(f"flows with an injected RST: {flows.get('injected', 0)} "
          f"(generator injected flows: {summary['kinds'].get('injected', 0)})")


def flows_by_label(rsts: list[dict[str, object]]) -> dict[str, int]:
    """How many distinct flows (client-server pairs) have at least one RST of each label."""
    seen: dict[str, set[tuple[object, object]]] = {}
    for rst in rsts:
        seen.setdefault(str(rst["label"]), set()).add((rst["client"], rst["server"]))
    return {label: len(pairs) for label, pairs in seen.items()}


if __name__ == "__main__":
    main()
