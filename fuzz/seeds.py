"""Small captures built byte by byte: the fuzzer's hand-made seeds and the test builders.

tests/test_hostile_input.py builds its hypothesis examples from these functions, and
fuzz/make_corpus.py writes `seeds()` beside the public captures as the fuzzer's seed corpus.
Standard library only (struct): no scapy, so that a seed shows exactly the bytes it is about.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

ETHERNET, RAW, LINUX_SLL, LINUX_SLL2, NULL, LOOP = 1, 101, 113, 276, 0, 108
ETH_IPV4, ETH_IPV6, ETH_VLAN, ETH_PPPOE = 0x0800, 0x86DD, 0x8100, 0x8864

# (seconds, captured bytes) or (seconds, captured bytes, wire length)
Record = tuple[float, bytes] | tuple[float, bytes, int]


# -- network and transport layers ---------------------------------------------------------

def tcp_header(sport: int, dport: int, seq: int, ack: int, flags: int, *,
               window: int = 65535, options: bytes = b"", doff: int | None = None) -> bytes:
    """A TCP header; `doff` (in 32-bit words) may lie about the header's real length."""
    options += b"\0" * (-len(options) % 4)
    words = 5 + len(options) // 4 if doff is None else doff
    return struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                       (words & 0xF) << 4, flags & 0xFF, window & 0xFFFF, 0, 0) + options


def ipv4(src: bytes, dst: bytes, payload: bytes, *, proto: int = 6, ttl: int = 64,
         ipid: int = 1, frag: int = 0, total: int | None = None, ihl: int = 5,
         options: bytes = b"") -> bytes:
    """An IPv4 packet; `total` and `ihl` may lie (ihl counts 32-bit words of header)."""
    options += b"\0" * (-len(options) % 4)
    real_total = 20 + len(options) + len(payload)
    head = struct.pack("!BBHHHBBH4s4s", 0x40 | (ihl & 0xF), 0,
                       (real_total if total is None else total) & 0xFFFF, ipid & 0xFFFF,
                       frag & 0xFFFF, ttl & 0xFF, proto & 0xFF, 0, src, dst)
    return head + options + payload


def ipv6(src: bytes, dst: bytes, payload: bytes, *, next_header: int = 6,
         hop_limit: int = 64, payload_len: int | None = None,
         extensions: Sequence[tuple[int, bytes]] = ()) -> bytes:
    """An IPv6 packet. `extensions` are (header type, body) pairs in order, each body the
    bytes after the next-header byte; the last points at `next_header`."""
    chain = b""
    types = [t for t, _ in extensions] + [next_header]
    for (_, body), nxt in zip(extensions, types[1:], strict=False):
        chain += bytes([nxt]) + body
    first = types[0]
    body = chain + payload
    length = len(body) if payload_len is None else payload_len
    return struct.pack("!IHBB16s16s", 0x60000000, length & 0xFFFF, first, hop_limit & 0xFF,
                       src, dst) + body


def ext_header(size_units: int, fill: int = 0) -> bytes:
    """The body of a Hop-by-Hop/Routing/Destination options header of (size_units+1)*8 bytes."""
    return bytes([size_units & 0xFF]) + bytes([fill & 0xFF]) * ((size_units + 1) * 8 - 2)


def fragment_header(offset: int = 0, more: bool = False) -> bytes:
    return b"\0" + struct.pack("!HI", (offset << 3) | more, 0x1234)


def tcp4(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
         payload: bytes = b"", *, ttl: int = 64, ipid: int = 1, options: bytes = b"") -> bytes:
    """An honest IPv4 TCP segment."""
    return ipv4(src, dst, tcp_header(sport, dport, seq, ack, flags, options=options) + payload,
                ttl=ttl, ipid=ipid)


def tcp6(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
         payload: bytes = b"", *, hop_limit: int = 64,
         extensions: Sequence[tuple[int, bytes]] = ()) -> bytes:
    return ipv6(src, dst, tcp_header(sport, dport, seq, ack, flags) + payload,
                hop_limit=hop_limit, extensions=extensions)


# -- link layers --------------------------------------------------------------------------

def ethernet(ip: bytes, ethertype: int | None = None, vlans: Sequence[int] = ()) -> bytes:
    if ethertype is None:
        ethertype = ETH_IPV6 if ip[:1] and ip[0] >> 4 == 6 else ETH_IPV4
    tags = b"".join(struct.pack("!HH", ETH_VLAN, vid & 0xFFF) for vid in vlans)
    return b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb" + tags + \
        struct.pack("!H", ethertype) + ip


def pppoe(ip: bytes) -> bytes:
    proto = 0x0057 if ip[:1] and ip[0] >> 4 == 6 else 0x0021
    session = struct.pack("!BBHHH", 0x11, 0, 0x0001, len(ip) + 2, proto)
    return ethernet(session + ip, ETH_PPPOE)


def sll(ip: bytes) -> bytes:
    proto = ETH_IPV6 if ip[:1] and ip[0] >> 4 == 6 else ETH_IPV4
    return struct.pack("!HHH8sH", 0, 1, 6, b"\x00\x11\x22\x33\x44\x55\0\0", proto) + ip


def sll2(ip: bytes) -> bytes:
    proto = ETH_IPV6 if ip[:1] and ip[0] >> 4 == 6 else ETH_IPV4
    return struct.pack("!HHIHBB8s", proto, 0, 2, 1, 0, 6, b"\x00\x11\x22\x33\x44\x55\0\0") + ip


def null(ip: bytes) -> bytes:
    family = 30 if ip[:1] and ip[0] >> 4 == 6 else 2
    return struct.pack("<I", family) + ip


LINK_WRAPPERS = {ETHERNET: ethernet, RAW: lambda ip: ip, LINUX_SLL: sll, LINUX_SLL2: sll2,
                 NULL: null, LOOP: null}


# -- capture files ------------------------------------------------------------------------

def pcap(records: Iterable[Record], linktype: int = ETHERNET, *, endian: str = "<",
         nano: bool = False, snaplen: int = 262144) -> bytes:
    """A classic pcap file; each record's caplen is its data's length."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = bytearray(struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
    scale = 1e9 if nano else 1e6
    for record in records:
        ts, data = record[0], record[1]
        wirelen = record[2] if len(record) > 2 else len(data)  # type: ignore[misc]
        sec = int(ts) & 0xFFFFFFFF
        frac = int((ts - int(ts)) * scale) & 0xFFFFFFFF
        out += struct.pack(endian + "IIII", sec, frac, len(data), wirelen & 0xFFFFFFFF) + data
    return bytes(out)


def block(btype: int, body: bytes, endian: str = "<") -> bytes:
    """A pcapng block: type, total length, body padded to 32 bits, total length again."""
    body += b"\0" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack(endian + "II", btype, length) + body + struct.pack(endian + "I", length)


def option(code: int, value: bytes, endian: str = "<") -> bytes:
    return struct.pack(endian + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def shb(endian: str = "<") -> bytes:
    return block(0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1), endian)


def idb(linktype: int, options: bytes = b"", endian: str = "<") -> bytes:
    if options:
        options += option(0, b"", endian)
    return block(1, struct.pack(endian + "HHI", linktype, 0, 0) + options, endian)


def epb(iface: int, ticks: int, data: bytes, wirelen: int | None = None,
        endian: str = "<", options: bytes = b"") -> bytes:
    wirelen = len(data) if wirelen is None else wirelen
    ticks &= 0xFFFFFFFFFFFFFFFF
    head = struct.pack(endian + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                       wirelen & 0xFFFFFFFF)
    if options:  # after the data, padded to 32 bits, and an end of options
        data += b"\0" * (-len(data) % 4)
        options += option(0, b"", endian)
    return block(6, head + data + options, endian)


def spb(data: bytes, wirelen: int | None = None, endian: str = "<") -> bytes:
    return block(3, struct.pack(endian + "I", len(data) if wirelen is None else wirelen) + data,
                 endian)


def packet_block(iface: int, ticks: int, data: bytes, endian: str = "<") -> bytes:
    """The obsolete Packet Block (type 2)."""
    ticks &= 0xFFFFFFFFFFFFFFFF
    head = struct.pack(endian + "HHIIII", iface, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                       len(data))
    return block(2, head + data, endian)


def pcapng(records: Iterable[Record], linktype: int = ETHERNET, endian: str = "<") -> bytes:
    """One section, one interface (microseconds), an Enhanced Packet Block per record."""
    out = bytearray(shb(endian) + idb(linktype, endian=endian))
    for record in records:
        ts, data = record[0], record[1]
        out += epb(0, int(ts * 1e6), data, endian=endian)
    return bytes(out)


# -- conversations ------------------------------------------------------------------------

CLIENT, SERVER = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
CLIENT6 = bytes.fromhex("20010db8000000000000000000000001")
SERVER6 = bytes.fromhex("20010db8000000000000000000000002")


def conversation(ts: float = 1_700_000_000.0) -> list[tuple[float, bytes]]:
    """IP packets of a few flows that end in RSTs of several causes (closed port, data after
    close, a lone RST, a follow-up, an IPv6 reset through extension headers)."""
    c, s = CLIENT, SERVER
    out: list[tuple[float, bytes]] = []

    def add(dt: float, pkt: bytes) -> None:
        out.append((ts + dt, pkt))

    # closed port
    add(0.000, tcp4(c, s, 40000, 81, 100, 0, SYN))
    add(0.001, tcp4(s, c, 81, 40000, 0, 101, RST | ACK, ipid=0))
    # data after close, then a follow-up
    add(0.010, tcp4(c, s, 40001, 80, 1000, 0, SYN))
    add(0.011, tcp4(s, c, 80, 40001, 5000, 1001, SYN | ACK))
    add(0.012, tcp4(c, s, 40001, 80, 1001, 5001, ACK))
    add(0.013, tcp4(c, s, 40001, 80, 1001, 5001, ACK | PSH, b"GET / HTTP/1.0\r\n\r\n"))
    add(0.014, tcp4(s, c, 80, 40001, 5001, 1019, ACK | PSH, b"HTTP/1.0 200 OK\r\n\r\n"))
    add(0.015, tcp4(s, c, 80, 40001, 5020, 1019, FIN | ACK))
    add(0.016, tcp4(c, s, 40001, 80, 1019, 5021, ACK | PSH, b"more"))
    add(0.017, tcp4(s, c, 80, 40001, 5021, 0, RST, ipid=0))
    add(0.018, tcp4(c, s, 40001, 80, 1023, 5021, ACK | PSH, b"again"))
    add(0.019, tcp4(s, c, 80, 40001, 5021, 0, RST, ipid=0))
    # a lone RST carrying text (RFC 1122 diagnostic payload)
    add(0.020, tcp4(s, c, 443, 50000, 7, 0, RST, b"connection refused by policy"))
    # IPv6 through a hop-by-hop and a destination options header
    ext = [(0, ext_header(0)), (60, ext_header(1))]
    add(0.030, tcp6(CLIENT6, SERVER6, 40002, 443, 9, 0, SYN, extensions=ext))
    add(0.031, tcp6(SERVER6, CLIENT6, 443, 40002, 0, 10, RST | ACK, extensions=ext))
    return out


def bulk_transfer(segments: int, size: int = 1460,
                  ts: float = 1_700_000_000.0) -> list[tuple[float, bytes]]:
    """One flow that carries `segments` full data segments to the server, which then resets
    it unread: a big capture (for progress bars) with one RST at its very end."""
    c, s = CLIENT, SERVER
    data = b"x" * size
    out = [(ts, tcp4(c, s, 40000, 80, 0, 0, SYN)),
           (ts + 0.0001, tcp4(s, c, 80, 40000, 0, 1, SYN | ACK)),
           (ts + 0.0002, tcp4(c, s, 40000, 80, 1, 1, ACK))]
    for i in range(segments):
        out.append((ts + 0.001 + i * 1e-5, tcp4(c, s, 40000, 80, 1 + i * size, 1, ACK, data)))
    out.append((ts + 1.0 + segments * 1e-5, tcp4(s, c, 80, 40000, 1, 1 + segments * size,
                                                RST | ACK, ipid=0)))
    return out


def seeds() -> dict[str, bytes]:
    """Hand-made seed captures: every reader path and link type, and damage of each kind."""
    conv = conversation()
    ips = [pkt for _, pkt in conv]
    out: dict[str, bytes] = {}
    for linktype, wrap in LINK_WRAPPERS.items():
        out[f"conv-linktype{linktype}.pcap"] = pcap([(t, wrap(p)) for t, p in conv], linktype)
    out["conv-be-nano.pcap"] = pcap([(t, ethernet(p)) for t, p in conv], endian=">", nano=True)
    out["conv-vlan-qinq.pcap"] = pcap([(t, ethernet(p, vlans=(5, 7))) for t, p in conv])
    out["conv-pppoe.pcap"] = pcap([(t, pppoe(p)) for t, p in conv])
    out["conv.pcapng"] = pcapng([(t, ethernet(p)) for t, p in conv])
    out["conv-be.pcapng"] = pcapng([(t, ethernet(p)) for t, p in conv], endian=">")
    # several sections, interfaces, resolutions, and every packet block type
    multi = bytearray(shb() + idb(ETHERNET) + idb(RAW, option(9, b"\x09")) +
                      idb(LINUX_SLL, option(9, b"\x86") + option(14, struct.pack("<q", 3))))
    for i, (t, p) in enumerate(conv):
        if i % 4 == 0:
            multi += epb(0, int(t * 1e6), ethernet(p))
        elif i % 4 == 1:
            multi += epb(1, int(t * 1e9), p)
        elif i % 4 == 2:
            multi += packet_block(2, int(t * 64), sll(p))
        else:
            multi += block(0x0BAD, b"custom block")  # unknown block types are skipped
    multi += shb(">") + idb(RAW, endian=">") + spb(ips[0], endian=">") + spb(ips[1], 9, ">")
    out["multi-section.pcapng"] = bytes(multi)
    # the kernel's reasons as `live -w --kernel-reasons` saves them, and look-alikes
    reason = b"rstdiag kernel reason: TCP_ABORT_ON_CLOSE in TCP_CLOSE".ljust(96)
    saved = bytearray(shb() + idb(ETHERNET))
    for i, (t, p) in enumerate(conv):
        comment = option(1, reason) if i % 2 else option(1, b"rstdiag kernel reason: none")
        saved += epb(0, int(t * 1e6), ethernet(p), options=comment)
    out["kernel-reasons.pcapng"] = bytes(saved)
    # damage
    good = out["conv-linktype1.pcap"]
    out["cut-mid-record.pcap"] = good[: len(good) - 7]
    out["cut-mid-header.pcap"] = good[:30]
    huge_caplen = bytearray(good)
    struct.pack_into("<I", huge_caplen, 24 + 16 + len(ethernet(ips[0])) + 8, 0x7FFFFFFF)
    out["huge-caplen.pcap"] = bytes(huge_caplen)
    ng = out["conv.pcapng"]
    bad_len = bytearray(ng)
    struct.pack_into("<I", bad_len, 48 + 4, 0xFFFFFFF0)  # third block: the first EPB
    out["bad-block-length.pcapng"] = bytes(bad_len)
    out["cut.pcapng"] = ng[: len(ng) - 5]
    out["undeclared-interface.pcapng"] = shb() + idb(RAW) + epb(5, 0, ips[0]) + epb(0, 1, ips[1])
    out["tiny-blocks.pcapng"] = shb() + block(0x0BAD, b"") * 200 + idb(RAW) + epb(0, 0, ips[1])
    out["one-byte-records.pcap"] = pcap([(i, b"\x45") for i in range(200)], RAW)
    out["zero-caplen.pcap"] = pcap([(i, b"", 1500) for i in range(50)], RAW)
    # hostile packets
    s, c = SERVER, CLIENT
    hostile = [
        ipv4(c, s, tcp_header(1, 2, 3, 4, RST), ihl=15),  # header longer than the packet
        ipv4(c, s, tcp_header(1, 2, 3, 4, RST), ihl=1),  # shorter than 20 bytes
        ipv4(c, s, tcp_header(1, 2, 3, 4, RST), total=65535),  # claims more than captured
        ipv4(c, s, tcp_header(1, 2, 3, 4, RST), total=3),
        ipv4(c, s, tcp_header(1, 2, 3, 4, RST, doff=15)),  # data offset beyond the packet
        ipv4(c, s, tcp_header(1, 2, 3, 4, RST, doff=2)),
        ipv4(c, s, tcp_header(1, 2, 3, 4, RST, options=b"\x1e\xff\x70")),  # option lies
        ipv4(c, s, tcp_header(1, 2, 3, 4, RST, options=b"\x1e\x01\x80\x00")),
        ipv4(c, s, tcp_header(1, 2, 3, 4, RST | ACK), frag=0x2000),
        ipv4(c, s, tcp_header(1, 2, 3, 4, RST)[:10]),
        ipv6(CLIENT6, SERVER6, tcp_header(1, 2, 3, 4, RST), payload_len=0),
        ipv6(CLIENT6, SERVER6, tcp_header(1, 2, 3, 4, RST), payload_len=9000),
        ipv6(CLIENT6, SERVER6, tcp_header(1, 2, 3, 4, RST),
             extensions=[(0, ext_header(0))] * 20),  # a chain longer than the decoder follows
        ipv6(CLIENT6, SERVER6, tcp_header(1, 2, 3, 4, RST), extensions=[(0, ext_header(200))]),
        ipv6(CLIENT6, SERVER6, tcp_header(1, 2, 3, 4, RST), extensions=[(44, fragment_header())]),
        ipv6(CLIENT6, SERVER6, tcp_header(1, 2, 3, 4, RST),
             extensions=[(44, fragment_header(3, True))]),
        ipv6(CLIENT6, SERVER6, tcp_header(1, 2, 3, 4, RST), extensions=[(51, b"\x01" + b"\0" * 9)]),
    ]
    out["hostile-packets.pcap"] = pcap([(i, p) for i, p in enumerate(hostile)], RAW)
    out["hostile-packets-cut.pcap"] = pcap([(i, p[: len(p) // 2]) for i, p in enumerate(hostile)],
                                           RAW)
    return out
