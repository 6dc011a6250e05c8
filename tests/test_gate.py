"""rstdiag.gate: which RSTs fail `rstdiag check`, on verdicts written by hand."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
from corpus import public

from rstdiag.analysis import FileReport, analyze_file
from rstdiag.ci_formats import (
    escape_data,
    escape_property,
    write_github,
    write_json,
    write_junit,
    write_markdown,
)
from rstdiag.gate import (
    DEFAULT_FAIL_ON,
    Baseline,
    CheckResult,
    GateError,
    InputError,
    Outcome,
    Policy,
    evaluate,
    parse_flow_rule,
    parse_labels,
)
from rstdiag.labels import Confidence, Endpoint, Label, Sender, Verdict

CLIENT = Endpoint("10.0.0.1", 40000)
SERVER = Endpoint("10.0.0.2", 443)


def rst(label: Label, frame: int = 1, *, client: Endpoint = CLIENT, server: Endpoint = SERVER,
        from_server: bool = True, duplicate_of: int | None = None,
        file: str = "a.pcap") -> Verdict:
    src, dst = (server, client) if from_server else (client, server)
    return Verdict(frame=frame, ts=1_700_000_000.0 + frame, src=src.addr, sport=src.port,
                   dst=dst.addr, dport=dst.port, flags="R", client=client, server=server,
                   sender=Sender.SERVER if from_server else Sender.CLIENT, label=label,
                   confidence=Confidence.HIGH, evidence=f"evidence of frame {frame}",
                   file=file, duplicate_of=duplicate_of)


def report(*verdicts: Verdict, path: str = "a.pcap") -> FileReport:
    return FileReport(path, format="pcap", frames=100, tcp_packets=100, flows=3,
                      verdicts=[replace(v, file=path) for v in verdicts])


def labels_of(verdicts: list[Verdict]) -> list[str]:
    return [str(v.label) for v in verdicts]


# --- fail-on and --max --------------------------------------------------------------------

def test_default_fail_on_excludes_closed_port_and_client_abort() -> None:
    assert set(Label) - DEFAULT_FAIL_ON == {Label.CLOSED_PORT, Label.CLIENT_ABORT}
    result = evaluate([report(rst(Label.CLOSED_PORT, 1), rst(Label.CLIENT_ABORT, 2))], Policy())
    assert result.passed
    assert result.findings == []
    assert len(result.not_checked) == 2


@pytest.mark.parametrize("label", sorted(DEFAULT_FAIL_ON))
def test_every_other_label_fails_by_default(label: Label) -> None:
    result = evaluate([report(rst(label))], Policy())
    assert not result.passed
    assert result.by_label == {str(label): 1}


def test_fail_on_limits_the_labels_that_count() -> None:
    reports = [report(rst(Label.INJECTED, 1), rst(Label.UNREAD_DATA, 2), rst(Label.HALF_OPEN, 3))]
    result = evaluate(reports, Policy(fail_on=parse_labels("injected,half-open")))
    assert labels_of(result.findings) == ["injected", "half-open"]
    assert result.by_label == {"half-open": 1, "injected": 1}  # taxonomy order
    assert labels_of(result.not_checked) == ["unread-data"]


def test_fail_on_counts_a_rst_whose_alternative_is_listed() -> None:
    ambiguous = replace(rst(Label.UNREAD_DATA, 1), alternatives=(Label.LINGER_ABORT,))
    result = evaluate([report(ambiguous, rst(Label.UNREAD_DATA, 2))],
                      Policy(fail_on=parse_labels("linger-abort")))
    assert [v.frame for v in result.findings] == [1]


def test_a_known_kernel_reason_closes_the_alternatives_for_the_gate() -> None:
    settled = replace(rst(Label.UNREAD_DATA), alternatives=(Label.LINGER_ABORT,),
                      kernel_reason="TCP_ABORT_ON_CLOSE")
    result = evaluate([report(settled)], Policy(fail_on=parse_labels("linger-abort")))
    assert result.findings == [] and settled.to_dict()["alternatives"] == []


def test_max_allows_that_many_findings_and_fails_beyond() -> None:
    reports = [report(*(rst(Label.HALF_OPEN, n) for n in range(1, 4)))]
    assert evaluate(reports, Policy(max=3)).passed
    over = evaluate(reports, Policy(max=2))
    assert not over.passed and over.over_limit
    assert len(over.findings) == 3


def test_findings_are_counted_over_all_files() -> None:
    reports = [report(rst(Label.HALF_OPEN, 1), path="a.pcap"),
               report(rst(Label.HALF_OPEN, 5), path="b.pcap")]
    result = evaluate(reports, Policy(max=1))
    assert not result.passed
    assert [(v.file, v.frame) for v in result.findings] == [("a.pcap", 1), ("b.pcap", 5)]
    assert [f.path for f in result.files] == ["a.pcap", "b.pcap"]


def test_unknown_labels_are_refused_naming_the_valid_ones() -> None:
    with pytest.raises(GateError) as exc:
        parse_labels("injected,bogus")
    assert "'bogus'" in str(exc.value)
    assert all(str(label) in str(exc.value) for label in Label)
    with pytest.raises(GateError):
        parse_labels(" , ")


def test_duplicate_copies_never_count() -> None:
    first = rst(Label.INJECTED, 10)
    copy = rst(Label.INJECTED, 11, duplicate_of=10)
    result = evaluate([report(first, copy)], Policy())
    assert [v.frame for v in result.findings] == [10]
    assert result.duplicates == 1
    assert evaluate([report(first, copy)], Policy(max=1)).passed


def test_no_rsts_passes() -> None:
    result = evaluate([report()], Policy())
    assert result.passed and result.findings == [] and result.by_label == {}


def test_an_unreadable_capture_does_not_pass() -> None:
    result = evaluate([report()], Policy(), [InputError("b.pcap", "not a pcap")])
    assert not result.over_limit
    assert not result.passed


# --- ignore rules -------------------------------------------------------------------------

def test_ignore_port_is_the_server_port_of_the_flow() -> None:
    on_443 = rst(Label.HALF_OPEN, 1)
    on_8080 = rst(Label.HALF_OPEN, 2, server=Endpoint("10.0.0.2", 8080))
    # the client's port is not the server port, even though the RST goes to it
    result = evaluate([report(on_443, on_8080)], Policy(ignore_ports=frozenset({443, 40000})))
    assert [v.frame for v in result.ignored] == [1]
    assert [v.frame for v in result.findings] == [2]


@pytest.mark.parametrize("rule", ["10.0.0.2:443", "10.0.0.1:40000"])
def test_ignore_flow_with_one_endpoint_matches_either_side(rule: str) -> None:
    other = rst(Label.HALF_OPEN, 2, client=Endpoint("10.9.9.9", 5000),
                server=Endpoint("10.0.0.3", 80))
    result = evaluate([report(rst(Label.HALF_OPEN, 1), other)],
                      Policy(ignore_flows=(parse_flow_rule(rule),)))
    assert [v.frame for v in result.ignored] == [1]
    assert [v.frame for v in result.findings] == [2]


@pytest.mark.parametrize("rule", ["10.0.0.1:40000-10.0.0.2:443", "10.0.0.2:443-10.0.0.1:40000"])
def test_ignore_flow_with_two_endpoints_matches_both_directions(rule: str) -> None:
    policy = Policy(ignore_flows=(parse_flow_rule(rule),))
    from_server = rst(Label.HALF_OPEN, 1)
    from_client = rst(Label.HALF_OPEN, 2, from_server=False)
    same_server_other_client = rst(Label.HALF_OPEN, 3, client=Endpoint("10.0.0.1", 40001))
    result = evaluate([report(from_server, from_client, same_server_other_client)], policy)
    assert [v.frame for v in result.ignored] == [1, 2]
    assert [v.frame for v in result.findings] == [3]


def test_ignore_flow_reads_ipv6_in_brackets_whatever_its_spelling() -> None:
    client, server = Endpoint("2001:db8::1", 40000), Endpoint("2001:db8::2", 443)
    v6 = rst(Label.HALF_OPEN, 1, client=client, server=server)
    rule = parse_flow_rule("[2001:DB8:0:0::2]:443-[2001:db8::1]:40000")
    assert evaluate([report(v6)], Policy(ignore_flows=(rule,))).passed
    assert str(rule) == "[2001:db8::2]:443-[2001:db8::1]:40000"
    assert evaluate([report(v6)], Policy(ignore_flows=(parse_flow_rule("[2001:db8::2]:443"),))
                    ).passed


@pytest.mark.parametrize("bad", ["10.0.0.1", "host.example:80", "10.0.0.1:http",
                                 "10.0.0.1:70000", "2001:db8::1:80", "[10.0.0.1]:80",
                                 "1.2.3.4:1-1.2.3.4:2-1.2.3.4:3"])
def test_bad_flow_rules_are_refused(bad: str) -> None:
    with pytest.raises(GateError):
        parse_flow_rule(bad)


# --- baseline -----------------------------------------------------------------------------

def test_baseline_accepts_known_rsts_and_fails_a_new_label() -> None:
    known = report(rst(Label.DATA_AFTER_CLOSE, 1), rst(Label.FOLLOW_UP, 2),
                   rst(Label.FOLLOW_UP, 3))
    assert not evaluate([known], Policy()).passed
    baseline = Baseline.loads(evaluate([known], Policy()).baseline().dumps())
    assert baseline.accepted == {(Label.DATA_AFTER_CLOSE, 443): 1, (Label.FOLLOW_UP, 443): 2}

    again = evaluate([known], Policy(baseline=baseline))
    assert again.passed
    assert len(again.accepted) == 3

    new_cause = report(rst(Label.DATA_AFTER_CLOSE, 1), rst(Label.INJECTED, 2))
    result = evaluate([new_cause], Policy(baseline=baseline))
    assert not result.passed
    assert result.by_label == {"injected": 1}


def test_baseline_accepts_up_to_its_count_and_per_server_port() -> None:
    baseline = Baseline({(Label.HALF_OPEN, 443): 2})
    more = report(*(rst(Label.HALF_OPEN, n) for n in range(1, 4)),
                  rst(Label.HALF_OPEN, 4, server=Endpoint("10.0.0.2", 8443)))
    result = evaluate([more], Policy(baseline=baseline))
    assert [v.frame for v in result.accepted] == [1, 2]
    assert [v.frame for v in result.findings] == [3, 4]


def test_a_baseline_accepts_any_server_address_on_its_port() -> None:
    baseline = Baseline({(Label.HALF_OPEN, 443): 1})
    moved = rst(Label.HALF_OPEN, 1, server=Endpoint("192.0.2.7", 443),
                client=Endpoint("192.0.2.8", 5555))
    assert evaluate([report(moved)], Policy(baseline=baseline)).passed


def test_the_written_baseline_leaves_out_ignored_unchecked_and_copies() -> None:
    reports = [report(rst(Label.HALF_OPEN, 1), rst(Label.HALF_OPEN, 2, duplicate_of=1),
                      rst(Label.CLOSED_PORT, 3),
                      rst(Label.INJECTED, 4, server=Endpoint("10.0.0.2", 22)))]
    baseline = evaluate(reports, Policy(ignore_ports=frozenset({22}))).baseline()
    assert baseline.accepted == {(Label.HALF_OPEN, 443): 1}
    doc = json.loads(baseline.dumps())
    assert doc["rstdiag_baseline"] == 1
    assert doc["accepted"] == [{"label": "half-open", "server_port": 443, "count": 1}]


@pytest.mark.parametrize("text", ["not json", "[]", '{"accepted": []}',
                                  '{"rstdiag_baseline": 2, "accepted": []}',
                                  '{"rstdiag_baseline": 1, "accepted": {}}',
                                  '{"rstdiag_baseline": 1, "accepted": [{"label": "nope", '
                                  '"server_port": 1, "count": 1}]}',
                                  '{"rstdiag_baseline": 1, "accepted": [{"label": "injected", '
                                  '"server_port": "443", "count": 1}]}'])
def test_a_bad_baseline_is_refused(text: str) -> None:
    with pytest.raises(GateError):
        Baseline.loads(text)


def test_ignore_rules_come_before_the_baseline() -> None:
    baseline = Baseline({(Label.HALF_OPEN, 443): 1})
    result = evaluate([report(rst(Label.HALF_OPEN, 1), rst(Label.HALF_OPEN, 2))],
                      Policy(baseline=baseline, ignore_flows=(parse_flow_rule("10.0.0.2:443"),)))
    assert result.passed
    assert [o for _, o in result.outcomes] == [Outcome.IGNORED, Outcome.IGNORED]


# --- on a real capture --------------------------------------------------------------------

def test_evaluate_on_a_public_capture() -> None:
    dhe = analyze_file(str(public("zeek__dhe.pcap")))
    result = evaluate([dhe], Policy())
    assert result.by_label == {"data-after-close": 1, "follow-up": 2}
    assert evaluate([dhe], Policy(ignore_ports=frozenset({443}))).passed
    assert evaluate([dhe], Policy(fail_on=frozenset({Label.INJECTED}))).passed


# --- the CI formats, in process -----------------------------------------------------------

def sample() -> tuple[list[FileReport], CheckResult]:
    reports = [report(rst(Label.INJECTED, 2), rst(Label.INJECTED, 3), rst(Label.CLOSED_PORT, 4),
                      path="a.pcap"),
               report(path="empty.pcap")]
    return reports, evaluate(reports, Policy(), [InputError("bad.pcap", "not a pcap file")])


def test_junit_counts_testcases_failures_and_errors() -> None:
    reports, result = sample()
    out = io.StringIO()
    write_junit(result, reports, out)
    root = ET.fromstring(out.getvalue())
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "1", "1")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["a.pcap", "empty.pcap", "bad.pcap"]
    names = [c.get("name") for c in suites[0].findall("testcase")]
    assert names == ["closed-port", "injected"]
    failure = suites[0].find("testcase[@name='injected']/failure")
    assert failure is not None and "frames 2, 3" in failure.get("message", "")
    assert "frame 3" in (failure.text or "")
    for suite in suites:
        cases = suite.findall("testcase")
        assert suite.get("tests") == str(len(cases))
        assert suite.get("failures") == str(sum(1 for c in cases if c.find("failure") is not None))


def test_junit_has_no_failures_when_the_findings_stay_within_max() -> None:
    reports = [report(rst(Label.INJECTED, 2))]
    out = io.StringIO()
    write_junit(evaluate(reports, Policy(max=1)), reports, out)
    root = ET.fromstring(out.getvalue())
    assert root.get("failures") == "0"
    assert "within --max 1" in (root.findtext(".//system-out") or "")


def test_junit_survives_control_characters_in_evidence() -> None:
    odd = replace(rst(Label.INJECTED, 2), evidence="text \x00\x1b and <&>")
    out = io.StringIO()
    write_junit(evaluate([report(odd)], Policy()), [report(odd)], out)
    failure = ET.fromstring(out.getvalue()).find(".//failure")
    assert failure is not None and "<&>" in (failure.text or "")


def test_github_escapes_data_and_properties() -> None:
    assert escape_data("50% a\r\nb") == "50%25 a%0D%0Ab"
    assert escape_property("C:\\cap,1.pcap") == "C%3A\\cap%2C1.pcap"
    odd = replace(rst(Label.INJECTED, 2), evidence="line1\nline2 100%")
    reports = [report(odd, path="dir,x/a:b.pcap")]
    out = io.StringIO()
    write_github(evaluate(reports, Policy()), reports, out)
    lines = out.getvalue().splitlines()
    assert lines[0] == ("::error file=dir%2Cx/a%3Ab.pcap,title=rstdiag injected::frame 2 "
                        "10.0.0.1:40000 -> 10.0.0.2:443: line1\\x0aline2 100%25")
    syntax = re.compile(r"^::(error|warning|notice)( [a-z]+=[^,:]*(,[a-z]+=[^,:]*)*)?::.*$")
    assert all(syntax.match(line) for line in lines)
    assert lines[-1].startswith("::notice title=rstdiag check::FAIL")


def test_markdown_lists_at_most_20_offending_rsts() -> None:
    reports = [report(*(rst(Label.HALF_OPEN, n) for n in range(1, 26)))]
    out = io.StringIO()
    write_markdown(evaluate(reports, Policy()), reports, out)
    text = out.getvalue()
    assert "| `half-open` | 25 | 25 | 0 | 0 | ❌ fail |" in text
    assert "First 20 of 25 offending RSTs" in text
    assert "20. `a.pcap` frame 20" in text and "frame 21," not in text


def test_json_adds_the_check_object_to_the_read_document() -> None:
    reports, result = sample()
    out = io.StringIO()
    write_json(result, reports, out)
    doc = json.loads(out.getvalue())
    assert {"version", "files", "rsts", "summary", "check"} <= set(doc)
    check = doc["check"]
    assert check["passed"] is False
    assert check["findings"] == 2 and check["by_label"] == {"injected": 2}
    assert check["max"] == 0 and "closed-port" not in check["fail_on"]
    assert check["errors"] == [{"file": "bad.pcap", "error": "not a pcap file"}]
