"""The README's first command: the sample capture shows a RST of every cause we can make."""

from __future__ import annotations

from pathlib import Path

from rstdiag.analysis import analyze_file

SAMPLE = Path(__file__).resolve().parents[1] / "pcaps" / "sample.pcapng"


def test_sample_capture_holds_every_cause_the_kernel_scenarios_make() -> None:
    labels = {str(v.label) for v in analyze_file(str(SAMPLE)).verdicts}
    assert labels == {
        "closed-port", "accept-overflow", "linger-abort", "unread-data", "data-after-close",
        "follow-up", "half-open", "keepalive-timeout", "injected", "client-abort",
    }


def test_every_kept_capture_is_described_in_the_pcaps_readme() -> None:
    readme = (SAMPLE.parent / "README.md").read_text()
    for capture in SAMPLE.parent.glob("*.pcap*"):
        assert f"`{capture.name}`" in readme
