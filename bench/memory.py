#!/usr/bin/env python3
"""Peak memory of `rstdiag read` on the captures of issue 16, in every output format.

    python bench/memory.py              # the three captures, json jsonl csv table -q
    python bench/memory.py --scale 0.1  # a tenth of the packets, for a quick look

Writes (once, into a temporary folder) a 1M-flow SYN flood, 1M lone RSTs and 200,000
SYN->RST flows, packets 100 µs apart, then runs `rstdiag read` with default options on each
under GNU time with stdout to /dev/null, and prints the peak resident size of each run as a
Markdown table for BENCHMARKS.md (issue 16's target: at most 150 MB). A benchmark, not a
test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fuzz"))
from seeds import ethernet, tcp4  # noqa: E402 - the fuzzer's capture builders

GNU_TIME = "/usr/bin/time"
FORMATS = {"json": ["--format", "json"], "jsonl": ["--format", "jsonl"],
           "csv": ["--format", "csv"], "table": [], "-q": ["-q"]}
SYN, RST, ACK = 0x02, 0x04, 0x10


def address(n: int) -> bytes:
    return struct.pack("!I", (10 << 24) | (n & 0xFFFFFF))


def syn_flood(flows: int) -> Iterator[bytes]:
    server = bytes([192, 0, 2, 1])
    for n in range(flows):
        yield tcp4(address(n // 50000 + 1), server, 1024 + n % 50000, 80, n, 0, SYN)


def lone_rsts(count: int) -> Iterator[bytes]:
    server = bytes([192, 0, 2, 1])
    for n in range(count):
        yield tcp4(server, address(n // 50000 + 1), 80, 1024 + n % 50000, n, 0, RST)


def syn_rst(flows: int) -> Iterator[bytes]:
    server = bytes([192, 0, 2, 1])
    for n in range(flows):
        client = address(n // 50000 + 1)
        yield tcp4(client, server, 1024 + n % 50000, 8080, n, 0, SYN)
        yield tcp4(server, client, 8080, 1024 + n % 50000, 0, n + 1, RST | ACK)


def write_pcap(path: Path, packets: Iterator[bytes]) -> None:
    """A classic pcap, 100 µs between packets."""
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        t = 1_700_000_000_000_000
        for n, ip in enumerate(packets):
            frame = ethernet(ip)
            us = t + n * 100
            out.write(struct.pack("<IIII", us // 1_000_000, us % 1_000_000, len(frame),
                                  len(frame)) + frame)


def peak_mb(command: list[str]) -> tuple[float, int]:
    """(peak RSS in MB, exit status) of `command`, stdout to /dev/null."""
    with open("/dev/null", "w") as null:
        result = subprocess.run([GNU_TIME, "-f", "PEAK %M", *command], stdout=null,
                                stderr=subprocess.PIPE, text=True)
    match = re.search(r"PEAK (\d+)", result.stderr)
    return (int(match.group(1)) / 1024 if match else float("nan")), result.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the packets")
    args = parser.parse_args()
    rstdiag = shutil.which("rstdiag") or str(ROOT / ".venv" / "bin" / "rstdiag")
    million = int(1_000_000 * args.scale)
    captures = [("1M-flow SYN flood", syn_flood(million), []),
                ("1M lone RSTs", lone_rsts(million), []),
                ("200,000 SYN->RST flows", syn_rst(int(200_000 * args.scale)), [])]
    print("| capture | options | " + " | ".join(FORMATS) + " |")
    print("|---|---|" + "---:|" * len(FORMATS))
    with tempfile.TemporaryDirectory(prefix="rstdiag-memory-") as tmp:
        for n, (name, packets, options) in enumerate(captures):
            path = Path(tmp) / f"capture-{n}.pcap"
            write_pcap(path, packets)
            cells = []
            for fmt_args in FORMATS.values():
                mb, status = peak_mb([rstdiag, "read", *options, *fmt_args, str(path)])
                cells.append(f"{mb:,.0f} MB" + ("" if status == 0 else f" (status {status})"))
            print(f"| {name} | {' '.join(options) or 'default'} | " + " | ".join(cells) + " |",
                  flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
