"""The library face: `import rstdiag` in a notebook, without the CLI."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

import rstdiag

PCAPS = Path(__file__).resolve().parents[1] / "pcaps"
SAMPLE = PCAPS / "sample.pcapng"


def test_analyze_streams_every_verdict_of_a_capture_in_frame_order() -> None:
    frames = [v.frame for v in rstdiag.analyze(SAMPLE)]
    assert frames == sorted(frames)
    assert frames == [v.frame for v in rstdiag.analyze_file(str(SAMPLE)).verdicts]


def test_analyze_reads_an_open_binary_file_as_it_reads_the_path() -> None:
    with SAMPLE.open("rb") as f:
        from_stream = [v.to_dict() | {"file": ""} for v in rstdiag.analyze(f)]
    from_path = [v.to_dict() | {"file": ""} for v in rstdiag.analyze(str(SAMPLE))]
    assert from_stream == from_path


def test_analyze_reads_bytes_in_memory() -> None:
    report = rstdiag.analyze(io.BytesIO((PCAPS / "closed-port-v4.pcap").read_bytes()))
    assert [v.label for v in report] == [rstdiag.Label.CLOSED_PORT]


def test_report_counts_the_capture_once_the_stream_has_ended() -> None:
    report = rstdiag.analyze(SAMPLE)
    verdicts = list(report)
    assert report.file.frames == rstdiag.analyze_file(str(SAMPLE)).frames
    assert sum(report.summary().values()) == len(verdicts)


def test_a_report_streams_once() -> None:
    report = rstdiag.analyze(SAMPLE)
    list(report)
    with pytest.raises(RuntimeError, match="once"):
        list(report)


def test_a_file_that_is_not_a_capture_raises_capture_error_at_once(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello world\n")
    with pytest.raises(rstdiag.CaptureError, match="not a pcap or pcapng file"):
        rstdiag.analyze(path)


def test_a_missing_file_raises_capture_error(tmp_path: Path) -> None:
    with pytest.raises(rstdiag.CaptureError, match="cannot open: No such file or directory"):
        rstdiag.analyze(tmp_path / "absent.pcap")


def test_importing_the_library_loads_neither_the_cli_nor_rich() -> None:
    code = ("import sys, rstdiag; list(rstdiag.analyze(sys.argv[1])); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('click', 'rich')))")
    out = subprocess.run([sys.executable, "-c", code, str(SAMPLE)], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_engine_ships_type_stubs() -> None:
    package = Path(rstdiag.__file__).parent
    assert (package / "_core.pyi").exists()
    assert (package / "py.typed").exists()
