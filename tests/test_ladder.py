"""`rstdiag explain`: ladder rows (pure), connections of a reused 4-tuple, the drawing, the CLI."""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest
from conversation import Conversation, handshake
from corpus import public

from rstdiag.labels import Confidence, Endpoint, Label, Sender, Verdict
from rstdiag.ladder import (
    FAR,
    ExplainError,
    Gap,
    Ladder,
    Row,
    build_rows,
    choose_connection,
    endpoint_key,
    explain_file,
    packet_key,
    print_ladder,
    split_connections,
    visible_rows,
)
from rstdiag.records import ACK, FIN, PSH, RST, SYN, Packet, flag_string

RSTDIAG = shutil.which("rstdiag") or ""
needs_entry_point = pytest.mark.skipif(not RSTDIAG,
                                       reason="rstdiag is not installed (pip install -e .)")

CLIENT, SERVER = socket.inet_aton("192.0.2.1"), socket.inet_aton("198.51.100.7")
FLAGS = {"S": SYN, "A": ACK, "F": FIN, "R": RST, "P": PSH}


def pkt(frame: int, flags: str, *, client: bool = True, seq: int = 0, ack: int = 0,
        length: int = 0, ts: float | None = None, ttl: int = 64) -> Packet:
    bits = 0
    for letter in flags:
        bits |= FLAGS[letter]
    src, dst, sport, dport = ((CLIENT, SERVER, 40000, 80) if client
                              else (SERVER, CLIENT, 80, 40000))
    return Packet(frame, 1000.0 + frame / 100 if ts is None else ts, 4, src, dst, sport, dport,
                  seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, bits, 512, length, ttl, frame)


def conversation(cisn: int = 1000, sisn: int = 5000, first: int = 1) -> list[Packet]:
    """Handshake, a request, the server's close, the client's data after it, the RST."""
    f = first
    return [
        pkt(f, "S", seq=cisn),
        pkt(f + 1, "SA", client=False, seq=sisn, ack=cisn + 1),
        pkt(f + 2, "A", seq=cisn + 1, ack=sisn + 1),
        pkt(f + 3, "PA", seq=cisn + 1, ack=sisn + 1, length=10),
        pkt(f + 4, "FA", client=False, seq=sisn + 1, ack=cisn + 11),
        pkt(f + 5, "PA", seq=cisn + 11, ack=sisn + 2, length=6),
        pkt(f + 6, "R", client=False, seq=sisn + 2),
    ]


def verdict_for(frame: int, label: Label = Label.DATA_AFTER_CLOSE) -> Verdict:
    return Verdict(frame, 0.0, "198.51.100.7", 80, "192.0.2.1", 40000, "R",
                   Endpoint("192.0.2.1", 40000), Endpoint("198.51.100.7", 80), Sender.SERVER,
                   label, Confidence.HIGH, "the server had closed (FIN #5)")


# --- connections and rows (pure) ---------------------------------------------------------------

def test_rows_carry_direction_flags_and_numbers_relative_to_each_side_isn() -> None:
    (conn,) = split_connections(conversation())
    rows = build_rows(conn, {7: verdict_for(7)})
    assert [r.direction for r in rows] == ["client->server", "server->client", "client->server",
                                           "client->server", "server->client", "client->server",
                                           "server->client"]
    assert [flag_string(r.flags) for r in rows] == ["S", "S.", ".", "P.", "F.", "P.", "R"]
    assert [r.rel_seq for r in rows] == [0, 0, 1, 1, 1, 11, 2]
    assert [r.rel_ack for r in rows] == [None, 1, 1, 1, 11, 2, None]
    assert [r.length for r in rows] == [0, 0, 0, 10, 0, 6, 0]
    assert rows[0].ms == 0 and rows[6].ms == pytest.approx(60)
    assert [r.frame for r in rows if r.verdict is not None] == [7]
    assert rows[6].label() == "R seq=2"
    assert rows[3].label(2) == "P. seq=1 ack=1 len=10"


def test_a_side_without_isn_or_a_number_far_from_it_is_shown_absolute() -> None:
    # the forged RST of zeek rst-inject: before the server's SYN+ACK, seq 0, ack = the SYN's seq
    sisn = 3_000_000_000
    packets = [pkt(1, "S", seq=1000), pkt(2, "RA", client=False, seq=0, ack=1000),
               pkt(3, "SA", client=False, seq=sisn, ack=1001), pkt(4, "A", seq=1001, ack=sisn + 1),
               pkt(5, "R", client=False, seq=sisn + 1 + FAR),
               pkt(6, "R", client=False, seq=sisn - 9)]
    rows = build_rows(split_connections(packets)[0])
    assert (rows[1].rel_seq, rows[1].seq, rows[1].rel_ack) == (None, 0, 0)
    assert rows[1].label() == "R. seq=0 (abs) ack=0"
    assert rows[4].rel_seq is None and rows[5].rel_seq == -9
    # a side that only ever sent a RST has no base at all
    lone = build_rows(split_connections([pkt(1, "S", seq=7), pkt(2, "RA", client=False,
                                                                  seq=0, ack=8)])[0])
    assert (lone[1].rel_seq, lone[1].rel_ack) == (None, 1)


def test_a_capture_starting_mid_flow_counts_from_the_first_sequence_number_seen() -> None:
    packets = [pkt(1, "PA", seq=7000, ack=9000, length=5), pkt(2, "A", client=False, seq=9000,
                                                               ack=7005)]
    rows = build_rows(split_connections(packets)[0])
    assert [(r.rel_seq, r.rel_ack) for r in rows] == [(1, 1), (1, 6)]


def test_a_new_syn_after_a_rst_starts_a_new_connection_a_retransmitted_one_does_not() -> None:
    first = conversation(1000, 5000)
    retransmit = pkt(8, "S", seq=1000)
    second = conversation(90000, 70000, first=9)
    connections = split_connections([*first, retransmit, *second])
    assert [conn.frames() for conn in connections] == [(1, 8), (9, 15)]
    assert connections[1].client.isn == 90000
    rows = build_rows(connections[1])
    assert rows[0].rel_seq == 0 and rows[-1].rel_seq == 2


def test_a_syn_in_an_open_connection_or_after_fin_fin_follows_the_tracker() -> None:
    open_conn = conversation()[:4] + [pkt(5, "S", seq=123)]
    assert len(split_connections(open_conn)) == 1
    closed = conversation()[:5] + [pkt(6, "FA", seq=1011, ack=5002), pkt(7, "S", seq=42)]
    assert [c.frames() for c in split_connections(closed)] == [(1, 6), (7, 7)]


def test_the_connection_shown_holds_the_frame_or_else_the_first_rst() -> None:
    connections = split_connections([*conversation(1000, 5000), *conversation(9, 9, first=8)])
    assert choose_connection(connections, 10) == 1
    assert choose_connection(connections, None) == 0
    with pytest.raises(ExplainError):
        choose_connection(connections, 99)
    quiet = split_connections([pkt(1, "S", seq=1), pkt(2, "SA", client=False, seq=1, ack=2)])
    assert choose_connection(quiet, None) == 0


def _rows(n: int) -> list[Row]:
    return [Row(i, 0.0, 0.0, i % 2, ACK, i, i, i, i, 0, 64, 512) for i in range(1, n + 1)]


def test_a_short_flow_is_shown_whole() -> None:
    rows = _rows(60)
    assert visible_rows(rows) == rows


def test_a_long_flow_keeps_its_start_its_end_and_the_context_of_the_focus() -> None:
    rows = _rows(200)
    items = visible_rows(rows, focus=[100])
    frames = [i.frame for i in items if isinstance(i, Row)]
    gaps = [i.packets for i in items if isinstance(i, Gap)]
    assert frames == [*range(1, 21), *range(97, 104), *range(161, 201)]
    assert gaps == [76, 57]
    assert sum(gaps) + len(frames) == 200


def test_no_gap_hides_a_single_row() -> None:
    items = visible_rows(_rows(61), head=20, tail=40, focus=[])
    assert all(isinstance(i, Row) for i in items) and len(items) == 61
    items = visible_rows(_rows(62), head=20, tail=40, focus=[])
    assert [i.packets for i in items if isinstance(i, Gap)] == [2]


# --- public captures ---------------------------------------------------------------------------

def _draw(ladder: Ladder, show_all: bool = False) -> list[str]:
    out = io.StringIO()
    print_ladder(ladder, out, color=False, show_all=show_all)
    return out.getvalue().splitlines()


def _row_line(lines: list[str], frame: int) -> int:
    for i, line in enumerate(lines):
        match = re.match(r"[▶ ] +(\d+) +-?[\d.]+  │", line)
        if match and int(match.group(1)) == frame:
            return i
    raise AssertionError(f"no row for frame {frame}")


def test_dhe_frame_22_is_the_server_rst_after_both_fins() -> None:
    ladder = explain_file(str(public("zeek__dhe.pcap")), frame=22)
    assert (str(ladder.client), str(ladder.server)) == ("192.168.18.50:62277",
                                                        "162.219.2.166:443")
    assert len(ladder.rows) == 24 and ladder.selected is not None and ladder.selected.is_rst
    by_frame = {r.frame: r for r in ladder.rows}
    assert (by_frame[17].direction, flag_string(by_frame[17].flags), by_frame[17].rel_seq,
            by_frame[17].length) == ("server->client", "FP.", 4343, 53)
    assert (by_frame[21].direction, flag_string(by_frame[21].flags), by_frame[21].rel_seq,
            by_frame[21].rel_ack) == ("client->server", "F.", 490, 4397)
    assert [(r.frame, r.rel_seq, r.direction) for r in ladder.rsts] == \
        [(22, 4397, "server->client"), (23, 4397, "server->client"),
         (24, 4397, "server->client")]
    assert [str(v.label) for v in ladder.verdicts] == ["data-after-close", "follow-up",
                                                       "follow-up"]
    lines = _draw(ladder)
    assert lines[0] == ("zeek__dhe.pcap frame 22 is a RST from the server: data-after-close "
                        "(high confidence)")
    i = _row_line(lines, 22)
    assert lines[i].startswith("▶ ") and "<──" in lines[i] and "R seq=4397 ──│" in lines[i]
    assert "↳ data-after-close, sent by the server, high confidence" in lines[i + 1]
    assert "evidence: the server had closed (FIN #17)" in lines[i + 2]
    assert any("hint: the peer kept writing after the close" in line
               for line in lines[i + 3 : i + 6])
    assert "── S   seq=0 ──" in lines[_row_line(lines, 1)]


def test_rst_inject_frame_7_and_the_forged_rst_before_the_handshake() -> None:
    ladder = explain_file(str(public("zeek__rst-inject-rae.pcap")), frame=7)
    rsts = {r.frame: r for r in ladder.rsts}
    assert sorted(rsts) == [2, 7, 9]
    forged = rsts[2]
    assert (forged.seq, forged.rel_seq, forged.rel_ack, forged.ttl) == (0, None, 0, 46)
    assert forged.verdict is not None and forged.verdict.label == Label.INJECTED
    assert (rsts[7].rel_seq, rsts[7].rel_ack, flag_string(rsts[7].flags)) == (1, 26, "R.")
    assert rsts[7].verdict is not None and rsts[7].verdict.label == Label.UNREAD_DATA
    lines = _draw(ladder)
    i = _row_line(lines, 2)
    assert "R. seq=0 (abs) ack=0" in lines[i]
    assert "injected, forged by the path in the server's name, high confidence" in lines[i + 1]
    assert "evidence: forged in the server's name: TTL 46" in lines[i + 2]
    j = _row_line(lines, 7)
    assert lines[j].startswith("▶") and "↳ unread-data" in lines[j + 1]


def test_smtp_quit_rst_has_relative_seq_2() -> None:
    ladder = explain_file(str(public("suricata-verify__smtp-quit__input.pcap")), frame=7)
    assert [(r.frame, r.direction[0], flag_string(r.flags), r.rel_seq, r.length)
            for r in ladder.rows] == [
        (1, "c", "S", 0, 0), (2, "s", "S.", 0, 0), (3, "c", ".", 1, 0), (4, "s", "F.", 1, 0),
        (5, "c", ".", 1, 0), (6, "c", "P.", 1, 6), (7, "s", "R", 2, 0)]
    lines = _draw(ladder)
    i = _row_line(lines, 7)
    assert "R seq=2 ──│" in lines[i]
    assert "evidence: the server had closed (FIN #4); the peer then sent 6 B" in lines[i + 2]


def test_ipv6_frame_15_is_the_client_rst() -> None:
    ladder = explain_file(str(public("zeek__ipv6-violation.pcap")), frame=15)
    assert str(ladder.client) == "[2001:470:1f05:17a6:d69a:20ff:fefd:6b88]:24316"
    assert str(ladder.server) == "[2001:6a8:a40::21]:21"
    rst = ladder.selected
    assert rst is not None and (rst.direction, rst.rel_seq, rst.ttl) == ("client->server", 45, 64)
    assert len(ladder.rows) == 19
    lines = _draw(ladder)
    i = _row_line(lines, 15)
    assert "── R  seq=45 ──" in lines[i] and lines[i].rstrip().endswith("ttl=64 win=0")
    assert "evidence: the client had closed (FIN #13)" in lines[i + 2]
    assert any("client [2001:470:1f05:17a6:d69a:20ff:fefd:6b88]:24316" in line
               for line in lines[:12])


def test_a_frame_that_is_not_a_rst_shows_its_flow_and_says_so() -> None:
    ladder = explain_file(str(public("suricata-verify__smtp-quit__input.pcap")), frame=3)
    assert ladder.selected is not None and not ladder.selected.is_rst
    lines = _draw(ladder)
    assert lines[0] == "suricata-verify__smtp-quit__input.pcap frame 3 is not a RST (flags .); " \
        "its flow:"
    assert lines[_row_line(lines, 3)].startswith("▶")


def test_the_flow_in_either_order_and_an_ipv6_flow() -> None:
    path = str(public("zeek__rst-inject-rae.pcap"))
    a = explain_file(path, flow=(("1.2.0.2", 2527), ("1.2.0.3", 6649)))
    b = explain_file(path, flow=(("1.2.0.3", 6649), ("1.2.0.2", 2527)))
    assert a.rows == b.rows and len(a.rows) == 9 and a.frame is None
    v6 = explain_file(str(public("zeek__ipv6-violation.pcap")),
                      flow=(("2001:470:1f05:17a6:d69a:20ff:fefd:6b88", 24316),
                            ("2001:6a8:a40::21", 21)))
    assert len(v6.rsts) == 3


def test_a_long_flow_is_cut_unless_all_is_asked() -> None:
    ladder = explain_file(str(public("zeek__timestamp.pcap")), frame=400)
    assert len(ladder.rows) == 878 and not ladder.rsts
    lines = _draw(ladder)
    assert any("... 376 packets ..." in line for line in lines)
    assert lines[-1] == "811 packets not shown: --all shows every packet"
    assert lines[_row_line(lines, 400)].startswith("▶")
    assert len([line for line in _draw(ladder, show_all=True) if "│──" in line
                or "│<" in line]) == 878


def test_packet_and_endpoint_keys_agree() -> None:
    p = pkt(1, "S")
    assert packet_key(p) == endpoint_key(("198.51.100.7", 80), ("192.0.2.1", 40000))


def test_json_document_lists_packets_and_verdicts() -> None:
    ladder = explain_file(str(public("suricata-verify__smtp-quit__input.pcap")), frame=7)
    doc = json.loads(json.dumps(ladder.to_dict()))
    assert doc["frame"] == 7 and doc["frame_is_rst"] is True
    assert doc["client"] == "10.127.0.202:58121" and doc["server"] == "41.225.70.195:25"
    assert [p["frame"] for p in doc["packets"]] == list(range(1, 8))
    last = doc["packets"][-1]
    assert {k: last[k] for k in ("direction", "flags", "rel_seq", "rel_ack", "len", "ttl")} == \
        {"direction": "server->client", "flags": "R", "rel_seq": 2, "rel_ack": None, "len": 0,
         "ttl": 48}
    assert last["seq"] == 2212667403
    assert [(v["frame"], v["label"]) for v in doc["rsts"]] == [(7, "data-after-close")]


# --- the installed command ---------------------------------------------------------------------

def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RSTDIAG, *args], capture_output=True, text=True, timeout=60)


@needs_entry_point
def test_explain_prints_the_ladder_and_exits_0() -> None:
    result = run("explain", str(public("zeek__dhe.pcap")), "--frame", "22")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    i = _row_line(lines, 22)
    assert "evidence: the server had closed (FIN #17)" in lines[i + 2]
    assert "\x1b[" not in result.stdout  # no colour when not a terminal


@needs_entry_point
def test_explain_colours_the_rst_when_asked() -> None:
    result = run("explain", "--color", str(public("zeek__dhe.pcap")), "--frame", "22")
    assert result.returncode == 0
    assert "\x1b[1;31m" in result.stdout  # bold red


@needs_entry_point
def test_explain_json() -> None:
    result = run("explain", "--format", "json", str(public("zeek__ipv6-violation.pcap")),
                 "--flow", "[2001:470:1f05:17a6:d69a:20ff:fefd:6b88]:24316-[2001:6a8:a40::21]:21")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert len(doc["packets"]) == 19 and doc["frame"] is None
    assert [v["label"] for v in doc["rsts"]] == ["data-after-close", "follow-up", "follow-up"]


@needs_entry_point
@pytest.mark.parametrize(("args", "message"), [
    (["--frame", "1"], "frame 1 is not a TCP packet (IP but not TCP)"),
    (["--frame", "999999"], "no frame 999999: the capture has 956 frames"),
    (["--flow", "10.0.0.1:1-10.0.0.2:2"], "no TCP packets between 10.0.0.1:1 and 10.0.0.2:2"),
])
def test_explain_errors_are_one_line_and_status_2(args: list[str], message: str) -> None:
    path = str(public("chrissanders__http_espn.pcapng"))
    result = run("explain", path, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"rstdiag: error: {path}: {message}\n"


@needs_entry_point
@pytest.mark.parametrize("args", [[], ["--frame", "1", "--flow", "1.2.3.4:1-5.6.7.8:2"],
                                  ["--flow", "1.2.3.4:1"], ["--frame", "0"]])
def test_explain_usage_errors_exit_2(args: list[str]) -> None:
    result = run("explain", str(public("zeek__dhe.pcap")), *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


@needs_entry_point
def test_explain_of_a_file_that_is_not_a_capture(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.pcap"
    bogus.write_text("hello\n")
    result = run("explain", str(bogus), "--frame", "1")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "not a pcap or pcapng file" in result.stderr


def _raw_ipv4_pcap(packets: list[Packet]) -> bytes:
    """A LINKTYPE_RAW pcap of the packets (checksums left zero: rstdiag does not check them)."""
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
    for p in packets:
        tcp = struct.pack("!HHIIBBHHH", p.sport, p.dport, p.seq, p.ack, 5 << 4, p.flags,
                          p.window, 0, 0) + b"x" * p.length
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), p.ipid or 0, 0, p.ttl, 6, 0,
                         p.src, p.dst) + tcp
        sec, usec = int(p.ts), round((p.ts % 1) * 1e6)
        out += struct.pack("<IIII", sec, usec, len(ip), len(ip)) + ip
    return out


@needs_entry_point
def test_explain_a_reused_4_tuple_shows_only_the_connection_of_the_frame(tmp_path: Path) -> None:
    capture = tmp_path / "reuse.pcap"
    capture.write_bytes(_raw_ipv4_pcap([*conversation(1000, 5000),
                                        *conversation(90000, 70000, first=8)]))
    result = run("explain", "--format", "json", str(capture), "--frame", "14")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [p["frame"] for p in doc["packets"]] == list(range(8, 15))
    assert (doc["connection"], doc["connections"]) == (2, 2)
    assert doc["packets"][-1]["rel_seq"] == 2
    assert [v["frame"] for v in doc["rsts"]] == [14]
    table = run("explain", str(capture), "--flow", "192.0.2.1:40000-198.51.100.7:80")
    assert "this 4-tuple carries 2 connections; this is number 1 (frames 1-7)" in table.stdout


@needs_entry_point
def test_explain_output_closed_early_exits_quietly() -> None:
    proc = subprocess.Popen([RSTDIAG, "explain", "--all", str(public("zeek__timestamp.pcap")),
                             "--frame", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(100)
    proc.stdout.close()  # as `| head -c 100` does
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    assert err == b""


SEED_RSTS = [("closed-port-v6", 2, "closed-port"), ("accept-overflow", 20, "accept-overflow"),
             ("linger-abort", 8, "linger-abort"), ("unread-data", 6, "unread-data"),
             ("data-after-close", 7, "data-after-close"), ("half-open", 9, "half-open"),
             ("keepalive-timeout", 8, "keepalive-timeout"), ("injected", 31, "injected"),
             ("client-abort-scan", 3, "client-abort")]


@needs_entry_point
@pytest.mark.parametrize(("capture", "frame", "label"), SEED_RSTS)
def test_explain_draws_each_real_kernel_seed_scenario(capture: str, frame: int,
                                                      label: str) -> None:
    path = Path(__file__).resolve().parents[1] / "pcaps" / f"{capture}.pcap"
    result = run("explain", str(path), "--frame", str(frame))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    i = _row_line(lines, frame)
    assert lines[i + 1].strip().startswith(f"↳ {label}, ")
    assert "evidence:" in lines[i + 2]


def test_a_frame_that_is_not_tcp_says_what_it_is() -> None:
    with pytest.raises(ExplainError, match=r"^frame 45 is not a TCP packet \(IP but not TCP\)$"):
        explain_file(str(public("zeek__mapi.pcap")), frame=45)


# --- the effect and the alternatives under a verdict -------------------------------------------

def _seed_003() -> Conversation:
    """Seed 003: the client's FIN, then a firewall's RST with the pre-FIN sequence number, one
    before the server's window, while the server streams; the server retransmits."""
    c = Conversation()
    c.client("S", seq=0).server("SA", seq=9000, ack=1).client("A", seq=1, ack=9001)
    c.client("PA", seq=1, ack=9001, length=420).server("A", seq=9001, ack=421)
    c.server("PA", seq=9001, ack=421, length=1000).client("FA", seq=421, ack=10001)
    c.server("A", seq=10001, ack=422).server("PA", seq=10001, ack=422, length=1000)
    c.client("RA", seq=421, ack=10001, ttl=63)
    c.server("PA", seq=10001, ack=422, length=1000, gap=0.4)
    c.server("PA", seq=10001, ack=422, length=1000, gap=0.8)
    return c


def _unanswered_request() -> Conversation:
    c = handshake(Conversation())
    c.client("PA", seq=1001, ack=5001, length=10).server("A", seq=5001, ack=1011)
    return c.server("RA", seq=5001, ack=1011)


def _explain(tmp_path: Path, conversation: Conversation, frame: int, *args: str) -> str:
    path = tmp_path / "conversation.pcap"
    path.write_bytes(conversation.capture())
    result = run("explain", str(path), "--frame", str(frame), *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _field(lines: list[str], start: int, name: str) -> str:
    """The text of field `name` under the verdict drawn after line `start`, with the lines it
    wraps onto (indented to its text's column)."""
    for n, line in enumerate(lines[start + 1:], start + 1):
        head = line.find(f"{name}: ")
        if head >= 0 and not line[:head].strip():
            column = head + len(name) + 2
            text = [line[column:]]
            for more in lines[n + 1:]:
                if more[:column].strip() or not more[column:].strip():
                    break
                text.append(more[column:])
            return " ".join(text)
    raise AssertionError(f"no {name} field after line {start}")


@needs_entry_point
def test_the_ladder_shows_a_rst_the_receiver_ignored_and_the_retransmissions_after_it(
        tmp_path: Path) -> None:
    lines = _explain(tmp_path, _seed_003(), 10).splitlines()
    i = _row_line(lines, 10)
    assert "ignored: the receiver dropped it (outside its window) and carried on" in \
        _field(lines, i, "effect")
    assert "1 before the server's window" in _field(lines, i, "evidence")
    assert _row_line(lines, 11) > i and _row_line(lines, 12) > i  # the retransmissions


@needs_entry_point
def test_the_ladder_json_carries_each_rsts_effect_and_alternatives(tmp_path: Path) -> None:
    doc = json.loads(_explain(tmp_path, _seed_003(), 10, "--format", "json"))
    assert [(v["frame"], v["effect"]) for v in doc["rsts"]] == [(10, "ignored")]
    doc = json.loads(_explain(tmp_path, _unanswered_request(), 6, "--format", "json"))
    assert [(v["label"], v["alternatives"], v["effect"]) for v in doc["rsts"]] == [
        ("unread-data", ["linger-abort"], "accepted")]


@needs_entry_point
def test_the_ladder_names_the_alternatives_the_wire_leaves_open(tmp_path: Path) -> None:
    lines = _explain(tmp_path, _unanswered_request(), 6).splitlines()
    i = _row_line(lines, 6)
    assert _field(lines, i, "also").startswith("linger-abort (the same packets")
    assert _field(lines, i, "effect").startswith("accepted: the receiver took it")
