"""The decoder, one link layer or header quirk at a time, on frames crafted with scapy."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_RR
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.packet import Packet as ScapyPacket

from rstdiag import decode as decode_module
from rstdiag.decode import SUPPORTED_LINKTYPES, Decoder
from rstdiag.records import ACK, PSH, RST, Packet, RawFrame

V4_SRC, V4_DST = "192.0.2.1", "198.51.100.7"
V6_SRC, V6_DST = "2001:db8::1", "2001:db8::2"
PAYLOAD = b"0123456789"


def eth() -> Ether:
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def ip4(**kw: object) -> IP:
    return IP(src=V4_SRC, dst=V4_DST, ttl=57, id=4242, **kw)


def ip6(**kw: object) -> IPv6:
    return IPv6(src=V6_SRC, dst=V6_DST, hlim=51, **kw)


def tcp(**kw: object) -> TCP:
    fields: dict[str, object] = {
        "sport": 40000, "dport": 443, "seq": 1000, "ack": 2000, "flags": "PA", "window": 512,
    }
    fields.update(kw)
    return TCP(**fields)


def segment_v4() -> ScapyPacket:
    return ip4() / tcp() / PAYLOAD


def segment_v6() -> ScapyPacket:
    return ip6() / tcp() / PAYLOAD


def run(linktype: int, frame: ScapyPacket | bytes, decoder: Decoder | None = None,
        wirelen: int | None = None) -> tuple[Packet | None, Decoder]:
    data = bytes(frame)
    decoder = decoder or Decoder()
    raw = RawFrame(7, 1234.5, linktype, data, len(data) if wirelen is None else wirelen)
    return decoder.decode(raw), decoder


def assert_is_the_standard_segment(pkt: Packet | None, version: int) -> None:
    """The segment built by segment_v4()/segment_v6(), decoded field by field."""
    assert pkt is not None
    if version == 4:
        src, dst = socket.inet_aton(V4_SRC), socket.inet_aton(V4_DST)
        assert (pkt.ttl, pkt.ipid) == (57, 4242)
    else:
        src, dst = (socket.inet_pton(socket.AF_INET6, a) for a in (V6_SRC, V6_DST))
        assert (pkt.ttl, pkt.ipid) == (51, None)
    assert (pkt.frame, pkt.ts, pkt.version, pkt.src, pkt.dst) == (7, 1234.5, version, src, dst)
    assert (pkt.sport, pkt.dport, pkt.seq, pkt.ack) == (40000, 443, 1000, 2000)
    assert (pkt.flags, pkt.window, pkt.length) == (PSH | ACK, 512, len(PAYLOAD))


# --- link layers -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [4, 6])
def test_ethernet_frame_decodes_to_tcp(version: int) -> None:
    inner = segment_v4() if version == 4 else segment_v6()
    pkt, decoder = run(1, eth() / inner)
    assert_is_the_standard_segment(pkt, version)
    assert decoder.stats.tcp == 1


def test_vlan_tagged_ethernet_frame_decodes_to_tcp() -> None:
    pkt, _ = run(1, eth() / Dot1Q(vlan=10) / segment_v4())
    assert_is_the_standard_segment(pkt, 4)


def test_qinq_tagged_ethernet_frame_decodes_to_tcp() -> None:
    frame = eth() / Dot1AD(vlan=100) / Dot1Q(vlan=10) / segment_v6()
    assert bytes(frame)[12:14] == b"\x88\xa8" and bytes(frame)[16:18] == b"\x81\x00"
    pkt, _ = run(1, frame)
    assert_is_the_standard_segment(pkt, 6)


@pytest.mark.parametrize(("ppp_proto", "inner", "version"),
                         [(0x0021, segment_v4, 4), (0x0057, segment_v6, 6)])
def test_pppoe_session_frame_decodes_to_tcp(ppp_proto: int, inner, version: int) -> None:
    pkt, _ = run(1, eth() / PPPoE(sessionid=7) / PPP(proto=ppp_proto) / inner())
    assert_is_the_standard_segment(pkt, version)


def test_pppoe_session_frame_with_non_ip_ppp_protocol_is_counted_non_ip() -> None:
    pkt, decoder = run(1, eth() / PPPoE(sessionid=7) / PPP(proto=0xC021) / b"\x01\x01\x00\x04")
    assert pkt is None
    assert decoder.stats.non_ip == 1


@pytest.mark.parametrize("version", [4, 6])
def test_linux_sll_frame_decodes_to_tcp(version: int) -> None:
    inner = segment_v4() if version == 4 else segment_v6()
    pkt, _ = run(113, CookedLinux(pkttype=0) / inner)
    assert_is_the_standard_segment(pkt, version)


def test_linux_sll_frame_with_vlan_tag_decodes_to_tcp() -> None:
    frame = CookedLinux(pkttype=0) / Dot1Q(vlan=3) / segment_v4()
    assert bytes(frame)[14:16] == b"\x81\x00"
    pkt, _ = run(113, frame)
    assert_is_the_standard_segment(pkt, 4)


@pytest.mark.parametrize("version", [4, 6])
def test_linux_sll2_frame_decodes_to_tcp(version: int) -> None:
    inner = segment_v4() if version == 4 else segment_v6()
    pkt, _ = run(276, CookedLinuxV2(pkttype=0, ifindex=2) / inner)
    assert_is_the_standard_segment(pkt, version)


def test_linux_sll2_frame_with_vlan_tag_decodes_to_tcp() -> None:
    pkt, _ = run(276, CookedLinuxV2(pkttype=0) / Dot1Q(vlan=3) / segment_v6())
    assert_is_the_standard_segment(pkt, 6)


@pytest.mark.parametrize("version", [4, 6])
def test_linktype_raw_decodes_ipv4_and_ipv6(version: int) -> None:
    pkt, _ = run(101, segment_v4() if version == 4 else segment_v6())
    assert_is_the_standard_segment(pkt, version)


@pytest.mark.parametrize("linktype", [12, 14])
@pytest.mark.parametrize("version", [4, 6])
def test_bsd_dlt_raw_values_decode_as_raw_ip(linktype: int, version: int) -> None:
    pkt, _ = run(linktype, segment_v4() if version == 4 else segment_v6())
    assert_is_the_standard_segment(pkt, version)


def test_linktype_ipv4_decodes_to_tcp() -> None:
    pkt, _ = run(228, segment_v4())
    assert_is_the_standard_segment(pkt, 4)


def test_linktype_ipv6_decodes_to_tcp() -> None:
    pkt, _ = run(229, segment_v6())
    assert_is_the_standard_segment(pkt, 6)


@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize(("family", "version"), [(2, 4), (24, 6), (28, 6), (30, 6)])
def test_bsd_null_header_in_either_byte_order_decodes(order: str, family: int,
                                                      version: int) -> None:
    inner = segment_v4() if version == 4 else segment_v6()
    pkt, _ = run(0, struct.pack(order + "I", family) + bytes(inner))
    assert_is_the_standard_segment(pkt, version)


@pytest.mark.parametrize(("family", "version"), [(2, 4), (24, 6)])
def test_loop_header_in_network_byte_order_decodes(family: int, version: int) -> None:
    inner = segment_v4() if version == 4 else segment_v6()
    pkt, _ = run(108, struct.pack("!I", family) + bytes(inner))
    assert_is_the_standard_segment(pkt, version)


def test_bsd_null_header_with_unknown_family_is_counted_non_ip() -> None:
    pkt, decoder = run(0, struct.pack("<I", 7) + bytes(segment_v4()))
    assert pkt is None
    assert decoder.stats.non_ip == 1


def test_unsupported_linktype_is_counted_by_linktype() -> None:
    decoder = Decoder()
    for _ in range(2):
        pkt, _ = run(147, segment_v4(), decoder)
        assert pkt is None
    assert decoder.stats.unsupported_linktypes == {147: 2}
    assert decoder.stats.non_ip == 0
    assert decoder.stats.skipped() == {"linktype_147": 2}


# --- IPv4 --------------------------------------------------------------------------------------


def test_ipv4_options_do_not_shift_the_tcp_fields() -> None:
    frame = eth() / ip4(options=[IPOption_RR(), IPOption_NOP()]) / tcp() / PAYLOAD
    assert bytes(frame)[14] & 0x0F > 5
    pkt, _ = run(1, frame)
    assert_is_the_standard_segment(pkt, 4)


def test_ethernet_padding_of_a_bare_ack_is_not_payload() -> None:
    frame = bytes(eth() / ip4() / tcp(flags="A"))
    padded = frame.ljust(60, b"\0")
    assert len(frame) == 54
    pkt, _ = run(1, padded)
    assert pkt is not None
    assert pkt.length == 0


def test_ethernet_padding_is_not_part_of_a_rst_payload() -> None:
    padded = bytes(eth() / ip4() / tcp(flags="R") / b"ok").ljust(60, b"\0")
    pkt, _ = run(1, padded)
    assert pkt is not None
    assert (pkt.length, pkt.payload) == (2, b"ok")


@pytest.mark.parametrize("snaplen", [54, 64])
def test_snaplen_cut_ipv4_frame_keeps_the_payload_length_of_the_ip_header(snaplen: int) -> None:
    frame = bytes(eth() / ip4() / tcp() / (b"x" * 1000))
    pkt, _ = run(1, frame[:snaplen], wirelen=len(frame))
    assert pkt is not None
    assert (pkt.seq, pkt.ack, pkt.length) == (1000, 2000, 1000)


def test_snaplen_cut_ipv6_frame_keeps_the_payload_length_of_the_ip_header() -> None:
    frame = bytes(eth() / ip6() / tcp() / (b"x" * 1000))
    pkt, _ = run(1, frame[:74], wirelen=len(frame))
    assert pkt is not None
    assert pkt.length == 1000


def test_snaplen_cut_rst_keeps_only_the_captured_payload() -> None:
    frame = bytes(eth() / ip4() / tcp(flags="R") / (b"x" * 100))
    pkt, _ = run(1, frame[:64], wirelen=len(frame))
    assert pkt is not None
    assert (pkt.length, pkt.payload) == (100, b"x" * 10)


def test_ipv4_total_length_zero_from_segmentation_offload_uses_the_captured_length() -> None:
    data = bytearray(bytes(ip4() / tcp() / PAYLOAD))
    data[2:4] = b"\0\0"
    pkt, _ = run(101, bytes(data))
    assert pkt is not None
    assert pkt.length == len(PAYLOAD)


@pytest.mark.parametrize(("flags", "frag"), [("MF", 0), (0, 10), ("MF", 10)],
                         ids=["more-fragments", "offset", "both"])
def test_ipv4_fragment_is_skipped_and_counted(flags: object, frag: int) -> None:
    pkt, decoder = run(1, eth() / ip4(flags=flags, frag=frag) / tcp() / PAYLOAD)
    assert pkt is None
    assert decoder.stats.fragments == 1
    assert decoder.stats.tcp == 0


def test_ipv4_dont_fragment_bit_is_not_a_fragment() -> None:
    pkt, decoder = run(1, eth() / ip4(flags="DF") / tcp() / PAYLOAD)
    assert pkt is not None
    assert decoder.stats.fragments == 0


# --- IPv6 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ext",
    [IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, IPv6ExtHdrDestOpt,
     lambda: IPv6ExtHdrFragment(offset=0, m=0, id=99)],
    ids=["hop-by-hop", "routing", "destination-options", "atomic-fragment"],
)
def test_ipv6_extension_header_is_walked_to_tcp(ext) -> None:
    pkt, _ = run(1, eth() / ip6() / ext() / tcp() / PAYLOAD)
    assert_is_the_standard_segment(pkt, 6)


def test_ipv6_chain_of_extension_headers_is_walked_to_tcp() -> None:
    chain = (IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting()
             / IPv6ExtHdrFragment(offset=0, m=0) / IPv6ExtHdrDestOpt())
    pkt, _ = run(1, eth() / ip6() / chain / tcp() / PAYLOAD)
    assert_is_the_standard_segment(pkt, 6)


@pytest.mark.parametrize(("offset", "m"), [(0, 1), (185, 0), (185, 1)],
                         ids=["first-fragment", "last-fragment", "middle-fragment"])
def test_ipv6_real_fragment_is_skipped_and_counted(offset: int, m: int) -> None:
    frame = eth() / ip6() / IPv6ExtHdrFragment(offset=offset, m=m, id=99) / tcp() / PAYLOAD
    pkt, decoder = run(1, frame)
    assert pkt is None
    assert decoder.stats.fragments == 1


def _dest_opts(count: int) -> ScapyPacket:
    chain = IPv6ExtHdrDestOpt()
    for _ in range(count - 1):
        chain = chain / IPv6ExtHdrDestOpt()
    return chain


def test_ipv6_extension_chain_as_long_as_the_limit_decodes() -> None:
    frame = eth() / ip6() / _dest_opts(decode_module._MAX_EXT_HEADERS) / tcp() / PAYLOAD
    pkt, _ = run(1, frame)
    assert_is_the_standard_segment(pkt, 6)


def test_ipv6_extension_chain_longer_than_the_limit_is_malformed() -> None:
    frame = eth() / ip6() / _dest_opts(decode_module._MAX_EXT_HEADERS + 1) / tcp() / PAYLOAD
    pkt, decoder = run(1, frame)
    assert pkt is None
    assert decoder.stats.malformed == 1


def test_ipv6_extension_header_running_past_the_payload_is_malformed() -> None:
    data = bytearray(bytes(ip6() / IPv6ExtHdrDestOpt() / tcp() / PAYLOAD))
    data[41] = 200  # header length: 201 * 8 bytes, far beyond the payload
    pkt, decoder = run(101, bytes(data))
    assert pkt is None
    assert decoder.stats.malformed == 1


# --- what is not TCP ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [eth() / ip4() / UDP(sport=53, dport=53) / b"q",
     eth() / ip4() / ICMP(),
     eth() / ip6() / UDP(sport=53, dport=53) / b"q",
     eth() / ip6() / IPv6ExtHdrHopByHop() / UDP(sport=53, dport=53) / b"q"],
    ids=["udp4", "icmp4", "udp6", "udp6-after-hop-by-hop"],
)
def test_ip_without_tcp_is_counted_non_tcp(frame: ScapyPacket) -> None:
    pkt, decoder = run(1, frame)
    assert pkt is None
    assert (decoder.stats.non_tcp, decoder.stats.tcp, decoder.stats.frames) == (1, 0, 1)


def test_arp_is_counted_non_ip() -> None:
    pkt, decoder = run(1, eth() / ARP(psrc=V4_SRC, pdst=V4_DST))
    assert pkt is None
    assert (decoder.stats.non_ip, decoder.stats.non_tcp) == (1, 0)


def test_raw_frame_with_ip_version_neither_4_nor_6_is_counted_non_ip() -> None:
    pkt, decoder = run(101, b"\x50" + bytes(segment_v4())[1:])
    assert pkt is None
    assert decoder.stats.non_ip == 1


# --- malformed headers -------------------------------------------------------------------------


def _assert_malformed(linktype: int, data: bytes) -> None:
    pkt, decoder = run(linktype, data)
    assert pkt is None
    assert decoder.stats.malformed == 1
    assert decoder.stats.tcp == 0


def test_tcp_data_offset_beyond_the_segment_is_malformed() -> None:
    _assert_malformed(1, bytes(eth() / ip4() / tcp(dataofs=15)))


def test_tcp_data_offset_below_five_words_is_malformed() -> None:
    _assert_malformed(1, bytes(eth() / ip4() / tcp(dataofs=4) / PAYLOAD))


def test_ipv4_ihl_below_five_words_is_malformed() -> None:
    data = bytearray(bytes(ip4() / tcp()))
    data[0] = 0x44
    _assert_malformed(101, bytes(data))


def test_ipv4_total_length_shorter_than_the_ip_header_is_malformed() -> None:
    data = bytearray(bytes(ip4() / tcp()))
    data[2:4] = struct.pack("!H", 12)
    _assert_malformed(101, bytes(data))


@pytest.mark.parametrize(
    ("build", "cut"),
    [(segment_v4, 1), (segment_v4, 19), (segment_v4, 20), (segment_v4, 35),
     (segment_v6, 1), (segment_v6, 39), (segment_v6, 40), (segment_v6, 55)],
    ids=["v4-1", "v4-mid-ip", "v4-no-tcp", "v4-mid-tcp",
         "v6-1", "v6-mid-ip", "v6-no-tcp", "v6-mid-tcp"],
)
def test_truncated_ip_or_tcp_header_is_malformed(build, cut: int) -> None:
    _assert_malformed(101, bytes(build())[:cut])


def test_ethernet_header_without_any_ip_bytes_is_malformed() -> None:
    _assert_malformed(1, bytes(eth() / segment_v4())[:14])


def test_tcp_header_cut_after_the_window_still_decodes() -> None:
    frame = bytes(eth() / ip4() / tcp() / PAYLOAD)
    pkt, _ = run(1, frame[: 14 + 20 + 16], wirelen=len(frame))
    assert_is_the_standard_segment(pkt, 4)


# --- RST payload and MPTCP ---------------------------------------------------------------------


def test_rst_payload_is_kept_as_bytes() -> None:
    pkt, _ = run(1, eth() / ip4() / tcp(flags="RA") / b"connection refused")
    assert pkt is not None
    assert pkt.flags == RST | ACK
    assert type(pkt.payload) is bytes
    assert pkt.payload == b"connection refused"


def test_payload_of_a_segment_without_rst_is_not_kept() -> None:
    pkt, _ = run(1, eth() / ip4() / tcp(flags="PA") / b"hello")
    assert pkt is not None
    assert (pkt.length, pkt.payload) == (5, b"")


def test_mptcp_fastclose_option_is_noted() -> None:
    fastclose = (30, bytes([0x70, 0x00]) + b"\x11" * 8)  # subtype 7, receiver's key
    frame = eth() / ip4() / tcp(flags="RA", options=[("NOP", None), ("NOP", None), fastclose])
    pkt, _ = run(1, frame)
    assert pkt is not None
    assert pkt.mptcp_fastclose is True
    assert pkt.mptcp_reset_reason is None


def test_mptcp_tcprst_reason_code_is_read() -> None:
    tcprst = (30, bytes([0x81, 0x05]))  # subtype 8, T flag, reason 5 (too much outstanding data)
    frame = eth() / ip4() / tcp(flags="R", options=[("NOP", None), tcprst])
    pkt, _ = run(1, frame)
    assert pkt is not None
    assert pkt.mptcp_reset_reason == 5
    assert pkt.mptcp_fastclose is False


def test_option_bytes_that_merely_contain_30_are_not_mptcp() -> None:
    frame = eth() / ip4() / tcp(options=[("MSS", 0x1E1E), ("Timestamp", (0x1E1E1E1E, 30))])
    pkt, _ = run(1, frame)
    assert pkt is not None
    assert (pkt.mptcp_fastclose, pkt.mptcp_reset_reason) == (False, None)


# --- property: no input makes the decoder raise ------------------------------------------------

_LINK_PREFIXES = {
    0: [b"\x02\0\0\0", b"\0\0\0\x1e"],
    1: [bytes(eth())[:12] + b"\x08\x00", bytes(eth())[:12] + b"\x86\xdd",
        bytes(eth())[:12] + b"\x81\x00\x00\x0a\x86\xdd",
        bytes(eth())[:12] + b"\x88\x64\x11\x00\x00\x07\x00\x40\x00\x21"],
    108: [b"\0\0\0\x02", b"\0\0\0\x18"],
    113: [bytes(CookedLinux(pkttype=0, proto=0x0800)), bytes(CookedLinux(pkttype=0, proto=0x86DD))],
    276: [bytes(CookedLinuxV2(pkttype=0, proto=0x0800)),
          bytes(CookedLinuxV2(pkttype=0, proto=0x86DD))],
}


@st.composite
def frames(draw: st.DrawFn) -> RawFrame:
    linktype = draw(st.sampled_from(sorted(SUPPORTED_LINKTYPES) + [147]))
    prefix = draw(st.sampled_from(_LINK_PREFIXES.get(linktype, [b""]) + [b""]))
    # Start the network layer like IPv4 or IPv6 most of the time, to get past the first checks.
    first = draw(st.one_of(st.integers(0x40, 0x4F), st.just(0x60), st.integers(0, 255)))
    body = draw(st.binary(max_size=120))
    data = draw(st.sampled_from([prefix + bytes([first]) + body, body]))
    return RawFrame(1, 0.0, linktype, data, len(data))


@settings(max_examples=300, deadline=None)
@given(frames())
def test_decoding_arbitrary_bytes_never_raises(raw: RawFrame) -> None:
    decoder = Decoder()
    result = decoder.decode(raw)
    assert result is None or isinstance(result, Packet)
    assert decoder.stats.frames == 1


_VALID = [bytes(eth() / segment_v4()), bytes(eth() / ip6() / IPv6ExtHdrHopByHop() / tcp()),
          bytes(eth() / ip4() / tcp(flags="R", options=[(30, b"\x81\x05")]) / b"bye")]


@settings(max_examples=300, deadline=None)
@given(base=st.sampled_from(_VALID),
       edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
       cut=st.integers(0, 200))
def test_decoding_corrupted_valid_frames_never_raises(base: bytes, edits: list[tuple[int, int]],
                                                       cut: int) -> None:
    data = bytearray(base)
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    result, _ = run(1, bytes(data[:cut]))
    assert result is None or isinstance(result, Packet)
