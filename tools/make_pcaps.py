#!/usr/bin/env python3
"""Regenerate the real-kernel captures kept in pcaps/ (one per scenario of tests/scenarios.py).

Each scenario runs in fresh network namespaces (client - router - server, 198.18.1.1 and
198.19.1.1 when that address block is free), is captured with tcpdump and traced with the
tcp:tcp_send_reset tracepoint. Writes <name>.pcap, <name>.kernel.json (the kernel's resets,
each paired with the wire frame it produced) and pcaps/README.md. Needs root.

    sudo python3 tools/make_pcaps.py [--out pcaps] [SCENARIO ...]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from netlab import (  # noqa: E402
    match_resets,
    netns_unavailable,
    read_segments,
    tracing_unavailable,
)
from scenarios import SCENARIOS, ScenarioResult, run_scenario  # noqa: E402

MAX_BYTES = 300_000


def kernel_json(result: ScenarioResult, pcap: Path) -> dict[str, object]:
    pairs, unexplained = match_resets(result.kernel_resets, read_segments(pcap))
    return {
        "scenario": result.name,
        "capture": pcap.name,
        "expected": result.expected,
        "kernel": platform.release(),
        "traced": result.traced,
        "topology": result.topology,
        "captured_at": result.captured_at[pcap.name],
        "resets": [
            {"reason": k.reason, "state": k.state, "src": k.src, "sport": k.sport,
             "dst": k.dst, "dport": k.dport, "ts": round(k.ts, 6),
             "frame": seg.frame if seg is not None else None,
             **({} if seg is not None else {"note": "not on the wire (dropped by nft)"})}
            for k, seg in pairs],
        "wire_rsts_without_kernel_reset": [
            {"frame": s.frame, "src": s.src, "sport": s.sport, "dst": s.dst, "dport": s.dport,
             "ttl": s.ttl} for s in unexplained],
        "log": result.log,
    }


def reasons_text(doc: dict[str, object]) -> str:
    resets = doc["resets"]
    assert isinstance(resets, list)
    groups: dict[str, list[str]] = {}
    for r in resets:  # same reason and state: one entry with all its frames
        groups.setdefault(f"{r['reason']}/{r['state']}", []).append(
            str(r["frame"]) if r["frame"] else "not on the wire")
    parts = [f"{key} ({'frames' if len(where) > 1 else 'frame'} {', '.join(where)})"
             .replace("frame not on the wire", "not on the wire")
             for key, where in groups.items()]
    forged = doc["wire_rsts_without_kernel_reset"]
    assert isinstance(forged, list)
    parts += [f"none for frame {f['frame']} (forged by the router)" for f in forged]
    return ", ".join(parts) if parts else "none"


SAMPLE_PARTS = ("closed-port-v4", "closed-port-v6", "accept-overflow", "linger-abort",
                "unread-data", "data-after-close", "follow-up", "half-open",
                "keepalive-timeout", "injected", "client-abort-scan")


def make_sample(out: Path) -> Path | None:
    """One capture with a RST of every cause, for the README's first command."""
    parts = [out / f"{name}.pcap" for name in SAMPLE_PARTS]
    if not all(p.exists() for p in parts) or shutil.which("mergecap") is None:
        print("warning: sample.pcapng not rebuilt (needs every part and mergecap)",
              file=sys.stderr)
        return None
    sample = out / "sample.pcapng"
    subprocess.run(["mergecap", "-w", str(sample), *map(str, parts)], check=True)
    return sample


def sample_line(sample: Path) -> str:
    parts = ", ".join(f"`{name}.pcap`" for name in SAMPLE_PARTS)
    return (f"- `{sample.name}`: the README's sample, one RST of every cause: {parts} merged in "
            "time order with `mergecap -w sample.pcapng ...` (Wireshark's mergecap).")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "pcaps")
    ap.add_argument("names", nargs="*", help=f"scenarios (default all): {', '.join(SCENARIOS)}")
    args = ap.parse_args()
    reason = netns_unavailable()
    if reason:
        print(f"cannot run the scenarios here: {reason}", file=sys.stderr)
        return 2
    if tracing_unavailable():
        print(f"warning: {tracing_unavailable()}; no kernel reasons", file=sys.stderr)
    names = args.names or list(SCENARIOS)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    lines: dict[str, str] = {}
    for name in names:
        result = run_scenario(name, out, block=1)
        for pcap in (result.pcap, *result.extra_pcaps.values()):
            size = pcap.stat().st_size
            if size > MAX_BYTES:
                print(f"warning: {pcap.name} is {size} bytes", file=sys.stderr)
            doc = kernel_json(result, pcap)
            pcap.with_suffix(".kernel.json").write_text(json.dumps(doc, indent=2) + "\n")
            lines[pcap.name] = (
                f"- `{pcap.name}`: {result.expected}. {result.topology}, captured in the "
                f"{result.captured_at[pcap.name]}; Linux {platform.release()}; kernel "
                f"reasons: {reasons_text(doc)}.")
            print(f"{pcap.name}: {size} bytes, {reasons_text(doc)}")
    sample = make_sample(out)
    if sample:
        lines[sample.name] = sample_line(sample)
    readme = out / "README.md"
    old = {}
    if readme.exists():  # keep the lines of captures not regenerated this time
        for line in readme.read_text().splitlines():
            if line.startswith("- `"):
                old[line[3:line.index("`", 3)]] = line
    old.update(lines)
    readme.write_text(
        "# Real-kernel captures\n\n"
        "Made by `tools/make_pcaps.py` (scenarios in `tests/scenarios.py`): real sockets in "
        "network namespaces `rd-<pid>-<n>-{cli,rtr,srv}` (client - router - server, veth "
        "pairs, router forwarding, `gso_max_segs 1` so segments are wire-sized), captured "
        "with `tcpdump -U --immediate-mode` on the named veth, the kernel's reason for every "
        "RST it sent read from the `tcp:tcp_send_reset` tracepoint (private tracefs "
        "instance). Next to each capture, `<name>.kernel.json` lists those resets with the "
        "frame each produced (null: dropped before the wire) and the wire RSTs no kernel "
        "reset explains (forged in the path).\n\n"
        + "\n".join(old[k] for k in sorted(old)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
