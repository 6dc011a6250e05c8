"""`rstdiag check`, the CI gate, run as CI runs it: the installed command in a subprocess."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from corpus import public

RSTDIAG = shutil.which("rstdiag") or ""
pytestmark = pytest.mark.skipif(not RSTDIAG, reason="rstdiag is not installed (pip install -e .)")

WORKFLOW_COMMAND = re.compile(r"^::(error|warning|notice)( [a-z]+=[^,:]*(,[a-z]+=[^,:]*)*)?::.*$")


def check(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RSTDIAG, "check", *map(str, args)], capture_output=True, text=True,
                          timeout=60)


# --- exit status --------------------------------------------------------------------------

def test_passes_with_status_0_when_only_closed_ports_and_client_aborts() -> None:
    result = check(public("zeek__nmap-vsn.pcap"))  # 6 closed-port, 3 client-abort
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("PASS: no RSTs with failing causes (--max 0)")
    assert "9 with other causes" in result.stdout
    assert result.stderr == ""


def test_fails_with_status_1_and_tells_why() -> None:
    result = check(public("zeek__dhe.pcap"))
    assert result.returncode == 1
    assert "TCP resets failing the check" in result.stdout
    assert "FAIL: 3 RSTs with failing causes, more than --max 0: data-after-close 1, " \
           "follow-up 2" in result.stdout
    assert "\x1b[" not in result.stdout  # no colour when stdout is not a terminal


def test_max_lets_that_many_pass() -> None:
    assert check("--max", "3", public("zeek__dhe.pcap")).returncode == 0
    assert check("--max", "2", public("zeek__dhe.pcap")).returncode == 1


def test_fail_on_chooses_the_causes() -> None:
    capture = public("zeek__rst-inject-rae.pcap")  # injected, unread-data, follow-up
    assert check("--fail-on", "half-open,closed-port", capture).returncode == 0
    result = check("--fail-on", "injected,half-open", "-q", capture)
    assert result.returncode == 1
    assert result.stdout.startswith("FAIL: 1 RST with failing causes, more than --max 0: "
                                    "injected 1")


def test_ignore_port_and_ignore_flow() -> None:
    capture = public("zeek__dhe.pcap")  # 192.168.18.50:62277 -> 162.219.2.166:443
    assert check("--ignore-port", "443", capture).returncode == 0
    assert check("--ignore-port", "62277", capture).returncode == 1  # the client's port
    assert check("--ignore-flow", "162.219.2.166:443", capture).returncode == 0
    assert check("--ignore-flow", "192.168.18.50:62277-162.219.2.166:443",
                 capture).returncode == 0
    assert check("--ignore-flow", "162.219.2.166:443-192.168.18.50:62277",
                 capture).returncode == 0
    assert check("--ignore-flow", "162.219.2.166:443-192.168.18.50:1", capture).returncode == 1


def test_an_unknown_label_is_a_usage_error_naming_the_valid_ones() -> None:
    result = check("--fail-on", "injected,bogus", public("zeek__dhe.pcap"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "'bogus'" in result.stderr
    assert "closed-port, accept-overflow" in result.stderr and "unknown" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["--max", "-1"], ["--ignore-flow", "example.com:80"],
                                  ["--ignore-port", "http"], ["--format", "xml"],
                                  ["--baseline", "/nonexistent/baseline.json"]])
def test_bad_options_are_usage_errors(args: list[str]) -> None:
    result = check(*args, public("zeek__dhe.pcap"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_an_unreadable_capture_is_status_2_even_with_findings(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.pcap"
    bogus.write_text("hello world\n")
    result = check(bogus, public("zeek__dhe.pcap"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"rstdiag: error: {bogus}: not a pcap or pcapng file")
    assert result.stderr.count("\n") == 1
    assert "FAIL" in result.stdout  # what could be read is still reported
    missing = check(tmp_path / "nope.pcap")
    assert missing.returncode == 2
    assert "nope.pcap" in missing.stderr


def test_help_documents_the_exit_status() -> None:
    result = check("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for word in ("--fail-on", "--max", "--ignore-flow", "--ignore-port", "--baseline",
                 "--write-baseline", "junit", "github", "markdown"):
        assert word in text
    assert "Exit status" in text and "0 passed, 1 more RSTs with failing causes" in text


# --- formats ------------------------------------------------------------------------------

def test_json_is_the_read_document_plus_the_check_object() -> None:
    result = check("--format", "json", public("zeek__dhe.pcap"))
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    read = json.loads(subprocess.run([RSTDIAG, "read", "--format", "json",
                                      str(public("zeek__dhe.pcap"))],
                                     capture_output=True, text=True, timeout=60).stdout)
    assert {k: v for k, v in doc.items() if k != "check"} == read
    check_object = doc["check"]
    assert check_object["passed"] is False
    assert check_object["max"] == 0
    assert check_object["findings"] == 3
    assert check_object["by_label"] == {"data-after-close": 1, "follow-up": 2}
    assert "closed-port" not in check_object["fail_on"]
    assert "client-abort" not in check_object["fail_on"]
    assert "injected" in check_object["fail_on"]


def test_json_of_a_passing_check() -> None:
    result = check("--format", "json", "--max", "5", public("zeek__dhe.pcap"))
    assert result.returncode == 0
    assert json.loads(result.stdout)["check"]["passed"] is True


def test_junit_is_xml_with_a_testcase_per_file_and_cause() -> None:
    dhe, rae = public("zeek__dhe.pcap"), public("zeek__rst-inject-rae.pcap")
    result = check("--format", "junit", dhe, rae)
    assert result.returncode == 1
    root = ET.fromstring(result.stdout)
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [str(dhe), str(rae)]
    cases = {(s.get("name"), c.get("name")): c for s in suites for c in s.findall("testcase")}
    assert set(cases) == {(str(dhe), "data-after-close"), (str(dhe), "follow-up"),
                          (str(rae), "unread-data"), (str(rae), "injected"),
                          (str(rae), "follow-up")}
    assert root.get("tests") == "5" and root.get("failures") == "5"
    assert root.get("errors") == "0"
    assert [s.get("tests") for s in suites] == ["2", "3"]
    assert [s.get("failures") for s in suites] == ["2", "3"]
    follow_up = cases[(str(dhe), "follow-up")].find("failure")
    assert follow_up is not None
    assert "frames 23, 24" in follow_up.get("message", "")
    text = follow_up.text or ""
    assert "frame 23" in text and "frame 24" in text
    assert "192.168.18.50:62277 -> 162.219.2.166:443" in text
    assert "further RST from the server" in text


def test_junit_only_fails_the_causes_in_fail_on() -> None:
    result = check("--format", "junit", "--fail-on", "injected,half-open",
                   public("zeek__rst-inject-rae.pcap"))
    assert result.returncode == 1
    root = ET.fromstring(result.stdout)
    assert (root.get("tests"), root.get("failures")) == ("3", "1")
    failing = [c.get("name") for c in root.iter("testcase") if c.find("failure") is not None]
    assert failing == ["injected"]


def test_junit_reports_an_unreadable_capture_as_an_error(tmp_path: Path) -> None:
    result = check("--format", "junit", tmp_path / "nope.pcap", public("zeek__nmap-vsn.pcap"))
    assert result.returncode == 2
    root = ET.fromstring(result.stdout)
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "0", "1")


def test_github_prints_workflow_commands() -> None:
    result = check("--format", "github", public("zeek__dhe.pcap"))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    assert all(WORKFLOW_COMMAND.match(line) for line in lines), lines
    assert lines[0] == (f"::error file={public('zeek__dhe.pcap')},title=rstdiag data-after-close"
                        "::frame 22 192.168.18.50:62277 -> 162.219.2.166:443: the server had "
                        "closed (FIN #17); the peer then sent a FIN (#21) and the RST answers it")
    assert lines[-1].startswith("::notice title=rstdiag check::FAIL: 3 RSTs")


def test_github_warns_instead_when_within_max() -> None:
    result = check("--format", "github", "--max", "3", public("zeek__dhe.pcap"))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["::warning"] * 3 + ["::notice"]


def test_markdown_has_a_summary_table_and_the_offending_rsts() -> None:
    result = check("--format", "markdown", public("zeek__dhe.pcap"),
                   public("zeek__nmap-vsn.pcap"))
    assert result.returncode == 1
    text = result.stdout
    assert text.startswith("### ❌ rstdiag check: FAIL")
    assert "| cause | RSTs | counted | baseline | ignored | result |\n|---|" in text
    assert "| `data-after-close` | 1 | 1 | 0 | 0 | ❌ fail |" in text
    assert "| `closed-port` | 6 | – | 0 | 0 | not checked |" in text
    assert "1. `zeek__dhe.pcap` frame 22, **data-after-close**" in text


def test_table_verbose_lists_every_rst_and_quiet_only_the_verdict() -> None:
    verbose = check("-v", public("zeek__nmap-vsn.pcap"))
    assert verbose.returncode == 0
    assert "not checked" in verbose.stdout and "closed-port" in verbose.stdout
    quiet = check("-q", public("zeek__dhe.pcap"))
    assert quiet.stdout.count("\n") == 1 and quiet.stdout.startswith("FAIL")


# --- baseline -----------------------------------------------------------------------------

def test_a_baseline_accepts_existing_noise_but_not_a_new_cause(tmp_path: Path) -> None:
    baseline = tmp_path / "rst-baseline.json"
    dhe = public("zeek__dhe.pcap")  # data-after-close + 2 follow-ups, server port 443
    assert check(dhe).returncode == 1

    written = check("--write-baseline", baseline, dhe)
    assert written.returncode == 0
    assert f"baseline {baseline} written: 3 RSTs" in written.stderr
    doc = json.loads(baseline.read_text())
    assert doc["rstdiag_baseline"] == 1
    assert doc["accepted"] == [
        {"label": "data-after-close", "server_port": 443, "count": 1},
        {"label": "follow-up", "server_port": 443, "count": 2},
    ]

    accepted = check("--baseline", baseline, "--format", "json", dhe)
    assert accepted.returncode == 0
    assert json.loads(accepted.stdout)["check"]["accepted_by_baseline"] == 3

    other = check("--baseline", baseline, "--format", "json",
                  public("zeek__rst-inject-rae.pcap"))  # injected, ...: new causes
    assert other.returncode == 1
    assert "injected" in json.loads(other.stdout)["check"]["by_label"]


def test_a_file_that_is_not_a_baseline_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "baseline.json"
    bad.write_text('{"something": "else"}')
    result = check("--baseline", bad, public("zeek__dhe.pcap"))
    assert result.returncode == 2
    assert "not an rstdiag baseline" in result.stderr


def test_no_baseline_is_written_when_a_capture_cannot_be_read(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    result = check("--write-baseline", baseline, tmp_path / "nope.pcap",
                   public("zeek__dhe.pcap"))
    assert result.returncode == 2
    assert not baseline.exists()
    assert "not written" in result.stderr


def test_check_jsonl_gives_every_rst_with_its_outcome() -> None:
    result = check(public("zeek__dhe.pcap"), "--format", "jsonl")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["frame"], r["label"], r["outcome"]) for r in rows] == [
        (22, "data-after-close", "finding"), (23, "follow-up", "finding"),
        (24, "follow-up", "finding")]
    assert result.returncode == 1


def test_check_csv_has_a_header_and_an_outcome_column() -> None:
    result = check(public("zeek__nmap-vsn.pcap"), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 9
    assert {r["outcome"] for r in rows} == {"not-checked"}
    assert result.returncode == 0
