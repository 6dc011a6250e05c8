"""The RST timeline under `read`'s summary: bucketing (pure), sparklines, and the table output."""

from __future__ import annotations

import io
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from corpus import public

from rstdiag.analysis import FileReport, analyze_file
from rstdiag.labels import Confidence, Endpoint, Label, Sender, Verdict
from rstdiag.render import write_table
from rstdiag.timeline import (
    SPARKS,
    bucketize,
    buckets_for_width,
    peak,
    render_timeline,
    sparkline,
    time_label,
)

T0 = datetime(2020, 8, 20, 22, 54, 0, tzinfo=UTC).timestamp()


def verdict(ts: float, label: Label = Label.HALF_OPEN, frame: int = 1) -> Verdict:
    return Verdict(frame, ts, "192.0.2.1", 40000, "198.51.100.7", 80, "R",
                   Endpoint("192.0.2.1", 40000), Endpoint("198.51.100.7", 80), Sender.SERVER,
                   label, Confidence.HIGH, "evidence")


def test_empty_input_gives_a_timeline_without_counts() -> None:
    timeline = bucketize([])
    assert timeline.counts == {}
    assert timeline.rsts == 0
    assert timeline.total == (0,)
    assert render_timeline(timeline).plain == ""


def test_a_single_rst_is_one_bucket_of_zero_width() -> None:
    timeline = bucketize([verdict(T0 + 5)])
    assert (timeline.start, timeline.end, timeline.buckets) == (T0 + 5, T0 + 5, 1)
    assert timeline.counts == {Label.HALF_OPEN: (1,)}
    assert timeline.width == 0


def test_rsts_all_at_one_instant_without_a_span_say_so() -> None:
    timeline = bucketize([verdict(T0, Label.INJECTED), verdict(T0, Label.HALF_OPEN)])
    assert timeline.buckets == 1
    assert timeline.counts == {Label.HALF_OPEN: (1,), Label.INJECTED: (1,)}
    assert render_timeline(timeline).plain == "RSTs over time: all 2 at 22:54:00.000 UTC"


def test_rsts_at_one_instant_within_a_capture_span_fill_one_bucket() -> None:
    timeline = bucketize([verdict(T0 + 30)] * 5, start=T0, end=T0 + 60, buckets=60)
    assert timeline.buckets == 60
    assert timeline.counts[Label.HALF_OPEN][30] == 5
    assert sum(timeline.counts[Label.HALF_OPEN]) == 5


def test_buckets_split_the_span_evenly_and_the_end_falls_in_the_last() -> None:
    times = [T0, T0 + 9.99, T0 + 10, T0 + 55, T0 + 60]
    timeline = bucketize([verdict(t) for t in times], start=T0, end=T0 + 60, buckets=6)
    assert timeline.width == 10
    assert timeline.counts[Label.HALF_OPEN] == (2, 1, 0, 0, 0, 2)
    assert timeline.bucket_start(5) == T0 + 50


def test_rsts_outside_the_given_span_widen_it() -> None:
    timeline = bucketize([verdict(T0 - 10), verdict(T0 + 100)], start=T0, end=T0 + 60,
                         buckets=11)
    assert (timeline.start, timeline.end) == (T0 - 10, T0 + 100)
    assert timeline.counts[Label.HALF_OPEN] == (1,) + (0,) * 9 + (1,)


def test_counts_are_per_label_in_taxonomy_order_and_total_adds_them() -> None:
    vs = [verdict(T0, Label.FOLLOW_UP), verdict(T0 + 1, Label.CLOSED_PORT),
          verdict(T0 + 2, Label.FOLLOW_UP), verdict(T0 + 3, Label.INJECTED)]
    timeline = bucketize(vs, buckets=3)
    assert list(timeline.counts) == [Label.CLOSED_PORT, Label.INJECTED, Label.FOLLOW_UP]
    assert timeline.counts[Label.FOLLOW_UP] == (1, 0, 1)
    assert timeline.total == (1, 1, 2)
    assert timeline.rsts == 4


def test_buckets_must_be_positive() -> None:
    with pytest.raises(ValueError):
        bucketize([verdict(T0)], buckets=0)


def test_sparkline_scales_to_the_row_peak_and_leaves_empty_buckets_blank() -> None:
    assert sparkline([0, 1, 12, 6, 0]) == " ▁█▄ "
    assert sparkline([3]) == "█"
    assert sparkline([0, 0]) == "  "
    assert sparkline([]) == ""
    assert set(sparkline(list(range(1, 100)))) <= set(SPARKS)


def test_peak_is_the_first_fullest_bucket() -> None:
    assert peak([0, 3, 1, 3]) == (1, 3)
    assert peak([0, 0]) == (0, 0)


def test_time_labels_are_utc() -> None:
    assert time_label(T0 + 1.25) == "22:54:01"
    assert time_label(T0 + 1.25, precise=True) == "22:54:01.250"
    assert time_label(T0, dated=True) == "2020-08-20 22:54:00"


def test_the_bucket_count_fits_the_console() -> None:
    assert buckets_for_width(160) == 48
    assert buckets_for_width(100) == 40
    assert buckets_for_width(40) == 16


def test_rendering_names_each_cause_the_axis_ends_and_the_peak() -> None:
    vs = [verdict(T0 + 58 + i * 0.01, Label.INJECTED) for i in range(12)]
    vs += [verdict(T0 + 5, Label.HALF_OPEN), verdict(T0 + 100, Label.HALF_OPEN)]
    text = render_timeline(bucketize(vs, start=T0, end=T0 + 120, buckets=48)).plain
    lines = text.splitlines()
    assert lines[0].startswith("RSTs over time (UTC), one column per 2.5 s")
    assert lines[1].startswith("all ") and "peak 22:54:57, 12 RSTs" in lines[1]
    assert lines[2].startswith("half-open") and "peak 22:54:05, 1 RST" in lines[2]
    assert lines[3].startswith("injected") and "peak 22:54:57, 12 RSTs" in lines[3]
    assert lines[4].strip().startswith("22:54:00") and lines[4].endswith("22:56:00")
    bar = lines[3][lines[3].index("│") + 1 : lines[3].rindex("│")]
    assert len(bar) == 48 and bar[23] == "█" and bar.replace("█", "").strip() == ""
    # the axis labels sit under the ends of the sparklines
    assert lines[4].index("22:54:00") == lines[3].index("│")
    assert len(lines[4]) == lines[3].rindex("│") + 1


def test_one_cause_has_no_all_row() -> None:
    text = render_timeline(bucketize([verdict(T0), verdict(T0 + 10)], buckets=20)).plain
    assert [line.split()[0] for line in text.splitlines()[1:-1]] == ["half-open"]


def test_sub_second_spans_label_milliseconds_and_days_label_the_date() -> None:
    short = render_timeline(bucketize([verdict(T0), verdict(T0 + 0.5)], buckets=10)).plain
    assert "22:54:00.000" in short and "22:54:00.500" in short
    long = render_timeline(bucketize([verdict(T0), verdict(T0 + 86400)], buckets=10)).plain
    assert "2020-08-20 22:54:00" in long and "2020-08-21 22:54:00" in long


def _table(reports: list[FileReport], quiet: bool = False) -> str:
    out = io.StringIO()
    write_table(reports, out, color=False, quiet=quiet, width=160)
    return out.getvalue()


def test_the_table_ends_with_the_timeline_over_the_capture_span() -> None:
    report = FileReport("a.pcap", frames=10, first_ts=T0, last_ts=T0 + 480,
                        verdicts=[verdict(T0 + 60), verdict(T0 + 61, Label.INJECTED, 2)])
    out = _table([report])
    assert "RSTs over time (UTC), one column per 10 s" in out
    assert out.rstrip().endswith("22:54:00" + " " * 34 + "23:02:00")
    assert "peak 22:55:00, 1 RST" in out
    assert "RSTs over time" in _table([report], quiet=True)


def test_fewer_than_two_rsts_draw_no_timeline() -> None:
    report = FileReport("a.pcap", first_ts=T0, last_ts=T0 + 5, verdicts=[verdict(T0 + 1)])
    assert "RSTs over time" not in _table([report])
    assert "RSTs over time" not in _table([FileReport("b.pcap")])


def test_several_files_span_from_the_first_packet_to_the_last() -> None:
    a = FileReport("a.pcap", first_ts=T0 + 100, last_ts=T0 + 200, verdicts=[verdict(T0 + 150)])
    b = FileReport("b.pcap", first_ts=T0, last_ts=T0 + 50, verdicts=[verdict(T0 + 10)])
    out = _table([a, b])
    axis = out.rstrip().splitlines()[-1].split()
    assert axis == ["22:54:00", "22:57:20"]


def test_file_reports_carry_the_first_and_last_packet_times() -> None:
    report = analyze_file(str(public("zeek__dhe.pcap")))
    assert report.first_ts == pytest.approx(1398558136.187348)
    assert report.last_ts == pytest.approx(1398558140.053999)
    doc = report.to_dict()
    assert doc["first_ts"] == round(report.first_ts, 6)
    assert doc["last_ts"] == round(report.last_ts, 6)


@pytest.mark.skipif(not shutil.which("rstdiag"), reason="rstdiag is not installed")
def test_read_quiet_shows_the_summary_then_a_burst_in_the_timeline() -> None:
    path = public("censorship-detection__tripwire-1597963966.pcap")
    result = subprocess.run(["rstdiag", "read", "-q", "--no-color", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    out = result.stdout
    assert out.index("265 RSTs by cause in 1,215 frames, 81 TCP flows") < \
        out.index("RSTs over time (UTC)")
    rows = {line.split()[0]: line for line in out.splitlines() if "│" in line and "peak" in line}
    assert set(rows) == {"all", "linger-abort", "data-after-close", "half-open", "injected",
                         "client-abort", "follow-up"}
    assert " 265 │" in rows["all"] and "peak 23:03:23, 34 RSTs" in rows["all"]
    assert out.rstrip().splitlines()[-1].split() == ["22:53:49", "23:04:30"]
