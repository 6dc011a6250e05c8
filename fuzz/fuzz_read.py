"""Fuzz `rstdiag read`'s core with atheris: any bytes, taken as a capture file.

Each input goes through the whole pipeline in memory (CaptureReader -> Decoder -> FlowTracker ->
classify, i.e. rstdiag.analysis.Analysis.run_stream on a BytesIO) and the JSON form of its
report. CaptureError (an unreadable capture: exit status 2) is an expected outcome; any other
exception, or a report that contradicts itself (see `check_report`), is a crash.

    python fuzz/make_corpus.py fuzz/corpus          # seeds: public captures, pcaps/, seeds.py
    python fuzz/fuzz_read.py fuzz/corpus -runs=1000000 -max_len=65536 -timeout=10

The options after the script are libFuzzer's (-jobs/-workers, -max_total_time, ...). Without
atheris, `python fuzz/fuzz_read.py --replay FILE...` runs inputs (a crash file) through the
same checks. RSTDIAG_FUZZ_RENDER=1 also renders each report in every `read --format`
(table included) into memory, so that the renderers are fuzzed too.
"""

from __future__ import annotations

import io
import json
import os
import sys

MAX_FLOWS = 1000  # the smallest cap --max-flows allows: eviction runs on small inputs too
RENDER = os.environ.get("RSTDIAG_FUZZ_RENDER") == "1"


def _imports() -> None:
    global Analysis, CaptureError, FileReport, Label, Sender, Confidence
    from rstdiag.analysis import Analysis, FileReport
    from rstdiag.errors import CaptureError
    from rstdiag.labels import Confidence, Label, Sender

    if RENDER:
        import rstdiag.render  # noqa: F401  (imported here to be instrumented with the rest)


def check_one(data: bytes) -> FileReport | None:
    """Run `data` as a capture; None when it is unreadable (CaptureError, as the CLI's status
    2). Raises AssertionError when the outcome breaks a rule, anything else when rstdiag does."""
    if "Analysis" not in globals():
        _imports()
    analysis = Analysis("<fuzz>", MAX_FLOWS)
    try:
        report = analysis.run_stream(io.BytesIO(data))
    except CaptureError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"error message not one line: {message!r}"
        return None
    check_report(report)
    if RENDER:
        render(report)
    return report


def render(report: FileReport) -> None:
    from rstdiag.render import write_csv, write_json, write_jsonl, write_table

    for write in (write_json, write_jsonl, write_csv):
        write([report], io.StringIO())
    write_table([report], io.StringIO(), color=True, verbose=1, width=120)


def check_report(report: FileReport) -> None:
    """What every report must satisfy, whatever the capture held."""
    frames = [v.frame for v in report.verdicts]
    assert frames == sorted(set(frames)), f"verdict frames not increasing: {frames[:20]}"
    assert all(1 <= f <= report.frames for f in frames), \
        f"verdict frame beyond the {report.frames} frames: {frames[-1:]}"
    assert report.tcp_packets <= report.frames
    assert len(report.verdicts) <= report.tcp_packets
    assert 0 <= report.evicted_flows <= report.flows
    seen = set(frames)
    for v in report.verdicts:
        assert isinstance(v.label, Label) and isinstance(v.sender, Sender) \
            and isinstance(v.confidence, Confidence), v
        assert v.evidence and "\n" not in v.evidence, v.evidence
        assert 0 <= v.sport <= 65535 and 0 <= v.dport <= 65535
        if v.duplicate_of is not None:
            assert v.duplicate_of < v.frame and v.duplicate_of in seen, \
                f"#{v.frame} is a copy of #{v.duplicate_of}, which is no earlier RST"
    assert sum(report.summary().values()) == len(report.verdicts)
    assert len(report.warnings) <= 16, report.warnings
    for warning in report.warnings:
        assert warning and "\n" not in warning, f"warning not one line: {warning!r}"
    json.dumps({"files": [report.to_dict()], "rsts": [v.to_dict() for v in report.verdicts]},
               allow_nan=False)


def test_one_input(data: bytes) -> None:
    check_one(data)


def main() -> None:
    if sys.argv[1:2] == ["--replay"]:
        for path in sys.argv[2:]:
            with open(path, "rb") as f:
                report = check_one(f.read())
            print(path, "unreadable" if report is None else
                  f"{report.frames} frames, {len(report.verdicts)} RSTs")
        return
    import atheris

    with atheris.instrument_imports(include=["rstdiag"]):
        _imports()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
