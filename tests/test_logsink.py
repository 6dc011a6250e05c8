"""rstdiag/logsink.py: verdicts as JSON lines for a log shipper, rotated by size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rstdiag.analysis import analyze_file
from rstdiag.labels import Verdict
from rstdiag.logsink import RotatingWriter, VerdictLog, parse_size, verdict_record

PCAPS = Path(__file__).resolve().parents[1] / "pcaps"


def verdicts() -> list[Verdict]:
    path = PCAPS / "sample.pcapng"
    if not path.exists():
        pytest.skip("pcaps/ not made (tools/make_pcaps.py)")
    return analyze_file(str(path)).verdicts


def lines_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_line_is_the_read_verdict_plus_host_and_update(tmp_path: Path) -> None:
    log_path = tmp_path / "rst.jsonl"
    warnings: list[str] = []
    log = VerdictLog(RotatingWriter(str(log_path)), "web-7", warnings.append)
    vs = verdicts()
    for v in vs:
        log.verdict(v, False)
    log.verdict(vs[0], True)
    log.close()
    lines = lines_of(log_path)
    assert lines[:-1] == [v.to_dict() | {"host": "web-7"} for v in vs]
    assert lines[-1] == vs[0].to_dict() | {"host": "web-7", "update": True}
    assert warnings == []


def test_the_log_rotates_before_it_passes_the_size_limit(tmp_path: Path) -> None:
    log_path = tmp_path / "rst.jsonl"
    writer = RotatingWriter(str(log_path), max_bytes=4096, backups=3)
    log = VerdictLog(writer, "web-7", print)
    written = [v for _ in range(40) for v in verdicts()]
    for v in written:
        log.verdict(v, False)
    log.close()
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["rst.jsonl", "rst.jsonl.1", "rst.jsonl.2", "rst.jsonl.3"]
    assert writer.rotations > 3  # older files than .3 were removed
    assert all(0 < f.stat().st_size <= 4096 for f in files)
    kept = [d for name in ("rst.jsonl.3", "rst.jsonl.2", "rst.jsonl.1", "rst.jsonl")
            for d in lines_of(tmp_path / name)]
    assert all(d["host"] == "web-7" for d in kept)
    # what is kept is the newest verdicts, in order, none cut
    assert kept == [v.to_dict() | {"host": "web-7"} for v in written[-len(kept):]]


def test_a_restarted_log_appends_and_counts_what_is_there(tmp_path: Path) -> None:
    line = json.dumps(verdict_record(verdicts()[0], False, "web-7"))
    log_path = tmp_path / "rst.jsonl"
    old = "x" * (4096 - len(line) - 2) + "\n"  # room for exactly one more line
    log_path.write_text(old)
    writer = RotatingWriter(str(log_path), max_bytes=4096, backups=1)
    writer.write(line)
    assert writer.rotations == 0 and log_path.stat().st_size == 4096
    writer.write(line)
    writer.close()
    assert writer.rotations == 1
    assert (tmp_path / "rst.jsonl.1").read_text() == old + line + "\n"
    assert log_path.read_text() == line + "\n"


def test_a_write_that_fails_warns_once_and_stops_logging() -> None:
    warnings: list[str] = []
    log = VerdictLog(RotatingWriter("/dev/full"), "web-7", warnings.append)
    for v in verdicts():
        log.verdict(v, False)
    log.close()
    assert log.failed
    assert warnings == ["/dev/full: cannot write the log (No space left on device); logging "
                        "stopped, the capture goes on"]


@pytest.mark.parametrize(("text", "size"), [("4096", 4096), ("64K", 65536), ("10M", 10485760),
                                            ("1g", 1073741824), ("10MiB", 10485760)])
def test_sizes_are_bytes_or_powers_of_1024(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "ten", "1.5M", "-5", "5T"])
def test_a_size_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)
