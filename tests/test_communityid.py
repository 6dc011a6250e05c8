"""Community ID v1: the reference values published with the specification
(corelight/community-id-spec, baseline/baseline_deflt.json and baseline_seed1.json), and
Wireshark's own implementation (tshark's communityid dissector) on every RST of the project's
captures, through `read`'s JSON, JSONL and CSV."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rstdiag.communityid import community_id

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "pcaps"

# (protocol, source, source port, destination, destination port, seed, Community ID): the
# port-carrying flows of the specification's baseline tables, both directions
SPEC_VECTORS = [
    (6, "128.232.110.120", 34855, "66.35.250.204", 80, 0, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    (6, "66.35.250.204", 80, "128.232.110.120", 34855, 0, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    (6, "2001:470:e5bf:dead:4957:2174:e82c:4887", 63943, "2607:f8b0:400c:c03::1a", 25, 0,
     "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="),
    (6, "2607:f8b0:400c:c03::1a", 25, "2001:470:e5bf:dead:4957:2174:e82c:4887", 63943, 0,
     "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="),
    (17, "192.168.1.52", 54585, "8.8.8.8", 53, 0, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
    (17, "8.8.8.8", 53, "192.168.1.52", 54585, 0, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
    (132, "192.168.170.8", 7, "192.168.170.56", 7, 0, "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs="),
    (132, "192.168.170.56", 7, "192.168.170.8", 7, 0, "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs="),
    (6, "128.232.110.120", 34855, "66.35.250.204", 80, 1, "1:3V71V58M3Ksw/yuFALMcW0LAHvc="),
    (6, "66.35.250.204", 80, "128.232.110.120", 34855, 1, "1:3V71V58M3Ksw/yuFALMcW0LAHvc="),
    (6, "2001:470:e5bf:dead:4957:2174:e82c:4887", 63943, "2607:f8b0:400c:c03::1a", 25, 1,
     "1:eJYTW6AOzFLlSUoESovMjnu7rMw="),
    (17, "192.168.1.52", 54585, "8.8.8.8", 53, 1, "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="),
    (132, "192.168.170.8", 7, "192.168.170.56", 7, 1, "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg="),
]


@pytest.mark.parametrize("proto, src, sport, dst, dport, seed, want", SPEC_VECTORS)
def test_community_id_equals_the_specifications_reference_value(
        proto: int, src: str, sport: int, dst: str, dport: int, seed: int, want: str) -> None:
    assert community_id(src, sport, dst, dport, proto=proto, seed=seed) == want


def test_equal_addresses_are_ordered_by_port() -> None:
    assert community_id("10.0.0.1", 5000, "10.0.0.1", 80) == \
        community_id("10.0.0.1", 80, "10.0.0.1", 5000)


def _rstdiag(*args: str) -> str:
    return subprocess.run(["rstdiag", *args], capture_output=True, text=True, check=True).stdout


def _wireshark_ids(path: Path) -> dict[int, str]:
    """Frame -> Community ID of every RST, as Wireshark's communityid dissector computes it."""
    out = subprocess.run(
        ["tshark", "-r", str(path), "--enable-protocol", "communityid",
         "-Y", "tcp.flags.reset == 1", "-T", "fields", "-e", "frame.number", "-e", "communityid"],
        capture_output=True, text=True, check=True).stdout
    return {int(frame): cid for frame, cid in (line.split("\t") for line in out.splitlines())}


CAPTURES = sorted(p for p in PCAPS.iterdir() if p.suffix in (".pcap", ".pcapng"))


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_every_verdict_carries_the_community_id_wireshark_gives_its_rst(path: Path) -> None:
    doc = json.loads(_rstdiag("read", "--format", "json", str(path)))
    assert doc["rsts"], "a capture of the tests without RSTs tests nothing here"
    wireshark = _wireshark_ids(path)
    assert {r["frame"]: r["community_id"] for r in doc["rsts"]} == \
        {r["frame"]: wireshark[r["frame"]] for r in doc["rsts"]}


def test_jsonl_and_csv_carry_the_same_community_ids_as_json() -> None:
    path = str(PCAPS / "sample.pcapng")
    doc = json.loads(_rstdiag("read", "--format", "json", path))
    want = [(r["frame"], r["community_id"]) for r in doc["rsts"]]
    jsonl = [json.loads(line) for line in _rstdiag("read", "--format", "jsonl", path).splitlines()]
    rows = list(csv.DictReader(io.StringIO(_rstdiag("read", "--format", "csv", path))))
    assert [(r["frame"], r["community_id"]) for r in jsonl] == want
    assert [(int(r["frame"]), r["community_id"]) for r in rows] == want
