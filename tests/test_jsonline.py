"""The engine's JSON line of a verdict (src/jsonline.rs) is `json.dumps(verdict.to_dict())`
to the character, so `read --format json|jsonl` may write it as it is, one verdict at a time
or whole batches of lines (reading.Lines)."""

from __future__ import annotations

import io
import ipaddress
import json
from dataclasses import replace
from pathlib import Path

import pytest
from corpus import PROJECT_PCAPS, PUBLIC
from seeds import ethernet, pcap, tcp6

from rstdiag.env import Environment
from rstdiag.labels import Label, Verdict
from rstdiag.machine import End, JsonlSink, JsonSink
from rstdiag.reading import Lines, Reader, ReadOptions


def verdicts(path: Path) -> list[Verdict]:
    env = Environment(io.BytesIO(), io.StringIO(), io.StringIO(), False, False)
    return list(Reader(env, (str(path),), ReadOptions(json_lines=True)))


def assert_spelt_as_python(found: list[Verdict]) -> None:
    for v in found:
        assert v.engine_json is not None
        assert v.engine_json == json.dumps(v.to_dict()), v.frame


@pytest.mark.parametrize("path", sorted(PROJECT_PCAPS.glob("*.pcap*")), ids=lambda p: p.name)
def test_every_verdict_of_the_project_captures_is_spelt_as_python_spells_it(path: Path) -> None:
    assert_spelt_as_python(verdicts(path))


def test_every_verdict_of_the_public_corpus_is_spelt_as_python_spells_it() -> None:
    paths = sorted(p for p in PUBLIC.glob("*") if p.suffix in (".pcap", ".pcapng", ".cap"))
    if not paths:
        pytest.skip(f"public corpus not found at {PUBLIC}")
    found = [v for path in paths for v in verdicts(path)]
    assert len(found) > 100
    assert_spelt_as_python(found)


@pytest.mark.parametrize("text", [
    b"\x1b]8;;file:///etc/passwd\x07y\x1b]8;;\x07", b"quote \" backslash \\ tab \t",
    "caf\u00e9 \u202e \U0001f600 \x7f".encode(), b"\xff\xfe invalid utf-8 \x00",
])
def test_a_payload_of_escapes_unicode_and_bad_bytes_is_spelt_as_python_spells_it(
        tmp_path: Path, text: bytes) -> None:
    client = ipaddress.ip_address("fe80::1").packed
    server = ipaddress.ip_address("fe80::2").packed
    t = 1_700_000_000.0078125  # a tie at the sixth decimal: round() goes to even
    packets = [tcp6(client, server, 40000, 80, 100, 0, 0x02),
               tcp6(server, client, 80, 40000, 500, 101, 0x12),
               tcp6(client, server, 40000, 80, 101, 501, 0x10),
               tcp6(server, client, 80, 40000, 501, 101, 0x14, text)]
    path = tmp_path / "payload.pcap"
    path.write_bytes(pcap([(t + n, ethernet(p)) for n, p in enumerate(packets)]))
    (rst,) = verdicts(path)
    assert_spelt_as_python([rst])


def test_a_verdict_changed_after_the_engine_is_spelt_anew(tmp_path: Path) -> None:
    (original,) = verdicts(PROJECT_PCAPS / "sample.pcapng")[:1]
    changed = replace(original, label=Label.UNKNOWN, kernel_reason="NO_SOCKET in TCP_CLOSE")
    assert changed.engine_json is None
    assert json.loads(changed.to_json())["label"] == "unknown"
    assert json.loads(changed.to_json())["kernel_reason"] == "NO_SOCKET in TCP_CLOSE"


def document(paths: list[Path], fmt: str, whole_lines: bool) -> str:
    """`read --format FMT` of `paths`, from whole batches of lines or verdict by verdict."""
    env = Environment(io.BytesIO(), io.StringIO(), io.StringIO(), False, False)
    reader = Reader(env, tuple(map(str, paths)),
                    ReadOptions(json_lines=True, whole_lines=whole_lines, jobs=1))
    out = io.StringIO()
    sink = JsonSink(out) if fmt == "json" else JsonlSink(out)
    items = list(reader)
    assert any(isinstance(item, Lines) for item in items) == whole_lines
    for item in items:
        sink.add(item)
    sink.close(End(reader.files, reader.errors, reader.interrupted))
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_whole_batches_of_lines_write_the_document_verdict_by_verdict_writes(fmt: str) -> None:
    paths = sorted(PROJECT_PCAPS.glob("*.pcap*"))
    paths += sorted(p for p in PUBLIC.glob("*") if p.suffix in (".pcap", ".pcapng"))
    assert document(paths, fmt, whole_lines=True) == document(paths, fmt, whole_lines=False)
