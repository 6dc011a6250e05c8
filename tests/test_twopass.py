"""The two-pass path gives the same report as the simple path, verdict for verdict.

Every classic pcap the tests have is read both ways: the project's kernel-scenario captures,
the public corpus (its pcapng files converted with editcap), and generated captures big enough
for the table sweeps, with idle flows, reused 4-tuples and a snaplen cut. Small chunks make
records straddle chunk boundaries.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import pytest
import seeds  # fuzz/seeds.py, via conftest.py
from corpus import PROJECT_PCAPS, PUBLIC
from hypothesis import given, settings
from hypothesis import strategies as st

import rstdiag.analysis as analysis_module
import rstdiag.twopass as twopass
from rstdiag.analysis import Analysis, FileReport, open_analysis
from rstdiag.flows import FlowTracker
from rstdiag.twopass import TwoPassAnalysis

GENERATOR = Path(__file__).resolve().parents[2] / "shared" / "tools" / "gen_bigpcap.py"
SMALL_CHUNK = 300_000  # bytes: the walker's smallest chunk, so many per capture


def same_report(path: Path, **kwargs: int) -> tuple[FileReport, FileReport, TwoPassAnalysis]:
    fast = TwoPassAnalysis(str(path), chunk_bytes=SMALL_CHUNK, **kwargs)
    return fast.run(), Analysis(str(path), **kwargs).run(), fast


def assert_equal_reports(fast: FileReport, simple: FileReport) -> None:
    assert fast.to_dict() == simple.to_dict()
    assert [v.to_dict() for v in fast.verdicts] == [v.to_dict() for v in simple.verdicts]


def assert_same(path: Path, **kwargs: int) -> FileReport:
    fast, simple, analysis = same_report(path, **kwargs)
    assert analysis.fell_back is None
    assert_equal_reports(fast, simple)
    return fast


def assert_same_when_split(path: Path, parts: int) -> None:
    split = TwoPassAnalysis(str(path), chunk_bytes=SMALL_CHUNK, parts=parts)
    fast, simple = split.run(), Analysis(str(path)).run()
    assert split.fell_back is None
    assert_equal_reports(fast, simple)


def classic_pcaps(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.pcap") if p.read_bytes()[:4] in
                  (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                   b"\xa1\xb2\x3c\x4d"))


@pytest.mark.parametrize("path", classic_pcaps(PROJECT_PCAPS), ids=lambda p: p.name)
def test_kernel_scenario_captures_read_the_same(path: Path) -> None:
    assert_same(path)


@pytest.mark.parametrize("name", [p.name for p in classic_pcaps(PUBLIC)] if PUBLIC.exists()
                         else ["(public corpus absent)"])
def test_public_pcaps_read_the_same(name: str) -> None:
    path = PUBLIC / name
    if not path.exists():
        pytest.skip(f"public corpus not found at {PUBLIC}")
    fast, simple, analysis = same_report(path)
    if analysis.fell_back is not None:  # a link type the bulk decoder leaves alone
        assert "link type" in analysis.fell_back
    assert_equal_reports(fast, simple)


def convertible_pcapngs(folder: Path) -> list[str]:
    """The public pcapng files that editcap can write as pcap (one interface, one link type)."""
    if not folder.exists() or shutil.which("editcap") is None:
        return ["(public corpus or editcap absent)"]
    names = []
    with tempfile.TemporaryDirectory() as scratch:
        for path in sorted(folder.glob("*.pcapng")):
            done = subprocess.run(["editcap", "-F", "pcap", str(path), f"{scratch}/out.pcap"],
                                  capture_output=True)
            if done.returncode == 0:
                names.append(path.name)
    return names


@pytest.mark.parametrize("name", convertible_pcapngs(PUBLIC))
def test_public_pcapng_converted_to_pcap_read_the_same(name: str, tmp_path: Path) -> None:
    source = PUBLIC / name
    if not source.exists() or shutil.which("editcap") is None:
        pytest.skip("needs the public corpus and editcap")
    converted = tmp_path / "converted.pcap"
    done = subprocess.run(["editcap", "-F", "pcap", str(source), str(converted)],
                          capture_output=True)
    assert done.returncode == 0, done.stderr
    fast, simple, _ = same_report(converted)
    assert_equal_reports(fast, simple)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    if not GENERATOR.exists():
        pytest.skip(f"generator not found at {GENERATOR}")
    folder = tmp_path_factory.mktemp("generated")

    def make(name: str, *args: str) -> Path:
        path = folder / name
        subprocess.run([sys.executable, str(GENERATOR), "-o", str(path), *args], check=True,
                       capture_output=True)
        return path

    return make


def test_generated_capture_over_several_sweeps_reads_the_same(generated) -> None:  # type: ignore[no-untyped-def]
    path = generated("sweeps.pcap", "-n", "150000", "--flows", "4000")
    report = assert_same(path)
    assert report.tcp_packets == 150000 and len(report.verdicts) > 1000


def test_two_pass_path_feeds_the_tracker_a_fraction_of_the_packets(generated) -> None:  # type: ignore[no-untyped-def]
    analysis = TwoPassAnalysis(str(generated("fraction.pcap", "-n", "40000", "--seed", "9")))
    report = analysis.run()
    assert analysis.fell_back is None
    assert analysis.fed < report.tcp_packets * 0.75


def test_slow_capture_with_idle_and_reused_flows_reads_the_same(generated) -> None:  # type: ignore[no-untyped-def]
    # 150 packets/s: flows idle past the closed-flow timeout between sweeps and are forgotten
    assert_same(generated("slow.pcap", "-n", "140000", "--flows", "3000", "--pps", "150",
                          "--seed", "7"))


def test_snaplen_cut_capture_reads_the_same(generated) -> None:  # type: ignore[no-untyped-def]
    assert_same(generated("cut.pcap", "-n", "70000", "--snaplen", "96", "--seed", "3"))


@pytest.mark.parametrize("name", ["zeek__rst-inject-rae.pcap", "suricata-verify__debug-s13.pcap",
                                  "censorship-detection__tripwire-1597963966.pcap"])
def test_flows_split_between_processes_give_the_same_report(name: str) -> None:
    path = PUBLIC / name
    if not path.exists():
        pytest.skip(f"public corpus not found at {PUBLIC}")
    assert_same_when_split(path, parts=3)


def test_generated_capture_split_between_processes_reads_the_same(generated) -> None:  # type: ignore[no-untyped-def]
    path = generated("split.pcap", "-n", "80000", "--flows", "3000", "--seed", "11")
    assert_same_when_split(path, parts=2)


def test_small_flow_table_falls_back_to_the_simple_path(generated) -> None:  # type: ignore[no-untyped-def]
    path = generated("crowded.pcap", "-n", "70000", "--flows", "3000", "--seed", "5")
    fast, simple, analysis = same_report(path, max_flows=1000)
    assert analysis.fell_back is not None and "flow table" in analysis.fell_back
    assert simple.evicted_flows > 0
    assert_equal_reports(fast, simple)


def test_big_pcap_and_pcapng_files_take_the_two_pass_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analysis_module, "BULK_MIN_BYTES", 100)
    assert isinstance(open_analysis(str(PROJECT_PCAPS / "sample.pcapng")), TwoPassAnalysis)
    assert isinstance(open_analysis(str(PROJECT_PCAPS / "half-open.pcap")), TwoPassAnalysis)
    assert not isinstance(open_analysis("-"), TwoPassAnalysis)
    monkeypatch.setattr(analysis_module, "BULK_MIN_BYTES", 1 << 40)
    assert not isinstance(open_analysis(str(PROJECT_PCAPS / "half-open.pcap")), TwoPassAnalysis)


@pytest.mark.parametrize("path", classic_pcaps(PROJECT_PCAPS) + (
    [PUBLIC / name for name in ("zeek__rst-inject-rae.pcap", "suricata-verify__debug-s13.pcap",
                                "censorship-detection__tripwire-1597963966.pcap",
                                "zeek__ipv6-violation.pcap")] if PUBLIC.exists() else []),
    ids=lambda p: p.name)
def test_captures_written_as_pcapng_read_the_same(path: Path, tmp_path: Path) -> None:
    if shutil.which("editcap") is None:
        pytest.skip("needs editcap")
    converted = tmp_path / "converted.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(path), str(converted)], check=True,
                   capture_output=True)
    report = assert_same(converted)
    assert report.format == "pcapng"


@pytest.mark.parametrize("name", sorted(p.name for p in PUBLIC.glob("*.pcapng"))
                         if PUBLIC.exists() else ["(public corpus absent)"])
def test_public_pcapng_files_read_the_same_or_fall_back(name: str) -> None:
    path = PUBLIC / name
    if not path.exists():
        pytest.skip(f"public corpus not found at {PUBLIC}")
    fast, simple, _ = same_report(path)
    assert_equal_reports(fast, simple)


def test_a_pcapng_of_several_link_types_falls_back(tmp_path: Path) -> None:
    frames = seeds.conversation()
    data = bytearray(seeds.shb() + seeds.idb(seeds.ETHERNET) + seeds.idb(seeds.RAW))
    for n, (ts, frame) in enumerate(frames):
        data += seeds.epb(0, int(ts * 1e6), frame) if n % 2 == 0 else \
            seeds.epb(1, int(ts * 1e6), frame[14:])
    path = tmp_path / "two-links.pcapng"
    path.write_bytes(bytes(data))
    fast, simple, analysis = same_report(path)
    assert analysis.fell_back is not None and "link types" in analysis.fell_back
    assert_equal_reports(fast, simple)


def test_truncated_capture_warns_as_the_simple_path_does(tmp_path: Path) -> None:
    whole = (PROJECT_PCAPS / "half-open.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[:-7])
    report = assert_same(cut)
    assert report.warnings and report.warnings[0].startswith("truncated capture")


def _frame(src: str, dst: str, sport: int, dport: int, flags: int, seq: int = 0,
           ack: int = 0, payload: int = 0) -> bytes:
    return seeds.ethernet(seeds.tcp4(socket.inet_aton(src), socket.inet_aton(dst), sport, dport,
                                     seq, ack, flags, bytes(payload)))


def _opens_and_closes(client: str, server: str, cport: int, sport: int, isn: int = 100,
                      peer_isn: int = 900) -> list[tuple[float, bytes]]:
    """A connection's handshake and FIN exchange, 1 ms apart from t=0.001."""
    syn, ack, fin = seeds.SYN, seeds.ACK, seeds.FIN
    c, s = isn + 1, peer_isn + 1
    segments = [(client, server, cport, sport, syn, isn, 0),
                (server, client, sport, cport, syn | ack, peer_isn, c),
                (client, server, cport, sport, ack, c, s),
                (client, server, cport, sport, fin | ack, c, s),
                (server, client, sport, cport, fin | ack, s, c + 1),
                (client, server, cport, sport, ack, c + 1, s + 1)]
    return [(0.001 * n, _frame(*segment)) for n, segment in enumerate(segments, 1)]


def test_flows_forgotten_at_a_sweep_are_forgotten_the_same_way(tmp_path: Path) -> None:
    a, c, server, filler = "10.0.0.1", "10.0.0.3", "10.0.0.2", "10.0.0.9"
    syn, ack, rst, psh = seeds.SYN, seeds.ACK, seeds.RST, seeds.PSH
    frames = [*_opens_and_closes(a, server, 40000, 80),
        # flow C opens, sends, and is reset: its case waits for what follows
        (0.010, _frame(c, server, 40001, 80, syn, 500)),
        (0.011, _frame(server, c, 80, 40001, syn | ack, 7000, 501)),
        (0.012, _frame(c, server, 40001, 80, psh | ack, 501, 7001, payload=10)),
        (10.0, _frame(server, c, 80, 40001, rst | ack, 7001, 511)),
    ]
    # 65536 packets of another flow: the simple path sweeps the flow table after the last
    frames += [(11.0 + i * 0.00075, _frame(filler, server, 50000, 443, ack, 1, 1))
               for i in range(65536 - 8)]
    frames += [  # after the sweep: C and A again, on 4-tuples the table has forgotten
        (61.0, _frame(c, server, 40001, 80, psh | ack, 511, 7001, payload=10)),
        (61.001, _frame(server, c, 80, 40001, rst, 7001)),
        (62.0, _frame(a, server, 40000, 80, psh | ack, 102, 902, payload=5)),
        (62.001, _frame(server, a, 80, 40000, rst, 902)),
    ]
    path = tmp_path / "sweep.pcap"
    path.write_bytes(seeds.pcap(frames))
    report = assert_same(path)
    assert report.flows == 5  # A, C, the filler, and A and C again after being forgotten


# -- random captures: hypothesis ----------------------------------------------------------

SMALL_SWEEP = 7  # sweeps every few packets, so that short random captures have many
HOSTS4 = [bytes([10, 0, 0, i]) for i in (1, 2, 3)]
HOSTS6 = [bytes(15) + bytes([i]) for i in (1, 2)]
FLAGS = [seeds.SYN, seeds.SYN | seeds.ACK, seeds.ACK, seeds.PSH | seeds.ACK,
         seeds.FIN | seeds.ACK, seeds.RST, seeds.RST | seeds.ACK]


@st.composite
def random_capture(draw: st.DrawFn) -> bytes:
    records = draw(random_records())
    return seeds.pcapng(records) if draw(st.booleans()) else seeds.pcap(records)


@st.composite
def random_records(draw: st.DrawFn) -> list[tuple[float, bytes]]:
    """Packets between a few hosts and ports: flows collide, reuse 4-tuples, idle past the
    table's timeouts, repeat themselves and go back in time; some records are not plain."""
    ts = 1_700_000_000.0
    records = []
    for _ in range(draw(st.integers(1, 80))):
        ts = max(ts + draw(st.sampled_from([0.0, 0.00001, 0.001, 0.4, 6.0, 40.0, 1000.0, -2.0])),
                 1.0)
        hosts = HOSTS6 if draw(st.integers(0, 9)) == 0 else HOSTS4
        src, dst = draw(st.permutations(hosts))[:2]
        ports = draw(st.lists(st.sampled_from([80, 443, 40000, 40001]), min_size=2,
                              max_size=2))
        segment = dict(seq=draw(st.sampled_from([0, 1000, 1001, 1011, 5000, 5001])),
                       ack=draw(st.sampled_from([0, 1001, 1011, 5001])),
                       flags=draw(st.sampled_from(FLAGS)),
                       payload=bytes(draw(st.sampled_from([0, 0, 10]))))
        if len(src) == 4:
            ip = seeds.tcp4(src, dst, *ports, ttl=draw(st.sampled_from([64, 63, 128])),
                            ipid=draw(st.sampled_from([0, 1, 2])), **segment)
        else:
            ip = seeds.tcp6(src, dst, *ports, hop_limit=draw(st.sampled_from([64, 63])),
                            **segment)
        vlan = draw(st.integers(0, 14)) == 0  # left to the simple decoder: not plain
        records.append((ts, seeds.ethernet(ip, vlans=[7] if vlan else [])))
    return records


def reports_both_ways(capture: bytes, parts: int) -> tuple[FileReport, FileReport]:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "random.cap"
        path.write_bytes(capture)
        simple = Analysis(str(path))
        simple.tracker = FlowTracker(simple.tracker.max_flows, sweep_every=SMALL_SWEEP)
        with mock.patch.object(twopass, "SWEEP_EVERY", SMALL_SWEEP):
            fast = TwoPassAnalysis(str(path), parts=parts)
            fast_report = fast.run()
        assert fast.fell_back is None
        return fast_report, simple.run()


@settings(max_examples=200, deadline=None)
@given(random_capture())
def test_random_captures_read_the_same_both_ways(capture: bytes) -> None:
    assert_equal_reports(*reports_both_ways(capture, parts=1))


@settings(max_examples=25, deadline=None)
@given(random_capture())
def test_random_captures_split_between_processes_read_the_same(capture: bytes) -> None:
    assert_equal_reports(*reports_both_ways(capture, parts=2))


def test_a_closed_flow_busy_until_a_sweep_is_kept_as_the_simple_path_keeps_it() -> None:
    """The table forgets a closed flow idle for 30 s at a sweep: what counts is its last packet
    before the sweep, not its first one since the previous sweep."""
    a, server, other = "10.0.0.1", "10.0.0.2", "10.0.0.9"
    syn, ack = seeds.SYN, seeds.ACK
    frames = [  # 1-7: flow A opens and closes; the table sweeps after packet 7
        *_opens_and_closes(a, server, 40000, 80),
        (0.007, _frame(other, server, 50000, 443, syn, 1)),
        # 8-14: A's first packet of the interval is old by the sweep after 14, its last is not
        (60.0, _frame(a, server, 40000, 80, ack, 102, 902)),
        *[(61.0 + i, _frame(other, server, 50000, 443, ack, 2, 1)) for i in range(5)],
        (95.0, _frame(a, server, 40000, 80, ack, 102, 902)),
        # 15: still flow A, not a new one
        (96.0, _frame(a, server, 40000, 80, ack, 102, 902)),
    ]
    fast, simple = reports_both_ways(seeds.pcap(frames), parts=1)
    assert simple.flows == 2
    assert_equal_reports(fast, simple)


def test_a_flow_first_seen_midstream_gets_the_roles_the_simple_path_gives_it() -> None:
    """Neither port names a service, so the first packet's sender is taken as the client; a
    SYN from the other side after the close is then a new connection, retransmitted or not."""
    p, q = "10.0.0.1", "10.0.0.2"
    syn, ack, fin = seeds.SYN, seeds.ACK, seeds.FIN
    frames = [
        (0.001, _frame(q, p, 40001, 40000, ack, 7000, 500)),
        (0.002, _frame(p, q, 40000, 40001, syn, 500)),
        (0.003, _frame(p, q, 40000, 40001, fin | ack, 501, 7000)),
        (0.004, _frame(q, p, 40001, 40000, fin | ack, 7000, 502)),
        (0.005, _frame(p, q, 40000, 40001, syn, 500)),
    ]
    fast, simple = reports_both_ways(seeds.pcap(frames), parts=1)
    assert simple.flows == 2
    assert_equal_reports(fast, simple)
