"""The installed `rstdiag` command, run as a user runs it."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from corpus import public

from rstdiag.cli import cli

RSTDIAG = shutil.which("rstdiag") or ""
needs_entry_point = pytest.mark.skipif(not RSTDIAG,
                                       reason="rstdiag is not installed (pip install -e .)")


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RSTDIAG, *args], input=stdin.decode("latin-1") if stdin else None,
                          capture_output=True, text=True, timeout=60)


@needs_entry_point
def test_read_json_lists_every_rst_with_the_documented_fields() -> None:
    result = run("read", "--format", "json", str(public("zeek__dhe.pcap")))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == {"version", "files", "rsts", "summary", "copies"}
    assert [r["frame"] for r in doc["rsts"]] == [22, 23, 24]
    required = {"file", "frame", "ts", "src", "sport", "dst", "dport", "sender", "label",
                "confidence", "evidence", "hint"}
    assert all(required <= set(r) for r in doc["rsts"])
    assert doc["summary"] == {"data-after-close": 1, "follow-up": 2}


@needs_entry_point
def test_read_table_shows_each_cause_and_a_summary() -> None:
    result = run("read", str(public("zeek__rst-inject-rae.pcap")))
    assert result.returncode == 0
    for label in ("injected", "unread-data", "follow-up"):
        assert label in result.stdout
    assert "3 RSTs by cause in 9 frames, 1 TCP flow\n" in result.stdout


@needs_entry_point
def test_read_jsonl_prints_one_verdict_per_line() -> None:
    result = run("read", "--format", "jsonl", str(public("zeek__ipv6-violation.pcap")))
    lines = result.stdout.splitlines()
    assert [json.loads(line)["label"] for line in lines] == \
        ["data-after-close", "follow-up", "follow-up"]


@needs_entry_point
def test_read_csv_has_a_header_then_one_row_per_rst() -> None:
    result = run("read", "--format", "csv", str(public("zeek__nmap-vsn.pcap")))
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 9
    assert rows[0]["label"] == "closed-port"


@needs_entry_point
def test_read_several_files_reports_each_file() -> None:
    result = run("read", "--format", "json", str(public("zeek__dhe.pcap")),
                 str(public("zeek__single-rst.pcap")))
    doc = json.loads(result.stdout)
    assert len(doc["files"]) == 2
    assert len(doc["rsts"]) == 4


@needs_entry_point
def test_several_files_read_in_parallel_give_the_document_read_one_at_a_time() -> None:
    names = ("zeek__dhe.pcap", "zeek__single-rst.pcap", "zeek__rst-inject-rae.pcap",
             "chrissanders__synscan.pcapng")
    files = [str(public(name)) for name in names]
    one = run("read", "--format", "json", "-j", "1", *files)
    parallel = run("read", "--format", "json", "--jobs", "3", *files)
    assert parallel.returncode == one.returncode == 0
    assert parallel.stdout == one.stdout
    assert [f["path"] for f in json.loads(parallel.stdout)["files"]] == files


@needs_entry_point
def test_an_unreadable_file_among_parallel_ones_is_one_error_line_and_status_2(
        tmp_path: Path) -> None:
    bogus = tmp_path / "notes.pcap"
    bogus.write_text("hello world\n")
    result = run("check", "--format", "json", "-j", "2", str(public("zeek__dhe.pcap")),
                 str(bogus))
    assert result.returncode == 2
    assert result.stderr.startswith(f"rstdiag: error: {bogus}: not a pcap or pcapng file")
    assert result.stderr.count("\n") == 1
    assert len(json.loads(result.stdout)["files"]) == 1


@needs_entry_point
def test_read_from_standard_input() -> None:
    data = public("zeek__dhe.pcap").read_bytes()
    result = subprocess.run([RSTDIAG, "read", "--format", "json", "-"], input=data,
                            capture_output=True, timeout=60)
    assert result.returncode == 0
    assert len(json.loads(result.stdout)["rsts"]) == 3


@needs_entry_point
def test_a_file_that_is_not_a_capture_is_one_error_line_and_status_2(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.pcap"
    bogus.write_text("hello world\n")
    result = run("read", str(bogus))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"rstdiag: error: {bogus}: not a pcap or pcapng file")
    assert "Traceback" not in result.stderr


@needs_entry_point
def test_a_missing_file_is_one_error_line_and_status_2(tmp_path: Path) -> None:
    result = run("read", str(tmp_path / "nope.pcap"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "nope.pcap" in result.stderr


@needs_entry_point
def test_a_truncated_capture_reports_what_was_read_and_warns(tmp_path: Path) -> None:
    data = public("zeek__dhe.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) - 30])
    result = run("read", "--format", "json", str(cut))
    assert result.returncode == 0
    assert [r["frame"] for r in json.loads(result.stdout)["rsts"]] == [22, 23]
    assert "truncated" in result.stderr


@needs_entry_point
def test_unsupported_link_type_is_one_error_line_and_status_2(tmp_path: Path) -> None:
    data = bytearray(public("zeek__dhe.pcap").read_bytes())
    data[20:24] = (105).to_bytes(4, "little")  # IEEE 802.11
    odd = tmp_path / "wifi.pcap"
    odd.write_bytes(bytes(data))
    result = run("read", str(odd))
    assert result.returncode == 2
    assert "unsupported link type 105 (IEEE 802.11)" in result.stderr
    assert result.stderr.count("\n") == 1


@needs_entry_point
def test_an_empty_pcap_of_an_unsupported_link_type_is_an_error_too(tmp_path: Path) -> None:
    header = bytearray(public("zeek__dhe.pcap").read_bytes()[:24])
    header[20:24] = (105).to_bytes(4, "little")
    odd = tmp_path / "empty-wifi.pcap"
    odd.write_bytes(bytes(header))
    result = run("read", str(odd))
    assert result.returncode == 2
    assert result.stderr == (f"rstdiag: error: {odd}: unsupported link type 105 (IEEE 802.11): "
                             "rstdiag reads Ethernet, 802.1Q, Linux cooked (SLL, SLL2), raw IP "
                             "and BSD loopback captures\n")


@needs_entry_point
def test_output_closed_early_exits_quietly() -> None:
    proc = subprocess.Popen(f"{RSTDIAG} read --format jsonl "
                            f"{public('censorship-detection__tripwire-1597963966.pcap')} | head -1",
                            shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=60)
    assert len(out.splitlines()) == 1
    assert b"Traceback" not in err and b"BrokenPipe" not in err


@needs_entry_point
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_still_prints_the_summary_of_what_was_read(tmp_path: Path,
                                                                stop: signal.Signals) -> None:
    data = public("zeek__dhe.pcap").read_bytes()  # first: a skip must not leave rstdiag waiting
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen([RSTDIAG, "read", "--format", "json", str(fifo)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with open(fifo, "wb") as writer:
        writer.write(data)  # the whole capture, but the pipe stays open: rstdiag waits
        writer.flush()
        time.sleep(1.0)
        proc.send_signal(stop)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    doc = json.loads(out)
    assert doc["files"][0]["complete"] is False
    assert len(doc["rsts"]) == 3
    assert b"Traceback" not in err
    assert err.decode().endswith(f"{fifo}: interrupted; reporting what was read\n")


@needs_entry_point
def test_version_and_help_answer() -> None:
    assert run("--version").stdout.startswith("rstdiag, version")
    assert "Exit status" in run("--help").stdout


def test_every_command_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name, command in cli.commands.items():
        assert f"rstdiag {name}" in readme, f"README does not document `rstdiag {name}`"
        assert command.help, f"`rstdiag {name}` has no --help text"


def test_the_cli_module_does_not_import_scapy() -> None:
    code = "import sys, rstdiag.cli, rstdiag.analysis; print('scapy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False"


def test_json_document_is_the_indented_document_with_one_rst_a_line() -> None:
    from rstdiag.analysis import analyze_file
    from rstdiag.machine import document, write_json

    reports = [analyze_file(str(public("zeek__rst-inject-rae.pcap")))]
    out = io.StringIO()
    write_json(reports, out)
    text = out.getvalue()
    assert json.loads(text) == json.loads(json.dumps(document(reports)))
    rst_lines = [line for line in text.splitlines() if line.startswith('    {"file"')]
    assert len(rst_lines) == len(reports[0].verdicts) > 1
    assert text.startswith('{\n  "version": 1,\n  "rsts": [\n    {"file": ')


@needs_entry_point
@pytest.mark.parametrize(("topic", "expected"), [("read", "--cause LABELS"),
                                                 ("causes", "half-open\n    look for a restart"),
                                                 ("exit-status", "130  interrupted"),
                                                 ("filters", "--min-confidence")])
def test_help_topics_print_the_reference(topic: str, expected: str) -> None:
    result = run("help", topic)
    assert result.returncode == 0 and expected in result.stdout


@needs_entry_point
def test_an_unknown_help_topic_lists_the_topics() -> None:
    result = run("help", "nope")
    assert result.returncode == 2 and "causes, exit-status, filters, formats" in result.stderr


@needs_entry_point
def test_read_from_a_pipe_widens_it_so_that_a_big_capture_wakes_the_writer_less_often() -> None:
    import fcntl

    read_fd, write_fd = os.pipe()
    try:
        with subprocess.Popen([RSTDIAG, "read", "-q", "-"], stdin=read_fd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
            os.close(read_fd)
            os.write(write_fd, (Path(__file__).parents[1] / "pcaps" / "closed-port-v4.pcap")
                     .read_bytes())
            deadline = time.monotonic() + 10
            while (fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ) < 1 << 20
                   and time.monotonic() < deadline):
                time.sleep(0.02)
            size = fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ)
            os.close(write_fd)
            write_fd = -1
            assert proc.wait(timeout=20) == 0
    finally:
        if write_fd >= 0:
            os.close(write_fd)
    assert size == 1 << 20
