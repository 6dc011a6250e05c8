#!/usr/bin/env python3
"""Benchmark rstdiag against tcptrace, tcpdump and tshark, every target in one run.

    python bench/benchmark.py                  # the full run (2M packets; 0.5M-8M for scaling)
    python bench/benchmark.py --quick          # the 2M file only, without tshark and scaling
    python bench/benchmark.py --skip tshark    # leave a tool out

Generates the captures with ../shared/tools/gen_bigpcap.py (seed 1) where missing, warms the
page cache before each measurement, and runs every command under GNU time: wall seconds,
CPU seconds (user + system) and peak RSS. Ratios compare tools run back to back in this
run. It prints Markdown tables for BENCHMARKS.md:

- the 2M capture as classic pcap, as pcapng (editcap), with a snaplen of 96, and piped to
  `rstdiag read -` by cat: rstdiag against tcptrace -n and tcpdump -r FILE -w /dev/null;
- scaling from 0.5M to 8M packets, with flows in proportion (one per 40 packets, as the 2M
  capture's 50,000), so that every size has the same mix: time and CPU per million packets,
  peak RSS;
- `rstdiag explain` of frame 1,999,000 and `rstdiag read pcaps/sample.pcapng`;
- rstdiag's labels against the generator's summary.
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
SCALING = (500_000, 1_000_000, 2_000_000, 4_000_000, 8_000_000)
PACKETS_PER_FLOW = 40  # the generator's default: 50,000 flows in 2M packets
EXPLAIN_FRAME = 1_999_000
# The floor of any `cat FILE | TOOL -`: the bytes through a pipe widened to 1 MiB, as
# `rstdiag read -` widens it, read and thrown away.
DRAIN = ("import fcntl, os\n"
         "fcntl.fcntl(0, 1031, 1 << 20)  # F_SETPIPE_SZ\n"
         "buf = bytearray(1 << 20)\n"
         "while os.readv(0, [buf]):\n"
         "    pass\n")


def generate(path: Path, packets: int, snaplen: int = 0, flows: int | None = None
             ) -> dict[str, object]:
    summary = path.with_suffix(".summary.json")
    if not path.exists() or not summary.exists():
        print(f"generating {path} ({packets} packets) ...", file=sys.stderr)
        cmd = [sys.executable, str(GENERATOR), "-o", str(path), "-n", str(packets),
               "--summary", str(summary)]
        if snaplen:
            cmd += ["--snaplen", str(snaplen)]
        if flows:
            cmd += ["--flows", str(flows)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads(summary.read_text())


def as_pcapng(path: Path) -> Path:
    out = path.with_suffix(".pcapng")
    if not out.exists():
        subprocess.run(["editcap", "-F", "pcapng", str(path), str(out)], check=True)
    return out


def warm(path: Path) -> None:
    with path.open("rb") as f:
        while f.read(16 << 20):
            pass


def compile_bytecode(rstdiag: str) -> None:
    """Compile the installed package's bytecode, as `pip install .` leaves it. An editable
    install (`maturin develop`) run under PYTHONDONTWRITEBYTECODE (as on this project's
    machines) never writes it, and every run would compile rstdiag's sources again: 13 ms of a
    0.07 s answer, which no user's installed copy pays."""
    script = Path(rstdiag)
    first = script.read_text(errors="replace").splitlines()[:1] if script.is_file() else []
    python = first[0][2:].strip() if first and first[0].startswith("#!") else sys.executable
    subprocess.run([python, "-c", "import compileall, os, rstdiag; "
                    "compileall.compile_dir(os.path.dirname(rstdiag.__file__), quiet=1)"],
                   check=False)


def timed(name: str, cmd: list[str], stdout: Path, shell: bool = False) -> dict[str, object]:
    """Run one command under GNU time: wall and CPU seconds, peak RSS in MB."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tfile, stdout.open("wb") as out:
        if shell:  # a pipeline: time the shell that runs it, children included
            args = [GNU_TIME, "-v", "-o", tfile.name, "sh", "-c", cmd[0]]
        else:
            args = [GNU_TIME, "-v", "-o", tfile.name, *cmd]
        proc = subprocess.run(args, stdout=out, stderr=subprocess.PIPE)
        text = Path(tfile.name).read_text()
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", text)
    user = re.search(r"User time \(seconds\): ([\d.]+)", text)
    system = re.search(r"System time \(seconds\): ([\d.]+)", text)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if not (wall and user and system and rss):
        raise SystemExit(f"{name}: could not read GNU time output:\n{text}\n{proc.stderr!r}")
    hours, minutes, seconds = wall.groups()
    return {"tool": name, "seconds": int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds),
            "cpu": float(user.group(1)) + float(system.group(1)),
            "rss_mb": int(rss.group(1)) / 1024, "status": proc.returncode,
            "cmd": " ".join(cmd)}


def version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return ((out.stdout or out.stderr).strip().splitlines() or ["?"])[0]


class Bench:
    def __init__(self, outdir: Path, skip: list[str]) -> None:
        self.outdir = outdir
        self.skip = skip
        self.rstdiag = shutil.which("rstdiag") or "rstdiag"
        compile_bytecode(self.rstdiag)

    def run(self, name: str, cmd: list[str], shell: bool = False) -> dict[str, object] | None:
        tool = name.split()[0]
        if tool in self.skip or (not shell and shutil.which(cmd[0]) is None):
            return None
        result = timed(name, cmd, self.outdir / f"{name.replace(' ', '_')}.out", shell)
        print(f"  {name}: {result['seconds']:.2f} s wall, {result['cpu']:.2f} s CPU, "
              f"{result['rss_mb']:.0f} MB", file=sys.stderr)
        return result

    def capture_row(self, label: str, path: Path, piped: bool = False) -> dict[str, object]:
        warm(path)
        if piped:
            mine = self.run("rstdiag -", [f"cat {path} | {self.rstdiag} read --format json -"],
                            shell=True)
        else:
            mine = self.run("rstdiag", [self.rstdiag, "read", "--format", "json", str(path)])
        tcptrace = self.run("tcptrace", ["tcptrace", "-n", str(path)])
        tcpdump = self.run("tcpdump", ["tcpdump", "-r", str(path), "-w", "/dev/null"])
        floor = None
        if piped:
            floor = self.run("pipe floor", [f"cat {path} | {sys.executable} -c '{DRAIN}'"],
                             shell=True)
        assert mine is not None
        doc = json.loads((self.outdir / f"{str(mine['tool']).replace(' ', '_')}.out").read_text())
        return {"label": label, "size_mb": path.stat().st_size / 1e6, "rstdiag": mine,
                "tcptrace": tcptrace, "tcpdump": tcpdump, "floor": floor,
                "rsts": len(doc["rsts"]),
                "summary": doc["summary"], "flows": flows_by_label(doc["rsts"])}


def ratio(a: dict[str, object] | None, b: dict[str, object] | None) -> str:
    if not a or not b:
        return ""
    return f"{float(a['seconds']) / float(b['seconds']):.2f}x"  # type: ignore[arg-type]


def secs(r: dict[str, object] | None, key: str = "seconds") -> str:
    return f"{float(r[key]):.2f}" if r else ""  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--quick", action="store_true",
                        help="the 2M pcap only: no pcapng, snaplen, pipe, scaling or tshark")
    parser.add_argument("--skip", action="append", default=[],
                        help="tool to leave out (tshark takes a minute on 2M packets)")
    args = parser.parse_args()
    if not Path(GNU_TIME).exists():
        raise SystemExit("GNU time is needed: apt-get install time")
    if args.quick:
        args.skip.append("tshark")
    outdir = args.dir / "bench-out"
    outdir.mkdir(exist_ok=True)
    bench = Bench(outdir, args.skip)

    big = args.dir / "bench-2000000.pcap"
    summary = generate(big, 2_000_000)
    rows = [bench.capture_row("2M packets, pcap", big)]
    tshark = None
    if not args.quick:
        warm(big)
        tshark = bench.run("tshark", ["tshark", "-r", str(big), "-Y", "tcp.flags.reset==1"])
        rows.append(bench.capture_row("2M packets, pcapng", as_pcapng(big)))
        snap = args.dir / "bench-2000000-snap96.pcap"
        generate(snap, 2_000_000, 96)
        rows.append(bench.capture_row("2M packets, snaplen 96", snap))
        rows.append(bench.capture_row("2M packets, `cat FILE | rstdiag read -`", big, piped=True))

    warm(big)
    explain = bench.run("rstdiag explain",
                        [bench.rstdiag, "explain", str(big), "--frame", str(EXPLAIN_FRAME)])
    sample = bench.run("rstdiag sample",
                       [bench.rstdiag, "read", str(ROOT / "pcaps" / "sample.pcapng")])

    scaling = []
    if not args.quick:
        for packets in SCALING:
            path = args.dir / f"bench-scale-{packets}.pcap"
            made = generate(path, packets, flows=packets // PACKETS_PER_FLOW)
            warm(path)
            mine = bench.run("rstdiag", [bench.rstdiag, "read", "--format", "json", str(path)])
            scaling.append((packets, path.stat().st_size / 1e6, mine, made["rst_packets"]))
            if packets > 2_000_000:
                path.unlink()  # 3-6 GB each: not kept between runs

    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
          f"{platform.system()} {platform.release()}, python {platform.python_version()}")
    for cmd in ([bench.rstdiag, "--version"], ["tcptrace", "-v"], ["tshark", "--version"],
                ["tcpdump", "--version"]):
        print(f"  {version(cmd)}")
    print("\n| capture | rstdiag s | CPU s | MB | tcptrace s | tcpdump s | "
          "rstdiag / tcptrace | rstdiag / tcpdump | RSTs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        mine = row["rstdiag"]
        print(f"| {row['label']} ({row['size_mb']:.0f} MB) | {secs(mine)} | "  # type: ignore[arg-type]
              f"{secs(mine, 'cpu')} | {float(mine['rss_mb']):.0f} | "  # type: ignore[index]
              f"{secs(row['tcptrace'])} | {secs(row['tcpdump'])} | "  # type: ignore[arg-type]
              f"{ratio(mine, row['tcptrace'])} | {ratio(mine, row['tcpdump'])} | "  # type: ignore[arg-type]
              f"{row['rsts']} |")
    for row in rows:
        if row["floor"]:
            floor = row["floor"]
            print(f"\nThe floor of `cat FILE | TOOL -` (the bytes through a 1 MiB pipe, read "
                  f"and thrown away): {secs(floor)} s wall, {secs(floor, 'cpu')} s CPU: "  # type: ignore[arg-type]
                  f"{ratio(floor, row['tcptrace'])} tcptrace, "  # type: ignore[arg-type]
                  f"{ratio(floor, row['tcpdump'])} tcpdump")  # type: ignore[arg-type]
    if tshark:
        print(f"\ntshark -Y tcp.flags.reset==1 on the 2M pcap: {secs(tshark)} s, "
              f"{float(tshark['rss_mb']):.0f} MB")  # type: ignore[arg-type]
    if scaling:
        print("\n| packets | flows | RSTs | MB | rstdiag s | CPU s | s per million packets | "
              "CPU s per million packets | peak RSS MB |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for packets, size, mine, rsts in scaling:
            if mine:
                print(f"| {packets:,} | {packets // PACKETS_PER_FLOW:,} | {rsts:,} | "
                      f"{size:.0f} | {secs(mine)} | {secs(mine, 'cpu')} | "
                      f"{float(mine['seconds']) / packets * 1e6:.2f} | "  # type: ignore[arg-type]
                      f"{float(mine['cpu']) / packets * 1e6:.2f} | "  # type: ignore[arg-type]
                      f"{float(mine['rss_mb']):.0f} |")  # type: ignore[arg-type]
    print(f"\nrstdiag explain --frame {EXPLAIN_FRAME} (2M pcap): {secs(explain)} s, "
          f"{float(explain['rss_mb']) if explain else 0:.0f} MB")  # type: ignore[arg-type]
    print(f"rstdiag read pcaps/sample.pcapng: {secs(sample)} s")
    doc_summary = rows[0]["summary"]
    print(f"\nrstdiag: {rows[0]['rsts']} RSTs reported (generator: {summary['rst_packets']})")
    print(f"rstdiag labels: {doc_summary}")
    print(f"generator flows by kind: {summary['kinds']}")
    flows = rows[0]["flows"]
    print(f"flows with a closed-port RST: {flows.get('closed-port', 0)} "  # type: ignore[attr-defined]
          f"(generator syn_rst flows: {summary['kinds'].get('syn_rst', 0)})")
    print(f"flows with an injected RST: {flows.get('injected', 0)} "  # type: ignore[attr-defined]
          f"(generator injected flows: {summary['kinds'].get('injected', 0)})")


def flows_by_label(rsts: list[dict[str, object]]) -> dict[str, int]:
    """How many distinct flows (client-server pairs) have at least one RST of each label."""
    seen: dict[str, set[tuple[object, object]]] = {}
    for rst in rsts:
        seen.setdefault(str(rst["label"]), set()).add((rst["client"], rst["server"]))
    return {label: len(pairs) for label, pairs in seen.items()}


if __name__ == "__main__":
    main()
