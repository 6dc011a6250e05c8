"""Filters and groups of read and check, checked against the JSON output of the same
capture (issue 14)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from typing import Any

import pytest
from corpus import public

from rstdiag.select import SelectError, parse_causes, parse_time

RSTDIAG = shutil.which("rstdiag") or ""
pytestmark = pytest.mark.skipif(not RSTDIAG, reason="rstdiag is not installed")


def read_json(*args: str) -> dict[str, Any]:
    path = public("censorship-detection__tripwire-1597963966.pcap")
    result = subprocess.run([RSTDIAG, "read", "--format", "json", *args, str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def everything() -> list[dict[str, Any]]:
    return read_json()["rsts"]


def port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def host(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[0].strip("[]")


RANK = {"low": 0, "medium": 1, "high": 2}
FILTERS = {
    "cause": (["--cause", "half-open,injected"],
              lambda r: r["label"] in ("half-open", "injected")),
    "port": (["--port", "443"], lambda r: 443 in (port(r["client"]), port(r["server"]))),
    "sender": (["--sender", "path"], lambda r: r["sender"] == "path"),
    "confidence": (["--min-confidence", "high"], lambda r: RANK[r["confidence"]] >= 2),
    "since": (["--since", "2020-08-20T23:00:00"], lambda r: r["ts"] >= 1597964400),
    "until": (["--until", "+5m"], lambda r: r["ts"] <= 1597964029.580357 + 300),
}


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_each_filter_keeps_exactly_the_rsts_it_names(name: str,
                                                     everything: list[dict[str, Any]]) -> None:
    args, keep = FILTERS[name]
    doc = read_json(*args)
    assert doc["rsts"] == [r for r in everything if keep(r)]
    assert 0 < len(doc["rsts"]) < len(everything)


def test_host_takes_addresses_and_networks_at_either_end() -> None:
    from corpus import PROJECT_PCAPS

    sample = str(PROJECT_PCAPS / "sample.pcapng")

    def rsts(*args: str) -> list[dict[str, Any]]:
        out = subprocess.run([RSTDIAG, "read", "--format", "json", *args, sample],
                             capture_output=True, text=True, timeout=60).stdout
        return json.loads(out)["rsts"]

    every = rsts()
    v6 = rsts("--host", "2001:db8::/32")
    assert v6 == [r for r in every if r["client"].startswith("[2001:db8")] and v6
    assert rsts("--host", "198.19.1.1") == [r for r in every if host(r["server"]) == "198.19.1.1"]
    assert rsts("--host", "192.0.2.99") == []


def test_filters_combine_as_and(everything: list[dict[str, Any]]) -> None:
    doc = read_json("--cause", "half-open", "--port", "443")
    expected = [r for r in everything if r["label"] == "half-open" and r["server"].endswith(":443")]
    assert doc["rsts"] == expected
    assert doc["summary"] == {"half-open": sum(1 for r in expected if "duplicate_of" not in r)}


@pytest.mark.parametrize("by", ["server", "client", "port", "flow"])
def test_groups_count_what_the_json_lists(by: str, everything: list[dict[str, Any]]) -> None:
    groups = read_json("--by", by)["groups"]
    assert groups["by"] == by
    key = {"server": lambda r: host(r["server"]), "client": lambda r: host(r["client"]),
           "port": lambda r: str(port(r["server"])),
           "flow": lambda r: f"{r['client']} -> {r['server']}"}[by]
    distinct = [r for r in everything if "duplicate_of" not in r]
    expected = Counter(key(r) for r in distinct)
    assert {g["key"]: g["rsts"] for g in groups["groups"]} == dict(expected)
    for g in groups["groups"]:
        mine = [r for r in distinct if key(r) == g["key"]]
        assert g["by_cause"] == dict(Counter(r["label"] for r in mine)) | g["by_cause"]
        assert sum(g["by_cause"].values()) == g["rsts"]
        assert g["flows"] == len({(r["client"], r["server"]) for r in mine})
    ranked = [g["rsts"] for g in groups["groups"]]
    assert ranked == sorted(ranked, reverse=True)


def test_by_server_tells_that_one_server_has_265_rsts_over_68_flows() -> None:
    path = public("censorship-detection__tripwire-1597963966.pcap")
    out = subprocess.run([RSTDIAG, "read", "--by", "server", str(path)], capture_output=True,
                         text=True, timeout=60).stdout
    row = next(line for line in out.splitlines() if line.startswith("104.17.210.9"))
    assert row.split()[:4] == ["104.17.210.9", "265", "142", "68"]
    assert "half-open 106" in row and "injected 78" in row


def test_top_keeps_the_biggest_groups() -> None:
    groups = read_json("--by", "flow", "--top", "3")["groups"]["groups"]
    everything = read_json("--by", "flow")["groups"]["groups"]
    assert groups == everything[:3]


def test_r_and_c_work_as_in_tcpdump() -> None:
    path = str(public("censorship-detection__tripwire-1597963966.pcap"))
    positional = read_json()
    by_r = subprocess.run([RSTDIAG, "read", "--format", "json", "-r", path],
                          capture_output=True, text=True, timeout=60)
    assert json.loads(by_r.stdout)["rsts"] == positional["rsts"]
    first = read_json("-c", "100")
    assert first["files"][0]["frames"] == 100

    whole = [r for r in positional["rsts"] if r["frame"] <= 100][:len(first["rsts"])]

    def but_effect(rsts: list[dict[str, object]]) -> list[dict[str, object]]:
        # whether a RST took effect may show only after the cut: "unknown" there, and the
        # evidence says no more than the packets before the cut
        return [{k: v for k, v in r.items() if k not in ("effect", "evidence")} for r in rsts]

    assert but_effect(first["rsts"]) == but_effect(whole)
    for cut, full in zip(first["rsts"], whole, strict=True):
        assert str(full["evidence"]).startswith(str(cut["evidence"]))


def test_a_bpf_filter_means_what_it_means_in_tcpdump() -> None:
    doc = read_json("-f", "port 443")
    assert doc["rsts"] and all(r["server"].endswith(":443") for r in doc["rsts"])
    path = str(public("censorship-detection__tripwire-1597963966.pcap"))
    bad = subprocess.run([RSTDIAG, "read", "-f", "port 443 and", path], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "syntax error" in bad.stderr and "man pcap-filter" in bad.stderr


def test_check_checks_only_the_selected_rsts() -> None:
    path = str(public("censorship-detection__tripwire-1597963966.pcap"))
    result = subprocess.run([RSTDIAG, "check", "--format", "json", "--cause", "linger-abort",
                             path], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert json.loads(result.stdout)["check"]["by_label"] == {"linger-abort": 1}


@pytest.mark.parametrize("bad", ["nope", "half-open,nope", ""])
def test_an_unknown_cause_names_the_valid_ones(bad: str) -> None:
    with pytest.raises(SelectError, match="valid causes: closed-port"):
        parse_causes(bad)


def test_times_are_utc_epoch_or_relative() -> None:
    assert parse_time("2020-08-20T23:00:00").seconds == 1597964400
    assert parse_time("2020-08-21T01:00:00+02:00").seconds == 1597964400
    assert parse_time("1597964400.5").seconds == 1597964400.5
    assert parse_time("+10m").relative and parse_time("+10m").seconds == 600
    with pytest.raises(SelectError):
        parse_time("yesterday")


def explain_json(*args: str) -> subprocess.CompletedProcess[str]:
    path = public("censorship-detection__tripwire-1597963966.pcap")
    return subprocess.run([RSTDIAG, "explain", "--format", "json", str(path), *args],
                          capture_output=True, text=True, timeout=60)


def test_explain_draws_the_first_rst_the_filters_pass(everything: list[dict[str, Any]]) -> None:
    first = next(r for r in everything if r["label"] == "half-open" and
                 r["server"].endswith(":443"))
    result = explain_json("--cause", "half-open", "--port", "443")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frame"] == first["frame"]


def test_explain_flow_with_filters_draws_that_flows_first_rst_that_passes(
        everything: list[dict[str, Any]]) -> None:
    some = next(r for r in everything if r["label"] == "injected")
    flow = f"{some['client']}-{some['server']}"
    first = next(r for r in everything if r["label"] == "injected"
                 and (r["client"], r["server"]) == (some["client"], some["server"]))
    result = explain_json("--flow", flow, "--cause", "injected")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frame"] == first["frame"]


def test_explain_filters_that_pass_no_rst_are_one_error_line() -> None:
    result = explain_json("--cause", "accept-overflow")
    assert result.returncode == 2
    assert result.stderr.endswith("no RST passes the filters\n")
    assert result.stderr.count("\n") == 1


def test_explain_frame_with_filters_is_a_usage_error() -> None:
    result = explain_json("--frame", "47", "--cause", "injected")
    assert result.returncode == 2 and "--frame names the RST already" in result.stderr
