"""`read`'s table for people: one line per RST that fits the terminal, addresses never cut,
clean pipes, honest counts, colours that mean causes (issue 14)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from corpus import PROJECT_PCAPS, public

from rstdiag.analysis import FileReport, analyze_file
from rstdiag.labels import Label
from rstdiag.render import LABEL_STYLES, write_table

RSTDIAG = shutil.which("rstdiag") or ""
needs_entry_point = pytest.mark.skipif(not RSTDIAG, reason="rstdiag is not installed")
SAMPLE = PROJECT_PCAPS / "sample.pcapng"
ROW = re.compile(r"^\s*(\d+)\s")  # a RST's line starts with its frame number


def tripwire() -> FileReport:
    return analyze_file(str(public("censorship-detection__tripwire-1597963966.pcap")))


def table(report: FileReport, width: int | None, **options: object) -> list[str]:
    out = io.StringIO()
    write_table([report], out, color=False, width=width, **options)  # type: ignore[arg-type]
    return out.getvalue().splitlines()


def rows(lines: list[str]) -> list[str]:
    """The lines of the RSTs: up to the blank line before the summary."""
    out = []
    for line in lines[2:]:
        if not line.strip() or "identical copies" in line:
            break
        out.append(line)
    return out


@pytest.mark.parametrize("width", [60, 80, 120, 200])
@pytest.mark.parametrize("capture", ["sample", "tripwire"])
def test_no_address_or_port_is_cut_at_any_width(capture: str, width: int) -> None:
    report = analyze_file(str(SAMPLE)) if capture == "sample" else tripwire()
    text = "\n".join(table(report, width))
    for v in report.verdicts:
        if v.duplicate_of is None:
            assert str(v.client) in text and str(v.server) in text
    assert all(len(line) <= width for line in text.splitlines())


@pytest.mark.parametrize("width", [80, 120, 200])
@pytest.mark.parametrize("capture", ["sample", "tripwire"])
def test_each_distinct_rst_is_exactly_one_line_at_80_and_above(capture: str,
                                                              width: int) -> None:
    report = analyze_file(str(SAMPLE)) if capture == "sample" else tripwire()
    lines = [line for line in rows(table(report, width)) if not line.startswith("──")]
    distinct = [v for v in report.verdicts if v.duplicate_of is None]
    assert [int(ROW.match(line).group(1)) for line in lines] == [v.frame for v in distinct]
    for line, v in zip(lines, distinct, strict=True):
        assert str(v.client) in line and str(v.server) in line and str(v.label) in line


def test_a_narrow_terminal_stacks_the_flow_rather_than_cut_it() -> None:
    lines = rows(table(analyze_file(str(SAMPLE)), 60))
    assert any(line.strip().startswith("> [2001:db8:1:2::1]:8080") for line in lines)


def test_wide_terminals_keep_the_time_and_whole_words() -> None:
    lines = table(tripwire(), 120)
    assert lines[1].split() == ["frame", "time", "flow", "(client", "->", "server)", "sender",
                                "cause", "conf"]
    assert "   47  22:54:08.973  123.206.27.192:47374 -> 104.17.210.9:80" in lines[3]
    assert lines[2] == "── 2020-08-20"


def test_a_pipe_gets_no_padding_and_no_wrapping() -> None:
    lines = table(tripwire(), None, verbose=1)
    assert all(line == line.rstrip() for line in lines)
    evidence = [line for line in lines if "forged in the client's name" in line]
    assert evidence and all(len(line) > 100 for line in evidence[:1])


def test_the_summary_counts_distinct_rsts_and_copies_apart() -> None:
    lines = table(tripwire(), 120, quiet=True)
    head = next(line for line in lines if "by cause" in line)
    assert head.startswith("265 RSTs by cause in 1,215 frames, 81 TCP flows")
    assert "142 identical copies not counted" in "\n".join(lines)
    half_open = next(line for line in lines if line.startswith("half-open"))
    assert half_open.split()[:3] == ["half-open", "106", "48"]


def test_verbose_shows_the_evidence_and_vv_the_copies() -> None:
    report = tripwire()
    plain, verbose, copies = (rows(table(report, 200, verbose=n)) for n in (0, 1, 2))
    assert not any("forged" in line for line in plain)
    assert any("forged in the client's name" in line for line in verbose)
    assert sum(bool(re.search(r"  copy of #\d+$", line)) for line in copies) == 142


def test_an_empty_capture_says_so_in_one_line(tmp_path: Path) -> None:
    lines = table(FileReport("empty.pcap", "pcap", frames=12, flows=2), 80)
    assert [line for line in lines if line.strip()] == ["no TCP resets in 12 frames, 2 TCP flows"]


def test_one_rst_is_one_rst() -> None:
    report = analyze_file(str(public("zeek__single-rst.pcap")))
    text = "\n".join(table(report, 120))
    assert "1 RST by cause" in text and "RSTs in" not in text


def test_every_cause_has_a_colour_of_its_own() -> None:
    assert set(LABEL_STYLES) == set(Label)
    assert len(set(LABEL_STYLES.values())) == len(Label)


def test_confidence_is_not_coloured_as_an_alarm() -> None:
    out = io.StringIO()
    write_table([analyze_file(str(SAMPLE))], out, color=True, width=120)
    assert "\x1b[32mhigh" not in out.getvalue() and "\x1b[31mlow" not in out.getvalue()


@pytest.mark.parametrize(("flags", "first"), [("-t", None), ("-tt", "1597964048.973669"),
                                              ("-tttt", "2020-08-20 22:54:08.973"),
                                              ("-ttttt", "0.000000")])
@needs_entry_point
def test_the_t_family_chooses_the_time_column(flags: str, first: str | None) -> None:
    path = public("censorship-detection__tripwire-1597963966.pcap")
    out = subprocess.run([RSTDIAG, "read", flags, str(path)], capture_output=True, text=True,
                         timeout=60).stdout.splitlines()
    row = next(line for line in out if ROW.match(line))
    if first is None:
        assert row.split()[:2] == ["47", "123.206.27.192:47374"]
    else:
        assert first in row


@needs_entry_point
def test_several_files_name_each_file_and_date_its_rows() -> None:
    a, b = public("zeek__dhe.pcap"), public("zeek__single-rst.pcap")
    out = subprocess.run([RSTDIAG, "read", str(a), str(b)], capture_output=True, text=True,
                         timeout=60).stdout.splitlines()
    assert "── zeek__dhe.pcap" in out and "── zeek__single-rst.pcap" in out
    assert sum(line.startswith("── 20") for line in out) == 2


@needs_entry_point
def test_no_color_is_honoured_on_a_terminal_and_force_color_in_a_pipe() -> None:
    path = str(public("zeek__dhe.pcap"))
    env = {**os.environ, "FORCE_COLOR": "1"}
    env.pop("NO_COLOR", None)
    forced = subprocess.run([RSTDIAG, "read", path], capture_output=True, text=True,
                            timeout=60, env=env).stdout
    assert "\x1b[" in forced
    shell = f"NO_COLOR=1 {RSTDIAG} read --no-pager {path}"
    script = subprocess.run(["script", "-qec", shell, "/dev/null"], capture_output=True,
                            text=True, timeout=60)
    assert "\x1b[1m" not in script.stdout and "data-after-close" in script.stdout


@needs_entry_point
def test_check_quiet_is_one_unbroken_line_in_a_pipe() -> None:
    path = public("censorship-detection__tripwire-1597963966.pcap")
    out = subprocess.run([RSTDIAG, "check", "-q", str(path)], capture_output=True, text=True,
                         timeout=60).stdout
    assert out.count("\n") == 1 and out.startswith("FAIL: 252 RSTs with failing causes")


@needs_entry_point
def test_read_help_does_not_list_check_s_exit_status() -> None:
    out = subprocess.run([RSTDIAG, "read", "--help"], capture_output=True, text=True).stdout
    assert "Exit status: 0 done, 2 usage error" in out and "1 check" not in out


def test_the_json_document_streams_rsts_before_the_counts() -> None:
    from rstdiag.machine import write_json

    out = io.StringIO()
    write_json([tripwire()], out)
    doc = json.loads(out.getvalue())
    assert list(doc) == ["version", "rsts", "files", "summary", "copies"]
    assert doc["files"][0]["rsts"] == 265 and doc["files"][0]["copies"] == 142
    assert sum(doc["summary"].values()) == 265 and sum(doc["copies"].values()) == 142


@pytest.mark.parametrize("width", [None, 120])
def test_the_table_does_not_ask_the_terminals_size_for_every_row(
        monkeypatch: pytest.MonkeyPatch, width: int | None) -> None:
    report = analyze_file(str(PROJECT_PCAPS / "sample.pcapng"))
    asked = []
    real = os.get_terminal_size

    def counting(*args: int) -> os.terminal_size:
        asked.append(args)
        return real(*args)

    monkeypatch.setattr(os, "get_terminal_size", counting)
    write_table([report], io.StringIO(), color=False, width=width)
    assert len(report.verdicts) > 10
    assert asked == []
