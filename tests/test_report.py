"""`rstdiag report`: one self-contained HTML page, checked in a real browser (headless
Chromium over the DevTools protocol, tests/browser.py): the counts it shows are those of
`read --format json`, the cause filter hides the other rows, and the page asks for nothing
but itself. A screenshot is kept in tests/artifacts/ (git-ignored)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import CHROMIUM, Browser, Page

from rstdiag import analyze_file
from rstdiag.report import build_page, ladder_choices, render_page

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "pcaps"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CAPTURES = [PCAPS / "sample.pcapng", PCAPS / "accept-overflow-loop.pcap",
            PCAPS / "closed-port-v6.pcap"]


def write_report(out: Path, *files: Path, options: tuple[str, ...] = ()
                 ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rstdiag", "report", *map(str, files), "-o", str(out), *options],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (tools/run-tests installs it)")
    folder = tmp_path_factory.mktemp("report")
    out = folder / "report.html"
    assert write_report(out, *CAPTURES).returncode == 0
    with Browser(folder / "profile") as browser:
        opened = browser.open(out)
        ARTIFACTS.mkdir(exist_ok=True)
        opened.screenshot(ARTIFACTS / "report.png")
        yield opened


def read_json(*files: Path) -> dict[str, object]:
    out = subprocess.run(["rstdiag", "read", "--format", "json", *map(str, files)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_the_counts_shown_are_those_of_read(page: Page) -> None:
    doc = read_json(*CAPTURES)
    shown = page.evaluate("Object.fromEntries([...document.querySelectorAll("
                          "'#summary tr[data-summary-cause]')].map(r => [r.dataset.summaryCause,"
                          " Number(r.querySelector('[data-count]').textContent)]))")
    assert shown == doc["summary"]
    assert page.evaluate("Number(document.getElementById('total-rsts').textContent)") == \
        len(doc["rsts"])  # type: ignore[arg-type]
    rows = page.evaluate("[...document.querySelectorAll('#rsts tr[data-cause]')].map("
                         "r => [Number(r.cells[1].textContent), r.dataset.cause])")
    assert rows == [[r["frame"], r["label"]] for r in doc["rsts"]]  # type: ignore[attr-defined]


def test_the_cause_filter_hides_the_rows_of_other_causes(page: Page) -> None:
    summary = read_json(*CAPTURES)["summary"]
    for cause in ("half-open", "accept-overflow"):
        shown = page.evaluate(
            f"(() => {{ const s = document.getElementById('cause-filter'); s.value = '{cause}';"
            " s.dispatchEvent(new Event('change'));"
            " return [...document.querySelectorAll('#rsts tr[data-cause]')]"
            ".filter(r => r.getClientRects().length > 0).map(r => r.dataset.cause); })()")
        assert shown == [cause] * summary[cause]  # type: ignore[index]
    page.evaluate("(() => { const s = document.getElementById('cause-filter'); s.value = '';"
                  " s.dispatchEvent(new Event('change')); })()")
    visible = page.evaluate("[...document.querySelectorAll('#rsts tr[data-cause]')]"
                            ".filter(r => r.getClientRects().length > 0).length")
    assert visible == sum(summary.values())  # type: ignore[attr-defined]


def test_no_request_leaves_the_page(page: Page) -> None:
    page.evaluate("document.getElementById('ladder-1').scrollIntoView()")
    assert page.requests == [page.evaluate("location.href")]
    assert page.evaluate("performance.getEntriesByType('resource').length") == 0


def test_the_page_draws_a_ladder_and_the_chart_as_svg(page: Page) -> None:
    ladders = page.evaluate("document.querySelectorAll('section.ladder svg').length")
    drawn = ladder_choices(v for path in CAPTURES for v in analyze_file(str(path)).verdicts)
    assert ladders == len(drawn)
    assert page.evaluate("document.querySelectorAll('#timeline rect').length") > 0


def test_capture_text_is_text_on_the_page_never_markup() -> None:
    report = analyze_file(str(PCAPS / "half-open.pcap"))
    report.path = "<script>alert(1)</script>.pcap"
    html = render_page(build_page([report]))
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.pcap" in html


def test_every_rst_is_counted_when_the_table_is_cut(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert write_report(out, PCAPS / "accept-overflow-loop.pcap",
                        options=("--max-rows", "5", "--ladders", "0")).returncode == 0
    html = out.read_text()
    assert html.count('<tr data-cause="') == 5
    assert "the first 5 of 16 RSTs are listed" in html
    assert "<section class=\"ladder\"" not in html


def test_an_unreadable_capture_is_named_on_the_page_and_exits_2(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    run = write_report(out, PCAPS / "half-open.pcap", PCAPS / "README.md")
    assert run.returncode == 2
    assert "README.md: not a pcap or pcapng file" in run.stderr
    assert "cannot be read: not a pcap or pcapng file" in out.read_text()
