"""analyze_packets: packets a notebook holds (scapy's, or plain tuples) through the engine,
with the same report as `read` on a file of them; scapy stays the caller's."""

from __future__ import annotations

import io
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, Ether
from scapy.packet import Raw
from scapy.utils import rdpcap, wrpcap

import rstdiag
from rstdiag import PacketError, analyze_packets
from rstdiag.packets import pcapng_of

PCAPS = Path(__file__).resolve().parents[1] / "pcaps"
CLIENT, SERVER = "192.0.2.1", "198.51.100.7"


def stamped(packets: list, start: float = 1_700_000_000.0) -> list:
    for n, pkt in enumerate(packets):
        pkt.time = start + n * 0.001
    return packets


def closed_port() -> list:
    """A SYN to a port nobody listens on, answered by RST+ACK."""
    return stamped([
        Ether() / IP(src=CLIENT, dst=SERVER) / TCP(sport=40000, dport=9, flags="S", seq=1000),
        Ether() / IP(src=SERVER, dst=CLIENT) / TCP(sport=9, dport=40000, flags="RA", seq=0,
                                                   ack=1001),
    ])


def linger_abort() -> list:
    """A request answered, everything acknowledged, then the server's SO_LINGER {1,0} close:
    RST+ACK at its next sequence number, no FIN."""
    def c(flags: str, seq: int, ack: int, data: bytes = b"") -> object:
        return Ether() / IP(src=CLIENT, dst=SERVER) / TCP(
            sport=40001, dport=8080, flags=flags, seq=seq, ack=ack) / Raw(data)

    def s(flags: str, seq: int, ack: int, data: bytes = b"") -> object:
        return Ether() / IP(src=SERVER, dst=CLIENT) / TCP(
            sport=8080, dport=40001, flags=flags, seq=seq, ack=ack) / Raw(data)

    return stamped([
        c("S", 1000, 0), s("SA", 5000, 1001), c("A", 1001, 5001),
        c("PA", 1001, 5001, b"x" * 20), s("PA", 5001, 1021, b"y" * 100), c("A", 1021, 5101),
        s("RA", 5101, 1021),
    ], start=1_700_000_001.0)


def test_crafted_closed_port_and_linger_abort_get_their_verdicts() -> None:
    report = analyze_packets(closed_port() + linger_abort())
    assert [(v.frame, v.label, v.sender) for v in report.verdicts] == [
        (2, "closed-port", "server"), (9, "linger-abort", "server")]


def test_the_report_equals_reads_report_of_a_file_of_the_same_packets(tmp_path: Path) -> None:
    packets = closed_port() + linger_abort()
    wrpcap(str(tmp_path / "crafted.pcap"), packets)
    from_file = rstdiag.analyze_file(str(tmp_path / "crafted.pcap"))
    from_packets = analyze_packets(packets)
    assert [v.to_dict() | {"file": ""} for v in from_packets.verdicts] == \
        [v.to_dict() | {"file": ""} for v in from_file.verdicts]
    assert (from_packets.frames, from_packets.tcp_packets, from_packets.flows) == \
        (from_file.frames, from_file.tcp_packets, from_file.flows)


def test_packets_read_by_rdpcap_give_reads_verdicts() -> None:
    path = PCAPS / "data-after-close.pcap"
    want = [(v.frame, v.label, v.ts) for v in rstdiag.analyze_file(str(path)).verdicts]
    got = [(v.frame, v.label, v.ts) for v in analyze_packets(rdpcap(str(path))).verdicts]
    assert got == want


def test_tuples_of_timestamp_linktype_and_bytes_are_packets_too() -> None:
    packets = [(float(p.time), 1, bytes(p)) for p in closed_port()]
    [verdict] = analyze_packets(packets).verdicts
    assert (verdict.label, verdict.ts) == ("closed-port", packets[1][0])


def test_packets_of_several_link_types_share_one_capture() -> None:
    raw_v6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=40000, dport=9, flags="S",
                                                               seq=7)
    answer = CookedLinux() / IPv6(src="2001:db8::2", dst="2001:db8::1") / TCP(
        sport=9, dport=40000, flags="RA", ack=8)
    [verdict] = analyze_packets(stamped([raw_v6, answer])).verdicts
    assert (verdict.frame, verdict.label) == (2, "closed-port")


def test_the_capture_handed_to_the_engine_keeps_a_timestamps_nanoseconds() -> None:
    packets = [(Decimal("1700000000.123456789"), 1, bytes(p)) for p in closed_port()]
    [first, _] = rdpcap(io.BytesIO(pcapng_of(packets)))
    assert first.time == Decimal("1700000000.123456789")


def test_something_that_is_not_a_packet_is_named() -> None:
    with pytest.raises(PacketError, match="packet 2: str is neither a scapy packet"):
        analyze_packets([(0.0, 1, b""), "not a packet"])


def test_import_rstdiag_does_not_import_scapy() -> None:
    code = "import sys, rstdiag; rstdiag.analyze_packets([]); print('scapy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
