"""The library face: `import rstdiag` in a notebook, without the CLI."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import seeds as S  # fuzz/seeds.py: capture builders

import rstdiag
from rstdiag.analysis import Analysis

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


SLOW_STREAM_SCRIPT = """
import io, sys, time
import rstdiag

data = open(sys.argv[1], "rb").read()

class Slow(io.RawIOBase):
    def __init__(self):
        self.data = io.BytesIO(data)
    def readable(self):
        return True
    def read(self, n=-1):
        time.sleep(0.0005)
        return self.data.read(4096)

next(iter(rstdiag.analyze(Slow())))  # then the script ends, the capture half read
"""


def test_a_script_that_stops_reading_a_python_stream_exits_cleanly(tmp_path: Path) -> None:
    """The engine's threads never call Python: a script that takes one verdict from a slow
    stream and ends, its capture half read, exits with status 0. (An input thread that read
    the stream took the GIL as the interpreter shut down; CPython ended it, and the process
    aborted: "FATAL: exception not rethrown", in 8 runs of 10.)"""
    one = (PCAPS / "closed-port-v4.pcap").read_bytes()  # a SYN, then its RST
    header, syn, rst = one[:24], one[24:24 + 16 + 74], one[24 + 16 + 74:]

    def at(record: bytes, second: int) -> bytes:  # the record, captured `second` s later
        return struct.pack("<I", struct.unpack_from("<I", record)[0] + second) + record[4:]

    # the RST, then the SYN sent again every second: 2.7 MB the engine still reads after the
    # RST's verdict, when the script ends
    capture = tmp_path / "many.pcap"
    capture.write_bytes(header + syn + rst + b"".join(at(syn, s) for s in range(1, 30000)))
    script = tmp_path / "slow.py"
    script.write_text(SLOW_STREAM_SCRIPT)
    for run in range(5):
        done = subprocess.run([sys.executable, str(script), str(capture)],
                              capture_output=True, timeout=60)
        assert (done.returncode, done.stderr) == (0, b""), run


def test_progress_follows_the_bytes_read_while_no_verdict_is_ready() -> None:
    capture = S.pcap(S.bulk_transfer(6000), S.RAW)  # 9 MB, its one RST at the very end
    read_end, write_end = os.pipe()

    def trickle() -> None:  # ten pieces, 50 ms apart
        with os.fdopen(write_end, "wb") as out:
            step = len(capture) // 10 + 1
            for start in range(0, len(capture), step):
                out.write(capture[start:start + step])
                out.flush()
                time.sleep(0.05)

    writer = threading.Thread(target=trickle)
    writer.start()
    seen: list[int] = []
    with os.fdopen(read_end, "rb") as stream:
        report = Analysis("bulk").run_stream(stream, progress=seen.append)
    writer.join()
    assert len(seen) >= 3 and seen == sorted(seen)
    assert seen[-1] == len(capture)
    assert [v.frame for v in report.verdicts] == [6004]
