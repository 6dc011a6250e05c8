"""`rstdiag read` of a capture that `rstdiag live -w FILE --kernel-reasons` saved: each RST's
packet comment keeps the kernel's reason ("rstdiag kernel reason: TCP_STATE in TCP_CLOSE"),
and read applies it as live did (kernel_reasons.confirmed) and counts how they compared.

The captures are the real-kernel ones of pcaps/, whose .kernel.json files name the reason the
kernel gave for each RST by frame; each is written here as live writes it (pcapng, a comment
of 96 bytes on every RST, the reason or "none ..." padded with spaces). The live runs in
network namespaces that save such files themselves are in test_live.py.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rstdiag import analyze_file
from rstdiag.frames import read_frames
from rstdiag.pcapng import (
    IF_TSRESOL,
    NANOSECONDS,
    comment_option,
    enhanced_packet,
    interface_description,
    option,
    section_header,
)
from rstdiag.reasons import confirmed

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "pcaps"
TRACED = sorted(p for p in PCAPS.glob("*.pcap") if p.with_suffix(".kernel.json").exists()
                and json.loads(p.with_suffix(".kernel.json").read_text()).get("traced"))
NONE = "none (no tcp_send_reset event matched this RST)"


def comment(text: str) -> str:
    """A RST's comment as the writer leaves it: 96 bytes, padded with spaces."""
    return f"rstdiag kernel reason: {text}".ljust(96)


def kernel_reasons(pcap: Path) -> dict[int, str]:
    """frame -> "REASON in STATE", as the tracepoint gave them while pcap was captured."""
    doc = json.loads(pcap.with_suffix(".kernel.json").read_text())
    return {r["frame"]: f"{r['reason']} in {r['state']}" if r.get("state") else r["reason"]
            for r in doc["resets"] if r.get("frame")}


def save(pcap: Path, out: Path, reasons: dict[int, str], order: str = "<") -> Path:
    """`pcap` written as `live -w --kernel-reasons` writes it: every RST with its comment."""
    rsts = {v.frame for v in analyze_file(str(pcap)).verdicts}
    frames = list(read_frames(str(pcap)))
    parts = [section_header(order), interface_description(
        frames[0].linktype, options=option(IF_TSRESOL, bytes([NANOSECONDS]), order),
        order=order)]
    for f in frames:
        text = reasons.get(f.frame, NONE) if f.frame in rsts else None
        opts = comment_option(comment(text), order) if text is not None else b""
        parts.append(enhanced_packet(0, round(f.ts * 1e9), f.data, f.wirelen, opts, order))
    out.write_bytes(b"".join(parts))
    return out


def rstdiag(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rstdiag", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("pcap", TRACED, ids=lambda p: p.stem)
def test_each_saved_reason_decides_the_verdict_as_live_decided_it(pcap: Path,
                                                                  tmp_path: Path) -> None:
    reasons = kernel_reasons(pcap)
    wire = analyze_file(str(pcap)).verdicts
    saved = analyze_file(str(save(pcap, tmp_path / "saved.pcapng", reasons)))
    expected = [confirmed(v, reasons[v.frame].split()[0], reasons[v.frame])[0]
                if v.frame in reasons else v for v in wire]
    assert [(v.frame, v.label, v.confidence, v.evidence, v.kernel_reason, v.open_alternatives)
            for v in saved.verdicts] == \
        [(v.frame, v.label, v.confidence, v.evidence, v.kernel_reason, v.open_alternatives)
         for v in expected]
    counts = saved.kernel_reasons
    assert counts is not None and counts["disagree"] == 0, counts
    distinct = [v for v in wire if v.duplicate_of is None]
    assert counts["agree"] + counts["no_opinion"] == sum(1 for v in distinct
                                                         if v.frame in reasons)
    assert counts["without_reason"] == sum(1 for v in wire if v.frame not in reasons)


def test_the_kernels_linger_reason_turns_what_looks_like_unread_data_into_linger_abort(
        tmp_path: Path) -> None:
    pcap = PCAPS / "linger-noreply.pcap"
    [wire] = analyze_file(str(pcap)).verdicts
    assert (str(wire.label), wire.alternatives) == ("unread-data", (wire.alternatives[0],))
    out = rstdiag("read", "--format", "json",
                  str(save(pcap, tmp_path / "l.pcapng", {wire.frame: "TCP_STATE in TCP_CLOSE"})))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    [v] = doc["rsts"]
    assert (v["label"], v["confidence"], v["kernel_reason"], v["alternatives"]) == (
        "linger-abort", "high", "TCP_STATE in TCP_CLOSE", [])
    assert v["evidence"].startswith("the kernel's reason TCP_STATE in TCP_CLOSE says "
                                    "linger-abort, which the wire cannot tell from unread-data")
    assert doc["files"][0]["kernel_reasons"] == {
        "agree": 1, "disagree": 0, "no_opinion": 0, "without_reason": 0, "disagreements": []}
    assert doc["summary"] == {"linger-abort": 1}


@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
def test_a_reason_that_excludes_the_wires_label_is_shown_and_counted(
        tmp_path: Path, order: str) -> None:
    pcap = PCAPS / "unread-data.pcap"
    [wire] = analyze_file(str(pcap)).verdicts
    saved = save(pcap, tmp_path / "d.pcapng", {wire.frame: "TCP_KEEPALIVE_TIMEOUT"}, order)
    report = analyze_file(str(saved))
    [v] = report.verdicts
    assert (v.label, v.kernel_reason) == (wire.label, "TCP_KEEPALIVE_TIMEOUT")
    assert v.evidence.endswith("but the kernel's reason TCP_KEEPALIVE_TIMEOUT excludes "
                               "unread-data")
    assert report.kernel_reasons == {
        "agree": 0, "disagree": 1, "no_opinion": 0, "without_reason": 0,
        "disagreements": [f"frame {wire.frame}: the wire says unread-data, the kernel's reason "
                          "TCP_KEEPALIVE_TIMEOUT excludes it"]}
    table = rstdiag("read", str(saved))
    assert "kernel reasons: 0 agree, 1 disagree" in table.stdout
    assert "TCP_KEEPALIVE_TIMEOUT excludes it" in table.stdout


def test_every_format_of_read_gives_the_kernels_label(tmp_path: Path) -> None:
    pcap = PCAPS / "linger-noreply.pcap"
    [wire] = analyze_file(str(pcap)).verdicts
    saved = str(save(pcap, tmp_path / "l.pcapng", {wire.frame: "TCP_STATE in TCP_CLOSE"}))
    table = rstdiag("read", saved)
    assert "linger-abort" in table.stdout and "unread-data" not in table.stdout.split(
        "by cause")[1].split("kernel reasons")[0]
    assert "kernel reasons: 1 agree, 0 disagree" in table.stdout
    [line] = rstdiag("read", "--format", "jsonl", saved).stdout.splitlines()
    [row] = list(csv.DictReader(io.StringIO(rstdiag("read", "--format", "csv", saved).stdout)))
    assert json.loads(line)["label"] == row["label"] == "linger-abort"
    assert "TCP_STATE in TCP_CLOSE" in row["evidence"]


def test_rsts_saved_without_a_reason_keep_the_wires_verdict_and_are_counted(
        tmp_path: Path) -> None:
    pcap = PCAPS / "follow-up.pcap"
    wire = analyze_file(str(pcap)).verdicts
    report = analyze_file(str(save(pcap, tmp_path / "f.pcapng", {})))
    assert [(v.label, v.evidence, v.kernel_reason) for v in report.verdicts] == \
        [(v.label, v.evidence, None) for v in wire]
    assert report.kernel_reasons is not None
    assert report.kernel_reasons["without_reason"] == len(wire) == 3
    assert "3 RSTs saved without one" in rstdiag("read", str(tmp_path / "f.pcapng")).stdout


@pytest.mark.skipif(shutil.which("editcap") is None, reason="needs editcap (Wireshark)")
def test_comments_of_other_tools_change_nothing(tmp_path: Path) -> None:
    pcap = PCAPS / "follow-up.pcap"
    wire = analyze_file(str(pcap))
    rsts = [v.frame for v in wire.verdicts]
    out = tmp_path / "commented.pcapng"
    args = [a for f in rsts for a in ("-a", f"{f}:kernel reason: TCP_STATE, said someone")]
    subprocess.run(["editcap", "-F", "pcapng", *args, str(pcap), str(out)], check=True,
                   capture_output=True)
    commented = analyze_file(str(out))
    assert [v.to_dict() | {"file": ""} for v in commented.verdicts] == \
        [v.to_dict() | {"file": ""} for v in wire.verdicts]
    assert commented.kernel_reasons is None
    doc = json.loads(rstdiag("read", "--format", "json", str(out)).stdout)
    assert "kernel_reasons" not in doc["files"][0]
