"""Text from the wire is data in every renderer of read, check and explain: never rich
markup, never an escape sequence or control character reaching the terminal (issue 16.1)."""

from __future__ import annotations

import io
import ipaddress
import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seeds import ethernet, pcap, tcp6

from rstdiag.analysis import FileReport
from rstdiag.ci_formats import write_github, write_junit, write_markdown
from rstdiag.ci_formats import write_json as write_check_json
from rstdiag.gate import Policy, evaluate
from rstdiag.labels import Confidence, Endpoint, Label, Sender, Verdict
from rstdiag.machine import write_csv, write_json, write_jsonl
from rstdiag.render import write_table
from rstdiag.select import Groups

RSTDIAG = shutil.which("rstdiag") or ""
needs_entry_point = pytest.mark.skipif(not RSTDIAG, reason="rstdiag is not installed")
CLIENT = ipaddress.ip_address("fe80::1").packed
SERVER = ipaddress.ip_address("fe80::2").packed
# CSI, OSC and DCS introducers, C0/C1 controls (tab and newline are the renderers' own)
ESCAPES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def rst_with_text(payload: bytes) -> bytes:
    """A handshake from [fe80::1]:40000 to [fe80::2]:80, then the server's RST carrying
    `payload` as its diagnostic text."""
    t = 1_700_000_000.0
    packets = [tcp6(CLIENT, SERVER, 40000, 80, 100, 0, 0x02),
               tcp6(SERVER, CLIENT, 80, 40000, 500, 101, 0x12),
               tcp6(CLIENT, SERVER, 40000, 80, 101, 501, 0x10),
               tcp6(SERVER, CLIENT, 80, 40000, 501, 101, 0x14, payload)]
    return pcap([(t + n * 0.01, ethernet(p)) for n, p in enumerate(packets)])


@pytest.fixture(scope="module")
def markup_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("markup") / "markup.pcap"
    path.write_bytes(rst_with_text(b"[/] [link=file:///etc/passwd]y[/link] [bold]"))
    return path


@needs_entry_point
@pytest.mark.parametrize(("args", "quotes"), [
    (["read", "--color"], False), (["read", "-v", "--color"], True),
    (["read", "--by", "flow", "--color"], False), (["check", "-vv", "--color"], True),
    (["check", "--format", "markdown"], True), (["check", "--format", "github"], True),
    (["check", "--format", "junit"], True), (["explain", "--frame", "4", "--color"], True)])
def test_markup_in_a_rst_payload_prints_literally(markup_capture: Path, args: list[str],
                                                  quotes: bool) -> None:
    result = subprocess.run([RSTDIAG, *args, str(markup_capture)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr and "MarkupError" not in result.stderr
    assert "\x1b]8;" not in result.stdout  # no OSC-8 hyperlink
    assert "fe80::1" in result.stdout
    if args[0] in ("read", "explain") and "--by" not in args:
        assert "[fe80::1]:40000" in result.stdout
    if quotes:
        text = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout).replace("\\", "")  # markdown's
        text = " ".join(text.split())  # the ladder wraps the evidence
        assert "[/] [link=file:///etc/passwd]y[/link] [bold]" in text


def verdict(text: str, addr: str) -> Verdict:
    client, server = Endpoint(addr, 40000), Endpoint("192.0.2.7", 443)
    return Verdict(7, 1_700_000_000.0, addr, 40000, "192.0.2.7", 443, "R", client, server,
                   Sender.PATH, Label.INJECTED, Confidence.LOW, f"RST carries 9 B: \"{text}\"",
                   file=f"cap-{text[:8]}.pcap")


def renders(v: Verdict) -> dict[str, str]:
    """Every renderer of read and check, on one report holding `v` and a copy of it."""
    report = FileReport(v.file, "pcap", 9, 9, 1, verdicts=[v, replace(v, frame=8,
                                                                      duplicate_of=7)])
    out: dict[str, str] = {}
    for name, write in (("json", write_json), ("jsonl", write_jsonl), ("csv", write_csv)):
        buffer = io.StringIO()
        write([report], buffer)
        out[name] = buffer.getvalue()
    for width in (None, 60, 80, 200):
        for verbose in (0, 2):
            buffer = io.StringIO()
            write_table([report], buffer, color=False, verbose=verbose, width=width)
            out[f"table-{width}-{verbose}"] = buffer.getvalue()
    buffer = io.StringIO()
    write_table([report], buffer, color=False, groups=Groups("flow"), width=80)
    out["groups"] = buffer.getvalue()
    for name, write in (("junit", write_junit), ("github", write_github),
                        ("markdown", write_markdown), ("check-json", write_check_json)):
        buffer = io.StringIO()
        write(evaluate([report], Policy()), [report], buffer)  # type: ignore[operator]
        out[name] = buffer.getvalue()
    return out


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=40),
       addr=st.one_of(st.ip_addresses().map(str), st.text(max_size=20)),
       raw=st.binary(max_size=30))
def test_no_escape_sequence_of_the_input_reaches_any_renderer(text: str, addr: str,
                                                              raw: bytes) -> None:
    text = text + raw.decode("latin-1")
    for name, rendered in renders(verdict(text, addr)).items():
        if name in ("json", "jsonl", "check-json"):
            json.loads(rendered) if name != "jsonl" else [json.loads(line) for line in
                                                          rendered.splitlines()]
            continue  # JSON escapes control characters itself (\u001b)
        assert not ESCAPES.search(rendered), (name, rendered)


@settings(max_examples=25, deadline=None)
@given(payload=st.binary(min_size=1, max_size=60), name=st.text(min_size=1, max_size=12))
def test_the_ladder_of_explain_shows_payload_and_name_as_data(
        tmp_path_factory: pytest.TempPathFactory, payload: bytes, name: str) -> None:
    from rstdiag.ladder import explain_file, print_ladder

    path = tmp_path_factory.mktemp("ladder") / "capture.pcap"
    path.write_bytes(rst_with_text(payload))
    ladder = explain_file(str(path), frame=4)
    ladder.path = name  # the name shown in the heading: a file name can hold anything
    for color in (False, True):
        out = io.StringIO()
        print_ladder(ladder, out, color=color, width=80)
        text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue()) if color else out.getvalue()
        assert not ESCAPES.search(text), text
        assert "[fe80::1]:40000" in text
